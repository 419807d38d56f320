"""``genbench ARGS`` with a tiny RGB digits adapter and a second name for image_quality (its
reference-by-path protocol, options of its own), so that one run covers both of the suite's paths:
the subject of tests/harness/test_ranks_features.py, run as one process and under torchrun."""
from __future__ import annotations

import sys

import numpy as np

from genbench.interfaces import Generator, Samples
from genbench.registry import ADAPTERS, SUITES
from genbench.suites.image_quality import ImageQuality


class RGBDigits(Generator):
    """8x8 grey RGB images (3 equal channels) made from sklearn's digits with noise, sample ``start + i`` from its own stream
    ``(seed, start + i)``: the digits classifier (8x8, 1 or 3 channels) and a resizing
    TorchScript extractor both take them. No model: the test measures the suite, not a sampler."""

    name = "fake-rgb-digits"
    paradigm = "diffusion"
    modality = "image"

    def __init__(self, path=None, *, device: str = "cpu"):
        from sklearn.datasets import load_digits

        self.digits = (load_digits().images * 15).astype(np.int64)

    def sample(self, n, *, seed, batch_size=64, condition=None, steps=None, start=0):
        x = np.empty((n, 8, 8, 3), dtype=np.uint8)
        for i in range(n):
            rng = np.random.default_rng([seed, start + i])
            base = self.digits[int(rng.integers(len(self.digits)))]
            x[i] = np.clip(base + rng.integers(-40, 41, (8, 8)), 0, 255)[..., None]  # grey: 3 equal channels
        return Samples(images=x, nfe=4 * n, nfe_per_sample=4.0, info={"quantisation": "round"})


class RGBDigitsFailingOnRank1(RGBDigits):
    """RGBDigits whose sampling raises on torchrun rank 1 only: the cell must fail on every rank
    (``features.ranks.checked``), not leave rank 0 waiting in the next gather."""

    name = "fake-rgb-digits-fails-on-rank-1"

    def sample(self, n, *, seed, batch_size=64, condition=None, steps=None, start=0):
        from genbench import distributed

        if distributed.rank() == 1:
            raise ValueError("sampling broke on rank 1 only")
        return super().sample(n, seed=seed, batch_size=batch_size, condition=condition, steps=steps, start=start)


class ImageQualityReference(ImageQuality):
    name = "image_quality_reference"


def register() -> None:
    ADAPTERS.register(RGBDigits.name, RGBDigits)
    ADAPTERS.register(RGBDigitsFailingOnRank1.name, RGBDigitsFailingOnRank1)
    SUITES.register(ImageQualityReference.name, ImageQualityReference)


if __name__ == "__main__":
    register()
    from genbench.cli import main

    sys.exit(main(sys.argv[1:]))
