import json

import numpy as np
import pytest

from genbench import runner
from genbench.errors import UserError
from genbench.store import load


def _spec(**kw):
    base = dict(suites=["toy"], adapters=["fake-ar", "fake-masked", "fake-diffusion"], seeds=[0, 1], name="t")
    base.update(kw)
    return runner.RunSpec(**base)


def test_every_cell_is_recorded_with_provenance(tmp_path):
    out = tmp_path / "run"
    results = runner.run(_spec(), out, log=lambda m: None)
    assert len(results) == 6 and all(r.status == "ok" for r in results)
    frame = load(out)
    # mean pixel for all 6 cells, bits/dim for the 4 with a likelihood
    assert len(frame) == 6 + 4
    assert set(frame["paradigm"]) == {"autoregressive", "masked", "diffusion"}
    row = frame[(frame.adapter == "fake-masked") & (frame.metric == "bits_per_dim")].iloc[0]
    assert row["convention"] == {"kind": "upper_bound", "mc_samples": 8}
    assert row["stderr"] > 0 and row["higher_is_better"] == False  # noqa: E712
    ar = frame[(frame.adapter == "fake-ar") & (frame.metric == "bits_per_dim") & (frame.seed == 0)].iloc[0]
    # the exact NLL of Bernoulli(0.3) pixels: a real number, not a placeholder
    from tests.fakes import FakeAR

    imgs = FakeAR().sample(8, seed=0, batch_size=4).images
    assert ar["value"] == pytest.approx(FakeAR().exact_nll(imgs).sum() / (8 * 16) / np.log(2))
    for key in ("run_id", "suite", "task", "adapter", "paradigm", "modality", "metric", "value", "stderr", "n",
                "unit", "higher_is_better", "seed", "config_hash", "convention"):
        assert key in frame.columns
    manifest = json.loads((out / "manifest.json").read_text())
    prov = manifest["provenance"]
    assert manifest["status"] == "finished"
    for key in ("genbench_version", "git_commit", "packages", "device", "threads", "python"):
        assert key in prov
    assert prov["packages"]["torch"]


def test_config_hash_separates_settings_and_is_stable(tmp_path):
    a = _spec()
    assert a.config_hash() == _spec().config_hash()
    assert a.config_hash() != _spec(seeds=[0]).config_hash()
    assert a.config_hash() != _spec(suite_options={"toy": {"n_samples": 4}}).config_hash()


def test_a_failing_cell_is_recorded_and_the_run_goes_on(tmp_path):
    out = tmp_path / "run"
    results = runner.run(_spec(adapters=["fake-broken", "fake-ar"], seeds=[0]), out, log=lambda m: None)
    assert [r.status for r in results] == ["failed", "ok"]
    frame = load(out)
    failed = frame[frame.status == "failed"].iloc[0]
    assert failed["adapter"] == "fake-broken" and "always fails" in failed["error"]
    assert len(frame[frame.status == "ok"]) == 2


def test_metrics_before_a_crash_are_kept(tmp_path):
    out = tmp_path / "run"
    runner.run(_spec(suites=["crash_after_one"], adapters=["fake-ar"], seeds=[0]), out, log=lambda m: None)
    frame = load(out)
    assert list(frame.sort_values("status")["status"]) == ["failed", "ok"]
    assert frame[frame.status == "ok"].iloc[0]["metric"] == "first"


def test_resume_skips_finished_cells_and_retries_failed_ones(tmp_path, monkeypatch):
    out = tmp_path / "run"
    spec = _spec(adapters=["fake-broken", "fake-ar"], seeds=[0])
    runner.run(spec, out, log=lambda m: None)
    with pytest.raises(UserError, match="--resume"):
        runner.run(spec, out, log=lambda m: None)
    from tests import fakes

    # the broken model gets fixed; resume re-runs only its cell
    monkeypatch.setattr(fakes.FakeBroken, "sample", fakes.FakeAR.sample)
    logs = []
    results = runner.run(spec, out, resume=True, log=logs.append)
    assert [(r.adapter, r.status) for r in results] == [("fake-broken", "ok")]
    assert any(m.startswith("skip") and "fake-ar" in m for m in logs)
    frame = load(out)
    assert "failed" not in set(frame.status)  # the old failure was superseded
    assert len(load(out, latest=False)) == len(frame) + 1


def test_a_directory_with_another_run_is_refused_and_untouched(tmp_path):
    out = tmp_path / "run"
    runner.run(_spec(seeds=[0]), out, log=lambda m: None)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    with pytest.raises(UserError, match="different run"):
        runner.run(_spec(seeds=[5]), out, resume=True, log=lambda m: None)
    assert before == {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}


