"""Streamed float64 statistics and the capped sample of rows (genbench.features.accumulate)."""
import numpy as np
import pytest

from genbench.errors import UserError
from genbench.features.accumulate import FeatureAccumulator
from genbench.metrics.image import features_to_statistics


def _feed(acc, f, sizes=(1, 7, 30, 2, 60)):
    start = 0
    for size in sizes:
        acc.add(f[start: start + size])
        start += size
    acc.add(f[start:])
    return acc


def test_streamed_statistics_equal_np_cov_and_keep_no_rows():
    rng = np.random.default_rng(0)
    f = rng.normal(loc=50.0, scale=3.0, size=(300, 12))  # a large mean: the shift keeps the sums exact
    acc = _feed(FeatureAccumulator(keep=0), f)
    mu, sigma = acc.statistics()
    mu_ref, sigma_ref = features_to_statistics(f)
    assert acc.n == 300 and acc.rows() is None
    np.testing.assert_allclose(mu, mu_ref, rtol=1e-12)
    np.testing.assert_allclose(sigma, sigma_ref, rtol=1e-10, atol=1e-12)


def test_keep_all_is_the_two_pass_computation():
    f = np.random.default_rng(1).normal(size=(50, 4))
    acc = _feed(FeatureAccumulator(keep=None), f)
    np.testing.assert_array_equal(acc.rows(), f)
    for ours, ref in zip(acc.statistics(), features_to_statistics(f)):
        np.testing.assert_array_equal(ours, ref)


def test_capped_sample_is_a_seeded_uniform_subset():
    f = np.arange(1000, dtype=np.float64)[:, None] * np.ones((1, 3))
    a = _feed(FeatureAccumulator(keep=100, seed=3), f).rows()
    b = _feed(FeatureAccumulator(keep=100, seed=3), f, sizes=(500,)).rows()
    assert a.shape == (100, 3)
    assert len(np.unique(a[:, 0])) == 100  # distinct rows of the input
    np.testing.assert_array_equal(a, b)  # the same rows whatever the batch sizes
    # uniform over the stream: as many kept rows from each half, within sampling noise
    means = [np.mean([(_feed(FeatureAccumulator(keep=100, seed=s), f).rows()[:, 0] < 500).mean()])
             for s in range(20)]
    assert abs(np.mean(means) - 0.5) < 0.05


def test_too_few_rows():
    acc = FeatureAccumulator()
    acc.add(np.ones((1, 3)))
    with pytest.raises(UserError, match="not enough for a covariance"):
        acc.statistics("x")
