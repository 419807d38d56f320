"""``genbench fid`` against clean-fid on the same folders and extractor; the statistics cache;
every bad input a UserError that names the file."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import genbench  # noqa: F401  (before clean-fid: installs the torchvision shim)
from genbench import fidtool
from genbench.errors import UserError
from genbench.extractors import build_extractor
from genbench.metrics import image as image_metrics
from tests.harness.metrics.test_image import adm_inception_score, naive_precision_recall
from tests.harness.test_extractors import (digit_images, standin_outputs, stylegan_like_inception, tiny_torchscript,
                                           write_pngs)
from tests.reference import assert_matches_reference

torch = pytest.importorskip("torch")
N = 24



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
    assert {"extractor": "torchscript:tiny.pt", "mode": "clean", "n_a": N, "n_b": N, "sqrtm": "eigh",
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


# --- sFID, IS, KID, precision/recall, bootstrap --------------------------------------------------------------
@pytest.fixture(scope="module")
def standin(data):
    """StyleGAN2-ADA's Inception interface in miniature (random weights): pool, spatial, logits."""
    path = data["root"] / "stylegan-like.pt"
    return path, stylegan_like_inception(path)


def _stats(features):
    return image_metrics.features_to_statistics(features)


def test_sfid_needs_spatial_statistics_on_both_sides(data, standin, tmp_path, capsys):
    from genbench.extractors import InceptionExtractor

    path, eager = standin
    ex = InceptionExtractor(path=path, trust_unknown=True)
    pool_a, spatial_a = standin_outputs(eager, digit_images(0, N))
    pool_b, spatial_b = standin_outputs(eager, digit_images(200, N, shift=12))
    expected = image_metrics.statistics_to_fid(*_stats(spatial_a), *_stats(spatial_b))
    cache = tmp_path / "cache"
    r = fidtool.compute_fid(data["a"], data["b"], ex, cache_dir=cache)
    assert r["sfid"] > 1e-3 and r["sfid_dim"] == 175 and "mixed_6/conv" in r["sfid_layer"]
    assert_matches_reference(r["sfid"], expected, rtol=1e-4, what="sFID vs the stand-in's own mixed_6.conv")
    assert_matches_reference(r["fid"], image_metrics.statistics_to_fid(*_stats(pool_a), *_stats(pool_b)), rtol=1e-4,
                             what="FID of the stand-in")
    again = fidtool.compute_fid(data["a"], data["b"], ex, cache_dir=cache)
    assert again["a_statistics"] == "cache" and again["sfid"] == r["sfid"]  # spatial statistics are cached too
    assert "sFID" in fidtool.result_to_text(r).splitlines()[1]

    # genbench stats keeps them; an ADM reference batch brings its own (mu_s, sigma_s)
    out = tmp_path / "a_stats.npz"
    assert _cli(["stats", str(data["a"]), "--extractor", f"inception:{path}", "--trust-unknown", "--out", str(out),
                 "--no-cache"]) == 0
    assert "spatial 175-d" in capsys.readouterr().out
    assert fidtool.compute_fid(out, data["b"], ex, use_cache=False)["sfid"] == pytest.approx(r["sfid"], rel=1e-12)
    adm = tmp_path / "VIRTUAL_standin.npz"
    mu_s, sigma_s = _stats(spatial_b)
    np.savez(adm, mu=_stats(pool_b)[0], sigma=_stats(pool_b)[1], mu_s=mu_s, sigma_s=sigma_s,
             arr_0=digit_images(200, N, shift=12))
    r_adm = fidtool.compute_fid(data["a"], adm, ex, use_cache=False)
    assert_matches_reference(r_adm["sfid"], expected, rtol=1e-4, what="sFID against ADM-style spatial statistics")
    # two statistics files: their own spatial statistics give the sFID, whatever the extractor
    adm_a = tmp_path / "VIRTUAL_standin_a.npz"
    np.savez(adm_a, mu=_stats(pool_a)[0], sigma=_stats(pool_a)[1], mu_s=_stats(spatial_a)[0],
             sigma_s=_stats(spatial_a)[1])
    twelve = f"torchscript:{tiny_torchscript(tmp_path / 'twelve.pt', dim=12)}"  # 12-d, no spatial features
    r_files = fidtool.compute_fid(adm_a, adm, twelve, use_cache=False)
    assert r_files["sfid"] == pytest.approx(expected, rel=1e-9)

    # said clearly when not: a side without spatial statistics, an extractor without spatial features
    clean = tmp_path / "cleanfid_style.npz"
    np.savez(clean, mu=_stats(pool_b)[0], sigma=_stats(pool_b)[1])
    r_clean = fidtool.compute_fid(data["a"], clean, ex, use_cache=False)
    assert r_clean["sfid"] is None and "cleanfid_style.npz" in r_clean["sfid_note"]
    assert "sFID n/a" in fidtool.result_to_text(r_clean)
    with pytest.raises(UserError, match=r"sFID asked for.*cleanfid_style\.npz"):
        fidtool.compute_fid(data["a"], clean, ex, use_cache=False, metrics="fid,sfid")
    r_ts = fidtool.compute_fid(data["a"], data["b"], f"torchscript:{data['net']}", use_cache=False)
    assert r_ts["sfid"] is None and "no spatial (sFID) features" in r_ts["sfid_note"]
    # spatial statistics of the wrong dimension: an error naming the file and the field
    wrong = tmp_path / "wrong_spatial.npz"
    np.savez(wrong, mu=_stats(pool_b)[0], sigma=_stats(pool_b)[1], mu_s=np.zeros(2023), sigma_s=np.eye(2023))
    with pytest.raises(UserError, match=r"wrong_spatial\.npz.*dimension 2023 \(field mu_s\).*175-d"):
        fidtool.compute_fid(data["a"], wrong, ex, use_cache=False)