def test_run_file_mistakes_name_file_field_and_fix(tmp_path):
    f = tmp_path / "r.toml"
    f.write_text('suites = ["toy"]\nadapters = ["fake-ar"]\nseed = [1]\n')
    with pytest.raises(UserError, match=r"r.toml: unknown key\(s\) \['seed'\]; valid keys: .*seeds"):
        runner.load_run_file(f)
    f.write_text('suites = ["toy"]\nadapters = ["fake-ar"]\n[suite.toy]\nn_sample = 3\n')
    with pytest.raises(UserError, match=r"\[suite.toy\]; valid keys: \['batch_size', 'n_samples'\]"):
        runner.load_run_file(f).validate()
    f.write_text('suites = ["toi"]\nadapters = ["fake-ar"]\n')
    with pytest.raises(UserError, match="Did you mean 'toy'"):
        runner.load_run_file(f).validate()
    f.write_text('suites = "toy"\n')
    with pytest.raises(UserError, match="field 'suites'"):
        runner.load_run_file(f)
    f.write_text('suites = [\n')
    with pytest.raises(UserError, match="not valid TOML"):
        runner.load_run_file(f)


def test_likelihood_dataset_of_image_models_is_an_image_source(tmp_path):
    """``--dataset digits:val`` for an image model (the README's example) reaches the suite; a text
    dataset for image models, image data for text models and a missing folder are refused first."""
    from genbench.cli import main

    def spec(adapters, dataset):
        return _spec(suites=["likelihood"], adapters=adapters, seeds=[0],
                     suite_options={"likelihood": {"dataset": dataset}})

    for dataset in ("digits:val", "digits", "fashion-mnist:test", "hf:some/folder", str(tmp_path)):
        spec(["ar-digits"], dataset).validate()
    with pytest.raises(UserError, match="is text data, but \\['ar-digits'\\] are image models"):
        spec(["ar-digits"], "kjv:test").validate()
    with pytest.raises(UserError, match="is image data, but \\['ar-kjv'\\] are text models"):
        spec(["ar-digits", "ar-kjv"], "digits:val").validate()
    with pytest.raises(UserError, match="'nowhere/images' does not exist; image models take digits"):
        spec(["ar-digits"], "nowhere/images").validate()
    with pytest.raises(UserError, match="unknown dataset 'digits:val'"):
        spec(["ar-kjv"], "digits:val").validate()
    out = tmp_path / "run"
    assert main(["run", "--suite", "likelihood", "--adapter", "ar-digits", "--dataset", "digits:val",
                 "--set", "likelihood.max_examples=8", "--out", str(out)]) == 0
    bpd = load(out).set_index("metric").loc["bits_per_dim"]
    assert bpd.task == "digits:val" and bpd.n == 8 and bpd.convention["split"] == "val"


def test_run_file_options_reach_the_suite(tmp_path):
    f = tmp_path / "r.toml"
    f.write_text('name = "opt"\nsuites = ["toy"]\nadapters = ["fake-ar"]\nseeds = [2]\n'
                 '[suite.toy]\nn_samples = 5\n[adapter."fake-ar"]\nsteps = 2\n')
    spec = runner.load_run_file(f)
    runner.run(spec, tmp_path / "out", log=lambda m: None)
    frame = load(tmp_path / "out")
    assert set(frame.n) == {5} and set(frame.seed) == {2}


def test_a_sweep_expands_into_one_cell_per_setting(tmp_path):
    spec = _spec(adapters=["fake-masked"], seeds=[0],
                 adapter_options={"fake-masked": {"sweep": {"steps": [2, 8]}}})
    runner.run(spec, tmp_path / "out", log=lambda m: None)
    frame = load(tmp_path / "out")
    assert sorted(set(frame.adapter)) == ["fake-masked[steps=2]", "fake-masked[steps=8]"]
    assert set(frame.adapter_name) == {"fake-masked"}
    assert sorted(s["steps"] for s in frame.setting) == [2, 2, 8, 8]
    bad = _spec(adapter_options={"fake-ar": {"sweep": {"steps": 4}}})
    with pytest.raises(UserError, match="sweep.steps = \\[4, 8, 16\\]"):
        bad.validate()


def test_adapter_option_names_follow_options_up_the_class_hierarchy():
    from genbench.adapters.autoregressive import ARText

    names = runner.adapter_option_names(ARText)
    assert {"length", "context", "eval_batch_size", "kv_cache", "temperature"} <= names
    assert "path" not in names and "device" not in names
    assert runner.adapter_option_names(lambda **kw: None) is None  # takes anything: not checked


def test_suite_option_types_come_from_the_defaults(tmp_path):
    ok = _spec(suite_options={"toy": {"n_samples": 3, "batch_size": 2}})
    ok.validate()
    for bad, match in [({"n_samples": True}, "whole number"), ({"n_samples": 2.0}, "whole number"),
                       ({"batch_size": 0}, "positive")]:
        with pytest.raises(UserError, match=match):
            _spec(suite_options={"toy": bad}).validate()
    assert not (tmp_path / "x").exists()


def test_set_adapter_option_from_the_command_line(tmp_path):
    from genbench.cli import main

    out = tmp_path / "out"
    assert main(["run", "--suite", "toy", "--adapter", "fake-masked", "--set", "adapter.fake-masked.steps=2",
                 "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["spec"]["adapter_options"] == {"fake-masked": {"steps": 2}}
