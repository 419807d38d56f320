"""k-nearest-neighbour manifold metrics of feature sets: precision, recall, density and coverage
(Naeem et al. 2020, "Reliable Fidelity and Diversity Metrics for Generative Models"; the
``prdc`` package).

Each set's manifold is the union of balls around its rows, radius the distance to the row's
k-th nearest other row (``genbench.metrics.image.features_to_manifold_radii``: the one radii
code, shared with ADM's precision/recall). With ``d(x, y)`` Euclidean, ``r_i`` the radius of
real row i, ``s_j`` that of fake row j, M fake rows and N real rows:

* precision = (1/M) sum_j [exists i: d(fake_j, real_i) < r_i]
* recall    = (1/N) sum_i [exists j: d(real_i, fake_j) < s_j]
* density   = (1/(k M)) sum_j sum_i [d(fake_j, real_i) < r_i]
* coverage  = (1/N) sum_i [min_j d(real_i, fake_j) < r_i]

The comparison is strict (``<``, as ``prdc``); ADM's evaluator counts the boundary (``<=``):
``inclusive=True`` gives ADM's precision and recall, which are what
``features_to_precision_recall`` returns (k = 3 there by default, k = 5 here, dgm-eval's and
``prdc``'s default). Distances are computed in blocks of fake rows against all real rows, so
10k x 10k never sits in memory at once.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from genbench.metrics.image import (_as_features, _check_k, _row_blocks, _same_dim, _squared_distances,
                                    _squared_radii)

#: Naeem et al.'s and dgm-eval's k
PRDC_K = 5


class PRDC(NamedTuple):
    """Fractions in [0, 1] (density may exceed 1)."""

    precision: float
    recall: float
    density: float
    coverage: float


def features_to_prdc(real, fake, k: int = PRDC_K, *, inclusive: bool = False, batch_size: int | None = None,
                     dtype=np.float64) -> PRDC:
    """Precision, recall, density and coverage of (M, D) ``fake`` features against (N, D)
    ``real`` ones, k-th-neighbour radii (the row itself is the 0-th neighbour, as in ``prdc``).

    inclusive: count a point on a ball's boundary as inside (ADM) instead of outside (``prdc``).
    Raises ValueError when a set has fewer than k + 1 rows.
    """
    r = _as_features(real, "real", min_rows=1)
    g = _as_features(fake, "fake", min_rows=1)
    _same_dim(r, g, "precision/recall/density/coverage", "real", "fake")
    _check_k(k, r.shape[0], "real")
    _check_k(k, g.shape[0], "fake")
    r, g = r.astype(dtype, copy=False), g.astype(dtype, copy=False)
    r_norms = np.einsum("ij,ij->i", r, r)
    g_norms = np.einsum("ij,ij->i", g, g)
    real_r2 = _squared_radii(r, r_norms, k, batch_size)
    fake_r2 = _squared_radii(g, g_norms, k, batch_size)
    inside = np.less_equal if inclusive else np.less
    fake_in_real = np.zeros(g.shape[0], dtype=bool)
    real_in_fake = np.zeros(r.shape[0], dtype=bool)
    density_count = 0
    nearest_fake = np.full(r.shape[0], np.inf, dtype=dtype)
    for start, stop in _row_blocks(g.shape[0], r.shape[0], r.itemsize, batch_size):
        d2 = _squared_distances(g[start:stop], g_norms[start:stop], r, r_norms)
        in_real_balls = inside(d2, real_r2[None, :])
        fake_in_real[start:stop] = in_real_balls.any(axis=1)
        density_count += int(np.count_nonzero(in_real_balls))
        real_in_fake |= inside(d2, fake_r2[start:stop, None]).any(axis=0)
        np.minimum(nearest_fake, d2.min(axis=0), out=nearest_fake)
    coverage = inside(nearest_fake, real_r2)
    return PRDC(precision=float(fake_in_real.mean()), recall=float(real_in_fake.mean()),
                density=float(density_count / (k * g.shape[0])), coverage=float(coverage.mean()))


__all__ = ["PRDC", "PRDC_K", "features_to_prdc"]
