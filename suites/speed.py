"""Speed: throughput, latency, NFE, memory and FLOPs of sampling, measured one way for all.

Warm-up calls are excluded (at least ``warmup``, more until two consecutive calls agree
within ``stable_tolerance``), the device is synchronised before the clock is read, each
repeat runs calls until it has lasted ``min_repeat_s`` (``min_repeat_s_cuda`` on a GPU; so a
fast model is not timed on one short call), and every number is the median over repeats with its interquartile range in
the record. GPU memory is this cell's own: the peak allocation while it sampled, above what
was allocated before it started, plus this adapter's weights.
"""
from __future__ import annotations

import gc
import itertools
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


def time_calls(fn: Callable[[int], Any], *, repeats: int, warmup: int, device: str, min_repeat_s: float = 0.0,
               stable_tolerance: float | None = None, max_warmup: int = 20,
               progress: Callable[..., Iterable] | None = None, desc: str = "speed") -> np.ndarray:
    """Seconds per call of ``fn(i)``: one value per repeat, after the warm-up.

    Warm-up: ``warmup`` untimed calls (indices -1, -2, ...), then, with ``stable_tolerance``,
    more until the last two agree within that fraction (at most ``max_warmup`` in all).
    Each repeat calls ``fn`` until ``min_repeat_s`` has passed (at least once) and gives the
    mean time per call; the device is synchronised before each clock read. ``progress``
    (``SuiteContext.progress``) shows the warm-up calls and the repeats as bars (a slow
    model's cell is minutes of them).
    """
    bar = progress or (lambda it, **kw: it)
    last: list[float] = []

    def warming() -> bool:
        if len(last) < warmup:
            return True
        return (stable_tolerance is not None and len(last) < max_warmup
                and (len(last) < 2 or abs(last[-1] - last[-2]) > stable_tolerance * min(last[-2:])))

    synchronize(device)
    warm = bar(itertools.count(), desc=f"{desc} warm-up", unit="call")
    calls_started = iter(warm)
    while warming():
        next(calls_started)
        last.append(_one_call(fn, -1 - len(last), device))
    if hasattr(warm, "close"):
        warm.close()
    times, i = [], 0
    for _ in bar(range(repeats), desc=f"{desc} repeats", unit="repeat"):
        calls = 0
        t0 = time.perf_counter()
        while True:
            fn(i)
            i += 1
            calls += 1
            synchronize(device)
            elapsed = time.perf_counter() - t0
            if elapsed >= min_repeat_s:
                break
        times.append(elapsed / calls)
    return np.asarray(times)


def _one_call(fn: Callable[[int], Any], i: int, device: str) -> float:
    t0 = time.perf_counter()
    fn(i)
    synchronize(device)
    return time.perf_counter() - t0


def release_device_memory(device: str) -> None:
    """Free what earlier cells left behind (unreferenced objects, the CUDA caching allocator's
    unused blocks) before a cell measures memory."""
    gc.collect()
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()


