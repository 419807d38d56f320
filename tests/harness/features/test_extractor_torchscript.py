"""``torchscript:FILE``: features independent of the batch size, its identity and modes, clear errors
for bad names and images."""
from __future__ import annotations

import numpy as np
import pytest

import genbench  # noqa: F401  (before torchvision / clean-fid: installs the torchvision shim)
from genbench.errors import UserError
from genbench.features.build import build_extractor
from genbench.features.weights import file_sha256
from genbench.registry import UnknownNameError
from tests.harness.features.helpers import digit_images

torch = pytest.importorskip("torch")


def test_torchscript_features_do_not_depend_on_batch_size(tiny_file):
    ex = build_extractor(f"torchscript:{tiny_file}")
    images = [digit_images(0, 5)[i] for i in range(5)] + [digit_images(5, 4, size=48)[i] for i in range(4)]
    ref = ex.features(images, batch_size=9)
    assert ref.shape == (9, 16) and ref.dtype == np.float64
    for bs in (1, 4):
        got = ex.features(images, batch_size=bs)
        assert np.max(np.abs(got - ref)) <= 1e-6 * np.max(np.abs(ref))


def test_torchscript_describe_and_modes(tiny_file):
    ex = build_extractor(f"torchscript:{tiny_file}", mode="legacy_pytorch")
    d = ex.describe()
    assert d["extractor"] == "torchscript:tiny.pt" and d["resize"] == "legacy_pytorch" and d["dim"] == 16
    assert d["weights_sha256"] == file_sha256(tiny_file)
    with pytest.raises(UserError, match="legacy_tensorflow"):
        build_extractor(f"torchscript:{tiny_file}", mode="legacy_tensorflow")
    with pytest.raises(UserError, match="unknown resize mode"):
        build_extractor(f"torchscript:{tiny_file}", mode="bilinear")


def test_bad_extractor_names(tmp_path, tiny_file):
    with pytest.raises(UserError, match="nope.pt"):
        build_extractor(f"torchscript:{tmp_path / 'nope.pt'}")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a module")
    with pytest.raises(UserError, match="junk.pt"):
        build_extractor(f"torchscript:{junk}")
    with pytest.raises(UnknownNameError, match="inception"):
        build_extractor("inceptoin")
    with pytest.raises(UserError, match="takes no option 'colour'"):
        build_extractor(f"torchscript:{tiny_file}", colour=True)


def test_images_must_be_rgb_uint8(tiny_file):
    ex = build_extractor(f"torchscript:{tiny_file}")
    with pytest.raises(UserError, match="replicate the channel"):
        ex.features(np.zeros((2, 8, 8, 1), np.uint8))
    with pytest.raises(UserError, match="uint8"):
        ex.features(np.zeros((2, 8, 8, 3), np.float32))
