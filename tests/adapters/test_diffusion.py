"""diffusion-digits: the shipped weights, seeded sampling, the ELBO and its parts, bad input."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from genbench import data
from genbench.adapters import zoo
from genbench.adapters.diffusion import (
    LEVELS, DiffusionDigits, HistogramProposal, Schedule, levels_to_unit, reconstruction_nll,
    train_diffusion_digits,
)
from genbench.errors import UserError
from genbench.interfaces import LikelihoodKind
from genbench.registry import ADAPTERS

NAME = "diffusion-digits"



@pytest.fixture(scope="module")
def model() -> DiffusionDigits:
    return DiffusionDigits()


@pytest.fixture(scope="module")
def test_images() -> np.ndarray:
    return data.digits_arrays("test")[0][:16]


def test_registered_and_weights_match_json(model):
    assert ADAPTERS.get(NAME) is DiffusionDigits
    assert zoo.TRAINERS.get(NAME) is train_diffusion_digits
    meta = json.loads((zoo.WEIGHTS_DIR / f"{NAME}.json").read_text())
    assert zoo.file_sha256(zoo.WEIGHTS_DIR / f"{NAME}.safetensors") == meta["sha256"]
    assert (zoo.WEIGHTS_DIR / f"{NAME}.safetensors").stat().st_size <= 3 * 1024 * 1024
    desc = model.describe()
    assert desc["weights_sha256"] == meta["sha256"]
    assert (desc["name"], desc["paradigm"], desc["modality"]) == (NAME, "diffusion", "image")
    assert desc["sampler"] == {"sampler": "ancestral", "steps": 50}
    assert "quantisation" in desc
    assert meta["card"]["val_metric"]["value"] < math.log2(LEVELS) - 1.5


def test_sample_is_seeded_and_on_the_level_grid(model):
    a = model.sample(6, seed=3, batch_size=4, steps=8)
    b = model.sample(6, seed=3, batch_size=4, steps=8)
    c = model.sample(6, seed=4, batch_size=4, steps=8)
    a.validate(6, "image")
    assert a.images.shape == (6, 8, 8, 1) and a.images.dtype == np.uint8
    np.testing.assert_array_equal(a.images, b.images)
    assert not np.array_equal(a.images, c.images)
    np.testing.assert_array_equal(data.levels_to_image(data.image_to_levels(a.images)), a.images)
    assert a.nfe == 8 * 2 and a.nfe_per_sample == 8  # two batches of 8 passes each
    # per-sample noise: batch size does not change the draws (up to float rounding)
    d = model.sample(6, seed=3, batch_size=6, steps=8)
    assert np.mean(d.images == a.images) > 0.99


@pytest.mark.parametrize("sampler", ["ancestral", "ddim"])
def test_nfe_per_sample_is_steps(sampler):
    m = DiffusionDigits(sampler=sampler, steps=7)
    s = m.sample(3, seed=0)
    assert s.nfe_per_sample == 7 and s.nfe == 7 and s.info["sampler"] == sampler
    assert m.sample(2, seed=0, steps=4).nfe_per_sample == 4
    assert m.describe()["sampler"] == {"sampler": sampler, "steps": 7}


def test_ddim_is_deterministic_given_the_start(model):
    m = DiffusionDigits(sampler="ddim")
    np.testing.assert_array_equal(m.sample(3, seed=1, steps=6).images, m.sample(3, seed=1, steps=6).images)


def test_elbo_beats_uniform_with_finite_stderr(model, test_images):
    ll = model.log_likelihood(test_images, seed=0).validate()
    assert ll.kind is LikelihoodKind.UPPER_BOUND and model.likelihood_kind is LikelihoodKind.UPPER_BOUND
    assert ll.unit == "dimension" and ll.nll.shape == (16,) and np.all(ll.units == 64)
    assert ll.mc_samples == 128 and ll.stderr is not None and ll.stderr.shape == (16,)
    assert np.all(np.isfinite(ll.stderr)) and np.all(ll.stderr > 0)
    bits = ll.per_unit() / math.log(2)
    # measured 1.79 bits/dim on these 16 images (1.73 on the whole test split); uniform is 4.09
    assert bits < math.log2(LEVELS) - 1.5
    assert ll.per_unit_stderr() / math.log(2) < 0.1
    terms = ll.info["mean_terms_nats"]
    assert terms["reconstruction"] >= 0 and terms["prior"] >= 0 and terms["diffusion"] > 0
    # the same seed gives the same estimate, whatever the chunking
    again = DiffusionDigits(eval_batch_size=5).log_likelihood(test_images, seed=0)
    np.testing.assert_allclose(again.nll, ll.nll, rtol=1e-9)


def test_cosine_proposal_agrees_with_fitted(test_images):
    fitted = DiffusionDigits(mc_samples=64).log_likelihood(test_images, seed=1)
    cosine = DiffusionDigits(mc_samples=64, proposal="cosine").log_likelihood(test_images, seed=1)
    diff = abs(fitted.nll.sum() - cosine.nll.sum())
    se = math.sqrt(fitted.per_unit_stderr() ** 2 + cosine.per_unit_stderr() ** 2) * 64 * len(test_images)
    assert diff < 4 * se
    assert cosine.info["proposal"] == "cosine"


def test_discretised_decoder_is_normalised():
    sched = Schedule(-7.0, 2.0)  # a wide decoder, so every bin has some mass
    z0 = torch.randn(3, 64, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    total = torch.zeros(3, 64, dtype=torch.float64)
    for v in range(LEVELS):
        x = levels_to_unit(torch.full((1, 1), v)).expand(3, 64)
        # one pixel at a time: the per-image NLL of a constant image over 64 pixels
        per_pixel = torch.stack([reconstruction_nll(x[:, :1], z0[:, i:i + 1], sched) for i in range(64)], dim=1)
        total += torch.exp(-per_pixel)
    np.testing.assert_allclose(total.numpy(), 1.0, atol=1e-9)


def test_histogram_proposal_weights_integrate_the_range():
    prop = HistogramProposal(edges=[-7.0, 0.0, 5.0, 12.0], probs=[0.2, 0.5, 0.3])
    u = (torch.arange(10000, dtype=torch.float64) + 0.5) / 10000
    lam, inv_density = prop.u_to_logsnr(u)
    assert lam.min() >= -7 and lam.max() <= 12 and torch.all(lam[1:] >= lam[:-1])
    assert float(inv_density.mean()) == pytest.approx(19.0, rel=1e-6)


def test_bad_input_raises_user_error(model, test_images):
    for bad in (test_images.astype(np.float32), test_images[..., 0], test_images[:0], list(test_images)):
        with pytest.raises(UserError, match="uint8 array"):
            model.log_likelihood(bad)
    with pytest.raises(UserError, match="unconditional"):
        model.sample(2, seed=0, condition=3)
    with pytest.raises(UserError, match="steps"):
        model.sample(2, seed=0, steps=0)
    with pytest.raises(UserError, match="sampler"):
        DiffusionDigits(sampler="euler")
    with pytest.raises(UserError, match="mc_samples"):
        DiffusionDigits(mc_samples=12, replicates=8)
    with pytest.raises(UserError, match="proposal"):
        DiffusionDigits(proposal="uniform")
