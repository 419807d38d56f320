"""``ResizingExtractor``: the base of every image extractor here (``extractor_*.py``).

It resizes each image to the network's input as the mode says (``genbench.features.resize``),
decoding and resizing on a thread pool one batch ahead of the network, and turns the network's
outputs into float64 ``(N, D)`` features that do not depend on the batch size (images are
resized one by one; the network runs in eval mode with no batch-dependent layer).
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence

import numpy as np

from genbench.errors import UserError
from genbench.features.resize import INCEPTION_SIZE, RESIZERS, check_mode
from genbench.interfaces import FeatureExtractor


def default_threads(threads: int | None) -> int:
    if threads:
        return max(1, int(threads))
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(8, n))


def _load_checked(loader: Callable[[], np.ndarray]) -> np.ndarray:
    img = loader()
    _check_image(img)
    return img


def _check_image(img: np.ndarray, where: str = "") -> None:
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        got = f"{type(img).__name__} {getattr(img, 'dtype', '')} {getattr(img, 'shape', '')}"
        hint = (" (greyscale: replicate the channel first, e.g. np.repeat(images, 3, axis=-1))"
                if getattr(img, "ndim", 0) == 3 and img.shape[2] == 1 else "")
        raise UserError(f"{where}images must be uint8 (N, H, W, 3); got {got}{hint}")


# --- the extractors ---------------------------------------------------------------------------
class ResizingExtractor(FeatureExtractor):
    """An extractor that resizes each image to 299x299 as the mode says, then runs a network.

    Subclasses implement ``_forward(x)``: float32 tensor (B, 3, 299, 299) in [0, 255]
    (or the original size for ``legacy_tensorflow``) -> tensor (B, ...); those with spatial
    (sFID) features also ``_forward_spatial(x)`` -> (features, spatial (B, Ds)) and
    ``spatial_status()``.
    """

    name = "extractor"
    size = INCEPTION_SIZE
    modes: tuple[str, ...] = ("clean", "legacy_pytorch")

    def __init__(self, *, mode: str = "clean", device: str = "cpu", threads: int | None = None):
        check_mode(mode)
        if mode not in self.modes:
            raise UserError(
                f"mode={mode!r} is not available for extractor {self.name!r} "
                f"({self._weights_words()}): it supports {', '.join(self.modes)}"
                + (". legacy_tensorflow needs the TF1 resize inside the network, which only "
                   "StyleGAN2-ADA's inception-2015-12-05.pt has" if mode == "legacy_tensorflow" else "")
            )
        self.mode = mode
        self.device = resolve_device(device)
        self.threads = default_threads(threads)
        self._pool: ThreadPoolExecutor | None = None

    def _weights_words(self) -> str:
        return "this network"

    # the network ---------------------------------------------------------------
    def _forward(self, x):  # pragma: no cover - abstract
        raise NotImplementedError

    def _forward_spatial(self, x):  # pragma: no cover - only where spatial_status() is None
        raise NotImplementedError

    def spatial_status(self) -> str | None:
        """None when the extractor gives spatial (sFID) features, else a sentence saying why not."""
        return f"extractor {self.name!r} has no spatial (sFID) features; sFID needs the inception extractor"

    def _run(self, batch: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(batch).to(self.device)
            y = self._forward(x)
            return y.reshape(y.shape[0], -1).to("cpu", torch.float64).numpy()

    def _run_outputs(self, batch: np.ndarray, spatial: bool) -> dict[str, np.ndarray]:
        """One network pass: ``features`` (B, D) float64, and ``spatial`` (B, Ds) when asked."""
        if not spatial:
            return {"features": self._run(batch)}
        import torch

        with torch.inference_mode():
            y, s = self._forward_spatial(torch.from_numpy(batch).to(self.device))
            return {"features": y.reshape(y.shape[0], -1).to("cpu", torch.float64).numpy(),
                    "spatial": s.reshape(s.shape[0], -1).to("cpu", torch.float64).numpy()}

    # the pipeline ----------------------------------------------------------------
    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="genbench-resize")
        return self._pool

    def _submit(self, loaders: Sequence[Callable[[], np.ndarray]]):
        """Start loading and resizing one batch on the thread pool; returns what ``_collect`` takes."""
        pool = self._executor()
        if self.mode == "legacy_tensorflow":
            return None, [pool.submit(_load_checked, f) for f in loaders]
        resize = RESIZERS[self.mode]
        out = np.empty((len(loaders), 3, self.size, self.size), dtype=np.float32)

        def work(i: int) -> None:
            resize(_load_checked(loaders[i]), self.size, out=out[i])

        return out, [pool.submit(work, i) for i in range(len(loaders))]

    @staticmethod
    def _collect(job) -> list[np.ndarray]:
        """Wait for a submitted batch: float32 network inputs, (B, 3, 299, 299) (for
        legacy_tensorflow, one (b, 3, H, W) array per run of consecutive images of one size)."""
        out, futures = job
        results = [f.result() for f in futures]  # re-raises a worker's error here
        if out is not None:
            return [out]
        groups: list[np.ndarray] = []
        start = 0
        for i in range(1, len(results) + 1):
            if i == len(results) or results[i].shape != results[start].shape:
                # clean-fid feeds ToTensor()(uint8) * 255, which is exactly x for every uint8 x
                groups.append(np.ascontiguousarray(np.stack(results[start:i]).transpose(0, 3, 1, 2),
                                                   dtype=np.float32))
                start = i
        return groups

    def outputs_from_loaders(self, loaders: Sequence[Callable[[], np.ndarray]], *, batch_size: int = 64,
                             spatial: bool = False) -> dict[str, np.ndarray]:
        """``features`` float64 (N, D), and ``spatial`` float64 (N, Ds) when ``spatial``, of images
        given as zero-argument callables returning uint8 (H, W, 3).

        Loading (decoding) and resizing run on the thread pool, one batch ahead of the
        network, which runs on this thread; the result does not depend on ``batch_size``.
        """
        if batch_size < 1:
            raise UserError(f"batch_size={batch_size}: must be >= 1")
        if len(loaders) == 0:
            raise UserError("no images to extract features from")
        if spatial and self.spatial_status() is not None:
            raise UserError(self.spatial_status())
        starts = list(range(0, len(loaders), batch_size))
        parts: list[dict[str, np.ndarray]] = []
        job = self._submit(loaders[0:batch_size])
        try:
            for k in range(len(starts)):
                inputs = self._collect(job)
                job = None
                if k + 1 < len(starts):
                    job = self._submit(loaders[starts[k + 1]: starts[k + 1] + batch_size])
                for batch in inputs:
                    parts.append(self._run_outputs(batch, spatial))
        finally:
            if job is not None:
                for f in job[1]:
                    f.cancel()
        out = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
        for key, value in out.items():
            if not np.all(np.isfinite(value)):
                raise UserError(f"extractor {self.name!r} returned NaN or inf {key}")
        return out

    def features_from_loaders(self, loaders: Sequence[Callable[[], np.ndarray]], *, batch_size: int = 64) -> np.ndarray:
        """float64 (N, D) features of images given as callables (see ``outputs_from_loaders``)."""
        return self.outputs_from_loaders(loaders, batch_size=batch_size)["features"]

    def outputs(self, images, *, batch_size: int = 64, spatial: bool = False) -> dict[str, np.ndarray]:
        """uint8 (N, H, W, 3) (or a list of (H, W, 3) arrays of any sizes) -> ``features``
        float64 (N, D) and, when ``spatial``, ``spatial`` float64 (N, Ds)."""
        if isinstance(images, np.ndarray):
            if images.ndim != 4 or images.dtype != np.uint8 or images.shape[-1] != 3:
                hint = (" (greyscale: replicate the channel first, e.g. np.repeat(images, 3, axis=-1))"
                        if images.ndim == 4 and images.shape[-1] == 1 else "")
                raise UserError(f"images must be uint8 (N, H, W, 3); got {images.dtype} {images.shape}{hint}")
        return self.outputs_from_loaders([(lambda im=im: im) for im in images], batch_size=batch_size,
                                         spatial=spatial)

    def features(self, images, *, batch_size: int = 64) -> np.ndarray:
        """uint8 (N, H, W, 3) (or a list of (H, W, 3) arrays of any sizes) -> float64 (N, D)."""
        return self.outputs(images, batch_size=batch_size)["features"]

    def folder_features(self, folder, *, batch_size: int = 64, grey: str = "error", alpha: str = "error") -> np.ndarray:
        """Features of every image of a folder (path or ``ImageFolder``), in sorted order.
        Images may have different sizes: each is resized on its own."""
        from genbench.features.folder import ImageFolder

        if not isinstance(folder, ImageFolder):
            folder = ImageFolder(folder, grey=grey, alpha=alpha)
        return self.features_from_loaders([(lambda i=i: folder.load(i)) for i in range(len(folder))],
                                          batch_size=batch_size)

    def describe(self) -> dict[str, Any]:
        return {"extractor": self.name, "dim": self.dim, "resize": self.mode}

    def close(self, wait: bool = True) -> None:
        """Stop the resize thread pool (a later call starts a new one)."""
        pool, self._pool = getattr(self, "_pool", None), None
        if pool is not None:
            pool.shutdown(wait=wait)

    def __del__(self):
        # never wait here: the last reference may go away in one of the pool's own threads
        try:
            self.close(wait=False)
        except Exception:
            pass


def resolve_device(device: str | None):
    import torch

    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise UserError(f"device={device!r}: {e}; use cpu, cuda or auto") from None


__all__ = ["ResizingExtractor", "resolve_device", "default_threads"]
