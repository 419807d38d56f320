"""``hf-imagegpt:DIR``: transformers' ``ImageGPTForCausalImageModeling`` with its image processor's
colour clusters, behind the common interface.

An image is ``n_positions`` colour-cluster tokens in raster order: the processor resizes it to
its ``size`` (bilinear), scales to [-1, 1] and maps each pixel to the nearest of the
``n_clusters`` RGB clusters (ImageGPT's 9-bit palette: 512 clusters). A token is a whole
pixel's colour, not an 8-bit level of one channel, so the likelihood is in **bits per
colour-cluster token** (``unit = "token"``), exact, of the resized and colour-quantised image;
it is not comparable with bits per dimension over 256 levels.

Sampling: from the start-of-sequence token (``vocab_size - 1``), one token per position with
the key/value cache (option ``kv_cache``), ``temperature`` / ``top_k`` / ``top_p`` (defaults
1 / 0 / 1: the model's distribution), inverse-CDF draws from the uniforms of sample ``i``'s
generator ``example_generator(seed, i, stream="sample")``; ``nfe_per_sample = n_positions``. Tokens become
pixels as the cluster's colour, ``clamp(round(127.5 c + 127.5))`` (the ``round`` rule).
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genbench.adapters.conditioning import condition_to_labels, images_to_model_input
from genbench.adapters import hf
from genbench.adapters.raster import check_sampling_options, raster_images, raster_nll
from genbench.errors import UserError
from genbench.features.quantise import float_images_to_uint8
from genbench.interfaces import Generator, LikelihoodKind, LogLikelihood, Samples

NAME = "hf-imagegpt"


def _checkpoint(path: str | None) -> Path:
    fix = ("use hf-imagegpt:DIR with DIR holding config.json, the weights and preprocessor_config.json (as written "
           "by model.save_pretrained(DIR) and image_processor.save_pretrained(DIR))")
    if path is None or not str(path).strip():
        raise UserError(f"{NAME} needs a checkpoint folder: {fix}")
    root = Path(path).expanduser()
    for need in (root, root / "config.json", root / "preprocessor_config.json"):
        if not need.exists():
            raise UserError(f"{NAME}: {need} does not exist; {fix}")
    return root


class ImageGPT(Generator):
    """ImageGPT: exact NLL per colour-cluster token and raster sampling with a KV cache.

    Options: ``device``, ``batch_size`` (likelihood rows per forward pass); runtime:
    ``temperature``, ``top_k``, ``top_p``, ``kv_cache``.
    """

    name = NAME
    paradigm = "autoregressive"
    modality = "image"
    likelihood_unit = "token"
    runtime_options = frozenset({"temperature", "top_k", "top_p", "kv_cache"})

    @classmethod
    def check_options(cls, path: str | None, **options: Any) -> None:
        _checkpoint(path)
        check_sampling_options(NAME, options.get("temperature", 1.0), options.get("top_k", 0), options.get("top_p", 1.0))

    def __init__(self, path: str | None = None, *, device: str = "cpu", batch_size: int = 32,
                 temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0, kv_cache: bool = True):
        import transformers

        self.root = _checkpoint(path)
        self.label = f"{NAME}:{path}"
        try:
            with hf._quiet_progress_bars():
                self.model = transformers.ImageGPTForCausalImageModeling.from_pretrained(self.root)
                self.processor = transformers.ImageGPTImageProcessor.from_pretrained(self.root)
        except (OSError, ValueError, KeyError) as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise UserError(f"{NAME}: could not load {self.root} as ImageGPTForCausalImageModeling with its "
                            f"ImageGPTImageProcessor: {first}") from None
        self.device = torch.device(device)
        self.model.to(self.device).eval()
        self.clusters = np.asarray(self.processor.clusters, dtype=np.float64)  # (n_clusters, 3) in [-1, 1]
        size = self.processor.size
        self.size = (int(size["height"]), int(size["width"]))
        self.positions = int(self.model.config.n_positions)
        if self.size[0] * self.size[1] != self.positions or len(self.clusters) != self.model.config.vocab_size - 1:
            raise UserError(f"{NAME}: {self.root}: the processor's {self.size[0]}x{self.size[1]} pixels and "
                            f"{len(self.clusters)} clusters do not fit the model's {self.positions} positions and "
                            f"vocab_size {self.model.config.vocab_size} (clusters + 1 start token)")
        self.batch_size = int(batch_size)
        self.temperature, self.top_k, self.top_p = check_sampling_options(NAME, temperature, top_k, top_p)
        self.kv_cache = bool(kv_cache)

    def with_options(self, **options: Any) -> "ImageGPT":
        if set(options) - self.runtime_options:
            return super().with_options(**options)
        view = copy.copy(self)
        o = {"temperature": self.temperature, "top_k": self.top_k, "top_p": self.top_p, **options}
        view.temperature, view.top_k, view.top_p = check_sampling_options(NAME, o["temperature"], o["top_k"],
                                                                          o["top_p"])
        view.kv_cache = bool(options.get("kv_cache", self.kv_cache))
        return view

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "paradigm": self.paradigm, "modality": self.modality, "path": str(self.root),
                "n_params": int(sum(p.numel() for p in self.model.parameters())), "size": list(self.size),
                "n_clusters": len(self.clusters),
                "sampler": {"temperature": self.temperature, "top_k": self.top_k, "top_p": self.top_p,
                            "kv_cache": self.kv_cache}}

    @property
    def likelihood_kind(self) -> LikelihoodKind:
        return LikelihoodKind.EXACT

    def sample(self, n: int, *, seed: int, batch_size: int = 64, condition: Any = None,
               steps: int | None = None, start: int = 0) -> Samples:
        """n images uint8 (n, H, W, 3); start: the index of the first sample (its random stream)."""
        condition_to_labels(self.label, n, condition, None)
        if steps is not None and int(steps) != self.positions:
            raise UserError(f"{NAME} is autoregressive: one step per pixel ({self.positions}); pass steps=None")
        sos = self.model.config.vocab_size - 1

        def to_images(ids: torch.Tensor) -> np.ndarray:
            return float_images_to_uint8(self.clusters[ids.numpy()].reshape(len(ids), *self.size, 3), "round")

        out, batches = raster_images(self, n, seed=seed, start=start, batch_size=batch_size, length=self.positions,
                                     vocab=len(self.clusters), image_shape=(*self.size, 3), tokens_to_images=to_images,
                                     prefix=lambda b0, size: torch.full((size, 1), sos))
        return Samples(images=out, nfe=batches * self.positions, nfe_per_sample=float(self.positions),
                       info={"quantisation": "round", "temperature": self.temperature, "top_k": self.top_k,
                             "top_p": self.top_p, "kv_cache": self.kv_cache})

    def images_to_tokens(self, images: np.ndarray) -> torch.Tensor:
        """uint8 (N, H, W, 3) -> colour-cluster ids (N, n_positions) through the image processor."""
        feats = self.processor(images=list(images), return_tensors="pt")
        return torch.as_tensor(feats["input_ids"], dtype=torch.int64).reshape(len(images), -1)

    def log_likelihood(self, batch: Any, *, seed: int = 0, start: int = 0) -> LogLikelihood:
        """uint8 images (N, H, W, C) -> exact NLL in nats per image over its colour-cluster tokens."""
        shape = getattr(batch, "shape", (0, 0, 0, 0))
        images = images_to_model_input(self.label, batch, tuple(shape[1:3]) if len(shape) == 4 else (-1, -1), 3)
        tokens = self.images_to_tokens(images)
        sos = torch.full((len(tokens), 1), self.model.config.vocab_size - 1)
        nll = raster_nll(self.model, sos, tokens, len(self.clusters), batch_size=self.batch_size)
        info = {"unit_is": f"a colour-cluster token: one pixel's colour among {len(self.clusters)} clusters, "
                           "not an 8-bit level", "resize": f"image processor, bilinear, to {self.size[0]}x{self.size[1]}",
                "grey_input": "replicated to RGB" if shape[-1] == 1 else None}
        return LogLikelihood(nll=nll.numpy(), units=np.full(len(tokens), float(self.positions)), unit="token",
                             kind=LikelihoodKind.EXACT, info=info)


__all__ = ["ImageGPT"]
