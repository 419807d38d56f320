"""image_quality with several encoders (a torchscript stand-in for Inception, a tiny DINOv2, a tiny
CLIP in CMMD's variant): one sampling pass, every metric per encoder in the store, and whether
the models' ranking agrees across encoders."""
from __future__ import annotations

import json

import numpy as np
import pytest

import genbench  # noqa: F401  (before clean-fid: installs the torchvision shim)
from genbench.errors import UserError
from genbench.interfaces import Generator, Samples
from genbench.registry import ADAPTERS
from genbench.suite import SuiteContext
from genbench.suites.image_quality import ImageQuality
# private_cache (autouse): a statistics cache in each test's tmp dir
from tests.harness.features.helpers import (digit_images, dinov2_reference_features, private_cache,  # noqa: F401
                                            tiny_clip, tiny_dinov2, tiny_torchscript, write_pngs)
from tests.reference import assert_matches_reference

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
N = 12


class NoisyDigits(Generator):
    """Digits with Gaussian pixel noise of ``noise`` grey levels: more noise, worse samples."""

    name = "noisy-digits"
    paradigm = "diffusion"
    modality = "image"
    noise = 8.0
    calls = 0

    def __init__(self, path=None, *, device: str = "cpu"):
        pass

    def sample(self, n, *, seed, batch_size=64, condition=None, steps=None, start=0):
        type(self).calls += 1
        rng = np.random.default_rng([seed, start])  # samples start..start+n-1 of the run
        x = digit_images(300 + start, n).astype(np.float64) + rng.normal(0, self.noise, (n, 32, 32, 3))
        return Samples(images=np.clip(np.rint(x), 0, 255).astype(np.uint8), nfe=n, nfe_per_sample=1.0)


class VeryNoisyDigits(NoisyDigits):
    name = "very-noisy-digits"
    noise = 90.0


for _g in (NoisyDigits, VeryNoisyDigits):
    ADAPTERS.register(_g.name, _g)


@pytest.fixture(scope="module")
def encoders(tmp_path_factory):
    root = tmp_path_factory.mktemp("encoders")
    cfg, weights = tiny_clip(root)
    return {"reference": write_pngs(root / "reference", digit_images(100, N)),
            "net": tiny_torchscript(root / "tiny.pt"), "dinov2": tiny_dinov2(root / "dinov2"),
            "clip": f"clip:{cfg}:{weights}:cmmd"}


def _options(encoders, **over):
    return {**ImageQuality.options, "reference": str(encoders["reference"]), "n_samples": N, "batch_size": 6,
            "sample_chunk": 6, "extractors": [f"torchscript:{encoders['net']}", f"dinov2:{encoders['dinov2']}",
                                              encoders["clip"]],
            "trust_unknown": True, "kid_subset_size": 1000, **over}


def test_every_encoder_records_its_metrics_and_the_ranking_is_compared(encoders, tmp_path):
    from genbench import runner
    from genbench.reports.ranking import ranking_agreement

    spec = runner.RunSpec(suites=["image_quality"], adapters=[NoisyDigits.name, VeryNoisyDigits.name],
                          suite_options={"image_quality": _options(encoders)})
    NoisyDigits.calls = VeryNoisyDigits.calls = 0
    out = tmp_path / "run"
    results = runner.run(spec, out, log=lambda *a: None)
    assert [r.status for r in results] == ["ok", "ok"], results
    assert NoisyDigits.calls + VeryNoisyDigits.calls == 4  # two chunks per model, drawn once for three encoders
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    per_model = {}
    for r in records:
        if r.get("metric"):
            per_model.setdefault(r["adapter"], {})[r["metric"]] = r
    for model, got in per_model.items():
        assert {"fid", "fd_dinov2", "cmmd", "density", "coverage", "density_dinov2", "coverage_dinov2",
                "kid_dinov2", "precision_dinov2", "fd_clip", "density_clip"} <= set(got), (model, sorted(got))
        assert got["fid"]["convention"]["extractor"].startswith("torchscript:")
        assert got["fd_dinov2"]["convention"]["extractor"] == "dinov2"
        assert got["fd_dinov2"]["convention"]["resize"] == "pil_bicubic"
        assert got["cmmd"]["convention"]["embeddings"] == "L2-normalised"
        assert got["density"]["convention"]["k"] == 5 and "Naeem" in got["density"]["convention"]["definition"]
        assert got["precision"]["convention"]["k"] == 3  # ADM's protocol keeps its k

    assert per_model[NoisyDigits.name]["fd_dinov2"]["n"] == N
    assert per_model[NoisyDigits.name]["fd_dinov2"]["convention"]["n_reference"] == N

    agreement = ranking_agreement(records)
    assert agreement["metrics"] == ["fid", "fd_dinov2", "fd_clip", "cmmd"]
    assert agreement["models"] == sorted([NoisyDigits.name, VeryNoisyDigits.name])
    for metric in agreement["metrics"]:  # the noisier model is worse under every encoder
        assert agreement["orders"][metric] == [NoisyDigits.name, VeryNoisyDigits.name], metric
    assert agreement["agree"] is True and agreement["sentence"].startswith("The ranking of the 2 models agrees")
    assert "FD_DINOv2" in agreement["sentence"]


def test_suite_fd_dinov2_equals_transformers_and_pil(encoders, tmp_path):
    """A single-chunk draw, so the test knows the images: the suite's FD_DINOv2 against the
    computation written here."""
    from genbench.metrics import image as image_metrics

    opts = _options(encoders, extractors=[f"dinov2:{encoders['dinov2']}"], sample_chunk=N, save_png=False)
    metrics = {m.metric: m for m in ImageQuality().run(NoisyDigits(), SuiteContext(seed=3, options=opts,
                                                                                     artifacts=tmp_path / "cell"))}
    fa = dinov2_reference_features(encoders["dinov2"], NoisyDigits().sample(N, seed=3).images)
    fb = dinov2_reference_features(encoders["dinov2"], digit_images(100, N))
    assert_matches_reference(metrics["fd_dinov2"].value, image_metrics.features_to_fid(fa, fb), rtol=1e-5,
                             what="suite FD_DINOv2 vs transformers + PIL")
    assert "fid" not in metrics and "cmmd" not in metrics


def test_encoder_options_are_checked(encoders, tmp_path):
    def run(**over):
        ctx = SuiteContext(seed=0, options=_options(encoders, **over), artifacts=tmp_path / "cell")
        return list(ImageQuality().run(NoisyDigits(), ctx))

    with pytest.raises(UserError, match="field 'extractors'"):
        run(extractors=[])
    with pytest.raises(UserError, match="unknown DINOv2 weights"):
        run(trust_unknown=False)
    with pytest.raises(UserError, match="k = 5 needs at least 6 images, got 4"):
        run(n_samples=4, extractors=[f"torchscript:{encoders['net']}"])
    capped = {m.metric: m for m in run(extractors=[f"torchscript:{encoders['net']}"], feature_cap=8, save_png=False)}
    assert capped["density"].convention["n_reference"] == 8 and capped["density"].n == 8
    assert capped["fid"].n == N and capped["fid"].convention["n_reference"] == N  # FD on every image
