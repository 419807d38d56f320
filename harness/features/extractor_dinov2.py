"""``dinov2:PATH``: DINOv2 (ViT-S/B/L/G 14) image features for FD_DINOv2 (EDM2, dgm-eval), from a
local transformers ``save_pretrained`` folder of ``Dinov2Model``, or the official torch.hub
checkpoint file (``dinov2_vitl14_pretrain.pth``; ViT-S/B/L, mapped onto ``Dinov2Model`` by
``hub_state_dict_to_dinov2``); never downloaded.

Convention (dgm-eval's, and EDM2 ``calculate_metrics.py`` with ``resize_mode='pil'``): Pillow
BICUBIC resize of the uint8 RGB image to 224x224 (mode ``pil_bicubic``), ``/255``, ImageNet
mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225), the network's output the CLS token
of the last layer after the final layer norm (transformers' ``pooler_output``; the torch.hub
model's ``x_norm_clstoken``, which its ``forward`` returns). EDM2's default
``resize_mode='torch'`` (``F.interpolate`` bicubic with antialias) differs slightly; it is
not offered here.

Position embeddings: the released models are trained at 518x518 (a 37x37 grid); at 224x224
(16x16) they are interpolated. dgm-eval and EDM2 run the torch.hub model, which interpolates
bicubically with ``scale_factor = (16 + 0.1) / 37`` (its ``interpolate_offset``, no antialias);
transformers' ``Dinov2Model`` interpolates to ``size = 16`` instead, which samples the grid at
slightly different points. The extractor therefore computes the hub's 16x16 embeddings once
(``hub_position_embeddings``) and installs them, so the features are the hub model's.

The weights are identified by sha256 (``KNOWN_DINOV2_WEIGHTS``) and an unknown file is refused
unless trusted (``trust_unknown=True`` / ``--trust-unknown``), as for Inception; the features'
identity carries the hash and the architecture either way.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from genbench.errors import UserError
from genbench.features.extractor_base import ResizingExtractor
from genbench.features.weights import HOW_TO_TRUST, file_sha256, is_trusted
from genbench.registry import EXTRACTORS

#: ImageNet's pixel mean and std (torchvision, DINOv2, dgm-eval, EDM2)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DINOV2_SIZE = 224

#: sha256 of DINOv2 weights files genbench knows (file -> label). Empty for now: no digest of
#: facebook/dinov2-{small,base,large,giant}'s model.safetensors could be verified without the
#: hub; every file is "unknown" and needs trust_unknown, and its hash goes into the record.
KNOWN_DINOV2_WEIGHTS: dict[str, str] = {}

#: the config fields that decide the features (others, such as transformers_version, do not)
_ARCH_FIELDS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "mlp_ratio", "patch_size", "image_size",
                "num_channels", "hidden_act", "layer_norm_eps", "layerscale_value", "use_swiglu_ffn", "qkv_bias")
#: (hidden size, layers) -> the released model's name
_ARCH_NAMES = {(384, 12): "ViT-S/14", (768, 12): "ViT-B/14", (1024, 24): "ViT-L/14", (1536, 40): "ViT-g/14"}


def dinov2_folder_weights(folder: Path) -> tuple[list[Path], str]:
    """The weights files of a ``save_pretrained`` folder and their sha256 (of the file; for a
    sharded save, of the lines ``name sha256`` of every shard in name order)."""
    files = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("pytorch_model*.bin"))
    if not files:
        raise UserError(f"{folder}: no model.safetensors or pytorch_model.bin; save the model with "
                        f"Dinov2Model.save_pretrained(DIR)")
    if len(files) == 1:
        return files, file_sha256(files[0])
    lines = "".join(f"{f.name} {file_sha256(f)}\n" for f in files)
    return files, hashlib.sha256(lines.encode()).hexdigest()


def hub_position_embeddings(position_embeddings, grid: int, offset: float = 0.1):
    """torch.hub DINOv2's interpolation of (1, 1 + M*M, D) position embeddings to a ``grid`` x
    ``grid`` patch grid: bicubic ``F.interpolate`` of the M x M patch part with scale factor
    ``(grid + offset) / M`` (no antialias, float32), the class embedding unchanged ->
    (1, 1 + grid*grid, D)."""
    import math

    import torch
    import torch.nn.functional as F

    pos = position_embeddings.detach().float()
    m = int(math.isqrt(pos.shape[1] - 1))
    if m * m != pos.shape[1] - 1:
        raise UserError(f"DINOv2 position embeddings of {pos.shape[1] - 1} patches are not a square grid")
    dim = pos.shape[-1]
    patch = pos[:, 1:].reshape(1, m, m, dim).permute(0, 3, 1, 2)
    scale = float(grid + offset) / m
    patch = F.interpolate(patch, scale_factor=(scale, scale), mode="bicubic", antialias=False)
    if tuple(patch.shape[-2:]) != (grid, grid):
        raise UserError(f"DINOv2 position embeddings: the hub's interpolation of {m}x{m} gave "
                        f"{tuple(patch.shape[-2:])}, not {grid}x{grid}")
    return torch.cat([pos[:, :1], patch.permute(0, 2, 3, 1).reshape(1, grid * grid, dim)], dim=1)


def hub_state_dict_to_dinov2(state: dict, where: str):
    """The torch.hub DINOv2 backbone's state dict (``cls_token``, ``pos_embed``, ``blocks.N.attn.qkv``,
    ``blocks.N.ls1.gamma``, ``norm``...) -> (``Dinov2Config``, ``Dinov2Model`` state dict). The
    architecture is read from the shapes (width, depth, MLP ratio; 64-d heads as every released
    model; trained at 518 with patch 14). ViT-g's SwiGLU and the register variants are refused."""
    import torch
    from transformers import Dinov2Config, Dinov2Model

    if not isinstance(state, dict) or "pos_embed" not in state or "blocks.0.attn.qkv.weight" not in state:
        raise UserError(f"{where}: not a DINOv2 torch.hub checkpoint (no pos_embed and blocks.0.attn.qkv.weight); "
                        f"give dinov2_vit{{s,b,l}}14_pretrain.pth or a save_pretrained folder")
    if "register_tokens" in state or "blocks.0.mlp.w12.weight" in state:
        raise UserError(f"{where}: a DINOv2 with registers or ViT-g's SwiGLU; only ViT-S/B/L 14 checkpoints are "
                        f"mapped: convert it with transformers' convert_dinov2_to_hf.py and give the folder")
    dim = int(state["cls_token"].shape[-1])
    depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
    patch = int(state["patch_embed.proj.weight"].shape[-1])
    grid = int(round((state["pos_embed"].shape[1] - 1) ** 0.5))
    cfg = Dinov2Config(hidden_size=dim, num_hidden_layers=depth, num_attention_heads=dim // 64,
                       mlp_ratio=int(state["blocks.0.mlp.fc1.weight"].shape[0]) // dim, patch_size=patch,
                       image_size=grid * patch, layerscale_value=1.0, layer_norm_eps=1e-6, qkv_bias=True)
    names = Dinov2Model(Dinov2Config(hidden_size=8, num_hidden_layers=1, num_attention_heads=1, image_size=14,
                                     patch_size=14)).state_dict()
    # transformers 5 names the projections q_proj... o_proj; 4.x attention.query... output.dense
    new = "encoder.layer.0.attention.q_proj.weight" in names
    att = {"q": "attention.q_proj", "k": "attention.k_proj", "v": "attention.v_proj", "o": "attention.o_proj"} if new \
        else {"q": "attention.attention.query", "k": "attention.attention.key", "v": "attention.attention.value",
              "o": "attention.output.dense"}
    out = {"embeddings.cls_token": state["cls_token"], "embeddings.mask_token": state["mask_token"].reshape(1, dim),
           "embeddings.position_embeddings": state["pos_embed"],
           "embeddings.patch_embeddings.projection.weight": state["patch_embed.proj.weight"],
           "embeddings.patch_embeddings.projection.bias": state["patch_embed.proj.bias"],
           "layernorm.weight": state["norm.weight"], "layernorm.bias": state["norm.bias"]}
    for i in range(depth):
        src, dst = f"blocks.{i}.", f"encoder.layer.{i}."
        for kind in ("weight", "bias"):
            q, k, v = torch.chunk(state[src + f"attn.qkv.{kind}"], 3, dim=0)  # rows: q, then k, then v
            out.update({dst + f"{att['q']}.{kind}": q, dst + f"{att['k']}.{kind}": k, dst + f"{att['v']}.{kind}": v,
                        dst + f"{att['o']}.{kind}": state[src + f"attn.proj.{kind}"]})
            for a, b in (("norm1", "norm1"), ("norm2", "norm2"), ("mlp.fc1", "mlp.fc1"), ("mlp.fc2", "mlp.fc2")):
                out[dst + f"{b}.{kind}"] = state[src + f"{a}.{kind}"]
        out[dst + "layer_scale1.lambda1"] = state[src + "ls1.gamma"]
        out[dst + "layer_scale2.lambda1"] = state[src + "ls2.gamma"]
    return cfg, out


