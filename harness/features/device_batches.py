"""Decoded batches -> float32 network inputs on the extractor's device, and what runs there.

* **Double-buffered copies.** On CUDA the host copies each batch into one of two pinned
  staging buffers (``_Staging``) and ships it with a non-blocking copy while the device still
  works on the previous one; the features stay on the device until the end (no
  synchronisation per batch). For statistics on CUDA the float64 sums are accumulated there
  too (``statistics_on_device``).
* **The resize on the accelerator.** On CUDA the ``clean`` and ``legacy_pytorch`` resizes run
  on the device (``genbench.features.resize.TENSOR_RESIZERS``: Pillow's float bicubic as two
  float64 matrix products; the same numbers as the host path to float32 rounding, tested
  against clean-fid on CPU tensors), so the host only decodes (``resize_on_device``). ``clip``
  (Pillow's uint8 resize) stays on the host, in the workers.
* **Precision: the Inception convention is float32.** The network runs with TF32 off for
  convolutions and matrix products (``float32_convention``; PyTorch lets cuDNN use TF32 by
  default on Ampere and later GPUs, which rounds inputs to a 10-bit mantissa and moves pool_3
  features far more than float32 rounding). ``channels_last`` (NHWC inputs and weights) is
  opt-in (``ResizingExtractor.set_channels_last``, ``--channels-last``; ``_layout``): still
  float32, but the features move by float32 rounding (on the CPU an Inception-v3 with random
  weights: 6e-6 of their largest, about as far from float64 as NCHW's own 4e-6; not within
  1e-6), and cuDNN skips the layout conversions around each convolution; recorded as
  ``layout`` in ``describe()`` and in compute_fid's result.
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from genbench.features.decode_workers import DecodedBatch
from genbench.features.resize import DEVICE_RESIZE_MODES, TENSOR_RESIZERS


class _Staging:
    """Two pinned host buffers, used in turn: a batch is copied into one and shipped with a
    non-blocking copy while the device still works on the previous one."""

    def __init__(self, device):
        self.device = device
        self.buffers: list = [None, None]
        self.events: list = [None, None]
        self.turn = 0

    def host_view(self, shape: tuple, dtype):
        """The next pinned buffer as (torch tensor, numpy view of it) of ``shape`` and ``dtype``
        (waits until that buffer's previous copy to the device is done)."""
        import torch

        i = self.turn % 2
        if self.events[i] is not None:
            self.events[i].synchronize()
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape)) * dtype.itemsize
        if self.buffers[i] is None or self.buffers[i].numel() < nbytes:
            self.buffers[i] = torch.empty(max(nbytes, 1), dtype=torch.uint8).pin_memory()
        torch_dtype = {"|u1": torch.uint8, "<f4": torch.float32}[dtype.str]  # what the pipeline ships
        tensor = self.buffers[i][:nbytes].view(torch_dtype).view(shape)
        return tensor, tensor.numpy()

    def ship(self, host):
        """A pinned tensor from ``host_view`` -> the same on the device (non-blocking)."""
        import torch

        i = self.turn % 2
        self.turn += 1
        t = host.to(self.device, non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        self.events[i] = event
        return t


def _runs(images: list[np.ndarray]) -> list[list[np.ndarray]]:
    """Consecutive images of one shape."""
    runs: list[list[np.ndarray]] = []
    for img in images:
        if runs and runs[-1][0].shape == img.shape:
            runs[-1].append(img)
        else:
            runs.append([img])
    return runs


def _to_device(run_or_array, staging: _Staging | None, device, stacked: bool):
    """A list of same-shape arrays (stacked here) or one array -> a tensor on the device."""
    import torch

    if staging is None:
        array = run_or_array if stacked else np.stack(run_or_array)
        return torch.from_numpy(np.ascontiguousarray(array)).to(device)
    if stacked:
        tensor, host = staging.host_view(run_or_array.shape, run_or_array.dtype)
        np.copyto(host, run_or_array)
    else:
        tensor, host = staging.host_view((len(run_or_array), *run_or_array[0].shape), run_or_array[0].dtype)
        np.stack(run_or_array, out=host)
    return staging.ship(tensor)


def _network_inputs(batch: DecodedBatch, mode: str, size: int, device, staging, resize_on_device: bool) -> list:
    """Float32 network inputs on the device: one (B, 3, S, S) tensor per batch (for
    legacy_tensorflow, one per run of one image size, at that size)."""
    import torch

    if batch.resized is not None:
        return [_to_device(batch.resized, staging, device, stacked=True)]
    runs = _runs(batch.images)
    if mode == "legacy_tensorflow":
        # clean-fid feeds ToTensor()(uint8) * 255, which is exactly x for every uint8 x
        return [_to_device(run, staging, device, stacked=False).permute(0, 3, 1, 2).to(torch.float32).contiguous()
                for run in runs]
    assert resize_on_device
    resize = TENSOR_RESIZERS[mode]
    parts = [resize(_to_device(run, staging, device, stacked=False), size) for run in runs]
    return [parts[0] if len(parts) == 1 else torch.cat(parts)]


@contextmanager
def float32_convention(device):
    """TF32 off on CUDA for the duration (see the module docstring); nothing elsewhere."""
    import torch

    if getattr(device, "type", str(device)) != "cuda":
        yield
        return
    before = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


def statistics_on_device(extractor) -> bool:
    """Whether streamed statistics keep their float64 sums on the extractor's device: on CUDA
    (``device_statistics`` on the extractor forces it either way, e.g. for tests)."""
    forced = getattr(extractor, "device_statistics", None)
    return _is_cuda(extractor.device) if forced is None else bool(forced)


def resize_on_device(extractor) -> bool:
    """Whether the extractor's resize runs on its device: on CUDA for the modes that have a
    tensor resize (``device_resize`` on the extractor forces it either way, e.g. for tests)."""
    forced = getattr(extractor, "device_resize", None)
    if forced is not None:
        return bool(forced) and extractor.mode in DEVICE_RESIZE_MODES
    return getattr(extractor.device, "type", "cpu") == "cuda" and extractor.mode in DEVICE_RESIZE_MODES


def _is_cuda(device) -> bool:
    return getattr(device, "type", "cpu") == "cuda"


def _layout(extractor, x):
    """The network's input in the extractor's memory format (``channels_last`` when it asks)."""
    if getattr(extractor, "channels_last", False):
        import torch

        return x.contiguous(memory_format=torch.channels_last)
    return x