def test_is_kid_precision_recall_and_bootstrap(data, standin, tmp_path, capsys):
    from cleanfid import fid as cfid

    path, eager = standin
    argv = ["fid", str(data["a"]), str(data["b"]), "--extractor", f"inception:{path}", "--trust-unknown",
            "--metrics", "is,kid,pr", "--bootstrap", "20", "--cache-dir", str(tmp_path / "cache")]
    assert _cli(argv + ["--json"]) == 0
    captured = capsys.readouterr()
    r = json.loads(captured.out)
    assert "50,000" in captured.err and r["warnings"]  # an Inception FID from 24 samples
    fa, _ = standin_outputs(eager, digit_images(0, N))
    fb, _ = standin_outputs(eager, digit_images(200, N, shift=12))
    w = eager.output.weight.detach().double().numpy()
    # IS: consecutive splits of the samples' logits without bias (the split arithmetic is checked
    # against ADM's definition in tests/harness/metrics/test_image.py and below)
    assert_matches_reference((r["is"], r["is_std"]), image_metrics.logits_to_inception_score(fa @ w.T, splits=10),
                             rtol=1e-4, what="IS")
    assert r["is_splits"] == 10 and r["is_n"] == N
    np.random.seed(0)  # clean-fid draws its subsets from numpy's global state
    assert_matches_reference(r["kid"], cfid.kernel_distance(fa, fb), rtol=1e-4, what="KID vs clean-fid kernel_distance")
    assert (r["kid_subsets"], r["kid_subset_size"]) == (100, N)
    assert_matches_reference((r["precision"], r["recall"]), naive_precision_recall(fb, fa, 3), 0, atol=1 / N,
                             what="precision/recall (k=3) vs the definition")
    ours_a = fidtool.path_to_features(data["a"], f"inception:{path}", trust_unknown=True)
    boot = image_metrics.bootstrap_fid(ours_a, statistics2=_stats(fidtool.path_to_features(
        data["b"], f"inception:{path}", trust_unknown=True)), n_boot=20, seed=0, resample="first")
    assert_matches_reference(r["fid_ci"], [boot.low, boot.high], rtol=1e-9, what="bootstrap interval")
    assert r["fid_bootstrap"] == 20 and r["n_a"] == r["n_b"] == N

    assert _cli(argv) == 0
    text = capsys.readouterr().out
    for word in ("FID", "bootstrap interval", "sFID", "IS", "KID", "precision"):
        assert word in text
    # and no warning for an extractor that is not ImageNet's Inception
    assert fidtool.compute_fid(data["a"], data["b"], f"torchscript:{data['net']}", use_cache=False)["warnings"] == []


