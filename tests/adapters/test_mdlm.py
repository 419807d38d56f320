"""The masked-diffusion reference models and the shared MDLM math (genbench.adapters.mdlm)."""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from genbench import data
from genbench.adapters import mdlm
from genbench.errors import UserError
from genbench.interfaces import LikelihoodKind
from genbench.registry import ADAPTERS, build_adapter


@pytest.fixture(scope="module")
def digits_model():
    return mdlm.MaskedDigits(mc_samples=16)


@pytest.fixture(scope="module")
def text_model():
    return mdlm.MaskedText(mc_samples=8, steps=8, length=48)


def test_registered_names_are_the_classes():
    assert ADAPTERS.get("masked-digits") is mdlm.MaskedDigits
    assert ADAPTERS.get("masked-kjv") is mdlm.MaskedText


# --- digits -------------------------------------------------------------------------
def test_digits_sample_is_seeded_and_on_the_grid(digits_model):
    a = digits_model.sample(5, seed=3, batch_size=2, steps=4).validate(5, "image")
    b = digits_model.sample(5, seed=3, batch_size=5, steps=4)
    c = digits_model.sample(5, seed=4, batch_size=5, steps=4)
    assert a.images.shape == (5, 8, 8, 1) and a.images.dtype == np.uint8
    assert np.array_equal(a.images, b.images)       # same seed, any batch size
    assert not np.array_equal(a.images, c.images)
    assert np.array_equal(data.levels_to_image(data.image_to_levels(a.images)), a.images)
    assert a.nfe_per_sample == 4 and a.nfe == 4 * 3  # three batches of 2, 2, 1
    assert digits_model.sample(2, seed=0).nfe_per_sample == 16  # the constructor default


def test_digits_likelihood_is_a_seeded_bound_below_uniform(digits_model):
    images = data.digits_arrays("test")[0][:6]
    ll = digits_model.log_likelihood(images, seed=1).validate()
    assert ll.kind is LikelihoodKind.UPPER_BOUND and digits_model.likelihood_kind is LikelihoodKind.UPPER_BOUND
    assert ll.unit == "dimension" and ll.nll.shape == ll.units.shape == ll.stderr.shape == (6,)
    assert np.all(ll.units == 64) and ll.mc_samples == 16
    assert np.all(ll.stderr > 0) and np.all(ll.stderr < 0.2 * ll.nll)
    assert ll.per_unit() / math.log(2) < math.log2(17) - 1.0  # clearly better than uniform
    assert ll.info["timesteps"] == "antithetic"
    again = digits_model.log_likelihood(images, seed=1)
    other = digits_model.log_likelihood(images, seed=2)
    assert np.array_equal(ll.nll, again.nll) and not np.array_equal(ll.nll, other.nll)
    # an example's estimate does not depend on what shares its batch
    assert digits_model.log_likelihood(images[:1], seed=1).nll[0] == ll.nll[0]


def test_antithetic_elbo_agrees_with_many_iid_timesteps(digits_model):
    ids = torch.from_numpy(data.image_to_levels(data.digits_arrays("test")[0][:2]).reshape(2, 64))
    kw = dict(seed=11, batch_size=512)
    with torch.inference_mode():
        anti, anti_se = mdlm.sequences_to_elbo(digits_model.logits, ids, digits_model.mask_id, mc_samples=32,
                                               timesteps="antithetic", **kw)
        # the brute force uses MDLM's literal 1/t weight, so this also checks the default
        # Rao-Blackwellised weight estimates the same bound
        brute, brute_se = mdlm.sequences_to_elbo(digits_model.logits, ids, digits_model.mask_id, mc_samples=1024,
                                                 timesteps="iid", weight="1/t", **kw)
    assert np.all(np.abs(anti - brute) < 3 * np.sqrt(anti_se**2 + brute_se**2))


def test_rao_blackwell_weight_is_the_conditional_mean_of_1_over_t():
    from scipy.integrate import quad

    n, eps = 10, 1e-3
    w = mdlm.mask_count_weights(torch.arange(n + 1), torch.tensor(n), eps).numpy()
    assert w[0] == 0
    for m in (1, 2, 5, 10):
        num = quad(lambda t: t ** (m - 1) * (1 - t) ** (n - m), eps, 1)[0]
        den = quad(lambda t: t ** m * (1 - t) ** (n - m), eps, 1)[0]
        assert np.isclose(w[m], num / den, rtol=1e-6)


