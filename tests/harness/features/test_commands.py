"""``genbench fid`` / ``is`` against clean-fid and ADM; one-line errors with exit code 2."""
from __future__ import annotations

import json

import pytest

import genbench  # noqa: F401  (before torchvision / clean-fid: installs the torchvision shim)
from tests.harness.features.helpers import N, cli_main, digit_images, standin_outputs, write_pngs
from tests.harness.metrics.test_image import adm_inception_score, torch_fidelity_inception_score
from tests.reference import assert_matches_reference

torch = pytest.importorskip("torch")


def test_fid_matches_clean_fid(data, capsys, tmp_path):
    from cleanfid import fid as cfid

    net = torch.jit.load(str(data["net"])).eval()
    reference = cfid.compute_fid(str(data["a"]), str(data["b"]), mode="clean", custom_feat_extractor=net,
                                 num_workers=0, batch_size=8, device=torch.device("cpu"), verbose=False)
    argv = ["fid", str(data["a"]), str(data["b"]), "--extractor", f"torchscript:{data['net']}", "--mode", "clean",
            "--batch-size", "7", "--json", "--cache-dir", str(tmp_path / "cache")]
    assert cli_main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert reference > 1e-3
    assert_matches_reference(out["fid"], reference, rtol=1e-4, what="FID vs clean-fid compute_fid")
    assert {"extractor": "torchscript:tiny.pt", "mode": "clean", "n_a": N, "n_b": N, "sqrtm": "eigh",
            "dim": 16}.items() <= out.items()
    assert out["weights_sha256"] and len(out["weights_sha256"]) == 64
    # the clean-fid numerics too (scipy sqrtm), from the cache this time
    assert cli_main(argv + ["--sqrtm", "scipy_sqrtm"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["a_statistics"] == "cache"
    assert_matches_reference(again["fid"], reference, rtol=1e-6, what="FID (scipy sqrtm) vs clean-fid")


def test_cli_errors_exit_2_with_one_line(data, tmp_path, capsys):
    assert cli_main(["fid", str(tmp_path / "missing"), str(data["b"]), "--extractor", f"torchscript:{data['net']}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing" in err[0]


def test_genbench_is_follows_adm(standin, tmp_path, capsys):
    path, eager = standin
    folder = write_pngs(tmp_path / "twenty", digit_images(300, 20))
    assert cli_main(["is", str(folder), "--extractor", f"inception:{path}", "--trust-unknown", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    f, _ = standin_outputs(eager, digit_images(300, 20))
    w = eager.output.weight.detach().double().numpy()
    assert_matches_reference((r["is"], r["is_std"]), adm_inception_score(f @ w.T, split_size=5000), rtol=1e-4,
                             what="genbench is vs ADM's definition (one part of at most 5,000)")
    assert r["n"] == 20 and r["is_splits"] == 1 and len(r["weights_sha256"]) == 64
    # torch-fidelity's rule on request: 10 equal parts after its shuffle with seed 2020
    assert cli_main(["is", str(folder), "--extractor", f"inception:{path}", "--trust-unknown", "--json",
                     "--rule", "torch-fidelity", "--splits", "10", "--order", "given"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert_matches_reference((r["is"], r["is_std"]), torch_fidelity_inception_score(f @ w.T, 10), rtol=1e-4,
                             what="genbench is --rule torch-fidelity vs torch-fidelity's definition")
    assert r["is_splits"] == 10 and "seed 2020" in r["is_convention"]