def test_genbench_is_follows_adm(standin, tmp_path, capsys):
    path, eager = standin
    folder = write_pngs(tmp_path / "twenty", digit_images(300, 20))
    assert _cli(["is", str(folder), "--extractor", f"inception:{path}", "--trust-unknown", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    f, _ = standin_outputs(eager, digit_images(300, 20))
    w = eager.output.weight.detach().double().numpy()
    assert_matches_reference((r["is"], r["is_std"]), adm_inception_score(f @ w.T, split_size=2), rtol=1e-4,
                             what="genbench is vs ADM's definition (10 splits of 2)")
    assert r["n"] == 20 and r["is_splits"] == 10 and len(r["weights_sha256"]) == 64


def test_metrics_errors_name_the_file(data, tmp_path, capsys):
    net = f"torchscript:{data['net']}"
    assert _cli(["fid", str(data["a"]), str(data["b"]), "--extractor", net, "--metrics", "fid,fjd"]) == 2
    assert "unknown metric(s) fjd" in capsys.readouterr().err
    with pytest.raises(UserError, match="IS: extractor 'torchscript' has no classifier logits"):
        fidtool.compute_fid(data["a"], data["b"], net, metrics="is", use_cache=False)
    s = fidtool.path_to_statistics(data["b"], net, use_cache=False)
    only_stats = tmp_path / "only_stats.npz"
    np.savez(only_stats, mu=s.mu, sigma=s.sigma)
    with pytest.raises(UserError, match=r"only_stats\.npz: KID needs the images"):
        fidtool.compute_fid(data["a"], only_stats, net, metrics="kid", use_cache=False)
    r = fidtool.compute_fid(data["a"], only_stats, net, bootstrap=5, use_cache=False)  # the samples suffice
    assert len(r["fid_ci"]) == 2


# --- data sets that `datasets` loads, and ADM's centre crop --------------------------------------------------
def _save_hf(folder: Path, splits: dict[str, np.ndarray]) -> Path:
    import datasets
    from PIL import Image

    features = datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64")})
    dd = datasets.DatasetDict({name: datasets.Dataset.from_dict(
        {"image": [Image.fromarray(im) for im in images], "label": list(range(len(images)))}, features=features)
        for name, images in splits.items()})
    dd.save_to_disk(str(folder))
    return folder


def test_hf_datasets_sources(data, tmp_path):
    net = f"torchscript:{data['net']}"
    images_a, images_b = digit_images(0, N), digit_images(200, N, shift=12)
    folder_a = fidtool.path_to_statistics(data["a"], net, use_cache=False)
    saved = _save_hf(tmp_path / "saved", {"test": images_a, "train": images_b})
    cache = tmp_path / "cache"
    s = fidtool.path_to_statistics(f"hf:{saved}:test", net, cache_dir=cache)
    assert s.kind == "hf" and s.n == N and s.source == f"hf:{saved}:test"
    assert_matches_reference(s.mu, folder_a.mu, rtol=1e-12, what="hf save_to_disk vs folder, mu")
    assert_matches_reference(s.sigma, folder_a.sigma, rtol=1e-12, atol=1e-15, what="hf vs folder, sigma")
    assert fidtool.path_to_statistics(f"hf:{saved}:test", net, cache_dir=cache).from_cache
    with pytest.raises(UserError, match=r"splits test, train; name one"):
        fidtool.path_to_statistics(f"hf:{saved}", net, use_cache=False)
    with pytest.raises(UserError, match=r"no split 'val'"):
        fidtool.path_to_statistics(f"hf:{saved}:val", net, use_cache=False)

    # an imagefolder (one subfolder per split): same images, same statistics; an edit is a new key
    imagefolder = tmp_path / "imagefolder"
    write_pngs(imagefolder / "train", images_a)
    write_pngs(imagefolder / "test", images_b)
    t = fidtool.path_to_statistics(f"hf:{imagefolder}:train", net, cache_dir=cache)
    assert_matches_reference(t.mu, folder_a.mu, rtol=1e-12, what="hf imagefolder vs folder")
    write_pngs(imagefolder / "train", digit_images(77, 1))
    t2 = fidtool.path_to_statistics(f"hf:{imagefolder}:train", net, cache_dir=cache)
    assert not t2.from_cache and t2.cache_file != t.cache_file

    # a bad row is named; a hub data set that is not cached is refused offline
    broken = _save_hf(tmp_path / "broken", {"test": images_a[:3]})
    import datasets

    ds = datasets.load_from_disk(str(broken))["test"].cast_column("image", datasets.Image(decode=False))
    ds = ds.map(lambda row, i: {"image": {"bytes": row["image"]["bytes"][:40] if i == 1 else row["image"]["bytes"],
                                          "path": None}}, with_indices=True)
    ds.save_to_disk(str(tmp_path / "broken_rows"))
    with pytest.raises(UserError, match=r"broken_rows row 1.*(truncated|corrupt)"):
        fidtool.path_to_statistics(f"hf:{tmp_path / 'broken_rows'}", net, use_cache=False)
    with pytest.raises(UserError, match="cannot load no-such-org/no-such-set offline"):
        fidtool.path_to_statistics("hf:no-such-org/no-such-set", net, use_cache=False)


def test_center_crop_is_adms_and_keys_the_cache(data, tmp_path):
    from genbench.imagefiles import center_crop_arr

    net = f"torchscript:{data['net']}"
    images = digit_images(0, 6, size=48)[:, :, 4:44]  # 40 wide, 48 high
    source = write_pngs(tmp_path / "uncropped", images)
    cropped = write_pngs(tmp_path / "cropped", np.stack([center_crop_arr(im, 16) for im in images]))
    cache = tmp_path / "cache"
    s = fidtool.path_to_statistics(source, net, cache_dir=cache, center_crop=16)
    ref = fidtool.path_to_statistics(cropped, net, use_cache=False)
    assert_matches_reference(s.mu, ref.mu, rtol=1e-12, what="centre-cropped folder vs folder of crops")
    plain = fidtool.path_to_statistics(source, net, cache_dir=cache)
    assert plain.cache_file != s.cache_file and not np.allclose(plain.mu, s.mu)
    saved = _save_hf(tmp_path / "saved", {"validation": images})
    h = fidtool.path_to_statistics(f"hf:{saved}", net, use_cache=False, center_crop=16)
    assert_matches_reference(h.mu, ref.mu, rtol=1e-12, what="centre-cropped hf data set")
