"""Fake generators of each paradigm and fake suites, for testing the engine without models.

The fakes are real little models: independent Bernoulli pixels with a known likelihood, so
the tests can check numbers, not just shapes.
"""
from __future__ import annotations

import numpy as np

from genbench.interfaces import Generator, LikelihoodKind, LogLikelihood, Samples
from genbench.registry import ADAPTERS, SUITES
from genbench.suite import Metric, Suite


class _FakeImage(Generator):
    modality = "image"
    likelihood_unit = "dimension"
    p_on = 0.3  # each pixel is 255 with this probability, else 0

    def __init__(self, path: str | None = None, *, device: str = "cpu", steps: int = 4):
        self.path = path
        self.default_steps = steps

    def sample(self, n, *, seed, batch_size=64, condition=None, steps=None, start=0):
        steps = steps or self.default_steps
        images = np.zeros((n, 4, 4, 1), dtype=np.uint8)
        nfe = 0
        for b0, size in self.batches(n, batch_size):
            for i in range(b0, b0 + size):  # per-sample RNG keyed by the run's index: independent of batching
                rng = np.random.default_rng([seed, start + i])
                images[i] = (rng.random((4, 4, 1)) < self.p_on) * 255
            nfe += self.nfe_per_call(steps)
        return Samples(images=images, nfe=nfe, nfe_per_sample=self.nfe_per_call(steps))

    def nfe_per_call(self, steps):
        return steps

    def exact_nll(self, images):
        on = (images.reshape(len(images), int(np.prod(images.shape[1:]))) > 127)
        return -(on * np.log(self.p_on) + (~on) * np.log(1 - self.p_on)).sum(axis=1)


class FakeAR(_FakeImage):
    name = "fake-ar"
    paradigm = "autoregressive"

    def nfe_per_call(self, steps):
        return 16  # one forward per pixel

    @property
    def likelihood_kind(self):
        return LikelihoodKind.EXACT

    def log_likelihood(self, batch, *, seed=0, start=0):
        nll = self.exact_nll(batch)
        return LogLikelihood(nll=nll, units=np.full(len(batch), 16.0), unit="dimension", kind="exact")


class FakeMasked(_FakeImage):
    name = "fake-masked"
    paradigm = "masked"

    @property
    def likelihood_kind(self):
        return LikelihoodKind.UPPER_BOUND

    def log_likelihood(self, batch, *, seed=0, start=0):
        rng = np.random.default_rng([seed, start])
        # a noisy bound: the exact NLL plus a positive gap, with a Monte Carlo error
        nll = self.exact_nll(batch) + 1.0 + rng.normal(0, 0.1, len(batch))
        return LogLikelihood(nll=nll, units=np.full(len(batch), 16.0), unit="dimension", kind="upper_bound",
                             stderr=np.full(len(batch), 0.1), mc_samples=8)


class FakeDiffusion(_FakeImage):
    name = "fake-diffusion"
    paradigm = "diffusion"  # no likelihood: the default 'unavailable'


class FakeBroken(_FakeImage):
    name = "fake-broken"
    paradigm = "diffusion"

    def sample(self, n, *, seed, batch_size=64, condition=None, steps=None, start=0):
        raise RuntimeError("this model always fails")


class ToySuite(Suite):
    """Mean pixel of samples and exact-or-bound bits per dim on a fixed batch."""

    name = "toy"
    options = {"n_samples": 8, "batch_size": 4}

    def run(self, generator, ctx):
        s = generator.sample(ctx.options["n_samples"], seed=ctx.seed, batch_size=ctx.options["batch_size"])
        s.validate(ctx.options["n_samples"], generator.modality)
        yield Metric("mean_pixel", float(s.images.mean()), unit="uint8", higher_is_better=False,
                     n=len(s), convention={"what": "mean of samples"})
        if generator.likelihood_kind != LikelihoodKind.UNAVAILABLE:
            ll = generator.log_likelihood(s.images, seed=ctx.seed).validate()
            yield Metric("bits_per_dim", ll.per_unit() / np.log(2), unit="bits/dim", higher_is_better=False,
                         stderr=ll.per_unit_stderr(), n=len(s),
                         convention={"kind": ll.kind.value, "mc_samples": ll.mc_samples})


class CrashAfterOne(Suite):
    """Yields one metric, then raises: the first metric must still be recorded."""

    name = "crash_after_one"
    options = {}

    def run(self, generator, ctx):
        yield Metric("first", 1.0, unit="x", higher_is_better=True)
        raise ValueError("boom after the first metric")


def register() -> None:
    for cls in (FakeAR, FakeMasked, FakeDiffusion, FakeBroken):
        ADAPTERS.register(cls.name, cls)
    SUITES.register(ToySuite.name, ToySuite)
    SUITES.register(CrashAfterOne.name, CrashAfterOne)
