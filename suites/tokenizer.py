"""Tokenizer reconstruction: PSNR, SSIM, codebook usage and rFID of decode(encode(x)).

PSNR and SSIM follow LlamaGen's scikit-image calls on [0, 1] images averaged per image,
except that SSIM uses the correct ``data_range=1.0``; LlamaGen's ``data_range=2.0`` (which
inflates SSIM) is recorded only when ``ssim_llamagen = true``.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from genbench.interfaces import Tokenizer
from genbench.metrics import image as image_metrics
from genbench.registry import EXTRACTORS
from genbench.suite import Metric, Suite, SuiteContext
from genbench.suites.common import images_to_grid_png, reference_images


def images_to_psnr_ssim(originals: np.ndarray, recons: np.ndarray, *, ssim_data_range: float = 1.0) -> tuple[float, float]:
    """Mean per-image PSNR (dB) and SSIM of uint8 (N,H,W,C) pairs, both taken on [0, 1] floats."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    a = originals.astype(np.float64) / 255.0
    b = recons.astype(np.float64) / 255.0
    psnr, ssim = [], []
    for x, y in zip(a, b):
        mse = np.mean((x - y) ** 2)
        # a perfect reconstruction has infinite PSNR; cap it at the 8-bit quantisation floor
        psnr.append(peak_signal_noise_ratio(x, y, data_range=1.0) if mse > 0 else 10 * np.log10(1 / (0.5 / 255) ** 2))
        win = min(7, x.shape[0] - (1 - x.shape[0] % 2))
        ssim.append(structural_similarity(x, y, data_range=ssim_data_range, channel_axis=-1, win_size=win))
    return float(np.mean(psnr)), float(np.mean(ssim))


class TokenizerReconstruction(Suite):
    name = "tokenizer"
    description = "reconstruction PSNR / SSIM / rFID and codebook usage of an image tokenizer"
    options = {"dataset": "digits", "split": "test", "extractor": "digits-classifier", "ssim_llamagen": False}

    def applies_to(self, generator) -> bool:
        return isinstance(generator, Tokenizer)

    def run(self, tokenizer: Tokenizer, ctx: SuiteContext) -> Iterable[Metric]:
        o = ctx.options
        images = reference_images(o["dataset"], o["split"])
        codes = tokenizer.encode(images)
        recons = tokenizer.decode(codes)
        images_to_grid_png(np.concatenate([images[:64], recons[:64]]), ctx.artifacts / "reconstructions.png")
        conv = {"dataset": o["dataset"], "split": o["split"], "n": int(len(images)),
                "tokenizer": tokenizer.describe(), "averaging": "per image, then mean"}
        psnr, ssim = images_to_psnr_ssim(images, recons)
        yield Metric("psnr", psnr, unit="dB", higher_is_better=True, n=len(images), task=o["dataset"],
                     convention={**conv, "range": "[0,1]", "implementation": "skimage peak_signal_noise_ratio"})
        yield Metric("ssim", ssim, unit="SSIM", higher_is_better=True, n=len(images), task=o["dataset"],
                     convention={**conv, "data_range": 1.0, "implementation": "skimage structural_similarity"})
        if o["ssim_llamagen"]:
            _, ssim2 = images_to_psnr_ssim(images, recons, ssim_data_range=2.0)
            yield Metric("ssim_llamagen", ssim2, unit="SSIM", higher_is_better=True, n=len(images), task=o["dataset"],
                         convention={**conv, "data_range": 2.0, "note": "LlamaGen's call; inflated, not comparable"})
        used = int(np.unique(codes).size)
        yield Metric("codebook_usage", used / tokenizer.codebook_size, unit="fraction", higher_is_better=True,
                     n=len(images), task=o["dataset"],
                     convention={**conv, "distinct_codes": used, "codebook_size": tokenizer.codebook_size})
        extractor = EXTRACTORS.get(o["extractor"])()
        mu_r, s_r = image_metrics.features_to_statistics(extractor.features(images))
        mu_g, s_g = image_metrics.features_to_statistics(extractor.features(recons))
        yield Metric("rfid", image_metrics.statistics_to_fid(mu_g, s_g, mu_r, s_r), unit="FID", higher_is_better=False,
                     n=len(images), task=o["dataset"],
                     convention={**conv, **extractor.describe(), "resize": "none",
                                 "reference": f"the {o['split']} originals themselves"})
