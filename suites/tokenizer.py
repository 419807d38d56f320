"""Tokenizer reconstruction: PSNR, SSIM, LPIPS, rFID and code statistics of decode(encode(x)).

Any image source (``dataset``): ``digits[:SPLIT]``, ``fashion-mnist[:SPLIT]``, an image
folder, a ``.npz`` with ``arr_0``, or ``hf:PATH[:SPLIT]``; streamed ``chunk`` images at a
time (50,000 images at 256x256 are never all in memory; only the rFID features are kept).
Images must already be at the tokenizer's resolution unless ``resize`` says how to get
there: ``center_crop`` (ADM's ImageNet preprocessing: BOX halvings, BICUBIC, centre crop; the
choice for photographs) or ``bicubic`` (PIL bicubic to the size, aspect ratio ignored, as
VTBench does). Grey images are replicated to RGB only with ``grey = "convert"``.

Metrics (every record carries the tokenizer's pixel scaling and output quantisation, the
source, split, preprocessing and N):

* ``psnr``, ``ssim``: per image on [0, 1] with data range 1.0 (``genbench.metrics.
  reconstruction``, equal to scikit-image's), mean over images with the standard error of
  that mean; LlamaGen's ``data_range = 2.0`` SSIM only with ``ssim_llamagen = true``, labelled.
* ``lpips_alex``, ``lpips_vgg``: from the local weights files named by ``lpips_alex`` /
  ``lpips_vgg`` (never downloaded); without them the record says ``unavailable: no local weights``.
* ``rfid``: FID of the reconstructions against the originals of the stated source and split,
  through the image suite's extractor and statistics code (``extractor``: any registered
  one, ``inception[:FILE]``, ``torchscript:FILE``...; ``auto`` = ``digits-classifier`` on
  the digits data set, else ``inception``, recorded as unavailable when its weights are missing).
* discrete tokenizers: ``codebook_usage`` (distinct codes / K), ``code_perplexity``
  (exp of the entropy of the code histogram), ``tokens_per_image``, ``bits_per_image``
  (h w log2 K); continuous ones: ``latent_channels`` and ``latent_dims_per_image``.

Artifacts: ``reconstructions.png`` (rows of originals, each above its reconstructions).
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Iterator

import numpy as np

from genbench.errors import UserError
from genbench.features.decode import GREY_OPTIONS
from genbench.interfaces import Tokenizer
from genbench.metrics import reconstruction as rec
from genbench.suite import Metric, Suite, SuiteContext
from genbench.suites.common import (RESIZE_METHODS, image_source_chunks, images_to_grid_png, resize_images,
                                    stack_images)

#: how many originals (and their reconstructions) the artifact grid shows
GRID_IMAGES = 32


def check_codes(tokenizer: Tokenizer, codes: Any, n: int) -> None:
    """Raise ``UserError`` naming the adapter when ``encode`` broke the interface."""
    who = f"tokenizer {tokenizer.name}"
    if not isinstance(codes, np.ndarray) or codes.ndim < 2 or len(codes) != n:
        raise UserError(f"{who}: encode returned {type(codes).__name__} {getattr(codes, 'shape', '')} for {n} "
                        f"images; expected an array with one row per image")
    if tokenizer.kind == "discrete":
        if not np.issubdtype(codes.dtype, np.integer) or codes.ndim != 3:
            raise UserError(f"{who}: a discrete tokenizer's encode must return integer codes (N, h, w); got "
                            f"{codes.dtype} {codes.shape}")
        k = tokenizer.codebook_size
        if codes.size and (codes.min() < 0 or codes.max() >= k):
            raise UserError(f"{who}: encode returned codes from {codes.min()} to {codes.max()}, outside the "
                            f"codebook [0, {k})")
    else:
        if not np.issubdtype(codes.dtype, np.floating):
            raise UserError(f"{who}: a continuous tokenizer's encode must return float latents (N, c, h, w); got "
                            f"{codes.dtype} {codes.shape}")
        if not np.all(np.isfinite(codes)):
            raise UserError(f"{who}: encode returned latents holding NaN or inf")


def check_reconstructions(tokenizer: Tokenizer, originals: np.ndarray, recons: Any) -> None:
    """Raise ``UserError`` naming the adapter when ``decode`` does not return the originals' shape."""
    if not isinstance(recons, np.ndarray) or recons.dtype != np.uint8 or recons.shape != originals.shape:
        raise UserError(f"tokenizer {tokenizer.name}: decode returned {type(recons).__name__} "
                        f"{getattr(recons, 'dtype', '')} {getattr(recons, 'shape', '')} for uint8 images "
                        f"{originals.shape}; a reconstruction must keep the image size and be uint8")


