import numpy as np
import pytest

from genbench.interfaces import (ContractError, LikelihoodKind, LogLikelihood, PARADIGMS, Samples,
                                 check_paradigm)
from tests import fakes


@pytest.mark.parametrize("cls", [fakes.FakeAR, fakes.FakeMasked, fakes.FakeDiffusion])
def test_every_paradigm_meets_the_sampling_contract(cls):
    g = cls()
    assert g.paradigm in PARADIGMS and g.modality == "image"
    check_paradigm(g.paradigm, g.modality)
    s = g.sample(10, seed=3, batch_size=4).validate(10, "image")
    assert s.images.dtype == np.uint8 and s.images.shape == (10, 4, 4, 1)
    # 3 batches of 4, 4, 2: nfe counts forward passes per batch
    assert s.nfe == 3 * s.nfe_per_sample
    again = g.sample(10, seed=3, batch_size=7)
    np.testing.assert_array_equal(s.images, again.images)
    assert not np.array_equal(s.images, g.sample(10, seed=4).images)


def test_likelihood_kinds_are_declared_and_honoured():
    x = fakes.FakeAR().sample(6, seed=0).images
    exact = fakes.FakeAR().log_likelihood(x).validate()
    bound = fakes.FakeMasked().log_likelihood(x).validate()
    none = fakes.FakeDiffusion().log_likelihood(x).validate()
    assert exact.kind is LikelihoodKind.EXACT and exact.stderr is None
    assert bound.kind is LikelihoodKind.UPPER_BOUND and bound.mc_samples == 8 and bound.stderr.shape == (6,)
    assert none.kind is LikelihoodKind.UNAVAILABLE
    assert fakes.FakeDiffusion().likelihood_kind is LikelihoodKind.UNAVAILABLE
    # the bound lies above the exact NLL in this fake
    assert bound.per_unit() > exact.per_unit()
    # per-unit rate is a ratio of sums
    assert exact.per_unit() == pytest.approx(exact.nll.sum() / (16 * 6))
    assert bound.per_unit_stderr() == pytest.approx(np.sqrt(6 * 0.01) / 96)


def test_contract_violations_are_named():
    with pytest.raises(ContractError, match="uint8"):
        Samples(images=np.zeros((2, 4, 4, 1), dtype=np.float32)).validate(2, "image")
    with pytest.raises(ContractError, match="asked for 3"):
        Samples(images=np.zeros((2, 4, 4, 1), dtype=np.uint8)).validate(3, "image")
    with pytest.raises(ContractError, match="decoded texts"):
        Samples(tokens=np.zeros((2, 3), dtype=np.int64)).validate(2, "text")
    with pytest.raises(ContractError, match="NaN"):
        LogLikelihood(nll=np.array([np.nan]), units=np.ones(1), unit="byte", kind="exact").validate()
    with pytest.raises(ContractError, match="standard error"):
        LogLikelihood(nll=np.ones(1), units=np.ones(1), unit="byte", kind="upper_bound", mc_samples=4).validate()
    with pytest.raises(ContractError, match="unit"):
        LogLikelihood(nll=np.ones(1), units=np.ones(1), unit="word", kind="exact").validate()
    with pytest.raises(ContractError, match="paradigm"):
        check_paradigm("gan", "image")
