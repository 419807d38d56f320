"""Real image generators of every paradigm through ``genbench run``: tiny random checkpoints of a
DDPM, a class-conditional DiT on a VAE, ImageGPT, token-ar and token-masked, saved with
``save_pretrained``, over image_quality (an image-folder reference, a TorchScript extractor),
speed and likelihood; NFE per sample; one load per checkpoint; the same images at two batch
sizes; one-line errors."""
from __future__ import annotations

import json
import weakref
from pathlib import Path

import numpy as np
import pytest

from genbench.cli import main
from genbench.errors import UserError
from genbench.registry import build_adapter
from tests.adapters import image_checkpoints as ic
from tests.harness.features.helpers import digit_images, tiny_torchscript, write_pngs


@pytest.fixture(scope="module")
def ck(tmp_path_factory):
    root = tmp_path_factory.mktemp("ck")
    return {"ddpm": ic.ddpm_pipeline(root / "ddpm", timesteps=50),
            "ddpm8": ic.ddpm_pipeline(root / "ddpm8", size=8, channels=1, timesteps=8),
            "dit": ic.dit_pipeline(root / "dit", classes=5),
            "igpt": ic.imagegpt(root / "igpt"),
            "tar": ic.token_ar(root / "tar"),
            "tmask": ic.token_masked(root / "tmask"),
            "reference": write_pngs(root / "reference", digit_images(0, 8, size=16)),
            "net": tiny_torchscript(root / "tiny.pt"),
            "root": root}


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]


def _adapters(ck, *keys):
    kind = {"ddpm": "diffusers", "ddpm8": "diffusers", "dit": "diffusers", "igpt": "hf-imagegpt",
            "tar": "token-ar", "tmask": "token-masked"}
    return [f"{kind[k]}:{ck[k]}" for k in keys]


def test_every_family_runs_image_quality_speed_and_likelihood(ck, tmp_path, capsys):
    adapters = _adapters(ck, "ddpm", "dit", "igpt", "tar", "tmask")
    run = tmp_path / "run.toml"
    run.write_text(f"""
name = "families"
suites = ["image_quality", "speed"]
adapters = {json.dumps(adapters)}
[suite.image_quality]
reference = "{ck['reference']}"
extractor = "torchscript:{ck['net']}"
extractor_mode = "clean"
n_samples = 6
batch_size = 6
kid_subset_size = 6
[suite.speed]
batch_size = 2
repeats = 1
latency_repeats = 1
flops = false
[adapter."{adapters[0]}"]
steps = 3
[adapter."{adapters[1]}"]
steps = 2
guidance_scale = 3.0
[adapter."{adapters[4]}"]
steps = 4
guidance_scale = 2.0
""")
    out = tmp_path / "out"
    assert main(["run", str(run), "--out", str(out)]) == 0, capsys.readouterr().err
    records = _records(out)
    assert all(r["status"] == "ok" for r in records)
    nfe = {r["adapter"]: r["value"] for r in records if r["metric"] == "nfe_per_sample"}
    # steps; 2 x steps with guidance; one evaluation per code (16) or pixel (64); 2 x steps for guided MaskGIT
    assert nfe == {adapters[0]: 3, adapters[1]: 4, adapters[2]: 64, adapters[3]: 16, adapters[4]: 8}
    for a in adapters:
        got = {r["metric"] for r in records if r["adapter"] == a}
        assert {"fid", "kid", "precision", "recall", "samples_per_s", "latency_s"} <= got, (a, got)
        fid = next(r for r in records if r["adapter"] == a and r["metric"] == "fid")
        assert fid["convention"]["quantisation"] == "round (reported by the adapter)"
        assert fid["convention"]["n_samples"] == 6 and fid["convention"]["extractor"].startswith("torchscript")

    # likelihood on the digits test split (8x8 grey): the bound, exact bits per token, the ELBO; DiT says why not
    out2 = tmp_path / "out2"
    args = ["run", "--suite", "likelihood", "--out", str(out2), "--set", "likelihood.max_examples=3"]
    for a in _adapters(ck, "ddpm8", "dit", "igpt", "tar", "tmask"):
        args += ["--adapter", a]
    assert main(args) == 0
    captured = capsys.readouterr().out
    assert f"n/a   likelihood x {_adapters(ck, 'dit')[0]}: likelihood_kind is unavailable: " in captured
    assert "is a latent model" in captured
    got = {(r["adapter"].split(":")[0], r["metric"]): r for r in _records(out2) if r["metric"].startswith("bits")}
    ddpm = got[("diffusers", "bits_per_dim")]
    assert ddpm["convention"]["kind"] == "upper_bound" and ddpm["convention"]["levels"] == 256 and ddpm["stderr"] > 0
    assert got[("hf-imagegpt", "bits_per_token")]["convention"]["kind"] == "exact"
    assert got[("token-ar", "bits_per_token")]["convention"]["kind"] == "exact"
    assert got[("token-masked", "bits_per_token")]["convention"]["kind"] == "upper_bound"
    assert "colour-cluster" in got[("hf-imagegpt", "bits_per_token")]["convention"]["unit_is"]