def device_weight_bytes(generator: Generator) -> int:
    """Bytes of the parameters and buffers of the torch modules an adapter holds on a GPU."""
    import torch

    seen, total = set(), 0
    for value in vars(generator).values():
        if isinstance(value, torch.nn.Module):
            for t in [*value.parameters(), *value.buffers()]:
                if t.device.type == "cuda" and t.data_ptr() not in seen:
                    seen.add(t.data_ptr())
                    total += t.numel() * t.element_size()
    return total


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
    keeps_parts = False  # it times sample(): a part read back from disk (or written in a timed call) is no time
    options = {"batch_size": 64, "repeats": 5, "warmup": 1, "stable_tolerance": 0.1, "min_repeat_s": 0.5,
               # on an accelerator a call is short and jittery: on an H200, ar-digits cells of
               # identical cost spread 1.43x median to median with 0.5 s repeats, 1.07x with 1.5 s
               "min_repeat_s_cuda": 1.5,
               "latency_repeats": 5, "steps": None, "flops": True}

    @classmethod
    def check_options(cls, given: dict[str, Any], where: str) -> None:
        """Also: the warm-up tolerance and the repeat times are >= 0."""
        from genbench.errors import UserError

        super().check_options(given, where)
        for key in ("stable_tolerance", "min_repeat_s", "min_repeat_s_cuda"):
            if given.get(key) is not None and given[key] < 0:
                raise UserError(f"{where} {key} = {given[key]!r}: must be >= 0")

    def applies_to(self, generator: Generator) -> bool:
        return hasattr(generator, "sample") and getattr(generator, "paradigm", None) is not None

    def run(self, generator: Generator, ctx: SuiteContext) -> Iterable[Metric]:
        import torch

        o = ctx.options
        bs, steps = int(o["batch_size"]), o["steps"]
        last: dict[str, Any] = {}

        def sample_batch(i: int, n: int = bs) -> None:
            last["samples"] = generator.sample(n, seed=ctx.seed + 1000 + i, batch_size=n, steps=steps)

        cuda = ctx.device.startswith("cuda")
        release_device_memory(ctx.device)
        if cuda:
            before = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
        rss_reset = reset_peak_rss()
        tol = None if o["stable_tolerance"] is None else float(o["stable_tolerance"])
        min_repeat_s = float(o["min_repeat_s_cuda"] if cuda else o["min_repeat_s"])
        timing = {"warmup": int(o["warmup"]), "stable_tolerance": tol, "min_repeat_s": min_repeat_s}
        times = time_calls(sample_batch, repeats=int(o["repeats"]), device=ctx.device, **timing,
                           progress=ctx.progress, desc=f"speed batch {bs}")
        s = last["samples"]
        per_sample_units = _units_per_sample(s)
        conv = {"device": ctx.device, "threads": torch.get_num_threads(), "batch_size": bs,
                "repeats": int(o["repeats"]), "warmup_excluded": int(o["warmup"]),
                "warmup_rule": (f"at least {int(o['warmup'])} call(s), then until two consecutive calls agree "
                                f"within {tol:.0%}" if tol is not None else f"{int(o['warmup'])} call(s)"),
                "min_repeat_s": min_repeat_s, **spread(times),
                "steps": steps if steps is not None else "model default",
                "compile": getattr(generator, "compile", None) or "eager",
                "excluded": "weight loading, warm-up calls (and with them any compilation), FLOP counting",
                "clock": "time.perf_counter after device synchronisation; per repeat, calls until min_repeat_s "
                         "has passed, time per call = elapsed / calls"}
        med = float(np.median(times))
        yield Metric("samples_per_s", bs / med, unit="samples/s", higher_is_better=True, n=int(o["repeats"]),
                     convention=conv)
        unit_name = "pixels/s" if generator.modality == "image" else "tokens/s"
        yield Metric("units_per_s", bs * per_sample_units / med, unit=unit_name, higher_is_better=True,
                     n=int(o["repeats"]), convention={**conv, "units_per_sample": per_sample_units})
        yield Metric("nfe_per_sample", s.nfe_per_sample, unit="forward passes", higher_is_better=False,
                     convention={"counted_by": "the adapter: forward passes each sample goes through"})

        lat = time_calls(lambda i: sample_batch(i, 1), repeats=int(o["latency_repeats"]), device=ctx.device,
                         **{**timing, "warmup": 1}, progress=ctx.progress, desc="speed latency")
        yield Metric("latency_s", float(np.median(lat)), unit="s", higher_is_better=False,
                     n=int(o["latency_repeats"]), convention={**conv, "batch_size": 1, **spread(lat),
                                                               "repeats": int(o["latency_repeats"])})
        if cuda:
            own = device_weight_bytes(generator)
            peak = torch.cuda.max_memory_allocated() - before + own
            yield Metric("peak_memory_mb", peak / 2**20, unit="MiB", higher_is_better=False,
                         convention={"what": "torch.cuda.max_memory_allocated while this cell sampled, minus what "
                                             "was allocated when it started (earlier cells, other adapters), plus "
                                             "this adapter's weights on the device; after gc.collect and "
                                             "empty_cache", "weights_mb": own / 2**20, **conv})
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
