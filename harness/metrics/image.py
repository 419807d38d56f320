"""Image-quality metrics computed from feature vectors (FID, KID, IS, precision/recall).

Every function is named after the data it turns into what (``features_to_statistics``,
``statistics_to_fid``...), takes numpy arrays and computes in float64. Feature extraction
(Inception-v3 and friends) lives elsewhere; these functions only see its output, so the same
code serves every extractor and every paradigm.

Conventions (see ``/work/shared/conventions.md``):

* Fréchet distance: mean and ``np.cov(rowvar=False)`` in float64.
  ``method="scipy_sqrtm"`` reproduces clean-fid / ADM / pytorch-fid (``scipy.linalg.sqrtm``
  of ``sigma1 @ sigma2``, 1e-6 added to the diagonals when that is not finite, real part
  kept); ``method="eigh"`` (default) computes the same trace from symmetric eigenvalues,
  about ten times faster at 2048-d (``benchmarks/bench_frechet.py``: 0.07 of sqrtm's time on
  one thread), agreeing to better than 1e-9 relative on full-rank statistics.
* KID: clean-fid's ``kernel_distance`` (unbiased MMD², cubic polynomial kernel
  ``(x.y / d + 1)^3``, 100 subsets of at most 1,000 rows, same random draws).
* IS: ADM's parts of 5,000 rows by default (torch-fidelity's 10 equal parts after a seeded
  shuffle on request), taken in an order fixed by the rows' values, so that the score does not
  depend on the order the samples were drawn in (class by class, or at random).
* Precision/recall: Kynkäänniemi et al. 2019 as in ADM's evaluator, k = 3.
* Bootstrap FID: replicates of one or both feature sets; a reference known only by its
  statistics (ADM's reference batch) stays fixed (``statistics2=``).
"""
from __future__ import annotations

import math
import warnings
from typing import Literal, NamedTuple

import numpy as np
from scipy import linalg
from scipy.linalg import blas

__all__ = [
    "features_to_statistics",
    "sqrtm_psd_product_trace",
    "statistics_to_fid",
    "features_to_fid",
    "fid_sample_warning",
    "features_to_kid",
    "features_to_kid_estimate",
    "KIDEstimate",
    "logits_to_inception_score",
    "inception_score_convention",
    "rows_to_content_order",
    "features_to_manifold_radii",
    "features_to_precision_recall",
    "bootstrap_fid",
    "FIDBootstrap",
]

FIDMethod = Literal["eigh", "scipy_sqrtm"]

#: Memory budget of one block of pairwise distances (precision/recall), in bytes.
_BLOCK_BYTES = 256 * 2**20


# --------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------
def _as_features(x, name: str, *, min_rows: int = 1) -> np.ndarray:
    """Check ``x`` is a finite 2-D (N, D) array with at least ``min_rows`` rows; float64 copy-free."""
    a = np.asarray(x)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (N, D) of features; got shape {a.shape}")
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise ValueError(f"{name} must hold real numbers; got dtype {a.dtype}")
    if a.shape[0] < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} rows (samples); got {a.shape[0]}")
    if a.shape[1] < 1:
        raise ValueError(f"{name} has no feature dimensions (shape {a.shape})")
    a = a.astype(np.float64, copy=False)
    if not np.all(np.isfinite(a)):
        bad = int(np.count_nonzero(~np.isfinite(a).all(axis=1)))
        raise ValueError(f"{name} is not finite: {bad} of {a.shape[0]} rows hold NaN or inf")
    return a


def _same_dim(a: np.ndarray, b: np.ndarray, what: str, name_a: str, name_b: str) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"{what}: {name_a} has {a.shape[1]} feature dimensions but {name_b} has "
            f"{b.shape[1]}; both sets must come from the same extractor"
        )


