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


def test_parts_of_one_evaluation_join_with_their_info_merged():
    """``LogLikelihood.concat``: the suite's calls and torchrun ranks' shares join into the one
    result a single call would give, info included (a window count summed, per-example means
    weighted by the parts' sizes, a value that differs kept per part, never the first's alone)."""
    def part(n, windows, mean, seed):
        return LogLikelihood(nll=np.full(n, 2.0), units=np.full(n, 4.0), unit="token", kind=LikelihoodKind.EXACT,
                             stderr=np.full(n, 0.1), info={"windows": windows, "max_length": 8, "seed": seed,
                                                           "mean_terms_nats": {"prior": mean, "rest": 2 * mean},
                                                           "mean_units": float(n), "n_windows": windows})

    joined = LogLikelihood.concat([part(1, 3, 1.0, 0), part(3, 5, 3.0, 1)])
    assert len(joined.nll) == 4 and joined.stderr.tolist() == [0.1] * 4
    assert joined.info["windows"] == joined.info["n_windows"] == 8 and joined.info["max_length"] == 8 and joined.info["seed"] == [0, 1]
    assert joined.info["mean_terms_nats"] == {"prior": 2.5, "rest": 5.0}  # (1 x 1 + 3 x 3) / 4
    assert joined.info["mean_units"] == 2.5
    assert LogLikelihood.concat([part(2, 3, 1.0, 0)]).info == part(2, 3, 1.0, 0).info
    other = LogLikelihood(nll=np.zeros(1), units=np.ones(1), unit="byte", kind=LikelihoodKind.EXACT)
    with pytest.raises(ContractError, match="changed its likelihood unit or kind"):
        LogLikelihood.concat([part(1, 3, 1.0, 0), other])
