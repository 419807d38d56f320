"""Image quality: FID, KID and precision/recall of samples against a held-out split.

Every number carries its convention: extractor and weights hash, resize, quantisation,
sample and reference counts. The FID of the training split against the same reference
(``fid_train_floor``) is recorded beside it: a model cannot be expected to beat it.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from genbench.interfaces import Generator
from genbench.metrics import image as image_metrics
from genbench.registry import EXTRACTORS
from genbench.suite import Metric, Suite, SuiteContext
from genbench.suites.common import images_to_grid_png, reference_images, subset


class ImageQuality(Suite):
    name = "image_quality"
    description = "FID / KID / precision-recall of samples vs a held-out split, with the train-split floor"
    options = {
        "dataset": "digits",
        "reference_split": "test",
        "extractor": "digits-classifier",
        "n_samples": 400,
        "batch_size": 200,
        "steps": None,
        "kid_subsets": 100,
        "kid_subset_size": 200,
        "pr_k": 3,
    }

    def applies_to(self, generator: Generator) -> bool:
        return getattr(generator, "modality", None) == "image" and hasattr(generator, "sample")

    def run(self, generator: Generator, ctx: SuiteContext) -> Iterable[Metric]:
        o = ctx.options
        extractor = EXTRACTORS.get(o["extractor"])()
        reference = reference_images(o["dataset"], o["reference_split"])
        n = int(o["n_samples"])
        samples = generator.sample(n, seed=ctx.seed, batch_size=int(o["batch_size"]), steps=o["steps"])
        samples.validate(n, "image")
        images_to_grid_png(samples.images[:128], ctx.artifacts / "samples.png")

        f_ref = extractor.features(reference)
        f_gen = extractor.features(samples.images)
        train = subset(reference_images(o["dataset"], "train"), len(reference), seed=0)
        f_train = extractor.features(train)
        mu_r, sigma_r = image_metrics.features_to_statistics(f_ref)

        convention = {
            **extractor.describe(),
            "resize": "none",
            "quantisation": "model output on the data's grey levels (uint8)",
            "reference": f"{o['dataset']} {o['reference_split']} split",
            "n_reference": int(len(reference)),
            "n_samples": n,
            "sqrtm": "eigh",
            "nfe_per_sample": samples.nfe_per_sample,
            "steps": o["steps"],
        }
        fid = image_metrics.statistics_to_fid(*image_metrics.features_to_statistics(f_gen), mu_r, sigma_r)
        yield Metric("fid", fid, unit="FID", higher_is_better=False, n=n, task=o["dataset"], convention=convention)

        floor = image_metrics.statistics_to_fid(*image_metrics.features_to_statistics(f_train), mu_r, sigma_r)
        yield Metric("fid_train_floor", floor, unit="FID", higher_is_better=False, n=len(train), task=o["dataset"],
                     convention={**convention, "n_samples": int(len(train)),
                                 "what": "train split images in place of samples: the floor"})

        size = min(int(o["kid_subset_size"]), n, len(reference))
        kid, kid_std = image_metrics.features_to_kid(f_gen, f_ref, num_subsets=int(o["kid_subsets"]),
                                                     max_subset_size=size, seed=ctx.seed)
        yield Metric("kid", kid, unit="KID", higher_is_better=False, stderr=kid_std / np.sqrt(int(o["kid_subsets"])),
                     n=n, task=o["dataset"],
                     convention={**convention, "kid_subsets": int(o["kid_subsets"]), "kid_subset_size": size,
                                 "kernel": "polynomial d=3, gamma=1/dim, coef=1; unbiased"})

        precision, recall = image_metrics.features_to_precision_recall(f_ref, f_gen, k=int(o["pr_k"]))
        pr_conv = {**convention, "k": int(o["pr_k"]), "definition": "Kynkaanniemi et al. 2019 (ADM)"}
        yield Metric("precision", precision, unit="fraction", higher_is_better=True, n=n, task=o["dataset"], convention=pr_conv)
        yield Metric("recall", recall, unit="fraction", higher_is_better=True, n=n, task=o["dataset"], convention=pr_conv)
