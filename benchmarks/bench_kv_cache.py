"""AR reference model: KV-cached sampling against uncached, and rerun repeatability.

Prints the speed-up of the cache (cached samples/s ÷ uncached samples/s, measured in the same
run with the speed suite's timer: warm-up excluded, median of repeats) and the ratio of two
repeated cached measurements (should be within 10% of 1).
Run: .venv/bin/python benchmarks/bench_kv_cache.py
"""
from __future__ import annotations

import numpy as np

from genbench.registry import build_adapter
from genbench.suites.speed import spread, time_calls

BATCH = 64
REPEATS = 5


def samples_per_s(model) -> tuple[float, dict]:
    times = time_calls(lambda i: model.sample(BATCH, seed=100 + i, batch_size=BATCH),
                       repeats=REPEATS, warmup=1, device="cpu")
    return BATCH / float(np.median(times)), spread(times)


def main() -> None:
    cached = build_adapter("ar-digits", kv_cache=True)
    uncached = build_adapter("ar-digits", kv_cache=False)
    a = cached.sample(8, seed=0, batch_size=8).images
    b = uncached.sample(8, seed=0, batch_size=8).images
    assert np.array_equal(a, b), "cached and uncached sampling must give the same samples"
    fast, fast_spread = samples_per_s(cached)
    slow, slow_spread = samples_per_s(uncached)
    again, _ = samples_per_s(cached)
    print(f"ar-digits sampling, batch {BATCH}, median of {REPEATS} after 1 warm-up, CPU")
    print(f"  kv cache on : {fast:8.1f} samples/s  (IQR {fast_spread['iqr_s']:.4f} s)")
    print(f"  kv cache off: {slow:8.1f} samples/s  (IQR {slow_spread['iqr_s']:.4f} s)")
    print(f"  speed-up of the KV cache: {fast / slow:.2f}x")
    print(f"  rerun repeatability (cached, median/median): {again / fast:.3f} (target within 0.90-1.10)")


if __name__ == "__main__":
    main()