class _Mean:
    """Running mean and standard error of per-image values."""

    def __init__(self):
        self.values: list[np.ndarray] = []

    def add(self, v: np.ndarray) -> None:
        self.values.append(np.asarray(v, dtype=np.float64))

    def result(self) -> tuple[float, float | None]:
        v = np.concatenate(self.values)
        se = float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else None
        return float(v.mean()), se


def _extractor(name: str, mode: str | None, label: str, device: str):
    """(extractor or None, its describe() or why it is unavailable)."""
    from genbench.features.build import build_extractor

    auto = name == "auto"
    if auto:
        name = "digits-classifier" if label.partition(":")[0] == "digits" else "inception"
    try:
        ex = build_extractor(name, mode=mode, device=device)
    except UserError as e:
        if not auto:
            raise
        return None, {"extractor": name, "status": f"unavailable: {e}"}
    return ex, {**ex.describe(), "extractor_choice": "auto" if auto else "given"}


def _features(ex, images: np.ndarray) -> np.ndarray:
    # the resizing extractors (Inception, TorchScript, CLIP) take RGB; grey is replicated for them only
    if images.shape[-1] == 1 and hasattr(ex, "outputs_from_loaders"):
        images = np.repeat(images, 3, axis=-1)
    return np.asarray(ex.features(images), dtype=np.float64)


