"""``ResizingExtractor``: the base of every image extractor here (``extractor_*.py``).

It resizes each image to the network's input as the mode says (``genbench.features.resize``),
decoding and resizing batches ahead of the network (``genbench.features.pipeline``), and turns
the network's outputs into float64 ``(N, D)`` features that do not depend on the batch size (images are
resized one by one; the network runs in eval mode with no batch-dependent layer).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence

import numpy as np

from genbench.errors import UserError
from genbench.features.loaders import ArrayImage, FileImage
from genbench.features.resize import INCEPTION_SIZE, check_mode
from genbench.interfaces import FeatureExtractor


def default_threads(threads: int | None) -> int:
    if threads:
        return max(1, int(threads))
    from genbench.features.decode_workers import cpu_count

    return max(1, min(8, cpu_count()))


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
        #: None: resize on the device where it is CUDA; True/False force it (``device_batches.resize_on_device``)
        self.device_resize: bool | None = None
        #: None: streamed statistics' sums on the device where it is CUDA; True/False force it
        #: (``device_batches.statistics_on_device``)
        self.device_statistics: bool | None = None
        #: NHWC network inputs and weights (``set_channels_last``); off unless asked for
        self.channels_last = False

    def _weights_words(self) -> str:
        return "this network"

    #: whether ``set_channels_last`` is offered (convolutional networks: Inception, TorchScript)
    channels_last_ok = False

    def set_channels_last(self, on: bool = True) -> None:
        """Run the network on channels_last (NHWC) inputs with NHWC weights: cuDNN's own layout
        for convolutions, so no conversion around each one (an H200 profile of FID spent 0.46 s
        of 6.5 s converting). Still float32 arithmetic, but other rounding: on the CPU the
        features of an Inception-v3 with random weights (BatchNorm statistics from 48 images)
        differ from NCHW's by 6e-6 of their largest, not the 1e-6 asked of a layout change,
        while NCHW's own float32 features are 4e-6 from float64 and NHWC's 5e-6 (with
        BatchNorm from 8 images, the test: 5e-5 apart, 3e-5 and 4.5e-5 from float64): no
        less accurate, but not the same numbers. So opt-in, recorded as ``layout`` in
        ``describe()`` (not in the identity that keys caches and files, as the resize on the
        device, which also moves features by float32 rounding, is not)."""
        if not self.channels_last_ok:
            raise UserError(f"extractor {self.name!r} has no channels_last option (convolutional networks only: "
                            f"inception, torchscript)")
        import torch

        fmt = torch.channels_last if on else torch.contiguous_format
        for module in self._network_modules():
            module.to(memory_format=fmt)
        self.channels_last = bool(on)

    def _network_modules(self) -> list:
        """The torch modules that hold the network's weights (attributes of this extractor, or of
        a wrapper object it holds)."""
        import torch

        found = []
        for value in vars(self).values():
            for candidate in (value, getattr(value, "model", None)):
                if isinstance(candidate, torch.nn.Module):
                    found.append(candidate)
                    break
        return found

    def _layout_words(self) -> dict[str, Any]:
        """``describe()``'s ``layout`` entry: only when channels_last is on (records stay as they were)."""
        return {"layout": "channels_last (NHWC inputs and weights), float32"} if self.channels_last else {}

    # the network ---------------------------------------------------------------
    def _forward(self, x):  # pragma: no cover - abstract
        raise NotImplementedError

    def _forward_spatial(self, x):  # pragma: no cover - only where spatial_status() is None
        raise NotImplementedError

    def spatial_status(self) -> str | None:
        """None when the extractor gives spatial (sFID) features, else a sentence saying why not."""
        return f"extractor {self.name!r} has no spatial (sFID) features; sFID needs the inception extractor"

    def _tensor_outputs(self, x, spatial: bool) -> dict:
        """One network pass on float32 network inputs already on the device: ``features``
        (B, D), and ``spatial`` (B, Ds) when asked, as tensors on the device."""
        if not spatial:
            y = self._forward(x)
            return {"features": y.reshape(y.shape[0], -1)}
        y, s = self._forward_spatial(x)
        return {"features": y.reshape(y.shape[0], -1), "spatial": s.reshape(s.shape[0], -1)}

    def _run(self, batch: np.ndarray) -> np.ndarray:
        """float32 network inputs (B, 3, S, S) -> float64 (B, D) features (for probes)."""
        import torch

        with torch.inference_mode():
            y = self._tensor_outputs(torch.from_numpy(batch).to(self.device), False)["features"]
            return y.to("cpu", torch.float64).numpy()

    # the pipeline ----------------------------------------------------------------
    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="genbench-resize")
        return self._pool

    def outputs_from_loaders(self, loaders: Sequence[Callable[[], np.ndarray]], *, batch_size: int = 64,
                             spatial: bool = False, workers: int | None = None,
                             progress: str | None = None) -> dict[str, np.ndarray]:
        """``features`` float64 (N, D), and ``spatial`` float64 (N, Ds) when ``spatial``, of images
        given as zero-argument callables returning uint8 (H, W, 3).

        Decoding and resizing run in worker processes or on the thread pool (``workers``),
        batches ahead of the network (``genbench.features.pipeline``); the result does not
        depend on ``batch_size`` or ``workers``.
        """
        from genbench.features.pipeline import loaders_to_outputs

        return loaders_to_outputs(self, loaders, batch_size=batch_size, spatial=spatial, workers=workers,
                                  progress=progress)

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
        return self.outputs_from_loaders([ArrayImage(im) for im in images], batch_size=batch_size, spatial=spatial)

    def features(self, images, *, batch_size: int = 64) -> np.ndarray:
        """uint8 (N, H, W, 3) (or a list of (H, W, 3) arrays of any sizes) -> float64 (N, D)."""
        return self.outputs(images, batch_size=batch_size)["features"]

    def folder_features(self, folder, *, batch_size: int = 64, grey: str = "error", alpha: str = "error") -> np.ndarray:
        """Features of every image of a folder (path or ``ImageFolder``), in sorted order.
        Images may have different sizes: each is resized on its own."""
        from genbench.features.folder import ImageFolder

        if not isinstance(folder, ImageFolder):
            folder = ImageFolder(folder, grey=grey, alpha=alpha)
        return self.features_from_loaders([FileImage(f, folder.grey, folder.alpha) for f in folder.files],
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