def test_a_sweep_loads_each_checkpoint_once(ck, tmp_path, monkeypatch):
    from genbench import runner
    from genbench.adapters.diffusers_pipeline import DiffusersPipeline

    loads, alive = [], []
    real_init = DiffusersPipeline.__init__

    def counting_init(self, *a, **kw):
        alive.append(sum(r() is not None for r in loads))  # models still held when this one loads
        loads.append(weakref.ref(self))
        real_init(self, *a, **kw)

    monkeypatch.setattr(DiffusersPipeline, "__init__", counting_init)
    spec = runner.spec_from_dict({
        "suites": ["speed"], "adapters": _adapters(ck, "ddpm8", "dit"),
        "suite": {"speed": {"batch_size": 1, "repeats": 1, "latency_repeats": 1, "flops": False}},
        "adapter": {_adapters(ck, "ddpm8")[0]: {"sweep": {"steps": [1, 2], "scheduler": ["ddim", "euler", "heun"]}},
                    _adapters(ck, "dit")[0]: {"steps": 1, "sweep": {"guidance_scale": [1.0, 2.0]}}}})
    results = runner.run(spec, tmp_path / "sweep", log=lambda m: None)
    assert len(results) == 8 and all(r.status == "ok" for r in results)
    assert len(loads) == 2 and alive == [0, 0]  # one load per checkpoint, released before the next loads
    nfe = {r["adapter"].split("[")[1]: r["value"] for r in _records(tmp_path / "sweep")
           if r["metric"] == "nfe_per_sample"}
    assert nfe["steps=2,scheduler=ddim]"] == 2 and nfe["steps=2,scheduler=heun]"] == 3  # Heun: 2 x steps - 1
    assert nfe["guidance_scale=2.0]"] == 2 and nfe["guidance_scale=1.0]"] == 1


@pytest.mark.parametrize("key,options", [("ddpm", {"steps": 3, "scheduler": "ddpm"}),
                                         ("dit", {"steps": 2, "guidance_scale": 2.0}),
                                         ("igpt", {"top_k": 8}), ("tar", {"guidance_scale": 1.5, "top_p": 0.9}),
                                         ("tmask", {"steps": 4})])
def test_same_seed_three_batch_sizes_same_images(ck, key, options):
    g = build_adapter(_adapters(ck, key)[0], **options)
    labels = None if key in ("ddpm", "igpt") else np.array([2, 0, 1, 1, 2], dtype=np.int64)
    a = g.sample(5, seed=3, batch_size=5, condition=labels).images
    for batch_size in (2, 1):
        b = g.sample(5, seed=3, batch_size=batch_size, condition=labels).images
        # float rounding of batched convolutions may move a pixel at a rounding tie by one level
        diff = np.abs(a.astype(int) - b.astype(int))
        assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
    assert not np.array_equal(a, g.sample(5, seed=4, batch_size=5, condition=labels).images)