def _as_statistics(mu, sigma, name: str) -> tuple[np.ndarray, np.ndarray]:
    m = np.atleast_1d(np.asarray(mu, dtype=np.float64))
    s = np.atleast_2d(np.asarray(sigma, dtype=np.float64))
    if m.ndim != 1:
        raise ValueError(f"mu{name} must be a vector (D,); got shape {m.shape}")
    if s.ndim != 2 or s.shape[0] != s.shape[1]:
        raise ValueError(f"sigma{name} must be a square matrix (D, D); got shape {s.shape}")
    if s.shape[0] != m.shape[0]:
        raise ValueError(
            f"mu{name} has {m.shape[0]} dimensions but sigma{name} is {s.shape[0]}x{s.shape[1]}"
        )
    if not (np.all(np.isfinite(m)) and np.all(np.isfinite(s))):
        raise ValueError(f"mu{name} / sigma{name} are not finite (NaN or inf)")
    return m, s


# --------------------------------------------------------------------------------------
# Fréchet distance
# --------------------------------------------------------------------------------------
def features_to_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of a feature set, as every FID implementation computes them.

    features: (N, D), N >= 2, finite.
    Returns ``mu`` (D,) float64 and ``sigma`` (D, D) float64, ``np.cov(rowvar=False)``
    (normalised by N - 1).
    """
    f = _as_features(features, "features", min_rows=2)
    return f.mean(axis=0), np.cov(f, rowvar=False)


def _symmetric_whitening_product(sigma1: np.ndarray, sigma2: np.ndarray) -> np.ndarray:
    """A symmetric PSD matrix with the same eigenvalues as ``sigma1 @ sigma2``.

    With ``sigma1 = L L^T`` (Cholesky), ``L^T sigma2 L`` is similar to ``sigma1 sigma2``.
    Cholesky plus two triangular products cost about a third of one symmetric
    eigendecomposition with vectors; when neither matrix is positive definite (fewer
    samples than dimensions) fall back to ``sqrt(sigma1) sigma2 sqrt(sigma1)`` via ``eigh``.
    """
    for a, b in ((sigma1, sigma2), (sigma2, sigma1)):
        try:
            lower = linalg.cholesky(a, lower=True, check_finite=False)
        except linalg.LinAlgError:
            continue
        if not np.all(np.diag(lower) > 0):
            continue
        lower = np.asfortranarray(lower)
        w = blas.dtrmm(1.0, lower, np.asfortranarray(b), side=1, lower=1)  # b @ L
        return blas.dtrmm(1.0, lower, w, side=0, lower=1, trans_a=1)  # L^T @ b @ L
    evals, evecs = np.linalg.eigh(sigma1)
    root = (evecs * np.sqrt(np.clip(evals, 0.0, None))) @ evecs.T
    return root @ sigma2 @ root


def sqrtm_psd_product_trace(sigma1, sigma2) -> float:
    """``trace(sqrtm(sigma1 @ sigma2))`` for symmetric positive semi-definite matrices.

    sigma1, sigma2: (D, D) covariance matrices.
    The eigenvalues of ``sigma1 @ sigma2`` are those of a symmetric PSD matrix similar to it
    (``L^T sigma2 L`` with ``sigma1 = L L^T``), so the trace of the principal square root is
    the sum of the square roots of that matrix's eigenvalues (clipped at 0 against rounding).
    Symmetric eigenvalues only: no Schur decomposition, no complex arithmetic.
    """
    s1 = np.asarray(sigma1, dtype=np.float64)
    s2 = np.asarray(sigma2, dtype=np.float64)
    if s1.ndim != 2 or s1.shape[0] != s1.shape[1] or s1.shape != s2.shape:
        raise ValueError(
            f"sigma1 and sigma2 must be square matrices of the same size; got {s1.shape} "
            f"and {s2.shape}"
        )
    product = _symmetric_whitening_product(s1, s2)
    evals = linalg.eigh(product, eigvals_only=True, check_finite=False, driver="ev")
    return float(np.sqrt(np.clip(evals, 0.0, None)).sum())


def _scipy_sqrtm_trace(sigma1: np.ndarray, sigma2: np.ndarray, eps: float) -> float:
    """clean-fid's ``frechet_distance`` trace term, step for step."""
    covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        warnings.warn(
            f"FID: sqrtm(sigma1 @ sigma2) is not finite (singular product); adding {eps} to "
            f"the diagonal of both covariances, as clean-fid and ADM do",
            RuntimeWarning,
            stacklevel=3,
        )
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(
                f"FID: sqrtm(sigma1 @ sigma2) has an imaginary component of "
                f"{np.max(np.abs(covmean.imag)):.3g} (clean-fid and ADM stop here too); "
                f"use method='eigh'"
            )
        covmean = covmean.real
    return float(np.trace(covmean))


