"""``diffusers:DIR``: the DDPM variational bound against an independent computation of its terms
(numpy, from Ho et al.'s formulas) on a tiny UNet with a short schedule summed over every
timestep; the Monte Carlo estimate against that sum; the reasons a bound is unavailable."""
from __future__ import annotations


import numpy as np
import pytest
import torch

from genbench.adapters.sampling import example_generator
from genbench.interfaces import LikelihoodKind
from genbench.registry import build_adapter
from tests.adapters import image_checkpoints as ic

T = 8


def _phi(x):  # improved-diffusion's tanh approximation of the standard normal CDF
    return 0.5 * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))


def reference_bound(unet, image: np.ndarray, noise: np.ndarray, betas: np.ndarray, variance: str,
                    prediction: str) -> float:
    """-log p(x) <= L_T + sum_t L_t in nats for one uint8 image (H, W, C), noise (T, C, H, W)."""
    x0 = image.transpose(2, 0, 1).astype(np.float64) / 127.5 - 1.0
    alphas = 1.0 - betas
    ab = np.cumprod(alphas)
    ab_prev = np.concatenate([[1.0], ab[:-1]])
    beta_tilde = (1 - ab_prev) / (1 - ab) * betas
    total = 0.5 * np.sum(-1.0 - np.log(1 - ab[-1]) + (1 - ab[-1]) + ab[-1] * x0 ** 2)  # L_T
    for t in range(len(betas)):
        xt = np.sqrt(ab[t]) * x0 + np.sqrt(1 - ab[t]) * noise[t]
        with torch.no_grad():
            out = unet(torch.from_numpy(xt).float()[None], torch.tensor([t])).sample[0].double().numpy()
        if prediction == "epsilon":
            x0_hat = (xt - np.sqrt(1 - ab[t]) * out) / np.sqrt(ab[t])
        else:
            x0_hat = np.sqrt(ab[t]) * xt - np.sqrt(1 - ab[t]) * out
        x0_hat = np.clip(x0_hat, -1, 1)

        def mu(x):
            return (np.sqrt(ab_prev[t]) * betas[t] * x + np.sqrt(alphas[t]) * (1 - ab_prev[t]) * xt) / (1 - ab[t])

        var = {"fixed_small": beta_tilde, "fixed_large": betas}[variance][t] if t > 0 else beta_tilde[1]
        if t == 0:
            s = 1.0 / np.sqrt(var)
            c = x0 - mu(x0_hat)
            hi, lo = _phi(s * (c + 1 / 255)), _phi(s * (c - 1 / 255))
            p = np.where(x0 < -0.999, hi, np.where(x0 > 0.999, 1 - lo, hi - lo))
            total += -np.sum(np.log(np.maximum(p, 1e-12)))
        else:
            v1 = beta_tilde[t]
            total += 0.5 * np.sum(np.log(var / v1) + v1 / var + (mu(x0) - mu(x0_hat)) ** 2 / var - 1.0)
    return float(total)


@pytest.mark.parametrize("variance,prediction", [("fixed_small", "epsilon"), ("fixed_large", "v_prediction")])
def test_ddpm_bound_equals_an_independent_sum_over_all_timesteps(tmp_path, variance, prediction):
    path = ic.ddpm_pipeline(tmp_path / "p", size=8, channels=3, timesteps=T, variance=variance,
                            prediction=prediction)
    g = build_adapter(f"diffusers:{path}", all_timesteps=True, eval_batch_size=5)
    assert g.likelihood_kind is LikelihoodKind.UPPER_BOUND
    images = np.random.default_rng(1).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    images[0, :2] = 0
    images[0, 2:4] = 255  # the edge bins of the decoder
    ll = g.log_likelihood(images, seed=5, start=10)
    assert ll.kind is LikelihoodKind.UPPER_BOUND and ll.stderr is None and ll.mc_samples is None
    assert ll.unit == "dimension" and list(ll.units) == [192.0] * 3
    betas = np.linspace(1e-4 * 1000 / T, 0.5, T)  # the pipeline's linear schedule, computed here from its ends
    np.testing.assert_allclose(g.training["betas"].numpy(), betas, rtol=1e-6)
    for i in range(3):
        noise = torch.randn((T, 3, 8, 8), generator=example_generator(5, 10 + i, stream="likelihood"), dtype=torch.float64).numpy()
        ref = reference_bound(g.model, images[i], noise, betas, variance, prediction)
        assert ll.nll[i] == pytest.approx(ref, rel=1e-6), (i, ll.nll[i], ref)


def test_monte_carlo_estimate_agrees_with_the_sum_and_is_batch_independent(tmp_path):
    path = ic.ddpm_pipeline(tmp_path / "p", size=8, channels=1, timesteps=T)
    images = np.random.default_rng(2).integers(0, 256, (4, 8, 8, 1), dtype=np.uint8)
    exact = build_adapter(f"diffusers:{path}", all_timesteps=True)
    # the expectation over the noise too: average the one-draw sums of many seeds
    sums = np.stack([exact.log_likelihood(images, seed=s).nll for s in range(12)])
    mc = build_adapter(f"diffusers:{path}", mc_samples=64)
    ll = mc.log_likelihood(images, seed=0)
    assert ll.mc_samples == 64 and ll.stderr.shape == (4,) and (ll.stderr > 0).all()
    spread = np.sqrt(ll.stderr ** 2 + sums.var(0, ddof=1) / len(sums))
    assert (np.abs(ll.nll - sums.mean(0)) < 4 * spread).all()
    # image i of the call is keyed by (seed, start + i): split calls give the same numbers
    parts = np.concatenate([mc.log_likelihood(images[:1], seed=0).nll, mc.log_likelihood(images[1:], seed=0, start=1).nll])
    np.testing.assert_allclose(parts, ll.nll, rtol=1e-9)
    # grey images for a grey model; the wrong size is a one-line error naming the adapter
    from genbench.errors import UserError

    with pytest.raises(UserError, match=r"diffusers:.*images are 4x4 but the model takes 8x8"):
        mc.log_likelihood(images[:, :4, :4])


def test_unavailable_bounds_say_why(tmp_path):
    latent = build_adapter(f"diffusers:{ic.dit_pipeline(tmp_path / 'dit')}")
    assert latent.likelihood_kind is LikelihoodKind.UNAVAILABLE and "latent model" in latent.likelihood_unavailable_reason
    learned = ic.ddpm_pipeline(tmp_path / "learned", size=8, channels=1, timesteps=T, variance="learned_range")
    g = build_adapter(f"diffusers:{learned}")
    assert g.likelihood_kind is LikelihoodKind.UNAVAILABLE and "learned variances" in g.likelihood_unavailable_reason
    cond = build_adapter(f"diffusers:{ic.ddpm_pipeline(tmp_path / 'c', size=8, channels=1, timesteps=T, classes=3)}")
    assert "no null class" in cond.likelihood_unavailable_reason
    assert cond.with_options(steps=2).sample(3, seed=0, batch_size=2).nfe_per_sample == 2  # labels 0, 1, 2
    assert np.isnan(latent.log_likelihood(np.zeros((2, 16, 16, 3), np.uint8)).nll).all()