def test_stderr_estimators_on_known_terms():
    terms = torch.tensor([[1.0, 3.0, 2.0, 6.0], [5.0, 5.0, 5.0, 5.0]])
    nll, se = mdlm.elbo_terms_to_estimate(terms, "antithetic")
    assert np.allclose(nll, [3.0, 5.0])
    assert np.allclose(se, [math.sqrt(2**2 + 4**2) / 4, 0.0])  # neighbouring pairs collapsed
    _, se_iid = mdlm.elbo_terms_to_estimate(terms, "iid")
    assert np.isclose(se_iid[0], np.std([1, 3, 2, 6], ddof=1) / 2)
    _, se_odd = mdlm.elbo_terms_to_estimate(torch.tensor([[1.0, 2.0, 4.0]]), "antithetic")
    assert np.isclose(se_odd[0], math.sqrt(1.5 * np.sum((np.array([1, 2, 4]) - 7 / 3) ** 2)) / 3)


def test_timesteps_are_stratified_in_range():
    t = mdlm.draw_timesteps(torch.Generator().manual_seed(0), 8, "antithetic")
    u = (t - 1e-3) / (1 - 1e-3)
    assert torch.all((u >= torch.arange(8) / 8) & (u < (torch.arange(9)[1:]) / 8))
    s = mdlm.draw_timesteps(torch.Generator().manual_seed(0), 8, "systematic", replicates=2)
    gaps = torch.diff(torch.sort(s[:4]).values)
    assert torch.allclose(gaps, torch.full((3,), 0.25 * (1 - 1e-3), dtype=torch.float64), atol=1e-9)


# --- the shared math, model-agnostic ---------------------------------------------------
def _mask_loving_logits(mask_id: int, vocab: int):
    """A fake model whose raw logits prefer the mask id above all."""
    def fn(ids):
        out = torch.zeros(*ids.shape, vocab)
        out[..., mask_id] = 50.0
        out[..., 2] = 1.0
        return out
    return fn


def test_mask_id_is_never_predicted():
    mask_id, vocab = 3, 5  # the mask id sits inside the output vocabulary
    fn = _mask_loving_logits(mask_id, vocab)
    xt = torch.tensor([[3, 1, 3, 4]])
    logp = mdlm.subs_log_probs(fn(xt), xt, mask_id)
    assert torch.all(logp[..., mask_id] == -math.inf)
    assert torch.allclose(logp.exp().sum(-1), torch.ones(1, 4))
    assert logp[0, 1, 1] == 0 and logp[0, 3, 4] == 0  # revealed tokens carry over
    ids, nfe = mdlm.masked_sample(fn, 4, 6, mask_id, steps=3, seed=0, temperature=1.0)
    assert not (ids == mask_id).any() and nfe == 3
    nll, se = mdlm.sequences_to_elbo(fn, torch.tensor([[0, 1, 2, 4]]), mask_id, mc_samples=4, seed=0)
    assert np.all(np.isfinite(nll)) and np.all(np.isfinite(se))


def test_padding_is_never_scored():
    fn = _mask_loving_logits(3, 5)
    ids = torch.tensor([[2, 2, 0, 0], [2, 2, 1, 4]])
    nll, _ = mdlm.sequences_to_elbo(fn, ids, 3, mc_samples=8, seed=0, lengths=[2, 2],
                                    row_keys=[(0,), (0,)])
    assert nll[0] == nll[1]  # what follows the length does not matter


@pytest.mark.parametrize("schedule", ["cosine", "linear"])
@pytest.mark.parametrize("length,steps", [(64, 1), (64, 16), (64, 64), (256, 64), (7, 5)])
def test_unmask_counts_cover_the_sequence(schedule, length, steps):
    counts = mdlm.unmask_counts(length, steps, schedule)
    assert len(counts) == steps and sum(counts) == length and min(counts) >= 1


