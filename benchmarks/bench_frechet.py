"""Time genbench's Fréchet distance against the scipy.linalg.sqrtm path on 2048-d statistics.

    .venv/bin/python benchmarks/bench_frechet.py [--dim 2048] [--n 4096] [--repeats 3] [--threads 1]

Both methods run in the same process on the same statistics, interleaved repeat by repeat so
a busy machine slows both alike; after a small warm-up call of each, the median wall time
of the repeats is reported with its range. Prints the ratio (ours / scipy, target <= 0.1)
and the relative difference of the two FID values.

BLAS/LAPACK run on one thread by default: on shared, oversubscribed cores multithreaded
OpenBLAS spins and slows the short, synchronisation-heavy symmetric eigensolver far more
than the long Schur decomposition (measured here under load: 0.24 with two threads, 0.08
with one). ``--threads 0`` keeps the library default, for an idle machine.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

import genbench  # noqa: F401
from genbench.metrics.image import features_to_statistics, statistics_to_fid

TARGET_RATIO = 0.1


def inception_like_features(n: int, d: int, seed: int, shift: float = 0.0) -> np.ndarray:
    """Non-negative features with a decaying spectrum, like Inception pool_3 activations."""
    rng = np.random.default_rng(seed)
    basis = np.random.default_rng(1234).standard_normal((d, d)) / np.sqrt(d)
    z = rng.standard_normal((n, d)) / np.sqrt(1.0 + np.arange(d))
    return np.maximum(z @ basis + 0.3 + shift, 0.0)


def timed(fn) -> tuple[float, float]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=2048, help="feature dimension (default 2048)")
    parser.add_argument("--n", type=int, default=4096, help="samples per set (default 4096)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats of each method")
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS/LAPACK threads via threadpoolctl (default 1; 0 = library default)")
    parser.add_argument("--check", action="store_true",
                        help=f"exit with status 1 when the ratio exceeds {TARGET_RATIO}")
    args = parser.parse_args(argv)

    limiter = None
    if args.threads > 0:
        from threadpoolctl import threadpool_limits

        limiter = threadpool_limits(args.threads)

    print(f"statistics: {args.dim}-d from {args.n} inception-like samples per set; "
          f"{args.repeats} repeats; cpus {os.cpu_count()}; BLAS threads "
          f"{args.threads if args.threads > 0 else 'library default'}", flush=True)
    stats = (*features_to_statistics(inception_like_features(args.n, args.dim, 1)),
             *features_to_statistics(inception_like_features(args.n, args.dim, 2, shift=0.01)))

    small = (*features_to_statistics(inception_like_features(200, 64, 3)),
             *features_to_statistics(inception_like_features(200, 64, 4)))
    for method in ("eigh", "scipy_sqrtm"):  # warm-up: first calls load code paths
        statistics_to_fid(*small, method=method)

    times: dict[str, list[float]] = {"eigh": [], "scipy_sqrtm": []}
    values: dict[str, float] = {}
    for r in range(args.repeats):
        for method in ("eigh", "scipy_sqrtm"):
            seconds, values[method] = timed(lambda: statistics_to_fid(*stats, method=method))
            times[method].append(seconds)
            print(f"  repeat {r + 1}: {method:<11} {seconds:8.3f} s  FID {values[method]:.10g}",
                  flush=True)
    if limiter is not None:
        limiter.restore_original_limits()

    med = {m: statistics.median(t) for m, t in times.items()}
    ratio = med["eigh"] / med["scipy_sqrtm"]
    rel = abs(values["eigh"] - values["scipy_sqrtm"]) / abs(values["scipy_sqrtm"])
    for m, t in times.items():
        print(f"{m:<11} median {med[m]:8.3f} s  (min {min(t):.3f}, max {max(t):.3f})")
    print(f"time ratio eigh / scipy_sqrtm: {ratio:.4f} (target <= {TARGET_RATIO}: "
          f"{'met' if ratio <= TARGET_RATIO else 'NOT met'})")
    print(f"relative difference of the FID values: {rel:.3e}")
    return 1 if args.check and ratio > TARGET_RATIO else 0


if __name__ == "__main__":
    sys.exit(main())
