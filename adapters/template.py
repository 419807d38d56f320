"""A complete third-party adapter: copy this file into your package and replace the model.

Register it either with the decorator below and ``genbench run --plugin my_package.my_module``,
or, without the decorator, in your package's ``pyproject.toml``::

    [project.entry-points."genbench.adapters"]
    uniform-noise = "my_package.my_module:UniformNoise"

The "model" here is i.i.d. uniform noise over the 256 levels of each pixel: every suite runs on
it, and its exact likelihood is log2(256) = 8 bits per dimension.
"""
from __future__ import annotations

from typing import Any

import numpy as np

import genbench
from genbench.errors import UserError
from genbench.interfaces import Generator, LikelihoodKind, LogLikelihood, Samples


@genbench.registry.ADAPTERS.register("uniform-noise")
class UniformNoise(Generator):
    """Options: ``size`` (pixels per side), ``channels``; runtime: ``steps`` (ignored, reported)."""

    name = "uniform-noise"
    paradigm = "autoregressive"  # autoregressive | masked | diffusion
    modality = "image"  # image | text
    likelihood_unit = "dimension"
    runtime_options = frozenset({"steps"})  # changed by with_options, without reloading

    @classmethod
    def check_options(cls, path: str | None, **options: Any) -> None:
        """Cheap checks before a run writes anything (``path`` is None without ``:PATH``)."""
        if path is not None:
            raise UserError(f"{cls.name} takes no checkpoint path; use {cls.name}, not {cls.name}:{path}")

    def __init__(self, path: str | None = None, *, device: str = "cpu", size: int = 8, channels: int = 3,
                 steps: int = 1):
        self.check_options(path)  # load weights from `path` here
        self.size, self.channels, self.steps = int(size), int(channels), int(steps)

    def with_options(self, **options: Any) -> "UniformNoise":
        if set(options) - self.runtime_options:
            return super().with_options(**options)  # raises, naming the options
        return UniformNoise(size=self.size, channels=self.channels, steps=options.get("steps", self.steps))

    def describe(self) -> dict[str, Any]:  # identifies the model in every record
        return {**super().describe(), "size": self.size, "channels": self.channels}

    def sample(self, n: int, *, seed: int, batch_size: int = 64, condition: Any = None,
               steps: int | None = None, start: int = 0) -> Samples:
        """n images uint8 (n, size, size, channels). Sample ``i`` of the call is sample ``start + i``
        of the run: its own generator keyed by (seed, start + i) gives the same images at any batch
        size and however the run is split into calls (chunks, torchrun ranks)."""
        if condition is not None:
            raise UserError(f"{self.name} is unconditional: pass condition=None")
        shape = (self.size, self.size, self.channels)
        images = np.stack([np.random.default_rng([seed, start + i]).integers(0, 256, shape, dtype=np.uint8)
                           for i in range(n)]) if n else np.empty((0, *shape), np.uint8)
        return Samples(images=images, nfe=0, nfe_per_sample=0.0, info={"quantisation": "none (uint8 noise)"})

    @property
    def likelihood_kind(self) -> LikelihoodKind:
        return LikelihoodKind.EXACT

    def log_likelihood(self, batch: Any, *, seed: int = 0, start: int = 0) -> LogLikelihood:
        """uint8 images (N, H, W, C) -> NLL in nats per image; ``start``: index of batch[0] in the run."""
        dims = float(np.prod(batch.shape[1:]))
        return LogLikelihood(nll=np.full(len(batch), dims * np.log(256.0)), units=np.full(len(batch), dims),
                             unit="dimension", kind=LikelihoodKind.EXACT)