def statistics_to_fid(
    mu1, sigma1, mu2, sigma2, *, method: FIDMethod = "eigh", eps: float = 1e-6
) -> float:
    """Fréchet distance between two Gaussians ``N(mu1, sigma1)`` and ``N(mu2, sigma2)``.

    mu1, mu2: (D,); sigma1, sigma2: (D, D).
    ``|mu1 - mu2|^2 + tr(sigma1) + tr(sigma2) - 2 tr(sqrtm(sigma1 sigma2))``.
    method: ``"eigh"`` (symmetric eigenvalues, fast, default) or ``"scipy_sqrtm"``
    (clean-fid / ADM / pytorch-fid exactly, including the ``eps`` diagonal offset when the
    square root is not finite).
    """
    m1, s1 = _as_statistics(mu1, sigma1, "1")
    m2, s2 = _as_statistics(mu2, sigma2, "2")
    if m1.shape[0] != m2.shape[0]:
        raise ValueError(
            f"FID: the first statistics have {m1.shape[0]} dimensions but the second have "
            f"{m2.shape[0]}; both must come from the same feature extractor"
        )
    if method == "eigh":
        tr_covmean = sqrtm_psd_product_trace(s1, s2)
    elif method == "scipy_sqrtm":
        tr_covmean = _scipy_sqrtm_trace(s1, s2, eps)
    else:
        raise ValueError(f"FID method must be 'eigh' or 'scipy_sqrtm', got {method!r}")
    diff = m1 - m2
    return float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)


def fid_sample_warning(n: int | None, dim: int | None, what: str = "samples") -> str | None:
    """A warning when a Fréchet distance rests on fewer rows than feature dimensions, else None.

    The covariance of n rows has rank at most n - 1, so below ``dim`` rows most of its
    directions are unseen: the FID is still computed exactly from those statistics, but it is
    strongly biased upward and varies a lot between draws (compare such numbers only at the
    same n)."""
    if n is None or dim is None or n >= dim:
        return None
    return (f"FID from {n} {what} of {dim}-d features: fewer rows than dimensions, so the covariance has "
            f"rank at most {n - 1}; the value is exact for these statistics but strongly biased and highly "
            f"variable between draws: compare only at equal N")


def features_to_fid(features1, features2, *, method: FIDMethod = "eigh") -> float:
    """FID between two feature sets (N1, D) and (N2, D); see :func:`statistics_to_fid`."""
    f1 = _as_features(features1, "features1", min_rows=2)
    f2 = _as_features(features2, "features2", min_rows=2)
    _same_dim(f1, f2, "FID", "features1", "features2")
    return statistics_to_fid(*features_to_statistics(f1), *features_to_statistics(f2), method=method)


class FIDBootstrap(NamedTuple):
    """FID of the full sets with the spread of bootstrap replicates.

    fid: the point estimate on all rows; std: standard deviation of the replicates;
    bias: mean of the replicates minus ``fid`` (positive: resamples hold duplicate rows);
    low, high: normal interval at ``level``, ``fid -+ z std``. It describes the spread of the
    FID over sample sets of this N (what separates two models measured at the same N), not
    the distance to the infinite-N FID. The replicates' mean is shifted far up by duplicate
    rows (at D = 32, N = 400 the shift is 6x the spread), so percentile and basic intervals
    miss: in a simulation over 60 sample sets the basic interval never held the mean FID at
    that N, the normal one held it 98% of the time (the bootstrap spread runs ~1.4x wide).
    """

    fid: float
    std: float
    bias: float
    low: float
    high: float
    level: float
    n_boot: int


