"""Antithetic vs i.i.d. timesteps for the MDLM ELBO, at equal compute.

For a few test digits, repeat the ELBO estimate many times with different seeds, each
estimate using the same number of forward passes (``--mc-samples``), once with MDLM's
antithetic (stratified) timesteps and once with i.i.d. timesteps. The empirical standard
deviation across repeats is each estimator's true standard error; their ratio (target
<= 0.6) says how much the stratification buys. Also checks that the reported standard
errors are calibrated: the mean reported stderr over the empirical one (the antithetic
one is conservative by construction, so it should be >= about 1).

    .venv/bin/python benchmarks/bench_antithetic.py [--examples 8 --repeats 60 --mc-samples 32]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from genbench import data
from genbench.adapters import mdlm

from elbo_variance import print_estimator_table  # benchmarks/: shared with bench_hf_mdlm


def repeated_estimates(model: mdlm.MaskedDigits, ids: torch.Tensor, timesteps: str, weight: str, k: int,
                       repeats: int) -> tuple[np.ndarray, np.ndarray]:
    """(estimates (repeats, N), reported stderr (repeats, N)) in nats per image."""
    est, se = [], []
    with torch.inference_mode():
        for r in range(repeats):
            nll, s = mdlm.sequences_to_elbo(model.logits, ids, model.mask_id, mc_samples=k, seed=10_000 + r,
                                            timesteps=timesteps, weight=weight, batch_size=1024)
            est.append(nll)
            se.append(s)
    return np.array(est), np.array(se)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--examples", type=int, default=8)
    p.add_argument("--repeats", type=int, default=50)
    p.add_argument("--mc-samples", type=int, default=32, help="forward passes per estimate")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--weights", default=None, help="folder with masked-digits.* (default: the shipped ones)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    model = mdlm.MaskedDigits(a.weights)
    ids = torch.from_numpy(data.image_to_levels(data.digits_arrays("test")[0][: a.examples]).reshape(-1, 64))
    t0 = time.perf_counter()
    rows = {}
    for weight in ("1/t", "rao-blackwell"):
        for timesteps in ("iid", "antithetic", "systematic"):
            if weight == "1/t" and timesteps == "systematic":
                continue
            est, se = repeated_estimates(model, ids, timesteps, weight, a.mc_samples, a.repeats)
            rows[weight, timesteps] = (est.std(axis=0, ddof=1), se, est.mean(axis=0))
    print(f"masked-digits ELBO, {a.examples} test digits, {a.mc_samples} forward passes per estimate, "
          f"{a.repeats} repeats per estimator ({time.perf_counter() - t0:.0f} s)")
    print_estimator_table(rows, reported_by="sequences_to_elbo", per="image", mc_samples=a.mc_samples)

if __name__ == "__main__":
    main()
