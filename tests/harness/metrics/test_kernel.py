"""CMMD and Vendi against independent implementations of their formulas."""
import numpy as np
import pytest

from genbench.metrics.kernel import features_to_cmmd, features_to_vendi


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _cmmd_reference(x, y, sigma=10.0, scale=1000.0):
    """google-research cmmd/distance.py's formula, written out with explicit pairwise loops."""
    def k(a, b):
        return np.exp(-np.sum((a[:, None, :] - b[None, :, :]) ** 2, axis=-1) / (2 * sigma ** 2))

    return scale * (k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean())


def test_cmmd_equals_the_formula():
    rng = np.random.default_rng(0)
    x = _unit(rng.normal(size=(70, 12)))
    y = _unit(rng.normal(loc=0.5, size=(50, 12)))
    assert features_to_cmmd(x, y) == pytest.approx(_cmmd_reference(x, y), abs=1e-6)
    assert features_to_cmmd(x, x) == pytest.approx(0.0, abs=1e-9)
    assert features_to_cmmd(x, y) > 0
    # a small bandwidth makes the kernel see the difference more strongly
    assert features_to_cmmd(x, y, sigma=1.0) == pytest.approx(_cmmd_reference(x, y, sigma=1.0), abs=1e-6)


def test_vendi_counts_distinct_samples():
    rng = np.random.default_rng(1)
    basis = np.eye(6)
    # 6 orthogonal directions, each repeated 4 times: Vendi = 6 exactly
    assert features_to_vendi(np.repeat(basis, 4, axis=0)) == pytest.approx(6.0, rel=1e-12)
    # one direction repeated: 1
    assert features_to_vendi(np.ones((10, 3))) == pytest.approx(1.0, rel=1e-12)
    x = rng.normal(size=(30, 8))
    k = _unit(x) @ _unit(x).T / 30
    lam = np.linalg.eigvalsh(k)
    lam = lam[lam > 1e-15]
    assert features_to_vendi(x) == pytest.approx(np.exp(-(lam * np.log(lam)).sum()), rel=1e-9)