def read_dinov2_config(folder: Path) -> dict[str, Any]:
    """``DIR/config.json``, checked to be a DINOv2 (``model_type`` ``dinov2``) config."""
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        raise UserError(f"{folder}: no config.json; dinov2:DIR needs a transformers save_pretrained folder of "
                        f"Dinov2Model (e.g. Dinov2Model.from_pretrained('facebook/dinov2-large').save_pretrained(DIR))")
    try:
        cfg = json.loads(cfg_path.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"{cfg_path}: not a JSON config ({e})") from None
    kind = cfg.get("model_type") if isinstance(cfg, dict) else None
    if kind != "dinov2":
        raise UserError(f"{cfg_path}: field model_type is {kind!r}, not 'dinov2'; dinov2:DIR needs a DINOv2 "
                        f"(Dinov2Model) save_pretrained folder")
    return cfg


@EXTRACTORS.register("dinov2")
class Dinov2Extractor(ResizingExtractor):
    """``dinov2:DIR``: the final-norm CLS token of a local ``Dinov2Model``, float64 (N, hidden),
    of images resized to 224x224 as ``mode`` says (default ``pil_bicubic``: dgm-eval / EDM2)."""

    name = "dinov2"
    size = DINOV2_SIZE
    modes = ("pil_bicubic", "clean")

    def __init__(self, path: str | Path | None = None, *, mode: str = "pil_bicubic", device: str = "cpu",
                 trust_unknown: bool = False, threads: int | None = None):
        if not path:
            raise UserError("extractor dinov2 needs a folder: write dinov2:DIR, DIR a transformers save_pretrained "
                            "folder of Dinov2Model; genbench never downloads weights")
        self.path = Path(path)
        if not self.path.exists():
            raise UserError(f"{self.path}: no such folder or file (extractor dinov2:DIR or dinov2:FILE.pth)")
        hub_state = None
        if self.path.is_file():
            hub_state, cfg = self._read_hub_checkpoint(trust_unknown)
        else:
            cfg = read_dinov2_config(self.path)
        self.architecture = {k: cfg.get(k) for k in _ARCH_FIELDS}
        self.arch = _ARCH_NAMES.get((cfg.get("hidden_size"), cfg.get("num_hidden_layers")),
                                    f"ViT {cfg.get('hidden_size')}-d x {cfg.get('num_hidden_layers')} layers "
                                    f"/{cfg.get('patch_size')}")
        if self.path.is_dir():
            self.weights_files, self.weights_sha256 = dinov2_folder_weights(self.path)
        self.weights_label = KNOWN_DINOV2_WEIGHTS.get(self.weights_sha256)
        if self.weights_label is None and not is_trusted(self.weights_sha256, trust_unknown):
            raise UserError(
                f"{self.path}: unknown DINOv2 weights, sha256 {self.weights_sha256}; genbench knows "
                f"{len(KNOWN_DINOV2_WEIGHTS)} files (genbench.features.extractor_dinov2.KNOWN_DINOV2_WEIGHTS). "
                f"Point at a known file, or {HOW_TO_TRUST} (the numbers then carry this hash, not a reference one)")
        super().__init__(mode=mode, device=device, threads=threads)
        import torch
        from transformers import Dinov2Model

        from transformers.utils import logging as hf_logging

        bar = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # a bar per load of 40 tensors says nothing; ours counts images
        try:
            if hub_state is not None:
                model = Dinov2Model(hub_state[0])
                model.load_state_dict(hub_state[1], strict=True)
            else:
                model = Dinov2Model.from_pretrained(str(self.path), local_files_only=True)
        except Exception as e:  # wrong shapes, unreadable weights
            raise UserError(f"{self.path}: transformers cannot load it as Dinov2Model ({type(e).__name__}: "
                            f"{str(e).splitlines()[0] if str(e) else ''})") from None
        finally:
            if bar:
                hf_logging.enable_progress_bar()
        grid, trained = self.size // int(cfg.get("patch_size") or 14), int(cfg.get("image_size") or self.size)
        self.position_embeddings = "as trained (no interpolation)"
        if trained // int(cfg.get("patch_size") or 14) != grid:  # the hub model's embeddings at 224, as dgm-eval's
            emb = model.embeddings
            emb.position_embeddings = torch.nn.Parameter(hub_position_embeddings(emb.position_embeddings, grid),
                                                         requires_grad=False)
            self.position_embeddings = (f"torch.hub DINOv2's: bicubic from {trained // int(cfg['patch_size'])}x"
                                        f"{trained // int(cfg['patch_size'])} with scale factor ({grid} + 0.1) / "
                                        f"{trained // int(cfg['patch_size'])}, no antialias")
        self.model = model.eval().to(device=self.device, dtype=torch.float32)
        self._norm = (torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1),
                      torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1))
        self.dim = int(cfg.get("hidden_size") or self._run(np.zeros((1, 3, self.size, self.size), np.float32)).shape[1])

    def _weights_words(self) -> str:
        return f"DINOv2 {self.arch}, {self.path}"

    def _read_hub_checkpoint(self, trust_unknown: bool):
        """A torch.hub ``.pth``: hashed and gated first (an unknown file is not unpickled unless
        trusted), then mapped: ((config, state dict), config as a dict)."""
        import torch

        self.weights_files, self.weights_sha256 = [self.path], file_sha256(self.path)
        if self.weights_sha256 not in KNOWN_DINOV2_WEIGHTS and not is_trusted(self.weights_sha256, trust_unknown):
            return None, {}  # the gate below refuses it with the hash
        try:
            state = torch.load(str(self.path), map_location="cpu", weights_only=True)
        except Exception as e:
            raise UserError(f"{self.path}: not a torch checkpoint ({type(e).__name__}: "
                            f"{str(e).splitlines()[0] if str(e) else ''}); give dinov2_vitl14_pretrain.pth "
                            f"or a save_pretrained folder") from None
        cfg, mapped = hub_state_dict_to_dinov2(state, str(self.path))
        return (cfg, mapped), {**cfg.to_dict(), "model_type": "dinov2"}

    def _forward(self, x):
        mean, std = self._norm
        return self.model(pixel_values=(x / 255 - mean) / std).pooler_output

    def describe(self) -> dict[str, Any]:
        return {"extractor": "dinov2", "arch": self.arch, "architecture": self.architecture,
                "weights_path": str(self.path), "weights_sha256": self.weights_sha256,
                "weights": self.weights_label or "unknown file, trusted", "resize": self.mode, "dim": self.dim,
                "input_size": self.size, "layer": "CLS token of the last layer after the final layer norm",
                "position_embeddings": self.position_embeddings,
                "normalisation": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
                "input": ("dgm-eval / EDM2 resize_mode='pil': PIL BICUBIC of the uint8 image to 224x224, /255, "
                          "ImageNet mean/std" if self.mode == "pil_bicubic" else
                          f"{self.mode} resize to 224x224 (not dgm-eval's), /255, ImageNet mean/std")}


__all__ = ["Dinov2Extractor", "KNOWN_DINOV2_WEIGHTS", "hub_position_embeddings", "IMAGENET_MEAN", "IMAGENET_STD", "DINOV2_SIZE",
           "read_dinov2_config", "dinov2_folder_weights"]