def test_bad_inputs_are_user_errors(digits_model, text_model):
    with pytest.raises(UserError):
        digits_model.log_likelihood(np.zeros((2, 8, 8), dtype=np.uint8))
    with pytest.raises(UserError):
        digits_model.log_likelihood(np.zeros((2, 8, 8, 1), dtype=np.float32))
    with pytest.raises(UserError):
        digits_model.sample(1, seed=0, steps=65)
    with pytest.raises(UserError):
        mdlm.MaskedDigits(schedule="square")
    # the ELBO's options: one check for every masked adapter (mdlm.check_elbo_options), naming it
    with pytest.raises(UserError, match=r"^masked-digits: option timesteps='stratified' is not one of antithetic, "
                                        r"systematic, iid \(\[adapter\.\"masked-digits\"\] timesteps in the run file\)$"):
        mdlm.MaskedDigits(timesteps="stratified")
    with pytest.raises(UserError, match=r"^masked-digits: option weight='t' is not one of rao-blackwell, 1/t "):
        mdlm.MaskedDigits(weight="t")
    with pytest.raises(UserError, match="mc_samples must be an integer >= 2"):
        mdlm.MaskedDigits(mc_samples=1)
    with pytest.raises(UserError):
        text_model.log_likelihood([])
    with pytest.raises(UserError):
        text_model.log_likelihood(["fine", ""])
    with pytest.raises(UserError):
        text_model.log_likelihood("a string, not a list")


# --- text ------------------------------------------------------------------------------
def test_text_sample_is_seeded(text_model):
    a = text_model.sample(2, seed=5).validate(2, "text")
    b = text_model.sample(2, seed=5, batch_size=1)
    c = text_model.sample(2, seed=6)
    assert a.tokens.shape == (2, 48) and a.tokens.dtype == np.int64
    assert a.tokens.min() >= 0 and a.tokens.max() < 256
    assert np.array_equal(a.tokens, b.tokens) and not np.array_equal(a.tokens, c.tokens)
    assert a.texts[0] == bytes(a.tokens[0].astype(np.uint8).tolist()).decode("utf-8", errors="replace")
    assert a.nfe_per_sample == 8 and a.nfe == 8
    assert text_model.sample(1, seed=0, steps=3).nfe_per_sample == 3


def test_text_likelihood_per_document_bytes(text_model):
    book = data.kjv_texts("test")[0]
    docs = [book[:100], book[1000:1600]]  # one short window; 600 bytes = 3 windows, the last short
    ll = text_model.log_likelihood(docs, seed=0).validate()
    assert ll.kind is LikelihoodKind.UPPER_BOUND and ll.unit == "byte" and ll.mc_samples == 8
    assert list(ll.units) == [len(d.encode("utf-8")) for d in docs]
    assert np.all(ll.stderr > 0) and ll.info["chunks"] == 4
    assert ll.per_unit() / math.log(2) < 8.0 - 3.0  # clearly better than uniform bytes
    # a document's bound is the sum of its windows' bounds
    assert text_model.log_likelihood([docs[0]], seed=0).nll[0] == ll.nll[0]


def grid_in_parts(grid, cuts, rtol=1e-12):
    """A likelihood grid computed as the flat ranges between ``cuts`` (what torchrun ranks do),
    concatenated; checked against the whole, returns (whole terms, LogLikelihood of the parts)."""
    whole = grid.terms(0, grid.size)
    parts = [grid.terms(a, b) for a, b in zip(cuts[:-1], cuts[1:])]
    assert [len(p) for p in parts] == list(np.diff(cuts)) and cuts[0] == 0 and cuts[-1] == grid.size
    # the same draws and the same rows' forward passes, only grouped into other batches: the
    # zoo models' come out bit for bit equal here (1e-12 relative is the promise)
    np.testing.assert_allclose(np.concatenate(parts), whole, rtol=rtol, atol=0)
    return whole, grid.to_likelihood(np.concatenate(parts).reshape(grid.rows, grid.mc_samples))


