"""``genbench fid`` against clean-fid on the same folders and extractor; the statistics cache;
every bad input a UserError that names the file."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

import genbench  # noqa: F401  (before clean-fid: installs the torchvision shim)
from genbench import fidtool
from genbench.errors import UserError
from genbench.extractors import build_extractor
from genbench.metrics import image as image_metrics
from tests.harness.test_extractors import digit_images, tiny_torchscript, write_pngs
from tests.reference import assert_matches_reference

torch = pytest.importorskip("torch")
N = 24


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """No test writes to ~/.cache: the default cache lives in the test's tmp dir."""
    monkeypatch.setenv(fidtool.CACHE_ENV, str(tmp_path / "default-cache"))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("fid")
    a = write_pngs(root / "a", digit_images(0, N))
    b = write_pngs(root / "b", digit_images(200, N, shift=12))
    net = tiny_torchscript(root / "tiny.pt")
    return {"root": root, "a": a, "b": b, "net": net}


def _fresh_folder(tmp_path: Path, name: str = "f", n: int = 6) -> Path:
    return write_pngs(tmp_path / name, digit_images(40, n))


def _cli(argv: list[str]) -> int:
    """``genbench.cli.main`` once it has the fid/stats commands, else fidtool's own entry point."""
    import argparse

    from genbench import cli

    subs = [a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    wired = any("fid" in a.choices for a in subs)
    return (cli.main if wired else fidtool.main)(argv)


# --- against clean-fid ----------------------------------------------------------------------------
def test_fid_matches_clean_fid(data, capsys, tmp_path):
    from cleanfid import fid as cfid

    net = torch.jit.load(str(data["net"])).eval()
    reference = cfid.compute_fid(str(data["a"]), str(data["b"]), mode="clean", custom_feat_extractor=net,
                                 num_workers=0, batch_size=8, device=torch.device("cpu"), verbose=False)
    argv = ["fid", str(data["a"]), str(data["b"]), "--extractor", f"torchscript:{data['net']}", "--mode", "clean",
            "--batch-size", "7", "--json", "--cache-dir", str(tmp_path / "cache")]
    assert _cli(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert reference > 1e-3
    assert_matches_reference(out["fid"], reference, rtol=1e-4, what="FID vs clean-fid compute_fid")
    assert {"extractor": f"torchscript:tiny.pt", "mode": "clean", "n_a": N, "n_b": N, "sqrtm": "eigh",
            "dim": 16}.items() <= out.items()
    assert out["weights_sha256"] and len(out["weights_sha256"]) == 64
    # the clean-fid numerics too (scipy sqrtm), from the cache this time
    assert _cli(argv + ["--sqrtm", "scipy_sqrtm"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["a_statistics"] == "cache"
    assert_matches_reference(again["fid"], reference, rtol=1e-6, what="FID (scipy sqrtm) vs clean-fid")


def test_features_and_kid_match_clean_fid(data):
    from cleanfid import fid as cfid

    net = torch.jit.load(str(data["net"])).eval()
    kw = dict(num_workers=0, batch_size=8, device=torch.device("cpu"), mode="clean", verbose=False)
    ref_a = cfid.get_folder_features(str(data["a"]), net, **kw)
    ref_b = cfid.get_folder_features(str(data["b"]), net, **kw)
    ours_a = fidtool.path_to_features(data["a"], f"torchscript:{data['net']}", "clean", batch_size=5)
    ours_b = fidtool.path_to_features(data["b"], f"torchscript:{data['net']}", "clean", batch_size=5)
    assert_matches_reference(ours_a, ref_a, rtol=1e-5, atol=1e-6, what="features vs clean-fid get_folder_features")
    kid, _ = image_metrics.features_to_kid(ours_a, ours_b, num_subsets=20, max_subset_size=1000, seed=0)
    np.random.seed(0)
    assert_matches_reference(kid, cfid.kernel_distance(ours_a, ours_b, num_subsets=20), rtol=1e-9,
                             what="KID vs clean-fid kernel_distance, same features")
    # on its own float32 features clean-fid's kernel sums run in float32: equal to ~1e-4
    assert_matches_reference(kid, cfid.kernel_distance(ref_a, ref_b, num_subsets=20), rtol=1e-3,
                             what="KID vs clean-fid kernel_distance on its float32 features")


# --- cache -------------------------------------------------------------------------------------------
def test_cache_key_follows_data_and_extractor(data, tmp_path):
    folder = _fresh_folder(tmp_path)
    cache = tmp_path / "cache"
    ex = build_extractor(f"torchscript:{data['net']}")
    s1 = fidtool.path_to_statistics(folder, ex, cache_dir=cache)
    assert not s1.from_cache and Path(s1.cache_file).is_file()
    s2 = fidtool.path_to_statistics(folder, ex, cache_dir=cache)
    assert s2.from_cache and s2.cache_file == s1.cache_file
    np.testing.assert_array_equal(s1.sigma, s2.sigma)

    # one image changes (same name, same size): a new entry, new statistics
    write_pngs(tmp_path / "f", digit_images(41, 1))  # overwrites img_000.png
    s3 = fidtool.path_to_statistics(folder, ex, cache_dir=cache)
    assert not s3.from_cache and s3.cache_file != s1.cache_file
    assert not np.allclose(s3.mu, s1.mu)

    # another extractor (other weights), or another resize mode: other keys
    other = build_extractor(f"torchscript:{tiny_torchscript(tmp_path / 'other.pt', seed=1)}")
    s4 = fidtool.path_to_statistics(folder, other, cache_dir=cache)
    s5 = fidtool.path_to_statistics(folder, f"torchscript:{data['net']}", "legacy_pytorch", cache_dir=cache)
    keys = {s.cache_file for s in (s3, s4, s5)}
    assert len(keys) == 3 and not s4.from_cache and not s5.from_cache
    # and preprocessing options are part of the key
    s6 = fidtool.path_to_statistics(folder, ex, cache_dir=cache, grey="convert")
    assert s6.cache_file not in keys
    # the default cache directory is used (and honoured) when none is given
    s7 = fidtool.path_to_statistics(folder, ex)
    assert Path(s7.cache_file).parent == fidtool.default_cache_dir()


def test_nothing_cached_from_a_failed_pass(data, tmp_path):
    folder = _fresh_folder(tmp_path, n=5)
    (folder / "zz_broken.png").write_bytes((folder / "img_000.png").read_bytes()[:60])  # truncated, sorts last
    cache = tmp_path / "cache"
    with pytest.raises(UserError, match="zz_broken.png"):
        fidtool.path_to_statistics(folder, f"torchscript:{data['net']}", cache_dir=cache)
    assert not cache.exists() or not any(cache.iterdir())

    (folder / "zz_broken.png").unlink()
    ex = build_extractor(f"torchscript:{data['net']}")

    def boom(*args, **kwargs):
        raise RuntimeError("extractor died half way")

    ex._run = boom
    with pytest.raises(RuntimeError):
        fidtool.path_to_statistics(folder, ex, cache_dir=cache)
    assert not cache.exists() or not any(cache.iterdir())


# --- sources: npz files and data sets ----------------------------------------------------------------------
def test_stats_file_round_trip_and_foreign_files(data, tmp_path, capsys, monkeypatch):
    net = f"torchscript:{data['net']}"
    out = tmp_path / "a_stats.npz"
    assert _cli(["stats", str(data["a"]), "--extractor", net, "--out", str(out), "--no-cache"]) == 0
    capsys.readouterr()
    direct = fidtool.compute_fid(data["a"], data["b"], net, use_cache=False)["fid"]
    via_file = fidtool.compute_fid(out, data["b"], net, use_cache=False)
    assert via_file["fid"] == pytest.approx(direct, rel=1e-12) and via_file["n_a"] == N

    # the file is refused for another extractor, naming the file and what differs
    other = f"torchscript:{tiny_torchscript(tmp_path / 'other.pt', seed=1)}"
    with pytest.raises(UserError, match=r"a_stats\.npz.*another extractor.*weights_sha256"):
        fidtool.path_to_statistics(out, other)
    with pytest.raises(UserError, match=r"a_stats\.npz.*another extractor.*resize"):
        fidtool.path_to_statistics(out, net, "legacy_pytorch")

    # clean-fid's and ADM's files: mu/sigma (ADM's also mu_s, sigma_s, arr_0)
    s = fidtool.path_to_statistics(data["b"], net, use_cache=False)
    clean = tmp_path / "cleanfid_custom.npz"
    np.savez(clean, mu=s.mu, sigma=s.sigma)
    assert fidtool.compute_fid(data["a"], clean, net, use_cache=False)["fid"] == pytest.approx(direct, rel=1e-12)
    adm = tmp_path / "VIRTUAL_ref.npz"
    images_b = digit_images(200, N, shift=12)
    np.savez(adm, mu=s.mu, sigma=s.sigma, mu_s=np.zeros(3), sigma_s=np.eye(3), arr_0=images_b)
    r = fidtool.compute_fid(data["a"], adm, net, use_cache=False)
    assert r["fid"] == pytest.approx(direct, rel=1e-12) and r["n_b"] is None
    assert "only its dimension" in r["b_statistics"]
    # the same file's images, recomputed: the very same statistics (PNG is lossless)
    r2 = fidtool.compute_fid(data["a"], adm, net, use_cache=False, npz_prefer="images")
    assert r2["fid"] == pytest.approx(direct, rel=1e-9) and r2["n_b"] == N
    # an ADM / DiT sample batch: arr_0 only (streamed in chunks, here of 5 images; compressed too)
    monkeypatch.setattr(fidtool, "NPZ_CHUNK", 5)
    samples = tmp_path / "samples.npz"
    np.savez_compressed(samples, arr_0=images_b, arr_1=np.arange(N))
    assert fidtool.compute_fid(data["a"], samples, net, use_cache=False)["fid"] == pytest.approx(direct, rel=1e-9)


def test_wrong_dimension_and_bad_npz(data, tmp_path):
    net = f"torchscript:{data['net']}"
    wrong = tmp_path / "wrong_dim.npz"
    np.savez(wrong, mu=np.zeros(2048), sigma=np.eye(2048))
    with pytest.raises(UserError, match=r"wrong_dim\.npz.*dimension 2048.*16-d"):
        fidtool.compute_fid(data["a"], wrong, net, use_cache=False)
    odd = tmp_path / "odd.npz"
    np.savez(odd, features=np.zeros((3, 16)))
    with pytest.raises(UserError, match=r"odd\.npz.*expected mu and sigma"):
        fidtool.path_to_statistics(odd, net)
    floats = tmp_path / "floats.npz"
    np.savez(floats, arr_0=np.zeros((2, 8, 8, 3), np.float32))
    with pytest.raises(UserError, match=r"floats\.npz.*arr_0.*uint8"):
        fidtool.path_to_statistics(floats, net)
    text = tmp_path / "notes.txt"
    text.write_text("hi")
    with pytest.raises(UserError, match="notes.txt"):
        fidtool.path_to_statistics(text, net)
    with pytest.raises(UserError, match="no such file or folder.*digits"):
        fidtool.path_to_statistics(tmp_path / "nowhere", net)


def test_dataset_names(data, tmp_path):
    net = f"torchscript:{data['net']}"
    s = fidtool.path_to_statistics("digits:val", net, cache_dir=tmp_path / "c")
    assert s.n == 200 and s.source == "digits:val" and "replicated" in s.preprocessing["grey"]
    with pytest.raises(UserError, match="unknown split"):
        fidtool.path_to_statistics("digits:everything", net, cache_dir=tmp_path / "c")


# --- bad image folders ------------------------------------------------------------------------------------
def test_bad_folders_name_the_file(data, tmp_path):
    from PIL import Image

    net = f"torchscript:{data['net']}"

    def stats(folder, **kw):
        return fidtool.path_to_statistics(folder, net, use_cache=False, **kw)

    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "readme.txt").write_text("no images here")
    with pytest.raises(UserError, match=r"empty.*empty folder"):
        stats(empty)

    corrupt = _fresh_folder(tmp_path, "corrupt", n=3)
    (corrupt / "img_001.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    with pytest.raises(UserError, match=r"img_001\.png.*corrupt"):
        stats(corrupt)

    truncated = _fresh_folder(tmp_path, "truncated", n=3)
    raw = (truncated / "img_002.png").read_bytes()
    (truncated / "img_002.png").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(UserError, match=r"img_002\.png"):
        stats(truncated)

    grey = _fresh_folder(tmp_path, "grey", n=3)
    Image.fromarray(digit_images(50, 1)[0][..., 0]).save(grey / "img_001.png")  # mode L among RGB
    with pytest.raises(UserError, match=r"img_001\.png.*greyscale.*--grey convert"):
        stats(grey)
    assert stats(grey, grey="convert").n == 3  # explicit conversion is allowed

    alpha = _fresh_folder(tmp_path, "alpha", n=3)
    rgba = np.concatenate([digit_images(50, 1)[0], np.full((32, 32, 1), 100, np.uint8)], axis=-1)
    Image.fromarray(rgba).save(alpha / "img_000.png")
    with pytest.raises(UserError, match=r"img_000\.png.*transparency"):
        stats(alpha)
    assert stats(alpha, alpha="drop").n == 3

    mixed = _fresh_folder(tmp_path, "mixed", n=3)
    write_pngs(mixed / "deeper", digit_images(60, 2, size=48), prefix="big")
    assert stats(mixed).n == 5  # FID resizes each image: mixed sizes are fine (and recursive)
    from genbench.imagefiles import ImageFolder, load_image_folder

    with pytest.raises(UserError, match=r"img_000\.png.*32x32.*big_000\.png.*48x48"):
        load_image_folder(mixed)
    assert ImageFolder(mixed).relative_names()[0] == "deeper/big_000.png"


def test_cli_errors_exit_2_with_one_line(data, tmp_path, capsys):
    assert _cli(["fid", str(tmp_path / "missing"), str(data["b"]), "--extractor", f"torchscript:{data['net']}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing" in err[0]
