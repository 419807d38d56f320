"""The resizes to the network's input, one per resize mode (the same as clean-fid's).

* ``clean``: Pillow bicubic resize of each channel as a float image (mode ``F``) to 299x299,
  clipped to [0, 255], never re-quantised to uint8. Small images go through Pillow's own
  weights as two banded matrix products (``pil_bicubic_matrix``); larger ones through the very
  Pillow call clean-fid makes.
* ``legacy_pytorch``: ``F.interpolate(bilinear, align_corners=False)`` to 299x299, clipped.
* ``legacy_tensorflow``: no resize outside the network; StyleGAN2-ADA's TorchScript resizes
  inside, imitating TF1's bilinear resize (``tf1_resize`` reproduces it for sFID's layer chain).
  ADM's evaluator feeds its TF graph the same way, so its reference batches follow this mode.
* ``clip``: clean-fid's CLIP preprocessing (``clip_resize``).
* ``pil_bicubic``: Pillow BICUBIC of the uint8 RGB image to size x size, re-quantised to uint8
  by Pillow (dgm-eval's and EDM2's ``resize_mode='pil'`` for DINOv2).
* ``torch_bicubic``: ``F.interpolate(bicubic, align_corners=False)`` without antialiasing of
  the float image, not clipped (google-research CMMD's ``_resize_bicubic``).

Every resize takes one uint8 (H, W, 3) image and writes float32 (3, size, size) in [0, 255];
``clean`` and ``legacy_pytorch`` also run on a batch of torch tensors on any device
(``TENSOR_RESIZERS``), with the same numbers to float32 rounding.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import numpy as np

from genbench.errors import UserError

RESIZE_MODES = ("clean", "legacy_pytorch", "legacy_tensorflow", "clip", "pil_bicubic", "torch_bicubic")
INCEPTION_SIZE = 299


def check_mode(mode: str) -> None:
    if mode not in RESIZE_MODES:
        raise UserError(f"mode={mode!r}: unknown resize mode; use one of {', '.join(RESIZE_MODES)}")


#: images whose sides are all at most this (and at most the output size) take the BLAS path
#: of the clean resize; larger ones go through Pillow itself (see ``clean_resize``)
BANDED_MAX_SIDE = 160
_BAND_ROWS = 32  # output rows (columns) per matrix block


def _pil_bicubic(x: float) -> float:
    """Pillow's bicubic kernel (a = -0.5), written as Pillow's Resample.c evaluates it."""
    a = -0.5
    if x < 0.0:
        x = -x
    if x < 1.0:
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1
    if x < 2.0:
        return (((x - 5) * x + 8) * x - 4) * a
    return 0.0


@functools.lru_cache(maxsize=64)
def pil_bicubic_matrix(n_in: int, n_out: int) -> np.ndarray:
    """float64 (n_out, n_in): Pillow's BICUBIC resampling weights along one axis.

    Pillow's ``precompute_coeffs`` step by step: output pixel ``i`` has centre ``(i + 0.5) *
    scale``; the kernel is stretched by ``max(scale, 1)`` (antialiasing when shrinking); taps
    run from ``int(centre - support + 0.5)`` to ``int(centre + support + 0.5)`` clipped to the
    image; the weights are divided by their sum. Read-only (cached).
    """
    scale = n_in / n_out
    filterscale = max(scale, 1.0)
    support = 2.0 * filterscale
    inv = 1.0 / filterscale
    m = np.zeros((n_out, n_in), dtype=np.float64)
    for i in range(n_out):
        center = (i + 0.5) * scale
        lo = max(int(center - support + 0.5), 0)
        count = min(int(center + support + 0.5), n_in) - lo
        taps = [_pil_bicubic((x + lo - center + 0.5) * inv) for x in range(count)]
        total = 0.0
        for t in taps:
            total += t
        for x, t in enumerate(taps):
            m[i, lo + x] = t / total if total != 0.0 else t
    m.setflags(write=False)
    return m


@functools.lru_cache(maxsize=64)
def _bands(n_in: int, n_out: int) -> tuple:
    """The weight matrix cut into blocks of output rows, each with only its non-zero columns."""
    m = pil_bicubic_matrix(n_in, n_out)
    blocks = []
    for o0 in range(0, n_out, _BAND_ROWS):
        o1 = min(o0 + _BAND_ROWS, n_out)
        cols = np.flatnonzero(np.any(m[o0:o1] != 0.0, axis=0))
        lo, hi = int(cols[0]), int(cols[-1]) + 1
        block = np.ascontiguousarray(m[o0:o1, lo:hi])
        blocks.append((o0, o1, lo, hi, block, np.ascontiguousarray(block.T)))
    return tuple(blocks)


def _clean_resize_banded(image: np.ndarray, size: int, out: np.ndarray) -> np.ndarray:
    """Pillow's float bicubic resize of all channels at once as two banded matrix products.

    Same weights, same order of passes as Pillow for images no larger than the output
    (horizontal first, its result kept in float32 as Pillow's intermediate image is, the
    vertical pass in float64), so the result equals Pillow's up to the order of additions in
    float64: identical float32 values but for a rare last-bit difference.
    """
    c, h, w = image.shape[2], image.shape[0], image.shape[1]
    x = image.transpose(2, 0, 1).astype(np.float64)
    tmp = np.empty((c, h, size), dtype=np.float64)
    for o0, o1, lo, hi, _, block_t in _bands(w, size):
        np.matmul(x[:, :, lo:hi], block_t, out=tmp[:, :, o0:o1])
    tmp = tmp.astype(np.float32).astype(np.float64)
    # the vertical pass band by band into a small float64 buffer that stays in cache, each band
    # clipped and written to ``out`` at once: ``out`` (often memory another process reads) is
    # written once, while the next band computes, and no full-size float64 image goes to memory
    band = np.empty((c, _BAND_ROWS, size), dtype=np.float64)
    for o0, o1, lo, hi, block, _ in _bands(h, size):
        part = band[:, : o1 - o0]
        np.matmul(block, tmp[:, lo:hi, :], out=part)
        np.clip(part, 0, 255, out=part)
        out[:, o0:o1, :] = part
    return out


def clean_resize(image: np.ndarray, size: int = INCEPTION_SIZE, out: np.ndarray | None = None, *,
                 use_pillow: bool = False) -> np.ndarray:
    """clean-fid's ``clean`` resize of one image: uint8 (H, W, 3) -> float32 (3, size, size).

    Each channel as a Pillow float image (mode ``F``) resized with BICUBIC to ``size x size``
    and clipped to [0, 255]; no re-quantisation. Images no larger than ``BANDED_MAX_SIDE`` (and
    than ``size``) are resized by ``_clean_resize_banded`` (the same arithmetic as Pillow's,
    twice as fast on small images), larger ones (or ``use_pillow=True``) by Pillow itself, the
    very call clean-fid makes. Writes into ``out`` if given.
    """
    from PIL import Image

    if out is None:
        out = np.empty((image.shape[2], size, size), dtype=np.float32)
    h, w = image.shape[:2]
    if not use_pillow and max(h, w) <= min(BANDED_MAX_SIDE, size):
        return _clean_resize_banded(image, size, out)
    for c in range(image.shape[2]):
        channel = Image.fromarray(np.ascontiguousarray(image[:, :, c], dtype=np.float32), mode="F")
        resized = channel.resize((size, size), resample=Image.BICUBIC)
        np.clip(np.asarray(resized), 0, 255, out=out[c])
    return out


def legacy_pytorch_resize(image: np.ndarray, size: int = INCEPTION_SIZE, out: np.ndarray | None = None) -> np.ndarray:
    """clean-fid's ``legacy_pytorch`` resize: uint8 (H, W, 3) -> float32 (3, size, size),
    ``F.interpolate(mode="bilinear", align_corners=False)`` on float32, clipped to [0, 255]."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32))[None]
    y = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)[0].clamp_(0, 255)
    if out is None:
        return y.numpy()
    out[...] = y.numpy()
    return out


