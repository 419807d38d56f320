"""Reconstruction metrics of image tokenizers: PSNR, SSIM, LPIPS and code statistics.

Every function takes uint8 images (N, H, W, C) (originals and reconstructions of the same
shape) and returns per-image values, so a suite can stream chunks and average at the end.

* PSNR: on [0, 1] images with data range 1, ``10 log10(1 / MSE)`` per image (scikit-image's
  ``peak_signal_noise_ratio`` on the same floats). A perfect reconstruction has infinite
  PSNR; it counts as the PSNR of a half-level error on one pixel, ``10 log10(4 * 255^2 * H W C)``
  dB, which lies above every imperfect uint8 reconstruction of that size (whose best is one
  pixel one level off, ``10 log10(255^2 * H W C)``): the mean stays finite and monotone.
* SSIM: scikit-image's ``structural_similarity`` (7x7 uniform window, K1 0.01, K2 0.03,
  sample covariance, channels averaged) on [0, 1] images with ``data_range = 1.0``; LlamaGen
  calls it with 2.0 on the same images (inflated), available only when asked. The window is
  7, or the largest odd size that fits the shorter side of a smaller image (at least 3).
* LPIPS (Zhang et al. 2018, v0.1): AlexNet or VGG-16 features of images scaled to [-1, 1]
  (the ``lpips`` package's ``normalize=False`` input), the package's scaling layer, unit-
  normalised channels, squared differences weighted by the linear heads, spatial means summed
  over layers. The weights (backbone and heads) come from local files the user names; nothing
  is downloaded.
* Codes: distinct codes used, perplexity of the code histogram ``exp(H)``, tokens and bits
  per image ``h w log2 K``.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from genbench.errors import UserError

__all__ = [
    "psnr_of_perfect", "images_to_psnr", "ssim_window", "images_to_ssim", "LPIPS_NETS", "LPIPS",
    "load_lpips_weights", "codes_to_histogram", "histogram_to_perplexity", "PSNR_CONVENTION",
]

PSNR_CONVENTION = ("per image on [0, 1], data range 1, 10 log10(1 / MSE) (skimage peak_signal_noise_ratio); "
                   "an exact reconstruction counts as a half-level error on one pixel, 10 log10(4 * 255^2 * H*W*C) "
                   "dB, above any imperfect uint8 reconstruction; mean over images")


def _pairs(originals: np.ndarray, recons: np.ndarray):
    """Yield (original, reconstruction) float64 (H, W, C) images on [0, 1], one pair at a time
    (a chunk of 256x256 images in float64 would take 1.5 MB per image and side)."""
    if originals.shape != recons.shape:
        raise UserError(f"reconstructions have shape {recons.shape} but the originals {originals.shape}")
    if originals.ndim != 4:
        raise UserError(f"images must be (N, H, W, C); got shape {originals.shape}")
    for x, y in zip(originals, recons):
        yield x.astype(np.float64) / 255.0, y.astype(np.float64) / 255.0


def psnr_of_perfect(shape: Sequence[int]) -> float:
    """dB that an exact reconstruction of one image of shape (H, W, C) counts as."""
    return 10.0 * math.log10(4.0 * 255.0**2 * float(np.prod(shape)))


def images_to_psnr(originals: np.ndarray, recons: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W, C) pairs -> float64 (N,) PSNR in dB on [0, 1] images, data range 1."""
    mse = np.array([np.mean((x - y) ** 2) for x, y in _pairs(originals, recons)], dtype=np.float64)
    out = np.full(len(mse), psnr_of_perfect(originals.shape[1:]))
    nz = mse > 0
    out[nz] = 10.0 * np.log10(1.0 / mse[nz])
    return out


def ssim_window(height: int, width: int) -> int:
    """skimage's default 7, or the largest odd window that fits the shorter side."""
    side = min(height, width)
    win = min(7, side if side % 2 else side - 1)
    if win < 3:
        raise UserError(f"SSIM needs images of at least 3x3 pixels; got {height}x{width}")
    return win


