"""What the two ELBO-variance benchmarks share: the table of estimators and the ratios they print.

``rows[(weight, timesteps)] = (empirical sd (N,), reported stderr (R, N), mean estimate (N,))``,
in nats per example, from repeating each estimator R times on N examples at the same number
of forward passes.
"""
from __future__ import annotations

import numpy as np


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x))))


def print_estimator_table(rows: dict, *, reported_by: str, per: str, mc_samples: int) -> None:
    """The table (mean, empirical sd, reported se, their ratio), then antithetic / i.i.d. per
    weight (target <= 0.6) and the default estimator over plain i.i.d. 1/t."""
    print(f"empirical sd = spread of the repeated estimates (the true standard error); reported se = what "
          f"{reported_by} reports; both RMS over the {per}s, nats per {per}")
    print(f"{'weight':<15}{'timesteps':<12}{'mean nll':>10}{'empirical sd':>14}{'reported se':>13}"
          f"{'reported/emp':>14}")
    for (weight, timesteps), (sd, se, mean) in rows.items():
        print(f"{weight:<15}{timesteps:<12}{mean.mean():>10.2f}{rms(sd):>14.3f}{rms(se):>13.3f}"
              f"{rms(se) / rms(sd):>14.2f}")
    for weight in ("1/t", "rao-blackwell"):
        r = rms(rows[weight, "antithetic"][0]) / rms(rows[weight, "iid"][0])
        print(f"ratio std(antithetic) / std(iid), weight {weight}, equal forward passes: {r:.3f} (target <= 0.6)")
    ratio = rms(rows["rao-blackwell", "antithetic"][0]) / rms(rows["1/t", "iid"][0])
    print(f"stderr ratio, default (antithetic, Rao-Blackwellised) / plain i.i.d. 1/t at equal compute: "
          f"{ratio:.3f}; i.i.d. 1/t forward passes for the same precision: {mc_samples / ratio**2:.0f}")
