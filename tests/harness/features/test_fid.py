"""sFID, IS, KID, precision/recall and the bootstrap interval, with their conventions."""
from __future__ import annotations

import json

import numpy as np
import pytest

import genbench  # noqa: F401  (before torchvision / clean-fid: installs the torchvision shim)
from genbench.errors import UserError
from genbench.features.commands import result_to_text
from genbench.features.extractor_inception import InceptionExtractor
from genbench.features.fid import compute_fid
from genbench.features.statistics import path_to_features, path_to_statistics
from genbench.metrics import image as image_metrics
from tests.harness.features.helpers import N, cli_main, digit_images, standin_outputs, tiny_torchscript
from tests.harness.metrics.test_image import adm_inception_score, naive_precision_recall
from tests.reference import assert_matches_reference

torch = pytest.importorskip("torch")


def _stats(features):
    return image_metrics.features_to_statistics(features)


def test_sfid_needs_spatial_statistics_on_both_sides(data, standin, tmp_path, capsys):
    path, eager = standin
    ex = InceptionExtractor(path=path, trust_unknown=True)
    pool_a, spatial_a = standin_outputs(eager, digit_images(0, N))
    pool_b, spatial_b = standin_outputs(eager, digit_images(200, N, shift=12))
    expected = image_metrics.statistics_to_fid(*_stats(spatial_a), *_stats(spatial_b))
    cache = tmp_path / "cache"
    r = compute_fid(data["a"], data["b"], ex, cache_dir=cache)
    assert r["sfid"] > 1e-3 and r["sfid_dim"] == 175 and "mixed_6/conv" in r["sfid_layer"]
    assert_matches_reference(r["sfid"], expected, rtol=1e-4, what="sFID vs the stand-in's own mixed_6.conv")
    assert_matches_reference(r["fid"], image_metrics.statistics_to_fid(*_stats(pool_a), *_stats(pool_b)), rtol=1e-4,
                             what="FID of the stand-in")
    again = compute_fid(data["a"], data["b"], ex, cache_dir=cache)
    assert again["a_statistics"] == "cache" and again["sfid"] == r["sfid"]  # spatial statistics are cached too
    assert "sFID" in result_to_text(r).splitlines()[1]

    # genbench stats keeps them; an ADM reference batch brings its own (mu_s, sigma_s)
    out = tmp_path / "a_stats.npz"
    assert cli_main(["stats", str(data["a"]), "--extractor", f"inception:{path}", "--trust-unknown", "--out", str(out),
                 "--no-cache"]) == 0
    assert "spatial 175-d" in capsys.readouterr().out
    assert compute_fid(out, data["b"], ex, use_cache=False)["sfid"] == pytest.approx(r["sfid"], rel=1e-12)
    adm = tmp_path / "VIRTUAL_standin.npz"
    mu_s, sigma_s = _stats(spatial_b)
    np.savez(adm, mu=_stats(pool_b)[0], sigma=_stats(pool_b)[1], mu_s=mu_s, sigma_s=sigma_s,
             arr_0=digit_images(200, N, shift=12))
    r_adm = compute_fid(data["a"], adm, ex, use_cache=False)
    assert_matches_reference(r_adm["sfid"], expected, rtol=1e-4, what="sFID against ADM-style spatial statistics")
    # two statistics files: their own spatial statistics give the sFID, whatever the extractor
    adm_a = tmp_path / "VIRTUAL_standin_a.npz"
    np.savez(adm_a, mu=_stats(pool_a)[0], sigma=_stats(pool_a)[1], mu_s=_stats(spatial_a)[0],
             sigma_s=_stats(spatial_a)[1])
    twelve = f"torchscript:{tiny_torchscript(tmp_path / 'twelve.pt', dim=12)}"  # 12-d, no spatial features
    r_files = compute_fid(adm_a, adm, twelve, use_cache=False)
    assert r_files["sfid"] == pytest.approx(expected, rel=1e-9)

    # said clearly when not: a side without spatial statistics, an extractor without spatial features
    clean = tmp_path / "cleanfid_style.npz"
    np.savez(clean, mu=_stats(pool_b)[0], sigma=_stats(pool_b)[1])
    r_clean = compute_fid(data["a"], clean, ex, use_cache=False)
    assert r_clean["sfid"] is None and "cleanfid_style.npz" in r_clean["sfid_note"]
    assert "sFID n/a" in result_to_text(r_clean)
    with pytest.raises(UserError, match=r"sFID asked for.*cleanfid_style\.npz"):
        compute_fid(data["a"], clean, ex, use_cache=False, metrics="fid,sfid")
    r_ts = compute_fid(data["a"], data["b"], f"torchscript:{data['net']}", use_cache=False)
    assert r_ts["sfid"] is None and "no spatial (sFID) features" in r_ts["sfid_note"]
    # spatial statistics of the wrong dimension: an error naming the file and the field
    wrong = tmp_path / "wrong_spatial.npz"
    np.savez(wrong, mu=_stats(pool_b)[0], sigma=_stats(pool_b)[1], mu_s=np.zeros(2023), sigma_s=np.eye(2023))
    with pytest.raises(UserError, match=r"wrong_spatial\.npz.*dimension 2023 \(field mu_s\).*175-d"):
        compute_fid(data["a"], wrong, ex, use_cache=False)