def test_one_line_errors_name_the_adapter_and_option(ck, tmp_path, capsys):
    def error(*args):
        assert main(["run", "--suite", "speed", "--out", str(tmp_path / "e"), *args]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and not (tmp_path / "e").exists()
        return err

    assert "diffusers: pipeline folder /nonexistent does not exist" in error("--adapter", "diffusers:/nonexistent")
    odd = tmp_path / "sd"
    odd.mkdir()
    (odd / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline",
                                                      "unet": ["diffusers", "UNet2DConditionModel"],
                                                      "text_encoder": ["transformers", "CLIPTextModel"],
                                                      "scheduler": ["diffusers", "PNDMScheduler"]}))
    assert "StableDiffusionPipeline" in error("--adapter", f"diffusers:{odd}")
    novq = tmp_path / "novq"
    ic.token_ar(novq)
    import shutil

    shutil.rmtree(novq / "vq")
    capsys.readouterr()
    err = error("--adapter", f"token-ar:{novq}")
    assert err.startswith("genbench: error: token-ar: ") and "has no vq/" in err
    run = tmp_path / "g.toml"
    run.write_text(f'suites = ["speed"]\nadapters = ["diffusers:{ck["ddpm8"]}"]\n'
                   f'[adapter."diffusers:{ck["ddpm8"]}"]\nguidance_scale = 2.0\n')
    assert main(["run", str(run), "--out", str(tmp_path / "e")]) == 2
    assert "guidance_scale=2.0 needs a class-conditional model" in capsys.readouterr().err
    g = build_adapter(_adapters(ck, "dit")[0], steps=1)
    with pytest.raises(UserError, match=r"diffusers:.*class label 7 is out of range: the model has 5 classes"):
        g.sample(2, seed=0, condition=np.array([0, 7]))
    with pytest.raises(UserError, match="eta=0.5 is DDIM's"):
        g.with_options(scheduler="euler", eta=0.5)


def test_readme_run_files_use_real_suites_and_adapter_options():
    import inspect
    import re
    import tomllib

    from genbench import runner
    from genbench.registry import ADAPTERS, SUITES, split_adapter_spec

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    files = [tomllib.loads(block) for block in re.findall(r"```toml\n(.*?)```", readme, re.S) if "adapters =" in block]
    names = {split_adapter_spec(a)[0] for f in files for a in f["adapters"]}
    assert {"diffusers", "hf-imagegpt", "token-ar"} <= names
    for data in files:
        spec = runner.spec_from_dict(data, source="README.md")
        for suite, options in spec.suite_options.items():
            assert set(options) <= set(SUITES.get(suite).options), (suite, options)
        for variant in runner.adapter_variants(spec):
            factory = ADAPTERS.get(split_adapter_spec(variant.spec)[0])
            assert {k for k, _ in variant.options} <= set(inspect.signature(factory).parameters), variant


@pytest.mark.parametrize("key,options", [("ddpm8", {"eval_batch_size": 4, "mc_samples": 4}),
                                         ("igpt", {"batch_size": 2}), ("tar", {"batch_size": 2}),
                                         ("tmask", {"batch_size": 4, "mc_samples": 4})])
def test_likelihood_reads_back_once_per_call(ck, key, options):
    """The bound or the exact NLL of 6 images, in several batches, is read back from the device
    once per call, never per batch (on an accelerator each read would hold the
    host until the device caught up; counted on the CPU: tests/host_reads.py)."""
    from tests.host_reads import HostReads

    g = build_adapter(_adapters(ck, key)[0], **options)
    images = digit_images(0, 6, size=8)  # (6, 8, 8, 3); ddpm8 takes one channel
    images = images[..., :1].copy() if key == "ddpm8" else images
    g.log_likelihood(images[:2], seed=0)
    with HostReads() as reads:
        g.log_likelihood(images, seed=0)
    # the token models also read their images' VQ codes once, before scoring
    assert reads.count == 0 and reads.copies <= (2 if key in ("tar", "tmask") else 1), (reads.ops, reads.where)
