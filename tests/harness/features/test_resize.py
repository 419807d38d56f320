"""clean-fid's resizes reproduced exactly (clean, legacy_pytorch, clip)."""
from __future__ import annotations

import numpy as np
import pytest

import genbench  # noqa: F401  (before torchvision / clean-fid: installs the torchvision shim)
from genbench.features.resize import clean_resize, clip_resize, legacy_pytorch_resize
from tests.reference import assert_matches_reference

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("shape", [(8, 8), (32, 32), (45, 61), (160, 100), (299, 299), (400, 320)])
def test_clean_resize_is_clean_fids_resize(shape):
    from cleanfid.resize import build_resizer

    img = np.random.default_rng(1).integers(0, 256, (*shape, 3), dtype=np.uint8)
    ref = build_resizer("clean")(img).transpose(2, 0, 1)  # (3, 299, 299) float32
    pillow = clean_resize(img, use_pillow=True)
    assert pillow.dtype == np.float32
    assert_matches_reference(pillow, ref, rtol=0, what="clean resize (Pillow) vs clean-fid")  # bit for bit
    # the default path (banded matrix products for small images): Pillow's arithmetic with
    # float64 sums in another order, so at most one float32 ulp (2**-15 near 255) on rare pixels
    ours = clean_resize(img)
    assert_matches_reference(ours, ref, rtol=0, atol=2.0**-15, what="clean resize (banded) vs clean-fid")
    assert np.mean(ours != ref) < 1e-5


def test_legacy_pytorch_resize_is_clean_fids_resize():
    from cleanfid.resize import build_resizer

    img = np.random.default_rng(2).integers(0, 256, (37, 50, 3), dtype=np.uint8)
    ref = build_resizer("legacy_pytorch")(img)
    assert_matches_reference(legacy_pytorch_resize(img).transpose(1, 2, 0), ref, rtol=0, atol=1e-4,
                             what="legacy_pytorch resize vs clean-fid")


@pytest.mark.parametrize("shape", [(8, 8), (37, 50), (300, 200), (32, 32), (33, 45)])
def test_clip_resize_is_clean_fids_clip_preprocessing(shape):
    """clean-fid's img_preprocess_clip: torchvision Resize(size, BICUBIC) + CenterCrop(size) on Pillow."""
    from PIL import Image
    from torchvision import transforms

    img = np.random.default_rng(4).integers(0, 256, (*shape, 3), dtype=np.uint8)
    size = 32
    t = transforms.Compose([transforms.Resize(size, interpolation=transforms.InterpolationMode.BICUBIC),
                            transforms.CenterCrop(size)])
    ref = np.asarray(t(Image.fromarray(img))).clip(0, 255).astype(np.uint8).transpose(2, 0, 1)
    assert_matches_reference(clip_resize(img, size), ref, rtol=0, what="clip resize vs torchvision")


# --- the same resizes on torch tensors (what runs on the accelerator) ------------------------------------
@pytest.mark.parametrize("shape", [(8, 8), (32, 32), (45, 61), (160, 100), (256, 256), (400, 320), (320, 400),
                                   (600, 350), (532, 529)])
def test_clean_resize_on_tensors_is_clean_fids_resize(shape):
    """The matrix resize on (CPU) tensors: clean-fid's (Pillow's) float32 values but for a rare last bit,
    for every size (also those the host path hands to Pillow itself)."""
    from cleanfid.resize import build_resizer

    from genbench.features.resize import clean_resize_tensor

    images = np.random.default_rng(6).integers(0, 256, (2, *shape, 3), dtype=np.uint8)
    got = clean_resize_tensor(torch.from_numpy(images)).numpy()
    assert got.shape == (2, 3, 299, 299) and got.dtype == np.float32
    ref = np.stack([build_resizer("clean")(im).transpose(2, 0, 1) for im in images])
    assert_matches_reference(got, ref, rtol=0, atol=2.0**-15, what="clean resize on tensors vs clean-fid")
    assert np.mean(got != ref) < 1e-5
    host = np.stack([clean_resize(im) for im in images])  # the host path genbench runs without an accelerator
    assert_matches_reference(got, host, rtol=0, atol=2.0**-15, what="clean resize on tensors vs the host path")


def test_legacy_pytorch_resize_on_tensors_is_the_host_resize():
    from genbench.features.resize import legacy_pytorch_resize_tensor

    images = np.random.default_rng(7).integers(0, 256, (3, 37, 50, 3), dtype=np.uint8)
    got = legacy_pytorch_resize_tensor(torch.from_numpy(images)).numpy()
    np.testing.assert_array_equal(got, np.stack([legacy_pytorch_resize(im) for im in images]))