def test_is_kid_precision_recall_and_bootstrap(data, standin, tmp_path, capsys):
    from cleanfid import fid as cfid

    path, eager = standin
    argv = ["fid", str(data["a"]), str(data["b"]), "--extractor", f"inception:{path}", "--trust-unknown",
            "--metrics", "is,kid,pr", "--bootstrap", "20", "--cache-dir", str(tmp_path / "cache")]
    assert cli_main(argv + ["--json"]) == 0
    captured = capsys.readouterr()
    r = json.loads(captured.out)
    assert "50,000" in captured.err and r["warnings"]  # an Inception FID from 24 samples
    fa, _ = standin_outputs(eager, digit_images(0, N))
    fb, _ = standin_outputs(eager, digit_images(200, N, shift=12))
    w = eager.output.weight.detach().double().numpy()
    # IS: ADM's parts of 5,000 rows (one part here) of the samples' logits without bias (the
    # split arithmetic is checked against ADM's definition in tests/harness/metrics/test_image.py)
    assert_matches_reference((r["is"], r["is_std"]), adm_inception_score(fa @ w.T, split_size=5000),
                             rtol=1e-4, what="IS")
    assert r["is_splits"] == 1 and r["is_n"] == N and r["is_rule"] == "adm" and "5000 rows" in r["is_convention"]
    # the error bar of KID covers the samples' variability; clean-fid's std over subsets is kept beside it
    assert r["kid_stderr"] > 0 and r["kid_bootstrap"] == 200 and r["kid_std"] > 0
    np.random.seed(0)  # clean-fid draws its subsets from numpy's global state
    assert_matches_reference(r["kid"], cfid.kernel_distance(fa, fb), rtol=1e-4, what="KID vs clean-fid kernel_distance")
    assert (r["kid_subsets"], r["kid_subset_size"]) == (100, N)
    assert_matches_reference((r["precision"], r["recall"]), naive_precision_recall(fb, fa, 3), 0, atol=1 / N,
                             what="precision/recall (k=3) vs the definition")
    ours_a = path_to_features(data["a"], f"inception:{path}", trust_unknown=True)
    boot = image_metrics.bootstrap_fid(ours_a, statistics2=_stats(path_to_features(
        data["b"], f"inception:{path}", trust_unknown=True)), n_boot=20, seed=0, resample="first")
    assert_matches_reference(r["fid_ci"], [boot.low, boot.high], rtol=1e-9, what="bootstrap interval")
    assert r["fid_bootstrap"] == 20 and r["n_a"] == r["n_b"] == N

    assert cli_main(argv) == 0
    text = capsys.readouterr().out
    for word in ("FID", "bootstrap interval", "sFID", "IS", "KID", "precision"):
        assert word in text
    # and no warning for an extractor that is not ImageNet's Inception
    assert compute_fid(data["a"], data["b"], f"torchscript:{data['net']}", use_cache=False)["warnings"] == []


def test_metrics_errors_name_the_file(data, tmp_path, capsys):
    net = f"torchscript:{data['net']}"
    assert cli_main(["fid", str(data["a"]), str(data["b"]), "--extractor", net, "--metrics", "fid,fjd"]) == 2
    assert "unknown metric(s) fjd" in capsys.readouterr().err
    with pytest.raises(UserError, match="IS: extractor 'torchscript' has no classifier logits"):
        compute_fid(data["a"], data["b"], net, metrics="is", use_cache=False)
    s = path_to_statistics(data["b"], net, use_cache=False)
    only_stats = tmp_path / "only_stats.npz"
    np.savez(only_stats, mu=s.mu, sigma=s.sigma)
    with pytest.raises(UserError, match=r"only_stats\.npz: KID needs the images"):
        compute_fid(data["a"], only_stats, net, metrics="kid", use_cache=False)
    r = compute_fid(data["a"], only_stats, net, bootstrap=5, use_cache=False)  # the samples suffice
    assert len(r["fid_ci"]) == 2
