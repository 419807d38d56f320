"""Quantisation of model outputs to uint8, by the papers' rules."""
from __future__ import annotations

import numpy as np
import pytest

import genbench  # noqa: F401  (before torchvision / clean-fid: installs the torchvision shim)
from genbench.errors import UserError

torch = pytest.importorskip("torch")


def test_quantisation_rules_are_the_papers_formulas():
    from genbench.features.quantise import float_images_to_uint8

    x = np.random.default_rng(5).uniform(-1.2, 1.2, (2, 4, 4, 3))
    t = torch.from_numpy(x)
    # DiT / LlamaGen: clamp(127.5 x + 128, 0, 255) then a truncating cast (round half up)
    dit = torch.clamp(127.5 * t + 128.0, 0, 255).to(torch.uint8).numpy()
    np.testing.assert_array_equal(float_images_to_uint8(x, "round"), dit)
    adm = ((t + 1) * 127.5).clamp(0, 255).to(torch.uint8).numpy()  # ADM's image_sample.py
    np.testing.assert_array_equal(float_images_to_uint8(x, "truncate"), adm)
    y = (x + 1) / 2
    mar = np.round(np.clip(y * 255, 0, 255)).astype(np.uint8)
    np.testing.assert_array_equal(float_images_to_uint8(y, "round01"), mar)
    assert np.mean(float_images_to_uint8(x, "truncate").astype(int) - float_images_to_uint8(x, "round")) < -0.3
    with pytest.raises(UserError, match="quantisation rule 'floor'"):
        float_images_to_uint8(x, "floor")
