"""Kernel metrics of feature sets: CMMD (Jayasumana et al. 2024, "Rethinking FID") and the Vendi
score (Friedman and Dieng 2023).

* CMMD: squared MMD with a Gaussian RBF kernel ``k(x, y) = exp(-|x - y|^2 / (2 sigma^2))``,
  sigma = 10, the minimum-variance (biased, V-statistic) estimator over the full sets
  ``mean K_xx + mean K_yy - 2 mean K_xy`` (diagonals included), times 1000, on L2-normalised
  CLIP ViT-L/14@336 embeddings (google-research's ``cmmd``). torch-fidelity 0.4's "RBF KID"
  averages over subsets with the unbiased estimator instead: not the same number.
* Vendi: ``exp(-sum_i l_i log l_i)``, l the eigenvalues of ``X X^T / N`` for the linear kernel
  on L2-normalised rows X (dgm-eval's convention); an effective number of distinct samples.

Everything in float64, the kernel sums in row blocks so that N x N never sits in memory at once.
"""
from __future__ import annotations

import numpy as np

from genbench.metrics.image import _as_features, _row_blocks, _same_dim, _squared_distances

#: CMMD's kernel bandwidth and scale (google-research cmmd/distance.py)
CMMD_SIGMA = 10.0
CMMD_SCALE = 1000.0


def _mean_rbf(a: np.ndarray, b: np.ndarray, gamma: float) -> float:
    """Mean of exp(-gamma |a_i - b_j|^2) over all (i, j), in row blocks of ``a``."""
    a_norms = np.einsum("ij,ij->i", a, a)
    b_norms = np.einsum("ij,ij->i", b, b)
    total = 0.0
    for start, stop in _row_blocks(a.shape[0], b.shape[0], a.itemsize, None):
        d2 = _squared_distances(a[start:stop], a_norms[start:stop], b, b_norms)
        d2 *= -gamma
        total += float(np.exp(d2, out=d2).sum())
    return total / (a.shape[0] * b.shape[0])


def features_to_cmmd(x, y, *, sigma: float = CMMD_SIGMA, scale: float = CMMD_SCALE) -> float:
    """CMMD of (M, D) ``x`` against (N, D) ``y`` (the embeddings as given: L2-normalise them
    first, as the ``clip:...:cmmd`` extractor does): ``scale`` times the biased MMD^2 with an
    RBF kernel of bandwidth ``sigma``."""
    a = _as_features(x, "x", min_rows=1)
    b = _as_features(y, "y", min_rows=1)
    _same_dim(a, b, "CMMD", "x", "y")
    gamma = 1.0 / (2.0 * float(sigma) ** 2)
    return scale * (_mean_rbf(a, a, gamma) + _mean_rbf(b, b, gamma) - 2.0 * _mean_rbf(a, b, gamma))


def features_to_vendi(features) -> float:
    """Vendi score of (N, D) features with the linear kernel on L2-normalised rows, in [1, min(N, D)].

    The nonzero eigenvalues of ``X X^T / N`` are those of ``X^T X / N`` (D x D), so the cost is
    O(N D^2), not O(N^2 D)."""
    f = _as_features(features, "features", min_rows=1)
    norms = np.linalg.norm(f, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError("Vendi: a feature row is all zeros and cannot be L2-normalised")
    x = f / norms
    gram = (x.T @ x) / x.shape[0] if x.shape[1] <= x.shape[0] else (x @ x.T) / x.shape[0]
    lam = np.clip(np.linalg.eigvalsh(gram), 0.0, None)
    lam = lam[lam > 0]
    return float(np.exp(-np.sum(lam * np.log(lam))))


__all__ = ["CMMD_SIGMA", "CMMD_SCALE", "features_to_cmmd", "features_to_vendi"]
