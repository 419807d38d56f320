"""Statistics of sources: features equal clean-fid's; statistics files (genbench's, clean-fid's, ADM's)
read and checked."""
from __future__ import annotations

import numpy as np
import pytest

import genbench  # noqa: F401  (before torchvision / clean-fid: installs the torchvision shim)
from genbench.errors import UserError
from genbench.features import npz
from genbench.features.fid import compute_fid
from genbench.features.statistics import path_to_features, path_to_statistics
from genbench.metrics import image as image_metrics
from tests.harness.features.helpers import N, cli_main, digit_images, tiny_torchscript
from tests.reference import assert_matches_reference

torch = pytest.importorskip("torch")


def test_features_and_kid_match_clean_fid(data):
    from cleanfid import fid as cfid

    net = torch.jit.load(str(data["net"])).eval()
    kw = dict(num_workers=0, batch_size=8, device=torch.device("cpu"), mode="clean", verbose=False)
    ref_a = cfid.get_folder_features(str(data["a"]), net, **kw)
    ref_b = cfid.get_folder_features(str(data["b"]), net, **kw)
    ours_a = path_to_features(data["a"], f"torchscript:{data['net']}", "clean", batch_size=5)
    ours_b = path_to_features(data["b"], f"torchscript:{data['net']}", "clean", batch_size=5)
    assert_matches_reference(ours_a, ref_a, rtol=1e-5, atol=1e-6, what="features vs clean-fid get_folder_features")
    kid, _ = image_metrics.features_to_kid(ours_a, ours_b, num_subsets=20, max_subset_size=1000, seed=0)
    np.random.seed(0)
    assert_matches_reference(kid, cfid.kernel_distance(ours_a, ours_b, num_subsets=20), rtol=1e-9,
                             what="KID vs clean-fid kernel_distance, same features")
    # on its own float32 features clean-fid's kernel sums run in float32: equal to ~1e-4
    assert_matches_reference(kid, cfid.kernel_distance(ref_a, ref_b, num_subsets=20), rtol=1e-3,
                             what="KID vs clean-fid kernel_distance on its float32 features")


def test_stats_file_round_trip_and_foreign_files(data, tmp_path, capsys, monkeypatch):
    net = f"torchscript:{data['net']}"
    out = tmp_path / "a_stats.npz"
    assert cli_main(["stats", str(data["a"]), "--extractor", net, "--out", str(out), "--no-cache"]) == 0
    capsys.readouterr()
    direct = compute_fid(data["a"], data["b"], net, use_cache=False)["fid"]
    via_file = compute_fid(out, data["b"], net, use_cache=False)
    assert via_file["fid"] == pytest.approx(direct, rel=1e-12) and via_file["n_a"] == N

    # the file is refused for another extractor, naming the file and what differs
    other = f"torchscript:{tiny_torchscript(tmp_path / 'other.pt', seed=1)}"
    with pytest.raises(UserError, match=r"a_stats\.npz.*another extractor.*weights_sha256"):
        path_to_statistics(out, other)
    with pytest.raises(UserError, match=r"a_stats\.npz.*another extractor.*resize"):
        path_to_statistics(out, net, "legacy_pytorch")

    # clean-fid's and ADM's files: mu/sigma (ADM's also mu_s, sigma_s, arr_0)
    s = path_to_statistics(data["b"], net, use_cache=False)
    clean = tmp_path / "cleanfid_custom.npz"
    np.savez(clean, mu=s.mu, sigma=s.sigma)
    assert compute_fid(data["a"], clean, net, use_cache=False)["fid"] == pytest.approx(direct, rel=1e-12)
    adm = tmp_path / "VIRTUAL_ref.npz"
    images_b = digit_images(200, N, shift=12)
    np.savez(adm, mu=s.mu, sigma=s.sigma, mu_s=np.zeros(3), sigma_s=np.eye(3), arr_0=images_b)
    r = compute_fid(data["a"], adm, net, use_cache=False)
    assert r["fid"] == pytest.approx(direct, rel=1e-12) and r["n_b"] is None
    assert "only its dimension" in r["b_statistics"]
    # the same file's images, recomputed: the very same statistics (PNG is lossless)
    r2 = compute_fid(data["a"], adm, net, use_cache=False, npz_prefer="images")
    assert r2["fid"] == pytest.approx(direct, rel=1e-9) and r2["n_b"] == N
    # an ADM / DiT sample batch: arr_0 only (streamed in chunks, here of 5 images; compressed too)
    monkeypatch.setattr(npz, "NPZ_CHUNK", 5)
    samples = tmp_path / "samples.npz"
    np.savez_compressed(samples, arr_0=images_b, arr_1=np.arange(N))
    assert compute_fid(data["a"], samples, net, use_cache=False)["fid"] == pytest.approx(direct, rel=1e-9)