def images_to_ssim(originals: np.ndarray, recons: np.ndarray, *, data_range: float = 1.0) -> np.ndarray:
    """uint8 (N, H, W, C) pairs -> float64 (N,) SSIM of the [0, 1] images (skimage's definition)."""
    from skimage.metrics import structural_similarity

    win = ssim_window(originals.shape[1], originals.shape[2])
    return np.array([structural_similarity(x, y, data_range=data_range, channel_axis=-1, win_size=win)
                     for x, y in _pairs(originals, recons)], dtype=np.float64)


# --------------------------------------------------------------------------------------
# LPIPS
# --------------------------------------------------------------------------------------
#: per backbone: torchvision constructor, the ``features`` indices after which a layer is
#: tapped (ReLU outputs, as the lpips package slices them) and the channels of each tap
LPIPS_NETS = {
    "alex": ("alexnet", (1, 4, 7, 9, 11), (64, 192, 384, 256, 256)),
    "vgg": ("vgg16", (3, 8, 15, 22, 29), (64, 128, 256, 512, 512)),
}
_SHIFT = (-0.030, -0.088, -0.188)  # the lpips package's ScalingLayer
_SCALE = (0.458, 0.448, 0.450)


def _read_state(path: Path) -> dict:
    import torch

    if not path.is_file():
        raise UserError(f"LPIPS weights {path}: no such file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return dict(load_file(str(path)))
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # a corrupt or foreign file: one line naming it
        raise UserError(f"LPIPS weights {path}: cannot read ({type(e).__name__}: {e})".splitlines()[0]) from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise UserError(f"LPIPS weights {path}: expected a state dict, got {type(state).__name__}")
    return state


def load_lpips_weights(net: str, paths: str | Path | Sequence[str | Path]) -> tuple[dict, dict, list[str]]:
    """Backbone and head tensors of LPIPS-``net`` from one or more local files.

    Accepted keys (the files are merged): the ``lpips.LPIPS`` state dict (``net.sliceK.I.*``,
    ``linK.model.1.weight``), torchvision's backbone (``features.I.*``, e.g.
    ``alexnet-owt-7be5be79.pth``) and the package's heads (``linK.model.1.weight``, e.g.
    ``lpips/weights/v0.1/alex.pth``). Returns (backbone {features index -> {param: tensor}}
    as torchvision names it, heads [5 tensors (1, C, 1, 1)], the files' paths).
    """
    if net not in LPIPS_NETS:
        raise UserError(f"LPIPS net {net!r}: use one of {', '.join(LPIPS_NETS)}")
    files = [Path(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
    merged: dict[str, tuple[object, Path]] = {}
    for f in files:
        for k, v in _read_state(f).items():
            merged[k] = (v, f)
    backbone: dict[str, tuple[object, Path]] = {}
    heads: dict[int, tuple[object, Path]] = {}
    for k, (v, f) in merged.items():
        parts = k.split(".")
        if parts[0] == "features" and len(parts) == 3:
            backbone[f"{parts[1]}.{parts[2]}"] = (v, f)
        elif parts[0] == "net" and len(parts) == 4 and parts[1].startswith("slice"):
            backbone[f"{parts[2]}.{parts[3]}"] = (v, f)
        elif parts[0].startswith("lin") and parts[0][3:].isdigit() and parts[1:] == ["model", "1", "weight"]:
            heads[int(parts[0][3:])] = (v, f)
    return backbone, heads, [str(f) for f in files]


class LPIPS:
    """LPIPS distance with the given backbone ("alex" or "vgg") and local weights.

    ``distance(a, b)``: uint8 (N, H, W, 3) pairs -> float64 (N,). Images go to [-1, 1] as
    ``x / 127.5 - 1``.
    """

    def __init__(self, net: str, weights: str | Path | Sequence[str | Path], *, device: str = "cpu"):
        import torch
        import torchvision

        self.net = net
        arch, taps, channels = LPIPS_NETS.get(net, (None, None, None))
        backbone, heads, self.files = load_lpips_weights(net, weights)
        where = " + ".join(self.files)
        with torch.device("meta"):  # no time spent initialising weights that the file replaces
            model = getattr(torchvision.models, arch)(weights=None).features[: taps[-1] + 1]
        model = model.to_empty(device="cpu")
        expected = model.state_dict()
        state = {}
        for key, tensor in expected.items():
            if key not in backbone:
                raise UserError(f"LPIPS weights {where}: no tensor for the {arch} backbone's features.{key} "
                                f"(lpips.LPIPS or torchvision keys expected)")
            value, f = backbone[key]
            if tuple(value.shape) != tuple(tensor.shape):
                raise UserError(f"LPIPS weights {f}: features.{key} has shape {tuple(value.shape)} but LPIPS-{net} "
                                f"({arch}) needs {tuple(tensor.shape)}; is it the {net} file?")
            state[key] = value.float()
        model.load_state_dict(state)
        self.heads = []
        for i, c in enumerate(channels):
            if i not in heads:
                raise UserError(f"LPIPS weights {where}: no linear head lin{i}.model.1.weight (the lpips package's "
                                f"weights/v0.1/{net}.pth holds them)")
            value, f = heads[i]
            if tuple(value.shape) != (1, c, 1, 1):
                raise UserError(f"LPIPS weights {f}: lin{i}.model.1.weight has shape {tuple(value.shape)} but "
                                f"LPIPS-{net} needs (1, {c}, 1, 1); is it the {net} file?")
            self.heads.append(value.float().to(device))
        # torchvision's inplace ReLUs would overwrite a tapped output before it is read
        for m in model.modules():
            if isinstance(m, torch.nn.ReLU):
                m.inplace = False
        self.model = model.to(device).eval()
        self.taps = taps
        self.device = torch.device(device)
        self.shift = torch.tensor(_SHIFT, device=self.device).view(1, 3, 1, 1)
        self.scale = torch.tensor(_SCALE, device=self.device).view(1, 3, 1, 1)
        import hashlib

        h = hashlib.sha256()
        for f in self.files:
            h.update(Path(f).read_bytes())
        self.weights_sha256 = h.hexdigest()

    def describe(self) -> dict:
        return {"lpips_net": self.net, "lpips_weights": self.files, "lpips_weights_sha256": self.weights_sha256,
                "lpips_input": "x / 127.5 - 1 ([-1, 1]), lpips v0.1 scaling layer, no resize", "lpips_version": "0.1"}

    def _taps(self, x):
        out = []
        for i, layer in enumerate(self.model):
            x = layer(x)
            if i in self.taps:
                out.append(x)
        return out

    def distance(self, originals: np.ndarray, recons: np.ndarray, *, batch_size: int = 32) -> np.ndarray:
        """uint8 (N, H, W, 3) pairs -> float64 (N,) LPIPS."""
        import torch

        if originals.shape != recons.shape or originals.ndim != 4 or originals.shape[-1] != 3:
            raise UserError(f"LPIPS takes RGB image pairs of one shape (N, H, W, 3); got {originals.shape} and "
                            f"{recons.shape} (set grey = \"rgb\" for grey images)")
        out = np.empty(len(originals), dtype=np.float64)
        with torch.inference_mode():
            for s in range(0, len(originals), batch_size):
                pair = [torch.from_numpy(np.ascontiguousarray(a[s: s + batch_size])).to(self.device)
                        .permute(0, 3, 1, 2).float() / 127.5 - 1.0 for a in (originals, recons)]
                feats = [self._taps((p - self.shift) / self.scale) for p in pair]
                total = 0.0
                for f0, f1, w in zip(*feats, self.heads):
                    n0 = f0 / (torch.sqrt((f0 ** 2).sum(1, keepdim=True)) + 1e-10)
                    n1 = f1 / (torch.sqrt((f1 ** 2).sum(1, keepdim=True)) + 1e-10)
                    total = total + torch.nn.functional.conv2d((n0 - n1) ** 2, w).mean((2, 3))
                out[s: s + batch_size] = total.view(-1).double().cpu().numpy()
        return out


# --------------------------------------------------------------------------------------
# code statistics
# --------------------------------------------------------------------------------------
def codes_to_histogram(codes: np.ndarray, codebook_size: int) -> np.ndarray:
    """int codes (N, h, w) -> int64 (K,) counts of each code."""
    return np.bincount(np.asarray(codes, dtype=np.int64).ravel(), minlength=codebook_size)


def histogram_to_perplexity(counts: np.ndarray) -> float:
    """``exp`` of the entropy (nats) of a code histogram: the effective number of codes used."""
    p = counts[counts > 0].astype(np.float64)
    p /= p.sum()
    return float(math.exp(-(p * np.log(p)).sum()))
