"""Image tokenizers from diffusers checkpoints: ``diffusers-vq:DIR`` and ``diffusers-vae:DIR``.

* ``diffusers-vq:DIR``: a ``VQModel`` (VQ-GAN: aMUSEd's, MaskGIT-style). Discrete: ``encode``
  returns the index of the nearest codebook entry of each latent position, int64 (N, h, w);
  ``decode`` looks the entries up and runs the decoder (``VQModel.decode`` with
  ``force_not_quantize``, or with the indices themselves when the config sets
  ``lookup_from_codebook``).
* ``diffusers-vae:DIR``: an ``AutoencoderKL`` (the SD / DiT / MAR VAE). Continuous: ``encode``
  returns the posterior mean, float32 (N, c, h, w), or with ``sample = true`` a posterior
  sample ``mean + std * eps``; latents are returned unscaled (``scaling_factor`` is recorded,
  not applied, since reconstruction does not need it). Each image's ``eps`` is drawn from a
  generator keyed on (``seed``, the sha256 of the image's bytes), so it depends neither on
  the batch size nor on the image's position.

Both scale uint8 pixels to [-1, 1] as ``x / 127.5 - 1`` and return the decoder's output to
uint8 as ``clamp(round(127.5 y + 127.5), 0, 255)`` (genbench's ``round`` quantisation rule),
batch by batch in float32. They take images of ``resolution`` (default: the config's
``sample_size``), with ``in_channels`` channels.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from genbench.errors import UserError
from genbench.interfaces import Tokenizer

PIXEL_SCALING = "x / 127.5 - 1 ([-1, 1])"


def _checkpoint_files_sha256(path: Path) -> str:
    """sha256 over the checkpoint directory's files (names and bytes), in name order."""
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(path)).encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


class _DiffusersTokenizer(Tokenizer):
    """What the VQ and KL adapters share: loading, pixel scaling, quantisation, batching."""

    model_class: str
    output_quantisation = "clamp(round(127.5 y + 127.5), 0, 255) (genbench quantisation rule 'round')"
    pixel_scaling = PIXEL_SCALING

    def __init__(self, path: str | None = None, *, device: str = "cpu", batch_size: int = 16,
                 resolution: int | list[int] | None = None):
        import diffusers

        if path is None:
            raise UserError(f"{self.name}: name the checkpoint directory, e.g. {self.name}:PATH/TO/DIR "
                            f"(a diffusers {self.model_class} saved with save_pretrained)")
        self.path = Path(path)
        cfg_file = self.path / "config.json"
        if not cfg_file.is_file():
            raise UserError(f"{self.name}: {cfg_file} does not exist; give a directory saved by "
                            f"{self.model_class}.save_pretrained")
        cfg = json.loads(cfg_file.read_text())
        if cfg.get("_class_name") not in (None, self.model_class):
            raise UserError(f"{self.name}: {cfg_file} holds a {cfg.get('_class_name')} but {self.name} loads {self.model_class}s; "
                            f"use {'diffusers-vae' if self.model_class == 'VQModel' else 'diffusers-vq'}:DIR")
        import torch

        try:
            model = getattr(diffusers, self.model_class).from_pretrained(str(self.path), low_cpu_mem_usage=False)
        except (OSError, ValueError, KeyError, TypeError) as e:  # a broken checkpoint: one line naming it
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise UserError(f"{self.name}: could not load {self.path} as a {self.model_class}: {first}") from None
        self.model = model.to(device).float().eval()
        self.device = torch.device(device)
        self.batch_size = int(batch_size)
        if self.batch_size < 1:
            raise UserError(f"{self.name}: batch_size must be >= 1, got {batch_size}")
        c = self.model.config
        size = resolution if resolution is not None else c.sample_size
        if isinstance(size, (list, tuple)):
            self.resolution = (int(size[0]), int(size[1]))
        else:
            self.resolution = (int(size), int(size))
        self.channels = int(c.in_channels)
        self.downsampling = 2 ** (len(c.block_out_channels) - 1)
        self.weights_sha256 = _checkpoint_files_sha256(self.path)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "checkpoint": str(self.path), "weights_sha256": self.weights_sha256,
                "model_class": self.model_class}

    def _to_pixels(self, images: np.ndarray):
        import torch

        x = torch.from_numpy(np.ascontiguousarray(images)).to(self.device).permute(0, 3, 1, 2).float()
        return x / 127.5 - 1.0

    @staticmethod
    def _to_uint8(y) -> np.ndarray:
        from genbench.features.quantise import float_images_to_uint8

        return float_images_to_uint8(y.permute(0, 2, 3, 1).double().cpu().numpy(), "round")

    def _batched(self, n: int):
        for s in range(0, n, self.batch_size):
            yield s, min(s + self.batch_size, n)


def vq_pixels_to_codes(model, x):
    """A diffusers ``VQModel``'s codes of float pixels (B, C, H, W) in [-1, 1]: int64 (B, h, w),
    the nearest codebook entries of the encoder's latents."""
    latents = model.encode(x).latents
    _, _, (_, _, idx) = model.quantize(latents)
    return idx.reshape(len(x), latents.shape[2], latents.shape[3])


def vq_codes_to_images(model, idx, code_dim: int, lookup: bool) -> np.ndarray:
    """int64 codes (B, h, w) on the model's device -> uint8 images (B, H, W, C) by the ``round``
    rule; ``lookup``: the model's ``lookup_from_codebook`` (its decoder takes the indices)."""
    b, h, w = idx.shape
    shape = (b, h, w, code_dim)
    if lookup:
        y = model.decode(idx, force_not_quantize=True, shape=shape).sample
    else:
        y = model.decode(model.quantize.get_codebook_entry(idx.reshape(-1), shape), force_not_quantize=True).sample
    return _DiffusersTokenizer._to_uint8(y)


