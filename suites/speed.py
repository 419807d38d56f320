"""Speed: throughput, latency, NFE, memory and FLOPs of sampling, measured one way for all.

Warm-up calls are excluded, the device is synchronised before the clock is read, and every
number is the median over repeats with its spread in the record.
"""
from __future__ import annotations

import resource
import sys
import time
from typing import Any, Callable, Iterable

import numpy as np

from genbench.interfaces import Generator
from genbench.suite import Metric, Suite, SuiteContext


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def time_calls(fn: Callable[[int], Any], *, repeats: int, warmup: int, device: str) -> np.ndarray:
    """Seconds per call of ``fn(i)`` over ``repeats`` calls after ``warmup`` untimed ones."""
    for i in range(warmup):
        fn(-1 - i)
    synchronize(device)
    times = []
    for i in range(repeats):
        t0 = time.perf_counter()
        fn(i)
        synchronize(device)
        times.append(time.perf_counter() - t0)
    return np.asarray(times)


def spread(times: np.ndarray) -> dict[str, float]:
    q1, med, q3 = np.percentile(times, [25, 50, 75])
    return {"median_s": float(med), "iqr_s": float(q3 - q1), "min_s": float(times.min()), "max_s": float(times.max())}


def reset_peak_rss() -> bool:
    """Reset this process's peak RSS (Linux >= 4.0: write 5 to /proc/self/clear_refs), so the
    next ``peak_rss_mb`` covers only what runs after; False where the OS has no such reset."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """Peak resident set size (MiB) since the last ``reset_peak_rss`` (VmHWM), else since the
    process started (ru_maxrss is KiB on Linux, bytes on macOS)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def count_flops(fn: Callable[[], Any]) -> float | None:
    """FLOPs of one call as torch.utils.flop_counter counts them (matmuls, convs, attention)."""
    try:
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as counter:
            fn()
        return float(counter.get_total_flops())
    except Exception:  # a model whose ops the counter cannot trace: report no FLOPs, not a wrong number
        return None


class Speed(Suite):
    name = "speed"
    description = "samples/s at a batch size, batch-1 latency, NFE/sample, peak memory, FLOPs/sample"
    options = {"batch_size": 64, "repeats": 5, "warmup": 1, "latency_repeats": 5, "steps": None, "flops": True}

    def applies_to(self, generator: Generator) -> bool:
        return hasattr(generator, "sample") and getattr(generator, "paradigm", None) is not None

    def run(self, generator: Generator, ctx: SuiteContext) -> Iterable[Metric]:
        import torch

        o = ctx.options
        bs, steps = int(o["batch_size"]), o["steps"]
        last: dict[str, Any] = {}

        def sample_batch(i: int, n: int = bs) -> None:
            last["samples"] = generator.sample(n, seed=ctx.seed + 1000 + i, batch_size=n, steps=steps)

        if ctx.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        rss_reset = reset_peak_rss()
        times = time_calls(sample_batch, repeats=int(o["repeats"]), warmup=int(o["warmup"]), device=ctx.device)
        s = last["samples"]
        per_sample_units = _units_per_sample(s)
        conv = {"device": ctx.device, "threads": torch.get_num_threads(), "batch_size": bs,
                "repeats": int(o["repeats"]), "warmup_excluded": int(o["warmup"]), **spread(times),
                "steps": steps if steps is not None else "model default",
                "excluded": "weight loading, first (warm-up) batches, FLOP counting",
                "clock": "time.perf_counter after device synchronisation"}
        med = float(np.median(times))
        yield Metric("samples_per_s", bs / med, unit="samples/s", higher_is_better=True, n=int(o["repeats"]),
                     convention=conv)
        unit_name = "pixels/s" if generator.modality == "image" else "tokens/s"
        yield Metric("units_per_s", bs * per_sample_units / med, unit=unit_name, higher_is_better=True,
                     n=int(o["repeats"]), convention={**conv, "units_per_sample": per_sample_units})
        yield Metric("nfe_per_sample", s.nfe_per_sample, unit="forward passes", higher_is_better=False,
                     convention={"counted_by": "the adapter: forward passes each sample goes through"})

        lat = time_calls(lambda i: sample_batch(i, 1), repeats=int(o["latency_repeats"]), warmup=1, device=ctx.device)
        yield Metric("latency_s", float(np.median(lat)), unit="s", higher_is_better=False,
                     n=int(o["latency_repeats"]), convention={**conv, "batch_size": 1, **spread(lat),
                                                               "repeats": int(o["latency_repeats"])})
        if ctx.device.startswith("cuda"):
            yield Metric("peak_memory_mb", torch.cuda.max_memory_allocated() / 2**20, unit="MiB",
                         higher_is_better=False, convention={"what": "torch.cuda.max_memory_allocated", **conv})
        else:
            what = ("peak RSS of the process while this cell sampled (VmHWM, reset at the cell's start; includes "
                    "the harness, the weights and the interpreter)" if rss_reset else
                    "peak RSS of the whole process since it started (this OS cannot reset it; includes earlier cells)")
            yield Metric("peak_memory_mb", peak_rss_mb(), unit="MiB", higher_is_better=False,
                         convention={"what": what, **conv})
        if o["flops"]:
            flops = count_flops(lambda: sample_batch(-99, 1))
            if flops is not None:
                yield Metric("gflops_per_sample", flops / 1e9, unit="GFLOP", higher_is_better=False,
                             convention={"counter": "torch.utils.flop_counter.FlopCounterMode", "batch_size": 1,
                                         "steps": conv["steps"]})


def _units_per_sample(samples) -> int:
    if samples.images is not None:
        return int(np.prod(samples.images.shape[1:3]))
    return int(np.asarray(samples.tokens).shape[1])
