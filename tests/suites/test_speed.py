"""The speed suite: warm-up excluded, median and spread, NFE, per-cell peak memory, FLOPs."""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from genbench.interfaces import Generator, Samples
from genbench.suite import SuiteContext
from genbench.suites import speed
from tests import fakes


def test_time_calls_excludes_the_warm_up():
    calls = []

    def fn(i):
        calls.append(i)
        time.sleep(0.2 if i < 0 else 0.001)  # warm-up calls get negative indices

    times = speed.time_calls(fn, repeats=3, warmup=2, device="cpu")
    assert calls == [-1, -2, 0, 1, 2] and len(times) == 3 and times.max() < 0.1
    s = speed.spread(np.array([1.0, 2.0, 3.0, 4.0, 100.0]))
    assert s["median_s"] == 3.0 and s["iqr_s"] == 2.0 and s["max_s"] == 100.0


def test_warm_up_lasts_until_the_call_time_settles():
    durations = iter([0.16, 0.08, 0.04, 0.02, 0.02] + [0.001] * 100)
    calls = []

    def fn(i):
        calls.append(i)
        time.sleep(next(durations))

    speed.time_calls(fn, repeats=2, warmup=1, device="cpu", stable_tolerance=0.5)
    assert calls == [-1, -2, -3, -4, -5, 0, 1]


def test_warm_up_and_repeats_show_progress():
    """A slow model's speed cell is minutes of calls: the warm-up calls and the repeats go through
    ``progress`` (``SuiteContext.progress``, a tqdm bar in a run) and every call is counted."""
    shown = {}

    def progress(iterable, desc, unit):
        shown[desc] = [unit, 0]
        for x in iterable:
            shown[desc][1] += 1
            yield x

    durations = iter([0.16, 0.08, 0.04, 0.02, 0.02] + [0.001] * 100)
    speed.time_calls(lambda i: time.sleep(next(durations)), repeats=3, warmup=1, device="cpu",
                     stable_tolerance=0.5, progress=progress, desc="speed batch 8")
    assert shown == {"speed batch 8 warm-up": ["call", 5], "speed batch 8 repeats": ["repeat", 3]}


def test_each_repeat_lasts_at_least_min_repeat_s():
    calls = []

    def fn(i):
        calls.append(i)
        time.sleep(0.01)

    times = speed.time_calls(fn, repeats=3, warmup=0, device="cpu", min_repeat_s=0.1)
    assert len(times) == 3 and calls == list(range(len(calls))) and len(calls) >= 3 * 2
    assert np.all((times > 0.009) & (times < 0.05))  # time per call, not per repeat


def test_peak_rss_is_reset_per_cell():
    big = np.ones(200 * 2**20 // 8)  # 200 MiB touched
    before = speed.peak_rss_mb()
    del big
    if not speed.reset_peak_rss():
        pytest.skip("this OS cannot reset the peak RSS")
    assert speed.peak_rss_mb() < before - 150


class TinyTorchGenerator(Generator):
    """One matmul per step, so the FLOP counter has something to count."""

    name, paradigm, modality = "tiny", "diffusion", "image"

    def __init__(self):
        self.w = torch.randn(64, 64)

    def sample(self, n, *, seed, batch_size=64, condition=None, steps=None):
        steps = steps or 5
        x = torch.randn(n, 64, generator=torch.Generator().manual_seed(seed))
        for _ in range(steps):
            x = torch.tanh(x @ self.w)
        images = (x[:, :16].reshape(n, 4, 4, 1) > 0).numpy().astype(np.uint8) * 255
        return Samples(images=images, nfe=steps, nfe_per_sample=float(steps))


def test_suite_records_every_cost_with_its_convention(tmp_path):
    suite = speed.Speed()
    ctx = SuiteContext(seed=0, options={**suite.options, "batch_size": 4, "repeats": 3, "steps": 5,
                                        "min_repeat_s": 0.02},
                       artifacts=tmp_path)
    metrics = {m.metric: m for m in suite.run(TinyTorchGenerator(), ctx)}
    assert set(metrics) == {"samples_per_s", "units_per_s", "nfe_per_sample", "latency_s", "peak_memory_mb",
                            "gflops_per_sample"}
    conv = metrics["samples_per_s"].convention
    assert conv["warmup_excluded"] == 1 and conv["repeats"] == 3 and "weight loading" in conv["excluded"]
    assert conv["min_repeat_s"] == 0.02 and "until two consecutive calls agree within 10%" in conv["warmup_rule"]
    assert conv["device"] == "cpu" and conv["threads"] == torch.get_num_threads()
    assert conv["min_s"] <= conv["median_s"] <= conv["max_s"]
    assert metrics["samples_per_s"].value == pytest.approx(4 / conv["median_s"])
    assert metrics["units_per_s"].value == pytest.approx(16 * metrics["samples_per_s"].value)
    assert metrics["nfe_per_sample"].value == 5
    # 5 steps of a (1, 64) x (64, 64) matmul: 2 * 64 * 64 FLOPs each
    assert metrics["gflops_per_sample"].value == pytest.approx(5 * 2 * 64 * 64 / 1e9)
    assert "peak RSS" in metrics["peak_memory_mb"].convention["what"]


def test_suite_applies_to_fake_generators_of_every_paradigm(tmp_path):
    suite = speed.Speed()
    ctx = SuiteContext(seed=0, options={**suite.options, "batch_size": 2, "repeats": 3, "flops": False,
                                        "min_repeat_s": 0.0},
                       artifacts=tmp_path)
    for g in (fakes.FakeAR(), fakes.FakeMasked(), fakes.FakeDiffusion()):
        assert suite.applies_to(g)
        nfe = {m.metric: m.value for m in suite.run(g, ctx)}["nfe_per_sample"]
        assert nfe == (16 if g.paradigm == "autoregressive" else 4)
