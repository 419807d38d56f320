"""Adapters for the torchrun tests (``--plugin tests.harness.rank_fakes``): fake-ar's twins whose
sampling fails, or never ends, on rank 1 only; also registers the fakes' ``toy`` suite."""
from __future__ import annotations

import time

from genbench import distributed
from genbench.registry import ADAPTERS
from tests import fakes

fakes.register()


@ADAPTERS.register("fake-fails-on-rank-1")
class FailsOnRank1(fakes.FakeAR):
    name = "fake-fails-on-rank-1"

    def sample(self, n, *, seed, batch_size=64, condition=None, steps=None, start=0):
        if distributed.rank() == 1:
            raise ValueError("sampling broke on this rank only")
        return super().sample(n, seed=seed, batch_size=batch_size, condition=condition, steps=steps, start=start)


@ADAPTERS.register("fake-stuck-on-rank-1")
class StuckOnRank1(fakes.FakeAR):
    name = "fake-stuck-on-rank-1"

    def sample(self, n, *, seed, batch_size=64, condition=None, steps=None, start=0):
        if distributed.rank() == 1:
            time.sleep(300)  # a rank that never arrives (the test ends long before)
        return super().sample(n, seed=seed, batch_size=batch_size, condition=condition, steps=steps, start=start)
