"""Precision, recall, density and coverage against the ``prdc`` package (Naeem et al.'s code)."""
import numpy as np
import pytest

from genbench.metrics.image import features_to_precision_recall
from genbench.metrics.manifold import features_to_prdc

prdc = pytest.importorskip("prdc")


@pytest.mark.parametrize("k", [3, 5])
def test_prdc_equals_the_prdc_package(k):
    rng = np.random.default_rng(k)
    real = rng.normal(size=(120, 16))
    fake = rng.normal(loc=0.3, scale=1.2, size=(90, 16))
    ours = features_to_prdc(real, fake, k=k)
    theirs = prdc.compute_prdc(real_features=real, fake_features=fake, nearest_k=k)
    for name in ("precision", "recall", "density", "coverage"):
        assert abs(getattr(ours, name) - theirs[name]) <= 1e-9, name
    # a set blockwise: the result does not depend on the block size
    assert features_to_prdc(real, fake, k=k, batch_size=7) == ours


def test_identical_gaussians_match_prdc_readme_ballpark():
    """prdc's README: two sets from one Gaussian give precision ~0.48, density ~1.06, coverage ~0.97."""
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(1000, 64)), rng.normal(size=(1000, 64))
    res = features_to_prdc(real, fake, k=5)
    theirs = prdc.compute_prdc(real_features=real, fake_features=fake, nearest_k=5)
    assert res.density == pytest.approx(theirs["density"], abs=1e-9)
    assert 0.9 < res.density < 1.2 and res.coverage > 0.9


def test_adm_precision_recall_counts_the_boundary():
    """ADM's <= against prdc's <: a fake row exactly on a real ball's boundary."""
    real = np.array([[0.0], [1.0], [5.0], [6.0]])
    fake = np.array([[2.0], [20.0], [21.0], [23.0]])
    # real radii at k=1 are all 1; fake 2.0 is at distance 1 from real 1.0: on the boundary
    assert features_to_prdc(real, fake, k=1).precision == 0.0
    assert features_to_prdc(real, fake, k=1, inclusive=True).precision == 0.25
    assert features_to_precision_recall(real, fake, k=1)[0] == 0.25


def test_too_few_rows_for_k():
    with pytest.raises(ValueError, match="k must be between 1 and N - 1"):
        features_to_prdc(np.zeros((5, 2)), np.ones((8, 2)), k=5)