def test_likelihood_grid_in_parts_equals_the_whole(digits_model, text_model):
    """Monte Carlo forward passes split by (example, sample index): any contiguous flat ranges of
    the (rows, K) grid, concatenated, give the whole call's terms and the same estimates."""
    images = data.digits_arrays("test")[0][:5]
    grid = digits_model.likelihood_grid(images, seed=1, start=3)
    assert (grid.rows, grid.mc_samples, grid.size) == (5, 16, 80)
    _, ll = grid_in_parts(grid, [0, 7, 16, 33, 33, 79, 80])  # across rows, an empty part, one pass
    want = digits_model.log_likelihood(images, seed=1, start=3)
    np.testing.assert_array_equal(ll.nll, want.nll)
    np.testing.assert_array_equal(ll.stderr, want.stderr)
    book = data.kjv_texts("test")[0]
    grid = text_model.likelihood_grid([book[:100], book[1000:1600]], seed=0)  # windows 1 + 3, K = 8
    assert grid.size == 4 * 8
    _, ll = grid_in_parts(grid, [0, 5, 16, 30, 32])
    want = text_model.log_likelihood([book[:100], book[1000:1600]], seed=0)
    np.testing.assert_array_equal(ll.nll, want.nll)
    assert ll.info == want.info and ll.info["chunks"] == 4
    # the part function itself: a range of the flat (B, K) index, checked
    ids = torch.from_numpy(data.image_to_levels(images).reshape(5, 64))
    full, t = mdlm.sequences_to_elbo_terms(digits_model.logits, ids, digits_model.mask_id, mc_samples=4, seed=0)
    part, t_part = mdlm.sequences_to_elbo_terms(digits_model.logits, ids, digits_model.mask_id, mc_samples=4,
                                                seed=0, samples=(6, 13))
    np.testing.assert_allclose(part.numpy(), full.reshape(-1)[6:13].numpy(), rtol=1e-12, atol=0)
    assert torch.equal(t_part, t.reshape(-1)[6:13])
    with pytest.raises(ValueError, match=r"within \[0, 20\]"):
        mdlm.sequences_to_elbo_terms(digits_model.logits, ids, digits_model.mask_id, mc_samples=4, seed=0,
                                     samples=(3, 21))


def test_describe_names_the_options(digits_model, text_model):
    d = digits_model.describe()
    assert d["name"] == "masked-digits" and d["paradigm"] == "masked" and len(d["weights_sha256"]) == 64
    assert d["sampler"]["steps"] == 16 and d["likelihood"]["mc_samples"] == 16
    t = text_model.describe()
    assert t["sampler"]["length"] == 48 and t["likelihood"]["window"] == 256



def test_random_order_commits_uniformly_random_positions():
    """order="random" (MDLM's ancestral sampler) ignores the model's confidence: with one
    position per step, the first position committed is uniform; "confidence" takes the surest."""
    length, mask_id = 4, 2
    seen: list[torch.Tensor] = []

    def logits_fn(ids):  # position 0 is by far the most confident
        seen.append(ids.clone())
        logits = torch.zeros(ids.shape[0], ids.shape[1], 2)
        logits[:, 0, 0] = 50.0
        return logits

    def first_committed(order: str, seed: int) -> int:
        seen.clear()
        ids, nfe = mdlm.masked_sample(logits_fn, 1, length, mask_id, steps=length, seed=seed, order=order,
                                      temperature=0)
        assert nfe == length and not bool((ids == mask_id).any())
        return int((seen[1][0] != mask_id).nonzero()[0, 0])

    assert {first_committed("confidence", seed) for seed in range(20)} == {0}
    counts = np.bincount([first_committed("random", seed) for seed in range(400)], minlength=length)
    assert counts.min() > 60  # each of 4 positions ~100 of 400 times (fails by chance with p < 1e-6)
    a, _ = mdlm.masked_sample(logits_fn, 5, length, mask_id, steps=2, seed=3, order="random", batch_size=2)
    b, _ = mdlm.masked_sample(logits_fn, 5, length, mask_id, steps=2, seed=3, order="random", batch_size=5)
    assert torch.equal(a, b)
    with pytest.raises(UserError, match=r"^masked_sample: option order='left-to-right' is not one of confidence, random$"):
        mdlm.masked_sample(logits_fn, 1, length, mask_id, steps=2, seed=0, order="left-to-right")
    with pytest.raises(UserError, match=r"masked-digits: option order='raster' is not one of confidence, random; set "
                                        r"\[adapter.\"masked-digits\"\] order in the run file"):
        mdlm.MaskedDigits(order="raster")