def clip_resize(image: np.ndarray, size: int = 224, out: np.ndarray | None = None) -> np.ndarray:
    """clean-fid's CLIP preprocessing (``img_preprocess_clip``): uint8 (H, W, 3) -> float32
    (3, size, size) holding uint8 values.

    torchvision's ``Resize(size, BICUBIC)`` on a Pillow image (short side to ``size``, long side
    ``int(size * long / short)``, Pillow's uint8 BICUBIC), then ``CenterCrop(size)`` (offsets
    ``int(round((side - size) / 2))``), written with Pillow alone.
    """
    from PIL import Image

    h, w = image.shape[:2]
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = size, int(size * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    pil = Image.fromarray(np.ascontiguousarray(image))
    if (new_w, new_h) != (w, h):
        pil = pil.resize((new_w, new_h), resample=Image.BICUBIC)
    top, left = int(round((new_h - size) / 2.0)), int(round((new_w - size) / 2.0))
    crop = np.asarray(pil)[top: top + size, left: left + size]
    if out is None:
        out = np.empty((3, size, size), dtype=np.float32)
    out[...] = crop.transpose(2, 0, 1)
    return out


def pil_bicubic_resize(image: np.ndarray, size: int = 224, out: np.ndarray | None = None) -> np.ndarray:
    """dgm-eval's and EDM2's (``resize_mode='pil'``) DINOv2 input: uint8 (H, W, 3) ->
    float32 (3, size, size) holding uint8 values, ``Image.fromarray(img, "RGB").resize((size,
    size), BICUBIC)`` (Pillow rounds to uint8; no crop, the aspect ratio is not kept)."""
    from PIL import Image

    pil = Image.fromarray(np.ascontiguousarray(image), "RGB")
    if pil.size != (size, size):
        pil = pil.resize((size, size), resample=Image.BICUBIC)
    if out is None:
        out = np.empty((3, size, size), dtype=np.float32)
    out[...] = np.asarray(pil).transpose(2, 0, 1)
    return out


def torch_bicubic_resize(image: np.ndarray, size: int = 336, out: np.ndarray | None = None) -> np.ndarray:
    """google-research CMMD's resize: uint8 (H, W, 3) -> float32 (3, size, size),
    ``F.interpolate(mode="bicubic", align_corners=False)`` without antialias, not clipped
    (CMMD interpolates images in [0, 1]; scaling commutes with it)."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32))[None]
    y = x[0] if x.shape[-2:] == (size, size) else F.interpolate(x, size=(size, size), mode="bicubic",
                                                                 align_corners=False)[0]
    if out is None:
        return y.numpy().copy()
    out[...] = y.numpy()
    return out


#: mode -> the resize run on the CPU for it (legacy_tensorflow has none)
RESIZERS: dict[str, Callable[..., np.ndarray]] = {"clean": clean_resize, "legacy_pytorch": legacy_pytorch_resize,
                                                   "clip": clip_resize, "pil_bicubic": pil_bicubic_resize,
                                                   "torch_bicubic": torch_bicubic_resize}


def tf1_resize(x, size: int = INCEPTION_SIZE):
    """StyleGAN2-ADA's imitation of TF1's bilinear resize, float (B, 3, H, W) -> (B, 3, size, size):
    an affine grid shifted by half a source pixel minus half a target pixel, sampled bilinearly
    with border padding. (Used only once a probe has matched the network's own forward.)"""
    import torch
    import torch.nn.functional as F

    b, c, h, w = x.shape
    theta = torch.eye(2, 3, device=x.device)
    theta[0, 2] += theta[0, 0] / w - theta[0, 0] / size
    theta[1, 2] += theta[1, 1] / h - theta[1, 1] / size
    theta = theta.to(x.dtype).unsqueeze(0).repeat([b, 1, 1])
    grid = F.affine_grid(theta, [b, c, size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


# --- the same resizes on torch tensors (the accelerator's side of the pipeline) -----------------------
#: resize modes whose resize runs on torch tensors as well (``resize_on_device``)
DEVICE_RESIZE_MODES = ("clean", "legacy_pytorch")
_MATRICES: dict[tuple[int, int, str], Any] = {}


def _bicubic_matrix_on(n_in: int, n_out: int, device):
    """``pil_bicubic_matrix`` as a float64 tensor on ``device`` (cached per device)."""
    import torch

    key = (n_in, n_out, str(device))
    m = _MATRICES.get(key)
    if m is None:
        m = _MATRICES[key] = torch.from_numpy(pil_bicubic_matrix(n_in, n_out).copy()).to(device)
    return m


@functools.lru_cache(maxsize=256)
def pillow_vertical_first(h: int, w: int, size: int) -> bool:
    """Whether Pillow resizes an (h, w) float image to (size, size) with its vertical pass first.

    Pillow always ran the horizontal pass first; Pillow 13 runs the vertical one first when the
    height shrinks much more than the width. The order decides how the intermediate image is
    rounded to float32, so the matrix resize follows whichever order the installed Pillow takes,
    found once per shape by resizing a probe image both ways.
    """
    from PIL import Image

    if h == size or w == size:  # one pass only: the order does not matter
        return False
    probe = np.random.default_rng(h * 100_003 + w).integers(0, 256, (h, w)).astype(np.float64)
    ref = np.asarray(Image.fromarray(probe.astype(np.float32), mode="F").resize((size, size), Image.BICUBIC))
    mh, mw = pil_bicubic_matrix(h, size), pil_bicubic_matrix(w, size)
    horizontal = mh @ (probe @ mw.T).astype(np.float32).astype(np.float64)
    vertical = (mh @ probe).astype(np.float32).astype(np.float64) @ mw.T
    return int(np.sum(vertical.astype(np.float32) != ref)) < int(np.sum(horizontal.astype(np.float32) != ref))


def clean_resize_tensor(images, size: int = INCEPTION_SIZE):
    """clean-fid's ``clean`` resize of a batch on any device: uint8 (B, H, W, 3) -> float32
    (B, 3, size, size) in [0, 255].

    Pillow's float bicubic as two matrix products with Pillow's weights (``pil_bicubic_matrix``),
    in the order Pillow takes (``pillow_vertical_first``): the first pass in float64, its result
    rounded to float32 as Pillow's intermediate image is, the second pass in float64, clipped,
    rounded to float32. Pillow's arithmetic summed in another order: the same float32 values
    but for a rare last bit (tested against clean-fid). Dense matrices: on an accelerator the
    two products cost far less than the network (about 2 x 3 x 299 x (H + 299) x W flops per
    image, in float64, which TF32 never touches).
    """
    import torch

    b, h, w, c = images.shape
    x = images.permute(0, 3, 1, 2).to(torch.float64)  # (B, 3, H, W)
    mh, mw = _bicubic_matrix_on(h, size, images.device), _bicubic_matrix_on(w, size, images.device)
    if pillow_vertical_first(h, w, size):
        first = torch.matmul(mh, x).to(torch.float32).to(torch.float64)  # (B, 3, size, W)
        out = torch.matmul(first, mw.T)
    else:
        first = torch.matmul(x, mw.T).to(torch.float32).to(torch.float64)  # (B, 3, H, size)
        out = torch.matmul(mh, first)
    return out.clamp_(0, 255).to(torch.float32)


def legacy_pytorch_resize_tensor(images, size: int = INCEPTION_SIZE):
    """clean-fid's ``legacy_pytorch`` resize of a batch on any device: uint8 (B, H, W, 3) ->
    float32 (B, 3, size, size), ``F.interpolate(bilinear, align_corners=False)``, clipped."""
    import torch
    import torch.nn.functional as F

    x = images.permute(0, 3, 1, 2).to(torch.float32)
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp_(0, 255)


#: mode -> the resize of a uint8 (B, H, W, 3) tensor batch to float32 (B, 3, size, size)
TENSOR_RESIZERS: dict[str, Callable[..., Any]] = {"clean": clean_resize_tensor,
                                                  "legacy_pytorch": legacy_pytorch_resize_tensor}


__all__ = ["RESIZE_MODES", "INCEPTION_SIZE", "RESIZERS", "check_mode", "pil_bicubic_matrix", "clean_resize",
           "legacy_pytorch_resize", "clip_resize", "pil_bicubic_resize", "torch_bicubic_resize", "tf1_resize",
           "BANDED_MAX_SIDE", "DEVICE_RESIZE_MODES", "TENSOR_RESIZERS", "clean_resize_tensor",
           "legacy_pytorch_resize_tensor", "pillow_vertical_first"]