class DiffusersVQ(_DiffusersTokenizer):
    """``VQModel`` behind the discrete interface: uint8 (N, H, W, C) <-> int64 codes (N, h, w)."""

    name = "diffusers-vq"
    kind = "discrete"
    model_class = "VQModel"

    def __init__(self, path: str | None = None, **kw: Any):
        super().__init__(path, **kw)
        q = self.model.quantize
        self.codebook_size = int(q.re_embed if getattr(q, "remap", None) is not None else q.n_e)
        self.code_dim = int(q.vq_embed_dim if hasattr(q, "vq_embed_dim") else q.embedding.weight.shape[1])
        self.lookup = bool(getattr(self.model.config, "lookup_from_codebook", False))

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "code_dim": self.code_dim,
                "codes": "argmin of the distance to the codebook (diffusers VectorQuantizer)"}

    def encode(self, images: np.ndarray) -> np.ndarray:
        """uint8 (N, H, W, C) -> int64 codes (N, H/f, W/f) in [0, codebook_size)."""
        import torch

        self.check_images(images, "encode")
        n, h, w = len(images), images.shape[1] // self.downsampling, images.shape[2] // self.downsampling
        out = np.empty((n, h, w), dtype=np.int64)
        with torch.inference_mode():
            for s, e in self._batched(n):
                out[s:e] = vq_pixels_to_codes(self.model, self._to_pixels(images[s:e])).cpu().numpy()
        return out

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """int64 codes (N, h, w) -> uint8 (N, h*f, w*f, C)."""
        import torch

        codes = np.asarray(codes)
        if codes.ndim != 3 or not np.issubdtype(codes.dtype, np.integer):
            raise UserError(f"{self.name}: decode takes integer codes (N, h, w); got {codes.dtype} {codes.shape}")
        if codes.size and (codes.min() < 0 or codes.max() >= self.codebook_size):
            raise UserError(f"{self.name}: codes must lie in [0, {self.codebook_size}); got {codes.min()}..{codes.max()}")
        outs = []
        with torch.inference_mode():
            for s, e in self._batched(len(codes)):
                idx = torch.from_numpy(codes[s:e].astype(np.int64)).to(self.device)
                outs.append(vq_codes_to_images(self.model, idx, self.code_dim, self.lookup))
        return np.concatenate(outs) if outs else np.empty((0, 0, 0, self.channels), np.uint8)


class DiffusersVAE(_DiffusersTokenizer):
    """``AutoencoderKL`` behind the continuous interface: uint8 (N, H, W, C) <-> float32 (N, c, h, w)."""

    name = "diffusers-vae"
    kind = "continuous"
    model_class = "AutoencoderKL"

    def __init__(self, path: str | None = None, *, sample: bool = False, seed: int = 0, **kw: Any):
        super().__init__(path, **kw)
        if not isinstance(sample, bool):
            raise UserError(f"{self.name}: option sample must be true or false, got {sample!r}")
        self.sample, self.seed = sample, int(seed)
        self.latent_channels = int(self.model.config.latent_channels)
        self.scaling_factor = float(getattr(self.model.config, "scaling_factor", 1.0))

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        h, w = self.resolution
        return (self.latent_channels, h // self.downsampling, w // self.downsampling)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "latent_shape": list(self.latent_shape),
                "latent_channels": self.latent_channels, "scaling_factor": self.scaling_factor,
                "latents": ("posterior sample mean + std * eps, eps keyed on (seed, sha256 of the image)"
                            if self.sample else "posterior mean") + "; unscaled (scaling_factor not applied)",
                "seed": self.seed if self.sample else None}

    def _noise(self, images: np.ndarray, shape):
        import torch

        eps = []
        for img in images:
            key = hashlib.sha256(self.seed.to_bytes(8, "little", signed=True) + img.tobytes()).digest()
            g = torch.Generator().manual_seed(int.from_bytes(key[:8], "little") & (2**63 - 1))
            eps.append(torch.randn(shape, generator=g))
        return torch.stack(eps).to(self.device)

    def encode(self, images: np.ndarray) -> np.ndarray:
        """uint8 (N, H, W, C) -> float32 latents (N, c, H/f, W/f)."""
        import torch

        self.check_images(images, "encode")
        outs = []
        with torch.inference_mode():
            for s, e in self._batched(len(images)):
                dist = self.model.encode(self._to_pixels(images[s:e])).latent_dist
                z = dist.mean
                if self.sample:
                    z = z + dist.std * self._noise(images[s:e], z.shape[1:])
                outs.append(z.float().cpu().numpy())
        return np.concatenate(outs)

    def decode(self, latents: np.ndarray) -> np.ndarray:
        """float latents (N, c, h, w) -> uint8 (N, h*f, w*f, C)."""
        import torch

        latents = np.asarray(latents)
        if latents.ndim != 4 or latents.shape[1] != self.latent_channels:
            raise UserError(f"{self.name}: decode takes latents (N, {self.latent_channels}, h, w); got {latents.shape}")
        outs = []
        with torch.inference_mode():
            for s, e in self._batched(len(latents)):
                z = torch.from_numpy(np.ascontiguousarray(latents[s:e], dtype=np.float32)).to(self.device)
                outs.append(self._to_uint8(self.model.decode(z).sample))
        return np.concatenate(outs)