def _weighted_statistics(f: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of the rows of ``f`` repeated ``counts`` times (no copy made)."""
    return np.average(f, axis=0, weights=counts), np.cov(f, rowvar=False, fweights=counts)


def bootstrap_fid(
    features1,
    features2=None,
    *,
    statistics1: tuple | None = None,
    statistics2: tuple | None = None,
    n_boot: int = 100,
    seed: int = 0,
    level: float = 0.95,
    resample: Literal["both", "first", "second"] = "both",
) -> FIDBootstrap:
    """Bootstrap spread of the FID between (N1, D) and (N2, D) feature sets.

    Each replicate redraws N rows with replacement from the set(s) named by ``resample``
    ("second" keeps a fixed reference, e.g. ADM's reference batch, as the first set) and
    recomputes the FID with the eigh method. Bootstrap replicates of FID are biased upward
    (a resample holds duplicate rows), hence a normal interval from their spread (see
    :class:`FIDBootstrap`).
    statistics2: ``(mu2 (D,), sigma2 (D, D))`` in place of ``features2``, for a reference known
    only by its statistics (ADM's ``VIRTUAL_imagenet256_labeled.npz``); it stays fixed, so
    ``resample`` must be "first".
    statistics1: ``features_to_statistics(features1)`` when the caller holds it already (the point
    estimate and the replicates are then not preceded by a second pass over the rows).
    """
    f1 = _as_features(features1, "features1", min_rows=2)
    if (features2 is None) == (statistics2 is None):
        raise ValueError("give exactly one of features2 and statistics2")
    if n_boot < 2:
        raise ValueError(f"n_boot must be >= 2, got {n_boot}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if resample not in ("both", "first", "second"):
        raise ValueError(f"resample must be 'both', 'first' or 'second', got {resample!r}")
    if features2 is not None:
        f2 = _as_features(features2, "features2", min_rows=2)
        _same_dim(f1, f2, "bootstrap FID", "features1", "features2")
        stats2 = features_to_statistics(f2)
    else:
        if resample != "first":
            raise ValueError("with statistics2 the reference is fixed: resample must be 'first'")
        stats2 = _as_statistics(*statistics2, "2")
        if stats2[0].shape[0] != f1.shape[1]:
            raise ValueError(f"bootstrap FID: features1 has {f1.shape[1]} feature dimensions but statistics2 "
                             f"has {stats2[0].shape[0]}; both must come from the same extractor")
    rng = np.random.default_rng(seed)
    stats1 = features_to_statistics(f1) if statistics1 is None else _as_statistics(*statistics1, "1")
    if stats1[0].shape[0] != f1.shape[1]:
        raise ValueError(f"bootstrap FID: features1 has {f1.shape[1]} feature dimensions but statistics1 "
                         f"has {stats1[0].shape[0]}; give the statistics of features1")
    point = statistics_to_fid(*stats1, *stats2)
    values = np.empty(n_boot)
    for i in range(n_boot):
        s1, s2 = stats1, stats2
        if resample in ("both", "first"):
            s1 = _weighted_statistics(f1, np.bincount(rng.integers(0, len(f1), len(f1)), minlength=len(f1)))
        if resample in ("both", "second"):
            s2 = _weighted_statistics(f2, np.bincount(rng.integers(0, len(f2), len(f2)), minlength=len(f2)))
        values[i] = statistics_to_fid(*s1, *s2)
    from scipy.stats import norm

    std = float(values.std(ddof=1))
    z = float(norm.ppf(0.5 + level / 2.0))
    return FIDBootstrap(
        fid=point,
        std=std,
        bias=float(values.mean() - point),
        low=float(point - z * std),
        high=float(point + z * std),
        level=level,
        n_boot=n_boot,
    )


# --------------------------------------------------------------------------------------
# KID
# --------------------------------------------------------------------------------------
def _kid_subset_kernels(f1: np.ndarray, f2: np.ndarray, num_subsets: int, max_subset_size: int, seed):
    """clean-fid's subset draws: yields (rows of f1, k(x, x), k(y, y), k(x, y)) per subset, x from
    f2 and y from f1 (m rows each, drawn without replacement, f2's first), k = (x.y / D + 1)^3."""
    if num_subsets < 1:
        raise ValueError(f"num_subsets must be >= 1, got {num_subsets}")
    m = min(f1.shape[0], f2.shape[0], max_subset_size)
    if m < 2:
        raise ValueError(f"KID needs subsets of at least 2 rows; max_subset_size={max_subset_size}")
    if seed is None:
        rng = np.random  # the module-level functions draw from numpy's global state
    elif isinstance(seed, np.random.RandomState):
        rng = seed
    else:
        rng = np.random.RandomState(seed)
    d = f1.shape[1]
    for _ in range(num_subsets):
        x = f2[rng.choice(f2.shape[0], m, replace=False)]
        iy = rng.choice(f1.shape[0], m, replace=False)
        y = f1[iy]
        yield iy, (x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3


def features_to_kid(
    features1,
    features2,
    *,
    num_subsets: int = 100,
    max_subset_size: int = 1000,
    seed: int | np.random.RandomState | None = 0,
) -> tuple[float, float]:
    """Kernel Inception Distance between (N1, D) and (N2, D) feature sets, clean-fid's way.

    Unbiased MMD² with the kernel ``k(x, y) = (x.y / D + 1)^3``, averaged over
    ``num_subsets`` subsets of ``m = min(N1, N2, max_subset_size)`` rows drawn without
    replacement (rows of ``features2`` first, then of ``features1``, as clean-fid does).
    seed: an int (a fresh ``np.random.RandomState(seed)``), a ``RandomState``, or None to
    draw from numpy's global state exactly as ``cleanfid.fid.kernel_distance`` does.
    Returns (mean, std) over subsets (std with ddof 0, as torch-fidelity): the std is the
    spread of a KID computed on m rows, not the uncertainty of the mean (see
    :func:`features_to_kid_estimate` for an error bar).
    """
    f1 = _as_features(features1, "features1", min_rows=2)
    f2 = _as_features(features2, "features2", min_rows=2)
    _same_dim(f1, f2, "KID", "features1", "features2")
    values = []
    for _, kxx, kyy, kxy in _kid_subset_kernels(f1, f2, num_subsets, max_subset_size, seed):
        m = kxx.shape[0]
        a = kxx + kyy
        values.append(((a.sum() - np.diag(a).sum()) / (m - 1) - kxy.sum() * 2 / m) / m)
    values = np.asarray(values)
    return float(values.mean()), float(values.std())


class KIDEstimate(NamedTuple):
    """KID with an error bar that covers the sampling variability of ``features1``."""

    value: float             # clean-fid's KID (mean over subsets), as features_to_kid
    stderr: float            # sqrt(bootstrap_std^2 + subset_std^2 / subsets)
    bootstrap_std: float     # std of the KID over Bayesian-bootstrap reweightings of features1's rows
    std_over_subsets: float  # what clean-fid / torch-fidelity print as KID std (ddof 0)
    subsets: int
    subset_size: int
    n_boot: int


def features_to_kid_estimate(
    features1,
    features2,
    *,
    num_subsets: int = 100,
    max_subset_size: int = 1000,
    seed: int = 0,
    n_boot: int = 200,
) -> KIDEstimate:
    """KID of samples ``features1`` (N1, D) against a reference ``features2`` (N2, D), with a
    standard error for the spread of the KID over repeated draws of the samples.

    The value is :func:`features_to_kid`'s (same subsets). The standard error combines

    * the samples' variability: the subsets' kernel matrices are reweighted ``n_boot`` times
      with i.i.d. Exp(1) weights on the rows of ``features1`` (a Bayesian bootstrap: every
      row stays distinct, so the unbiased within-set term never pairs a row with a copy of
      itself) and the standard deviation of the reweighted KIDs is taken; the reference is
      held fixed, as every model is compared against the same one;
    * the randomness of the subset draw: ``std_over_subsets / sqrt(num_subsets)``.

    ``std_over_subsets`` (clean-fid's / torch-fidelity's "KID std") is the spread of a KID on
    ``m`` rows: larger than this error bar when m is a small part of N1, and
    ``std_over_subsets / sqrt(num_subsets)`` (the subset draw alone) far smaller. Like any
    bootstrap of an MMD it is not calibrated when the two distributions are (nearly) equal.
    """
    f1 = _as_features(features1, "features1", min_rows=2)
    f2 = _as_features(features2, "features2", min_rows=2)
    _same_dim(f1, f2, "KID", "features1", "features2")
    if n_boot < 2:
        raise ValueError(f"n_boot must be >= 2, got {n_boot}")
    # the weights come from their own stream, so the subsets are clean-fid's for this seed
    weights = np.random.default_rng(np.random.SeedSequence([int(seed), 1])).exponential(size=(n_boot, f1.shape[0]))
    values, boot = [], np.zeros(n_boot)
    m = 0
    for iy, kxx, kyy, kxy in _kid_subset_kernels(f1, f2, num_subsets, max_subset_size, int(seed)):
        m = kxx.shape[0]
        a = kxx + kyy
        values.append(((a.sum() - np.diag(a).sum()) / (m - 1) - kxy.sum() * 2 / m) / m)
        w = weights[:, iy]                                    # (B, m)
        kyy_off = kyy - np.diag(np.diag(kyy))
        sw = w.sum(axis=1)
        yy = ((w @ kyy_off) * w).sum(axis=1) / (sw ** 2 - (w ** 2).sum(axis=1))   # w K w (BLAS)
        xx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
        xy = (w @ kxy.sum(axis=0)) / (m * sw)
        boot += xx + yy - 2 * xy
    values = np.asarray(values)
    boot /= len(values)
    boot_std = float(boot.std(ddof=1))
    sub_std = float(values.std())
    stderr = math.sqrt(boot_std ** 2 + sub_std ** 2 / len(values))
    return KIDEstimate(value=float(values.mean()), stderr=stderr, bootstrap_std=boot_std,
                       std_over_subsets=sub_std, subsets=len(values), subset_size=m, n_boot=int(n_boot))


#: the words recorded beside a KID and its standard error
KID_CONVENTION = {
    "kernel": "polynomial d=3, gamma=1/dim, coef=1; unbiased MMD^2 (clean-fid kernel_distance)",
    "stderr": "std over Bayesian-bootstrap (Exp(1)) reweightings of the samples, reference fixed, "
              "combined with the subset draw's std/sqrt(subsets)",
}


# --------------------------------------------------------------------------------------
# Inception score
# --------------------------------------------------------------------------------------
def _log_probabilities(x: np.ndarray, inputs: str) -> np.ndarray:
    if inputs == "auto":
        rows_sum_to_one = np.allclose(x.sum(axis=1), 1.0, atol=1e-3)
        inputs = "probs" if (x.min() >= 0.0 and x.max() <= 1.0 and rows_sum_to_one) else "logits"
    if inputs == "logits":
        shifted = x - x.max(axis=1, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    if inputs == "probs":
        if x.min() < 0.0 or not np.allclose(x.sum(axis=1), 1.0, atol=1e-3):
            raise ValueError("probabilities must be non-negative and each row must sum to 1")
        with np.errstate(divide="ignore"):
            return np.log(x / x.sum(axis=1, keepdims=True))
    raise ValueError(f"inputs must be 'auto', 'logits' or 'probs', got {inputs!r}")


#: how the rows are cut into parts (see ``logits_to_inception_score``)
IS_RULES = ("adm", "torch-fidelity")
#: the order the rows are taken in before they are cut
IS_ORDERS = ("content", "given")
#: ADM's part size (guided-diffusion ``evaluator.py``, ``compute_inception_score``)
ADM_IS_SPLIT_SIZE = 5000
#: torch-fidelity's shuffle seed (``isc_features_to_metric``, ``rng_seed=2020``)
TORCH_FIDELITY_IS_SEED = 2020


def rows_to_content_order(x: np.ndarray) -> np.ndarray:
    """A permutation (N,) of the rows of x (N, C) that depends only on each row's values.

    Rows are sorted by a hash (blake2b) of their float64 bytes: a pseudo-random order fixed
    by the rows themselves, so any reordering of the same rows gives the same sequence, and
    rows that arrive sorted by class (50 of class 0, then 50 of class 1...) come out mixed,
    as ADM's randomly labelled samples are. Identical rows tie; their order cannot matter.
    """
    import hashlib

    rows = np.ascontiguousarray(x, dtype=np.float64)
    keys = np.fromiter((int.from_bytes(hashlib.blake2b(r.tobytes(), digest_size=8).digest(), "little")
                        for r in rows), dtype=np.uint64, count=len(rows))
    return np.argsort(keys, kind="stable")


def inception_score_parts(n: int, *, rule: str = "adm", splits: int = 10,
                          split_size: int = ADM_IS_SPLIT_SIZE) -> list[tuple[int, int]]:
    """Row ranges ``[(start, stop)]`` of the parts: ``"adm"``: consecutive parts of
    ``split_size`` rows (the last may be shorter); ``"torch-fidelity"``: ``splits`` equal
    parts, part i = rows ``i*N//splits`` to ``(i+1)*N//splits``."""
    if rule == "adm":
        if split_size < 1:
            raise ValueError(f"split_size must be >= 1, got {split_size}")
        return [(s, min(s + split_size, n)) for s in range(0, n, split_size)]
    if rule == "torch-fidelity":
        if not 1 <= splits <= n:
            raise ValueError(f"splits must be between 1 and the number of rows ({n}); got {splits}")
        return [(i * n // splits, (i + 1) * n // splits) for i in range(splits)]
    raise ValueError(f"rule must be one of {IS_RULES}, got {rule!r}")


def logits_to_inception_score(
    logits_or_probs,
    splits: int = 10,
    *,
    rule: Literal["adm", "torch-fidelity"] = "adm",
    split_size: int = ADM_IS_SPLIT_SIZE,
    order: Literal["content", "given"] = "content",
    inputs: Literal["auto", "logits", "probs"] = "auto",
) -> tuple[float, float]:
    """Inception score of (N, C) class logits or probabilities: (mean, std over parts, ddof 0).

    Each part scores ``exp(mean_x KL(p(y|x) || p(y)))`` with ``p(y)`` the part's mean.

    order: ``"content"`` (default) first puts the rows in an order fixed by their values
    (:func:`rows_to_content_order`), so the score is a function of the set of samples, not
    of the order they were drawn in: a class-ordered sample set (the ImageNet preset's
    50 per class) would otherwise put ~100 classes in each part and score far lower.
    ``"given"`` keeps the order as it is (ADM's code on ADM's randomly ordered samples).
    rule: ``"adm"`` (default, guided-diffusion's evaluator): consecutive parts of
    ``split_size`` = 5,000 rows, no shuffle (10 parts at N = 50,000; 2 at N = 10,000).
    ``"torch-fidelity"``: ``splits`` equal parts after torch-fidelity's shuffle
    (``np.random.RandomState(2020).permutation(N)``), applied after ``order``.
    inputs: ``"auto"`` treats rows in [0, 1] that sum to 1 as probabilities, else logits.
    ``0 log 0`` counts as 0.
    """
    x = _as_features(logits_or_probs, "logits_or_probs", min_rows=1)
    n = x.shape[0]
    bounds = inception_score_parts(n, rule=rule, splits=splits, split_size=split_size)
    if order == "content":
        x = x[rows_to_content_order(x)]
    elif order != "given":
        raise ValueError(f"order must be one of {IS_ORDERS}, got {order!r}")
    if rule == "torch-fidelity":
        x = x[np.random.RandomState(TORCH_FIDELITY_IS_SEED).permutation(n)]
    logp = _log_probabilities(x, inputs)
    p = np.exp(logp)
    scores = []
    for start, stop in bounds:
        part_p, part_logp = p[start:stop], logp[start:stop]
        log_marginal = np.log(part_p.mean(axis=0))
        terms = part_p * np.where(part_p > 0, part_logp - log_marginal, 0.0)  # 0 log 0 = 0
        scores.append(math.exp(terms.sum(axis=1).mean()))
    return float(np.mean(scores)), float(np.std(scores))


def inception_score_convention(rule: str = "adm", order: str = "content", *, splits: int = 10,
                               split_size: int = ADM_IS_SPLIT_SIZE) -> str:
    """The words recorded beside an Inception Score: how its parts were cut."""
    cut = (f"ADM: consecutive parts of {split_size} rows, no shuffle" if rule == "adm" else
           f"torch-fidelity: {splits} equal parts after a shuffle with seed {TORCH_FIDELITY_IS_SEED}")
    first = ("rows first put in an order fixed by their values (blake2b of each row), independent of the "
             "order they were drawn in" if order == "content" else "rows in the order given")
    return f"{cut}; {first}"


# --------------------------------------------------------------------------------------
# precision / recall (Kynkäänniemi et al. 2019, ADM's evaluator)
# --------------------------------------------------------------------------------------
def _row_blocks(n_rows: int, n_cols: int, itemsize: int, batch_size: int | None):
    if batch_size is None:
        batch_size = max(1, _BLOCK_BYTES // max(1, n_cols * itemsize * 3))
    for start in range(0, n_rows, batch_size):
        yield start, min(start + batch_size, n_rows)


def _squared_distances(a: np.ndarray, a_norms: np.ndarray, b: np.ndarray, b_norms: np.ndarray) -> np.ndarray:
    d = a @ b.T
    d *= -2.0
    d += a_norms[:, None]
    d += b_norms[None, :]
    np.maximum(d, 0.0, out=d)
    return d


def _squared_radii(f: np.ndarray, norms: np.ndarray, k: int, batch_size: int | None) -> np.ndarray:
    radii = np.empty(f.shape[0], dtype=f.dtype)
    for start, stop in _row_blocks(f.shape[0], f.shape[0], f.itemsize, batch_size):
        d2 = _squared_distances(f[start:stop], norms[start:stop], f, norms)
        radii[start:stop] = np.partition(d2, k, axis=1)[:, k]
    return radii


def _check_k(k: int, n: int, name: str) -> None:
    if not 1 <= k < n:
        raise ValueError(f"k must be between 1 and N - 1 = {n - 1} for {name} (N = {n}); got {k}")


def features_to_manifold_radii(
    features, k: int = 3, *, batch_size: int | None = None, dtype=np.float64
) -> np.ndarray:
    """Distance of each row of (N, D) ``features`` to its k-th nearest other row, shape (N,).

    Computed block by block (``batch_size`` rows against all N, in ``dtype``), so 10k x 10k
    never sits in memory at once. As in ADM, the row itself (distance 0) is the 0-th
    neighbour, so duplicates of a row count as neighbours.
    """
    f = _as_features(features, "features", min_rows=1)
    _check_k(k, f.shape[0], "features")
    f = f.astype(dtype, copy=False)
    norms = np.einsum("ij,ij->i", f, f)
    return np.sqrt(_squared_radii(f, norms, k, batch_size).astype(np.float64))


def features_to_precision_recall(
    real, fake, k: int = 3, *, batch_size: int | None = None, dtype=np.float64
) -> tuple[float, float]:
    """Improved precision and recall of (M, D) ``fake`` features against (N, D) ``real`` ones.

    Each set's manifold is the union of balls around its rows with radius the distance to
    the row's k-th nearest neighbour (:func:`features_to_manifold_radii`).
    precision: fraction of fake rows inside the real manifold (``d(fake, real_j) <= r_j`` for
    some j); recall: fraction of real rows inside the fake manifold. Distances are computed in
    blocks of ``batch_size`` fake rows (in ``dtype``); the real-fake block serves both
    (``genbench.metrics.manifold.features_to_prdc`` with ``inclusive=True``: ADM's ``<=``).
    """
    from genbench.metrics.manifold import features_to_prdc  # the one kNN-ball pass (ADM: boundary inside)

    res = features_to_prdc(real, fake, k, inclusive=True, batch_size=batch_size, dtype=dtype)
    return res.precision, res.recall