def test_wrong_dimension_and_bad_npz(data, tmp_path):
    net = f"torchscript:{data['net']}"
    wrong = tmp_path / "wrong_dim.npz"
    np.savez(wrong, mu=np.zeros(2048), sigma=np.eye(2048))
    with pytest.raises(UserError, match=r"wrong_dim\.npz.*dimension 2048.*16-d"):
        compute_fid(data["a"], wrong, net, use_cache=False)
    odd = tmp_path / "odd.npz"
    np.savez(odd, features=np.zeros((3, 16)))
    with pytest.raises(UserError, match=r"odd\.npz.*expected mu and sigma"):
        path_to_statistics(odd, net)
    floats = tmp_path / "floats.npz"
    np.savez(floats, arr_0=np.zeros((2, 8, 8, 3), np.float32))
    with pytest.raises(UserError, match=r"floats\.npz.*arr_0.*uint8"):
        path_to_statistics(floats, net)
    text = tmp_path / "notes.txt"
    text.write_text("hi")
    with pytest.raises(UserError, match="notes.txt"):
        path_to_statistics(text, net)
    with pytest.raises(UserError, match="no such file or folder.*digits"):
        path_to_statistics(tmp_path / "nowhere", net)


def test_one_session_across_sources_gives_each_source_alone_its_statistics(data, standin, tmp_path, monkeypatch):
    """compute_fid's two sources (and more) in one streamed pass through ONE decode session: the
    very statistics and kept rows of one source at a time; with the sums on the device (the CUDA
    path, run here on CPU tensors) the same to 1e-12."""
    from genbench.features import pipeline
    from genbench.features.build import build_extractor
    from genbench.features.extractor_inception import InceptionExtractor
    from genbench.features.statistics import paths_to_statistics

    npz_path = tmp_path / "samples.npz"
    np.savez(npz_path, arr_0=digit_images(40, 7, size=40))
    sessions = []
    real_session = pipeline._session
    monkeypatch.setattr(pipeline, "_session", lambda *a, **k: sessions.append(1) or real_session(*a, **k))
    monkeypatch.setattr("genbench.features.accumulate.STREAM_IMAGES", 10)  # several pieces per source
    ex = build_extractor(f"torchscript:{data['net']}")
    paths = [data["a"], data["b"], npz_path]
    for workers in (0, 2):
        sessions.clear()
        together = paths_to_statistics(paths, ex, use_cache=False, keep_features=[True, False, True],
                                       feature_cap=[None, None, 5], batch_size=4, workers=workers)
        assert len(sessions) == 1
        alone = [path_to_statistics(p, ex, use_cache=False, keep_features=keep, feature_cap=cap, batch_size=4,
                                    workers=workers) for p, keep, cap in zip(paths, (True, False, True), (None, None, 5))]
        assert len(sessions) == 1 + len(paths)
        for t, s in zip(together, alone):
            assert t.n == s.n and t.source == s.source
            np.testing.assert_array_equal(t.mu, s.mu)
            np.testing.assert_array_equal(t.sigma, s.sigma)
            assert (t.features is None) == (s.features is None)
            if s.features is not None:
                np.testing.assert_array_equal(t.features, s.features)
    ex.device_statistics = True
    on_device = paths_to_statistics(paths, ex, use_cache=False, batch_size=4)
    for t, s in zip(on_device, alone):
        for ours, ref in ((t.mu, s.mu), (t.sigma, s.sigma)):
            assert float(np.abs(ours - ref).max() / np.abs(ref).max()) < 1e-12
    # sFID's spatial statistics ride along; a statistics file needs no pass and keeps its place
    path, _ = standin
    inc = InceptionExtractor(path=path, trust_unknown=True)
    stats_file = tmp_path / "b_stats.npz"
    ref = path_to_statistics(data["b"], inc, use_cache=False)
    np.savez(stats_file, mu=ref.mu, sigma=ref.sigma)
    a_alone = path_to_statistics(data["a"], inc, use_cache=False)
    sessions.clear()
    a_both, b_file = paths_to_statistics([data["a"], stats_file], inc, use_cache=False)
    assert len(sessions) == 1 and b_file.kind == "stats_npz" and a_both.has_spatial
    np.testing.assert_array_equal(a_both.sigma_s, a_alone.sigma_s)
    inc.device_statistics = True
    a_dev = paths_to_statistics([data["a"]], inc, use_cache=False)[0]
    assert float(np.abs(a_dev.sigma_s - a_alone.sigma_s).max() / np.abs(a_alone.sigma_s).max()) < 1e-12


def test_a_bad_second_source_stops_before_any_image_is_decoded(data, tmp_path, monkeypatch):
    from genbench.features import pipeline
    from genbench.features.build import build_extractor

    def no_decoding(*a, **k):
        raise AssertionError("decoded before the second source was checked")

    monkeypatch.setattr(pipeline, "_session", no_decoding)
    with pytest.raises(UserError, match=r"nowhere.*no such file or folder"):
        compute_fid(data["a"], tmp_path / "nowhere", f"torchscript:{data['net']}", use_cache=False)
    ex = build_extractor(f"torchscript:{data['net']}")
    monkeypatch.undo()
    ex.device_statistics = True  # the device path checks finiteness once, at the end of the stream
    ex._forward = lambda x: torch.full((x.shape[0], 4), float("nan"))
    with pytest.raises(UserError, match="returned NaN or inf"):
        compute_fid(data["a"], data["b"], ex, use_cache=False)