class TokenizerReconstruction(Suite):
    name = "tokenizer"
    description = "reconstruction PSNR / SSIM / LPIPS / rFID and code statistics of an image tokenizer"
    options = {
        "dataset": "digits",        # digits, fashion-mnist, a folder, a .npz, hf:PATH[:SPLIT]
        "split": "test",            # for digits / fashion-mnist (hf: names its own)
        "max_images": None,
        "chunk": 500,               # images encoded, decoded and measured at a time
        "resize": "none",           # none | center_crop (ADM) | bicubic
        "grey": "error",            # error | convert (replicate grey to RGB)
        "extractor": "auto",
        "extractor_mode": None,     # clean | legacy_pytorch | legacy_tensorflow (resizing extractors)
        "ssim_llamagen": False,
        "lpips_alex": None,         # local weights file(s): backbone + linear heads
        "lpips_vgg": None,
        "lpips_batch_size": 32,
    }
    option_choices = {"resize": ("none", *RESIZE_METHODS), "grey": GREY_OPTIONS}  # checked before a run writes

    def applies_to(self, generator) -> bool:
        return isinstance(generator, Tokenizer)

    def run(self, tokenizer: Tokenizer, ctx: SuiteContext) -> Iterable[Metric]:
        o = ctx.options
        if tokenizer.kind not in ("discrete", "continuous"):
            raise UserError(f"tokenizer {tokenizer.name}: kind must be discrete or continuous, got {tokenizer.kind!r}")
        lpips_nets = {}
        for net in ("alex", "vgg"):
            if o[f"lpips_{net}"]:
                lpips_nets[net] = rec.LPIPS(net, o[f"lpips_{net}"], device=ctx.device)
        source = image_source_chunks(o["dataset"], split=o["split"], grey=o["grey"], chunk=int(o["chunk"]),
                                     max_images=o["max_images"])
        psnr, ssim, ssim2 = _Mean(), _Mean(), _Mean()
        lpips = {net: _Mean() for net in lpips_nets}
        feats_orig, feats_rec = [], []
        ex = ex_conv = None
        hist = None
        code_shape = latent_shape = None
        grid_orig, grid_rec = [], []
        n = exact = 0
        for images in ctx.progress(source.chunks(), desc="tokenizer", total=source.n_chunks):
            images = self._prepare(images, tokenizer, o["resize"], o["grey"], source.label)
            tokenizer.check_images(images, f"data {source.label}")
            codes = tokenizer.encode(images)
            check_codes(tokenizer, codes, len(images))
            recons = tokenizer.decode(codes)
            check_reconstructions(tokenizer, images, recons)
            if tokenizer.kind == "discrete":
                counts = rec.codes_to_histogram(codes, tokenizer.codebook_size)
                hist = counts if hist is None else hist + counts
                code_shape = codes.shape[1:]
            else:
                latent_shape = codes.shape[1:]
            psnr.add(rec.images_to_psnr(images, recons))
            ssim.add(rec.images_to_ssim(images, recons))
            if o["ssim_llamagen"]:
                ssim2.add(rec.images_to_ssim(images, recons, data_range=2.0))
            for net, model in lpips_nets.items():
                if images.shape[-1] != 3:
                    raise UserError(f"[suite.tokenizer] LPIPS needs RGB images; {source.label} is grey: set "
                                    f"grey = \"convert\" or drop lpips_{net}")
                lpips[net].add(model.distance(images, recons, batch_size=int(o["lpips_batch_size"])))
            if ex_conv is None:
                ex, ex_conv = _extractor(o["extractor"], o["extractor_mode"], source.label, ctx.device)
            if ex is not None:
                feats_orig.append(_features(ex, images))
                feats_rec.append(_features(ex, recons))
            exact += int(np.all(images == recons, axis=(1, 2, 3)).sum())
            if n < GRID_IMAGES:
                grid_orig.append(images[: GRID_IMAGES - n])
                grid_rec.append(recons[: GRID_IMAGES - n])
            n += len(images)
        if n == 0:
            raise UserError(f"[suite.tokenizer] dataset {source.label} holds no images")
        self._grid(np.concatenate(grid_orig), np.concatenate(grid_rec), ctx)
        height, width, channels = images.shape[1:]
        conv = {"dataset": source.label, "split": source.split, "n": n, "tokenizer": tokenizer.describe(),
                "kind": tokenizer.kind, "pixel_scaling": tokenizer.pixel_scaling,
                "output_quantisation": tokenizer.output_quantisation, "preprocessing": source.preprocessing,
                "resize": o["resize"] if o["resize"] == "none" else
                f"{o['resize']} to {height}x{width} ({'ADM center_crop_arr' if o['resize'] == 'center_crop' else 'PIL bicubic, aspect ignored'})",
                "grey": o["grey"], "image_shape": [height, width, channels], "exact_reconstructions": exact,
                "averaging": "per image, then mean; stderr of the mean over images",
                "artifact": "reconstructions.png: rows of originals, each above its reconstructions"}
        task = source.label
        value, se = psnr.result()
        yield Metric("psnr", value, unit="dB", higher_is_better=True, stderr=se, n=n, task=task,
                     convention={**conv, "range": "[0,1]", "data_range": 1.0, "definition": rec.PSNR_CONVENTION,
                                 "perfect_reconstruction_db": rec.psnr_of_perfect((height, width, channels))})
        value, se = ssim.result()
        ssim_conv = {**conv, "range": "[0,1]", "data_range": 1.0, "win_size": rec.ssim_window(height, width),
                     "implementation": "skimage structural_similarity (uniform window, K1 0.01, K2 0.03, "
                                       "sample covariance, channel mean)"}
        yield Metric("ssim", value, unit="SSIM", higher_is_better=True, stderr=se, n=n, task=task, convention=ssim_conv)
        if o["ssim_llamagen"]:
            value, se = ssim2.result()
            yield Metric("ssim_llamagen", value, unit="SSIM", higher_is_better=True, stderr=se, n=n, task=task,
                         convention={**ssim_conv, "data_range": 2.0,
                                     "note": "LlamaGen's call: data_range 2.0 on [0,1] images inflates SSIM; "
                                             "not comparable with ssim"})
        for net in ("alex", "vgg"):
            if net in lpips_nets:
                value, se = lpips[net].result()
                yield Metric(f"lpips_{net}", value, unit="LPIPS", higher_is_better=False, stderr=se, n=n, task=task,
                             convention={**conv, **lpips_nets[net].describe()})
            else:
                yield Metric(f"lpips_{net}", math.nan, unit="LPIPS", higher_is_better=False, n=n, task=task,
                             convention={**conv, "status": "unavailable: no local weights",
                                         "fix": f"set [suite.tokenizer] lpips_{net} to local weights files"})
        yield self._rfid(ex, ex_conv, feats_orig, feats_rec, conv, n, task)
        if tokenizer.kind == "discrete":
            k = int(tokenizer.codebook_size)
            used = int((hist > 0).sum())
            tokens = int(np.prod(code_shape))
            code_conv = {**conv, "codebook_size": k, "code_grid": list(code_shape), "distinct_codes": used}
            yield Metric("codebook_usage", used / k, unit="fraction", higher_is_better=True, n=n, task=task,
                         convention={**code_conv, "definition": "distinct codes used over the set / codebook size"})
            yield Metric("code_perplexity", rec.histogram_to_perplexity(hist), unit="codes", higher_is_better=True,
                         n=n, task=task, convention={**code_conv, "definition": "exp(entropy of the code histogram "
                                                                                "over all positions and images)"})
            yield Metric("tokens_per_image", tokens, unit="tokens", higher_is_better=False, n=n, task=task,
                         convention=code_conv)
            yield Metric("bits_per_image", tokens * math.log2(k), unit="bits", higher_is_better=False, n=n, task=task,
                         convention={**code_conv, "definition": "h * w * log2(codebook_size)"})
        else:
            lat = {**conv, "latent_shape": list(latent_shape)}
            yield Metric("latent_channels", latent_shape[0], unit="channels", higher_is_better=False, n=n, task=task,
                         convention=lat)
            yield Metric("latent_dims_per_image", int(np.prod(latent_shape)), unit="float dims",
                         higher_is_better=False, n=n, task=task, convention=lat)

    @staticmethod
    def _prepare(images: np.ndarray, tokenizer: Tokenizer, resize: str, grey: str, label: str) -> np.ndarray:
        if grey == "convert":
            images = [np.repeat(im, 3, axis=-1) if im.shape[-1] == 1 else im for im in images]
        if resize == "none":
            return stack_images(images, label)
        if tokenizer.resolution is None:
            raise UserError(f"[suite.tokenizer] resize = {resize!r} but tokenizer {tokenizer.name} states no "
                            f"resolution; set the adapter's resolution")
        return resize_images(images, tuple(tokenizer.resolution), resize, label)

    @staticmethod
    def _rfid(ex, ex_conv, feats_orig, feats_rec, conv, n, task) -> Metric:
        from genbench.metrics import image as image_metrics

        if ex is None:
            return Metric("rfid", math.nan, unit="FID", higher_is_better=False, n=n, task=task,
                          convention={**conv, **ex_conv, "fix": "name local weights: extractor = inception:FILE, "
                                                                "or torchscript:FILE"})
        from genbench.features.build import extractor_identity
        from genbench.features.fid import statistics_to_metrics
        from genbench.features.statistics import Statistics

        if n < 2:
            raise UserError(f"[suite.tokenizer] rFID needs at least 2 images; {task} gave {n}")
        identity = extractor_identity(ex)
        stats = {}
        for what, feats in (("originals", feats_orig), ("reconstructions", feats_rec)):
            f = np.concatenate(feats)
            mu, sigma = image_metrics.features_to_statistics(f)
            stats[what] = Statistics(mu=mu, sigma=sigma, n=n, source=f"{what} of {task}", kind="tokenizer",
                                     identity=identity)
        res = statistics_to_metrics(stats["reconstructions"], stats["originals"], ex, ["fid"])
        warn = list(res["warnings"])  # statistics_to_metrics warns when n is below the feature dimension
        return Metric("rfid", res["fid"], unit="FID", higher_is_better=False, n=n, task=task,
                      convention={**conv, **ex_conv, "reference": f"the originals of {task} (same preprocessing)",
                                  "n_reference": n, "sqrtm": res["sqrtm"], "warnings": warn})

    @staticmethod
    def _grid(originals: np.ndarray, recons: np.ndarray, ctx: SuiteContext, columns: int = 8) -> None:
        """Rows of ``columns`` originals, each row followed by the same images reconstructed."""
        rows = []
        for s in range(0, len(originals), columns):
            for part in (originals[s: s + columns], recons[s: s + columns]):
                if len(part) < columns:  # pad a short last row with white
                    part = np.concatenate([part, np.full((columns - len(part), *part.shape[1:]), 255, np.uint8)])
                rows.append(part)
        h = originals.shape[1]
        images_to_grid_png(np.concatenate(rows), ctx.artifacts / "reconstructions.png", columns=columns,
                           scale=max(1, 64 // h))
