"""ADM's centre crop."""
from __future__ import annotations

import numpy as np
import pytest

import genbench  # noqa: F401  (before torchvision / clean-fid: installs the torchvision shim)

torch = pytest.importorskip("torch")


def test_center_crop_arr_steps():
    from PIL import Image

    from genbench.features.crop import center_crop_arr

    img = np.random.default_rng(3).integers(0, 256, (200, 300, 3), dtype=np.uint8)
    out = center_crop_arr(img, 64)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    # by hand: 300x200 -> BOX to 150x100 (short side 200 >= 128) -> BICUBIC to 96x64 -> crop x 16..80
    step = Image.fromarray(img).resize((150, 100), resample=Image.BOX)
    step = step.resize((96, 64), resample=Image.BICUBIC)
    np.testing.assert_array_equal(out, np.asarray(step)[:, 16:80])
    assert center_crop_arr(Image.fromarray(img), 64).tolist() == out.tolist()
    assert center_crop_arr(img[..., :1], 32).shape == (32, 32, 1)
