"""``clip:ARCH:FILE``: an open_clip image encoder (``ARCH`` an open_clip model name such as
``ViT-B-32``, or a model config ``.json``) with local weights ``FILE``, for CLIP-FID; never
downloaded. Input as clean-fid's ``clip_vit_b_32`` prepares it (mode ``clip``): Pillow BICUBIC
resize of the uint8 image so its short side is the model's input size, centre crop, then
``/255`` and the model's mean/std; features are ``encode_image`` (not normalised).

``clip:ARCH:FILE:cmmd`` is CMMD's variant (google-research ``cmmd``; the reference ARCH is
``ViT-L-14-336``, OpenAI's ViT-L/14@336): the whole image resized to the model's input size
(336) by ``F.interpolate`` bicubic (mode ``torch_bicubic``), the same scaling, and the
``encode_image`` embeddings L2-normalised."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from genbench.errors import UserError
from genbench.features.extractor_base import ResizingExtractor
from genbench.features.weights import file_sha256
from genbench.registry import EXTRACTORS


@EXTRACTORS.register("clip")
class ClipExtractor(ResizingExtractor):
    """``clip:ARCH:FILE``: an open_clip image encoder with local weights, for CLIP-FID.

    ARCH: an open_clip model name (``ViT-B-32``...) or a model config ``.json`` (its
    ``embed_dim``, ``vision_cfg`` and ``text_cfg``). FILE: the weights, anything
    ``open_clip.load_checkpoint`` reads (a state dict, open_clip's or OpenAI's checkpoint).
    Nothing is ever downloaded. Features: ``encode_image`` of the mode's input scaled by
    ``/255`` and normalised with the model's mean and std, float64 (N, embed_dim).
    """

    name = "clip"
    modes = ("clip", "clean")
    #: CMMD's reference model (open_clip's name for OpenAI's ViT-L/14@336)
    CMMD_ARCH = "ViT-L-14-336"

    def __init__(self, path: str | None = None, *, mode: str | None = None, device: str = "cpu",
                 threads: int | None = None):
        arch, sep, weights = (path or "").partition(":")
        self.variant = "cmmd" if weights.endswith(":cmmd") else "clip-fid"
        if self.variant == "cmmd":
            weights = weights[: -len(":cmmd")]
            self.modes = ("torch_bicubic", "pil_bicubic", "clip")
        mode = mode or self.modes[0]
        if arch == "hf-hub":
            raise UserError(f"extractor clip:{path}: hf-hub models are downloaded; give an open_clip model name "
                            f"or a config .json, and local weights")
        if not arch or not sep or not weights:
            raise UserError(
                f"extractor clip:{path or ''}: write clip:ARCH:FILE, ARCH an open_clip model name (e.g. ViT-B-32) "
                f"or a model config .json and FILE its local weights; genbench never downloads CLIP weights"
            )
        self.weights_path = Path(weights)
        if not self.weights_path.is_file():
            raise UserError(f"{self.weights_path}: no such CLIP weights file (extractor clip:{arch}:FILE); "
                            f"genbench never downloads them: save the checkpoint locally and point at it")
        super().__init__(mode=mode, device=device, threads=threads)
        import torch

        self.arch, config_sha = _open_clip_arch(arch)
        import open_clip

        # open_clip logs "No pretrained weights loaded ... initialized randomly" for the empty model it
        # builds here; the user's weights are loaded into it just below, so that line would mislead
        previous = logging.root.manager.disable
        logging.disable(logging.WARNING)
        try:
            model = open_clip.create_model(self.arch, pretrained=None, load_weights=False, device="cpu")
        except RuntimeError as e:
            raise UserError(f"clip:{arch}: open_clip cannot build it ({str(e).splitlines()[0]}); use one of "
                            f"open_clip.list_models() or a model config .json") from None
        finally:
            logging.disable(previous)
        try:
            open_clip.load_checkpoint(model, str(self.weights_path))
        except Exception as e:  # a wrong file: unpickling, missing or unexpected keys, shapes
            raise UserError(f"{self.weights_path}: not weights of open_clip {self.arch} "
                            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
        self.model = model.eval().to(self.device)
        cfg = getattr(model.visual, "preprocess_cfg", None) or {}
        self.mean = tuple(float(v) for v in cfg.get("mean", OPENAI_CLIP_MEAN))
        self.std = tuple(float(v) for v in cfg.get("std", OPENAI_CLIP_STD))
        image_size = model.visual.image_size
        self.size = int(image_size[0] if isinstance(image_size, (tuple, list)) else image_size)
        self._norm = (torch.tensor(self.mean, device=self.device).view(1, 3, 1, 1),
                      torch.tensor(self.std, device=self.device).view(1, 3, 1, 1))
        self.config_sha256 = config_sha
        self.weights_sha256 = file_sha256(self.weights_path)
        self.dim = int(self._run(np.zeros((1, 3, self.size, self.size), np.float32)).shape[1])

    def _weights_words(self) -> str:
        return f"CLIP {self.arch}, {self.weights_path}"

    def _forward(self, x):
        mean, std = self._norm
        y = self.model.encode_image((x / 255 - mean) / std)
        if self.variant == "cmmd":  # CMMD: unit-length embeddings (in float64 after _run's cast too)
            y = y / y.norm(dim=-1, keepdim=True)
        return y

    def _run(self, batch: np.ndarray) -> np.ndarray:
        out = super()._run(batch)
        if self.variant == "cmmd":  # re-normalise in float64 so that |x| = 1 to 1e-15, not float32's 1e-7
            out /= np.linalg.norm(out, axis=1, keepdims=True)
        return out

    def describe(self) -> dict[str, Any]:
        return {"extractor": f"clip:{self.arch}", "arch": self.arch, "weights_path": str(self.weights_path),
                "weights_sha256": self.weights_sha256, "config_sha256": self.config_sha256, "resize": self.mode,
                "dim": self.dim, "layer": "encode_image", "input_size": self.size,
                "normalisation": {"mean": list(self.mean), "std": list(self.std)},
                # only the CMMD variant adds keys: CLIP-FID statistics files keep their identity
                **({"variant": "cmmd", "embeddings": "L2-normalised",
                    "cmmd_reference_arch": self.arch == self.CMMD_ARCH} if self.variant == "cmmd" else {})}


#: CLIP's pixel mean and std (open_clip's OPENAI_DATASET_MEAN / _STD; clean-fid's CLIP_fx)
OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def _open_clip_arch(arch: str) -> tuple[str, str | None]:
    """An open_clip model name, registering a ``.json`` config first: (name, config sha256)."""
    import json

    import open_clip

    if arch.lower().endswith(".json"):
        cfg = Path(arch)
        if not cfg.is_file():
            raise UserError(f"{cfg}: no such open_clip model config (extractor clip:CONFIG.json:FILE)")
        try:
            body = json.loads(cfg.read_text())
        except (OSError, ValueError) as e:
            raise UserError(f"{cfg}: not a JSON model config ({e})") from None
        if not isinstance(body, dict) or not {"embed_dim", "vision_cfg", "text_cfg"} <= set(body):
            raise UserError(f"{cfg}: an open_clip model config needs fields embed_dim, vision_cfg and text_cfg")
        open_clip.add_model_config(cfg)  # registered under the file's stem
        return cfg.stem, file_sha256(cfg)
    if open_clip.get_model_config(arch) is None:
        raise UserError(f"clip:{arch}: not an open_clip model name; e.g. ViT-B-32 (open_clip.list_models()), "
                        f"or a model config .json")
    return arch, None


__all__ = ["ClipExtractor", "OPENAI_CLIP_MEAN", "OPENAI_CLIP_STD"]
