from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness.features.helpers import (N, digit_images, private_cache,  # noqa: F401  (autouse here)
                                            stylegan_like_inception, tiny_torchscript, write_pngs)


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory) -> Path:
    return tiny_torchscript(tmp_path_factory.mktemp("net") / "tiny.pt")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Two folders of N PNGs and a tiny TorchScript extractor."""
    root = tmp_path_factory.mktemp("fid")
    a = write_pngs(root / "a", digit_images(0, N))
    b = write_pngs(root / "b", digit_images(200, N, shift=12))
    net = tiny_torchscript(root / "tiny.pt")
    return {"root": root, "a": a, "b": b, "net": net}


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    """StyleGAN2-ADA's Inception interface in miniature (random weights): pool, spatial, logits."""
    path = tmp_path_factory.mktemp("standin") / "stylegan-like.pt"
    return path, stylegan_like_inception(path)
