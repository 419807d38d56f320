"""The statistics cache: keys follow data, extractor and preprocessing; nothing cached from a failed pass."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import genbench  # noqa: F401  (before torchvision / clean-fid: installs the torchvision shim)
from genbench.errors import UserError
from genbench.features.build import build_extractor
from genbench.features.cache import default_cache_dir
from genbench.features.statistics import path_to_statistics
from tests.harness.features.helpers import digit_images, fresh_folder, tiny_torchscript, write_pngs

torch = pytest.importorskip("torch")


def test_cache_key_follows_data_and_extractor(data, tmp_path):
    folder = fresh_folder(tmp_path)
    cache = tmp_path / "cache"
    ex = build_extractor(f"torchscript:{data['net']}")
    s1 = path_to_statistics(folder, ex, cache_dir=cache)
    assert not s1.from_cache and Path(s1.cache_file).is_file()
    s2 = path_to_statistics(folder, ex, cache_dir=cache)
    assert s2.from_cache and s2.cache_file == s1.cache_file
    np.testing.assert_array_equal(s1.sigma, s2.sigma)

    # one image changes (same name, same size): a new entry, new statistics
    write_pngs(tmp_path / "f", digit_images(41, 1))  # overwrites img_000.png
    s3 = path_to_statistics(folder, ex, cache_dir=cache)
    assert not s3.from_cache and s3.cache_file != s1.cache_file
    assert not np.allclose(s3.mu, s1.mu)

    # another extractor (other weights), or another resize mode: other keys
    other = build_extractor(f"torchscript:{tiny_torchscript(tmp_path / 'other.pt', seed=1)}")
    s4 = path_to_statistics(folder, other, cache_dir=cache)
    s5 = path_to_statistics(folder, f"torchscript:{data['net']}", "legacy_pytorch", cache_dir=cache)
    keys = {s.cache_file for s in (s3, s4, s5)}
    assert len(keys) == 3 and not s4.from_cache and not s5.from_cache
    # and preprocessing options are part of the key
    s6 = path_to_statistics(folder, ex, cache_dir=cache, grey="convert")
    assert s6.cache_file not in keys
    # the default cache directory is used (and honoured) when none is given
    s7 = path_to_statistics(folder, ex)
    assert Path(s7.cache_file).parent == default_cache_dir()


def test_nothing_cached_from_a_failed_pass(data, tmp_path):
    folder = fresh_folder(tmp_path, n=5)
    (folder / "zz_broken.png").write_bytes((folder / "img_000.png").read_bytes()[:60])  # truncated, sorts last
    cache = tmp_path / "cache"
    with pytest.raises(UserError, match="zz_broken.png"):
        path_to_statistics(folder, f"torchscript:{data['net']}", cache_dir=cache)
    assert not cache.exists() or not any(cache.iterdir())

    (folder / "zz_broken.png").unlink()
    ex = build_extractor(f"torchscript:{data['net']}")

    def boom(*args, **kwargs):
        raise RuntimeError("extractor died half way")

    ex._forward = boom
    with pytest.raises(RuntimeError):
        path_to_statistics(folder, ex, cache_dir=cache)
    assert not cache.exists() or not any(cache.iterdir())
