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


def _relative_difference(ours, ref) -> float:
    return float(np.abs(ours - ref).max() / np.abs(ref).max())


def test_sums_kept_on_a_torch_device_equal_the_numpy_path():
    """The CUDA path's float64 torch sums (read back once), run on CPU tensors, against numpy."""
    torch = pytest.importorskip("torch")
    f = np.random.default_rng(2).normal(loc=30.0, scale=2.0, size=(400, 24))
    for keep in (0, 50, None):
        host = _feed(FeatureAccumulator(keep=keep, seed=4), f)
        dev = _feed(FeatureAccumulator(keep=keep, seed=4), torch.from_numpy(f))
        assert dev._device_sums is not None or keep is None or dev.n == 0
        assert dev.n == host.n == 400
        for ours, ref in zip(dev.statistics(), host.statistics()):
            assert _relative_difference(ours, ref) < 1e-12
        if keep is not None and keep > 0:
            np.testing.assert_array_equal(dev.rows(), host.rows())  # the same reservoir, row for row
    # float32 tensors (what the pipeline hands over) are widened exactly, as numpy widens them
    f32 = f.astype(np.float32)
    dev = _feed(FeatureAccumulator(), torch.from_numpy(f32))
    host = _feed(FeatureAccumulator(), f32)
    for ours, ref in zip(dev.statistics(), host.statistics()):
        assert _relative_difference(ours, ref) < 1e-12
    # numpy batches after tensor ones join the device sums; tensors after a read-back go on the host
    mixed = FeatureAccumulator()
    mixed.add(torch.from_numpy(f[:100]))
    mixed.add(f[100:250])
    mixed.statistics()
    mixed.add(torch.from_numpy(f[250:]))
    for ours, ref in zip(mixed.statistics(), features_to_statistics(f)):
        assert _relative_difference(ours, ref) < 1e-12
    # a device accumulator's part() (torchrun's merge) reads its sums back first
    first, second = FeatureAccumulator(), FeatureAccumulator()
    first.add(torch.from_numpy(f[:150]))
    second.add(f[150:])
    merged = FeatureAccumulator.merged([first.part(), second.part()])
    for ours, ref in zip(merged.statistics(), features_to_statistics(f)):
        assert _relative_difference(ours, ref) < 1e-12
    dev = FeatureAccumulator()
    dev.add(torch.zeros(2, 24))
    with pytest.raises(UserError, match="dimension 3 after 24-d"):
        dev.add(torch.zeros(2, 3))
