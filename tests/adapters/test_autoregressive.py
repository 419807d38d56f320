"""The autoregressive reference models (genbench.adapters.autoregressive)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from genbench import data
from genbench.adapters import autoregressive as ar
from genbench.errors import UserError
from genbench.interfaces import LikelihoodKind
from genbench.registry import ADAPTERS


@pytest.fixture(scope="module")
def digits_model():
    return ar.ARDigits()


@pytest.fixture(scope="module")
def text_model():
    return ar.ARText(length=24)


def test_registered_names_are_the_classes():
    assert ADAPTERS.get("ar-digits") is ar.ARDigits
    assert ADAPTERS.get("ar-kjv") is ar.ARText


@torch.no_grad()
def _brute_force_nll(model: ar._ARModel, ids: list[int], context: list[int]) -> float:
    """-sum log p(ids[j] | context + ids[:j]), one forward pass per position."""
    total = 0.0
    for j in range(len(ids)):
        logits = model.logits(torch.tensor([context + ids[:j]]))[0, -1].double()
        total -= float(torch.log_softmax(logits, -1)[ids[j]])
    return total


# --- digits -------------------------------------------------------------------------
def test_digits_sample_is_seeded_batch_independent_and_on_the_grid(digits_model):
    a = digits_model.sample(5, seed=3, batch_size=2).validate(5, "image")
    b = digits_model.sample(5, seed=3, batch_size=5)
    c = digits_model.sample(5, seed=4, batch_size=5)
    assert a.images.shape == (5, 8, 8, 1) and a.images.dtype == np.uint8
    assert np.array_equal(a.images, b.images)
    assert not np.array_equal(a.images, c.images)
    assert np.array_equal(data.levels_to_image(data.image_to_levels(a.images)), a.images)
    assert a.nfe_per_sample == 64 and a.nfe == 64 * 3  # three batches, one pass per pixel each


def test_kv_cache_changes_speed_not_samples(digits_model):
    uncached = ar.ARDigits(kv_cache=False)
    assert np.array_equal(uncached.sample(3, seed=7, batch_size=3).images,
                          digits_model.sample(3, seed=7, batch_size=3).images)
    assert uncached.describe()["sampler"]["kv_cache"] is False


def test_greedy_is_deterministic_whatever_the_seed():
    greedy = ar.ARDigits(temperature=0)
    assert np.array_equal(greedy.sample(2, seed=0).images, greedy.sample(2, seed=99).images)


def test_digits_likelihood_is_exact_and_beats_the_baselines(digits_model):
    images = data.digits_arrays("test")[0][:40]
    ll = digits_model.log_likelihood(images).validate()
    assert ll.kind is LikelihoodKind.EXACT and ll.stderr is None and ll.unit == "dimension"
    assert np.all(ll.units == 64)
    levels = data.image_to_levels(images[:2]).reshape(2, 64)
    for i in range(2):
        brute = _brute_force_nll(digits_model, levels[i].tolist(), [digits_model.bos_id])
        assert ll.nll[i] == pytest.approx(brute, rel=1e-5)
    bits = ll.per_unit() / math.log(2)
    assert bits < 0.6 * math.log2(data.DIGITS_LEVELS)  # clearly below uniform over 17 levels
    # per-example values do not depend on how the batch is cut
    np.testing.assert_allclose(ar.ARDigits(eval_batch_size=7).log_likelihood(images).nll, ll.nll, rtol=1e-6)


# --- text ---------------------------------------------------------------------------
def test_text_sample_is_seeded(text_model):
    a = text_model.sample(3, seed=1, batch_size=2).validate(3, "text")
    b = text_model.sample(3, seed=1, batch_size=3)
    assert a.tokens.shape == (3, 24) and a.texts == b.texts and a.nfe_per_sample == 24
    assert all(isinstance(t, str) for t in a.texts)


def test_text_likelihood_is_lm_eval_rolling_and_exact(text_model):
    doc = "And God said, Let there be light: and there was light."
    short = ar.ARText(context=16)
    ll = short.log_likelihood([doc]).validate()
    assert ll.kind is LikelihoodKind.EXACT and ll.unit == "byte" and ll.units[0] == len(doc.encode())
    # the rolling rule: the first window sees BOS + what precedes; a later window predicting
    # bytes [s, e) reads the 16 bytes before e-1, so byte j sees raw[e-17 : j]
    raw, L, total, start, first = list(doc.encode()), 16, 0.0, 0, True
    while start < len(raw):
        end = min(start + L, len(raw))
        for j in range(start, end):
            ctx = [short.bos_id] + raw[:j] if first else raw[end - L - 1: j]
            total += _brute_force_nll(short, [raw[j]], ctx)
        start, first = end, False
    assert ll.nll[0] == pytest.approx(total, rel=1e-5)
    # documents are scored on their own: together or apart, the same numbers
    docs = [doc, "In the beginning", doc * 3]
    together = short.log_likelihood(docs).nll
    apart = np.concatenate([short.log_likelihood([d]).nll for d in docs])
    np.testing.assert_allclose(together, apart, rtol=1e-6)


def test_text_model_beats_uniform_bytes(text_model):
    docs = [d[:2000] for d in data.kjv_texts("test")[:2]]
    ll = text_model.log_likelihood(docs).validate()
    assert ll.per_unit() / math.log(2) < 4.0  # uniform is 8 bits per byte


def test_bad_inputs_are_user_errors(digits_model, text_model):
    with pytest.raises(UserError, match=r"uint8 array \(N, 8, 8, 1\)"):
        digits_model.log_likelihood(np.zeros((2, 8, 8, 3), np.uint8))
    with pytest.raises(UserError, match="steps"):
        digits_model.sample(2, seed=0, steps=10)
    with pytest.raises(UserError, match="unconditional"):
        digits_model.sample(2, seed=0, condition=[1, 2])
    with pytest.raises(UserError, match="empty"):
        text_model.log_likelihood(["fine", ""])
    with pytest.raises(UserError, match="list of strings"):
        text_model.log_likelihood("one string")
    with pytest.raises(UserError, match="length"):
        ar.ARText(length=1000)
    with pytest.raises(UserError, match="temperature"):
        ar.ARDigits(temperature=-1)


def test_trainer_writes_a_loadable_model(tmp_path):
    ar.train_ar_digits(seed=0, out_dir=tmp_path, steps=3, eval_every=3, n_layers=1, d_model=16)
    model = ar.ARDigits(path=str(tmp_path))
    assert model.meta["card"]["train_steps"] == 3 and model.config.n_layers == 1
    assert model.sample(1, seed=0).images.shape == (1, 8, 8, 1)