@pytest.mark.parametrize("option,value,says", [
    ("steps", 0, "steps=0 must be an integer between 1 and the sequence length"),
    ("steps", 2.5, "steps=2.5 must be an integer"),
    ("schedule", "exp", "schedule='exp' is not one of cosine, linear"),
    ("temperature", -1.0, "temperature=-1.0 must be a finite number >= 0"),
    ("temperature", float("inf"), "temperature=inf must be a finite number >= 0"),
    ("choice_temperature", float("nan"), "choice_temperature=nan must be a finite number >= 0"),
    ("choice_temperature", "4.5", "choice_temperature='4.5' must be a finite number >= 0"),
])
def test_every_masked_adapter_checks_its_sampler_options_alike(option, value, says, tmp_path_factory):
    """One check (``check_masked_sampler_options``) for the zoo, token-masked and the sampler
    itself: the same value is refused by each, in one line naming the adapter's option."""
    from tests.adapters import image_checkpoints as ic

    with pytest.raises(UserError, match=f"^masked-digits: option {re.escape(says)}"):
        mdlm.MaskedDigits(**{option: value})
    tm = ic.token_masked(tmp_path_factory.mktemp("tm") / "ck")
    with pytest.raises(UserError, match=f'^token-masked: option {re.escape(says)}.*\\[adapter."token-masked"\\]'):
        build_adapter(f"token-masked:{tm}", **{option: value})
    kw = dict(steps=2, schedule="cosine", order="confidence", temperature=1.0, choice_temperature=0.0)
    with pytest.raises(UserError, match=f"^masked_sample: option {re.escape(says)}"):
        mdlm.masked_sample(lambda x: torch.zeros(*x.shape, 3), 1, 4, 2, seed=0, **{**kw, option: value})


def test_random_order_one_position_per_step_draws_exactly_from_the_joint():
    """Given the exact conditionals of a known joint over 3 positions x 3 values (the mask id
    3 is not a value), MDLM's ancestral sampler (random order, one position per step) must
    reproduce the joint: a chi-square test over the 27 sequences. With the mask id among the
    model's outputs (as in HF masked LMs), a huge mask logit is never drawn."""
    from scipy import stats

    length, values, mask_id = 3, 3, 3
    joint = np.random.default_rng(0).dirichlet(np.full(values ** length, 0.7))
    table = torch.tensor(np.array(np.unravel_index(np.arange(values ** length), (values,) * length)).T)  # (27, 3)
    joint_t = torch.tensor(joint)

    def conditionals(ids, with_mask_output=False):
        visible = ids != mask_id
        fits = ((table[None] == ids[:, None]) | ~visible[:, None]).all(-1)            # (B, 27)
        mass = torch.where(fits, joint_t[None], 0.0)
        probs = torch.stack([torch.stack([mass[:, table[:, i] == v].sum(-1) for v in range(values)], -1)
                             for i in range(length)], 1)                              # (B, L, V)
        logits = torch.log(probs.clamp_min(1e-300)).float()
        if with_mask_output:
            logits = torch.cat([logits, torch.full_like(logits[..., :1], 30.0)], -1)
        return logits

    n = 4000
    ids, nfe = mdlm.masked_sample(conditionals, n, length, mask_id, steps=length, seed=0, order="random",
                                  batch_size=n)
    assert nfe == length
    counts = np.bincount(np.ravel_multi_index(ids.numpy().T, (values,) * length), minlength=values ** length)
    keep = joint * n >= 5
    expected = np.append(joint[keep] * n, joint[~keep].sum() * n)
    observed = np.append(counts[keep], counts[~keep].sum())
    assert stats.chisquare(observed, expected).pvalue > 1e-4
    with_mask, _ = mdlm.masked_sample(lambda x: conditionals(x, True), 200, length, mask_id, steps=length, seed=1,
                                      order="random", batch_size=200)
    assert not bool((with_mask == mask_id).any())
