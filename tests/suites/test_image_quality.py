"""The image-quality suite: the ImageNet-style protocol (class-conditional samples, a reference by
path, PNGs, chunks) end to end on a tiny fake model and reference, and the digits path unchanged."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import genbench  # noqa: F401  (before clean-fid: installs the torchvision shim)
from genbench.errors import UserError
from genbench.interfaces import Generator, Samples
from genbench.registry import ADAPTERS
from genbench.suite import SuiteContext
from genbench.suites.image_quality import ImageQuality
# private_cache (autouse): a statistics cache in each test's tmp dir
from tests.harness.features.helpers import digit_images, private_cache, tiny_torchscript, write_pngs  # noqa: F401
from tests.reference import assert_matches_reference

torch = pytest.importorskip("torch")
PRESET = Path(__file__).resolve().parents[2] / "suites" / "presets" / "imagenet256.toml"
CLASSES, PER_CLASS, CHUNK = 4, 6, 10


class ClassConditionalFake(Generator):
    """Each class draws from its own ten digits (tinted), one RNG per sample; float output in
    [-1, 1] quantised by the protocol's rule. Records every call."""

    name = "fake-class-conditional"
    paradigm = "diffusion"
    modality = "image"
    num_classes = CLASSES
    rule = "round"
    calls: list = []

    def __init__(self, path=None, *, device: str = "cpu"):
        pass

    def sample(self, n, *, seed, batch_size=64, condition=None, steps=None, start=0):
        from genbench.features.quantise import float_images_to_uint8

        labels = np.asarray(condition)
        assert labels.shape == (n,)
        type(self).calls.append((seed, start, labels.copy()))
        digits = digit_images(0, CLASSES * 10) / 127.5 - 1.0
        x = np.empty((n, 32, 32, 3))
        for i, c in enumerate(labels):
            rng = np.random.default_rng([seed, start + i])  # sample start + i of the run
            base = digits[int(c) * 10 + int(rng.integers(10))]
            x[i] = base * (0.6 + 0.1 * int(c)) + rng.normal(0, 0.05, base.shape)
        return Samples(images=float_images_to_uint8(x, self.rule), nfe=10 * n, nfe_per_sample=10.0,
                       info={"quantisation": self.rule})


class Truncating(ClassConditionalFake):
    name = "fake-class-conditional-truncating"
    rule = "truncate"


ADAPTERS.register(ClassConditionalFake.name, ClassConditionalFake)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("iq")
    return {"reference": write_pngs(root / "reference", digit_images(100, 24)),
            "net": tiny_torchscript(root / "tiny.pt")}


def _options(files, **over):
    return {**ImageQuality.options, "reference": str(files["reference"]), "extractor": f"torchscript:{files['net']}",
            "extractor_mode": "clean", "num_classes": CLASSES, "samples_per_class": PER_CLASS,
            "n_samples": CLASSES * PER_CLASS, "sample_chunk": CHUNK, "save_png": True, "quantisation": "round",
            "batch_size": 8, "kid_subset_size": 1000, **over}


def test_preset_runs_end_to_end_on_a_fake_class_conditional_model(files, tmp_path):
    from cleanfid import fid as cfid

    from genbench import runner

    spec = runner.load_run_file(PRESET)
    assert spec.suites == ["image_quality"] and spec.adapters == []  # the model comes from --adapter
    preset = spec.suite_options["image_quality"]
    assert (preset["num_classes"], preset["samples_per_class"], preset["n_samples"]) == (1000, 50, 50_000)
    assert (preset["extractor"], preset["save_png"], preset["quantisation"]) == ("inception", True, "round")
    # the protocol at toy scale: the preset's options, with the sizes, model and extractor made small
    spec.adapters = [ClassConditionalFake.name]
    small = _options(files)
    preset.update({k: small[k] for k in ("reference", "extractor", "extractor_mode", "num_classes",
                                          "samples_per_class", "n_samples", "sample_chunk", "batch_size")})
    ClassConditionalFake.calls.clear()
    out = tmp_path / "run"
    results = runner.run(spec, out, log=lambda *a: None)
    assert [r.status for r in results] == ["ok"], results
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    by_metric = {r["metric"]: r for r in records if r.get("metric")}
    assert set(by_metric) == {"fid", "kid", "precision", "recall", "density", "coverage"}  # no logits, no spatial

    # class-conditional, PER_CLASS of each class in a random (seeded) order, not class by class,
    # in chunks of the cell's seed, each told the index of its first sample
    assert [len(c[2]) for c in ClassConditionalFake.calls] == [10, 10, 4]
    labels = np.concatenate([c[2] for c in ClassConditionalFake.calls])
    np.testing.assert_array_equal(np.sort(labels), np.repeat(np.arange(CLASSES), PER_CLASS))
    assert not np.array_equal(labels, np.sort(labels))
    assert [c[:2] for c in ClassConditionalFake.calls] == [(0, 0), (0, 10), (0, 20)]

    # every sample saved as a PNG with its label; the FID is clean-fid's on those files
    fid = by_metric["fid"]
    png_dir = Path(fid["convention"]["saved_png"])
    assert png_dir.is_relative_to(out / fid["artifacts"]) and len(list(png_dir.glob("*.png"))) == CLASSES * PER_CLASS
    lines = (png_dir / "labels.csv").read_text().splitlines()
    assert lines == ["file,label"] + [f"{i:06d}.png,{label}" for i, label in enumerate(labels)]
    net = torch.jit.load(str(files["net"])).eval()
    reference = cfid.compute_fid(str(png_dir), str(files["reference"]), mode="clean", custom_feat_extractor=net,
                                 num_workers=0, batch_size=8, device=torch.device("cpu"), verbose=False)
    assert_matches_reference(fid["value"], reference, rtol=1e-4, what="suite FID vs clean-fid on the saved PNGs")

    conv = fid["convention"]
    assert fid["n"] == CLASSES * PER_CLASS and conv["n_reference"] == 24 and conv["resize"] == "clean"
    assert conv["quantisation"] == "round (reported by the adapter)" and conv["nfe_per_sample"] == 10.0
    assert conv["class_conditional"]["samples_per_class"] == PER_CLASS and conv["warnings"] == []
    assert set(conv["not_computed"]) == {"sfid", "inception_score"}
    assert by_metric["precision"]["convention"]["k"] == 3 and by_metric["kid"]["convention"]["n_reference"] == 24
    kid = by_metric["kid"]
    assert kid["stderr"] > kid["convention"]["std_over_subsets"] / 10 and kid["convention"]["kid_bootstrap"] == 200
    assert "Bayesian-bootstrap" in kid["convention"]["stderr"]


def test_protocol_checks_name_the_field(files, tmp_path):
    suite = ImageQuality()

    def run(generator=None, **over):
        ctx = SuiteContext(seed=0, options=_options(files, **over), artifacts=tmp_path / "cell")
        return list(suite.run(generator or ClassConditionalFake(), ctx))

    with pytest.raises(UserError, match=r"field 'reference' is empty.*--set image_quality\.reference="):
        run(reference="")
    with pytest.raises(UserError, match=r"n_samples = 20 but num_classes x samples_per_class = 4 x 6 = 24"):
        run(n_samples=20)
    with pytest.raises(UserError, match=r"quantisation = 'round'.*reports truncate"):
        run(Truncating())

    # a reference known only by its statistics: FID alone, and the others say why they are missing
    from genbench.features.statistics import path_to_statistics

    s = path_to_statistics(files["reference"], f"torchscript:{files['net']}", use_cache=False)
    stats = tmp_path / "reference_stats.npz"
    np.savez(stats, mu=s.mu, sigma=s.sigma)
    metrics = run(reference=str(stats), save_png=False, train_reference=str(files["reference"]))
    assert [m.metric for m in metrics] == ["fid", "fid_train_floor"]
    assert "holds statistics but no images" in metrics[0].convention["not_computed"]["kid"]
    assert metrics[0].convention["saved_png"] is None
    assert metrics[1].value == pytest.approx(0.0, abs=1e-6)  # the reference's own images against its statistics


def test_the_sample_set_and_records_do_not_depend_on_sample_chunk(files, tmp_path):
    """Chunk [start, start + size) is sample(size, seed, start=start) with labels[start:start + size]:
    the same PNGs (and labels.csv) and the same records at any sample_chunk, one chunk included."""
    suite = ImageQuality()
    runs = {}
    for chunk in (CLASSES * PER_CLASS, CHUNK, 7):
        ClassConditionalFake.calls.clear()
        ctx = SuiteContext(seed=5, options=_options(files, sample_chunk=chunk), artifacts=tmp_path / f"c{chunk}")
        records = [(m.metric, m.value, m.stderr, m.n) for m in suite.run(ClassConditionalFake(), ctx)]
        pngs = {p.name: p.read_bytes() for p in sorted((tmp_path / f"c{chunk}" / "samples").iterdir())}
        starts = [c[1] for c in ClassConditionalFake.calls]
        assert starts == list(range(0, CLASSES * PER_CLASS, chunk)) and {c[0] for c in ClassConditionalFake.calls} == {5}
        runs[chunk] = records, pngs
    (one, one_pngs) = runs[CLASSES * PER_CLASS]
    assert len(one_pngs) == CLASSES * PER_CLASS + 1 and {"fid", "kid", "precision", "recall"} <= {r[0] for r in one}
    for chunk in (CHUNK, 7):
        assert runs[chunk][1] == one_pngs, f"sample_chunk {chunk} drew other images"
        assert runs[chunk][0] == one, f"sample_chunk {chunk} gave other records"

    class NoStart(ClassConditionalFake):  # an adapter written before sample() took start
        name = "fake-no-start"

        def sample(self, n, *, seed, batch_size=64, condition=None, steps=None):
            return super().sample(n, seed=seed, batch_size=batch_size, condition=condition, steps=steps)

    ctx = SuiteContext(seed=5, options=_options(files, save_png=False), artifacts=tmp_path / "old")
    with pytest.raises(UserError, match=r"'fake-no-start': its sample\(\) takes no start=.*sample_chunk >= n_samples"):
        list(suite.run(NoStart(), ctx))
    ctx = SuiteContext(seed=5, options=_options(files, save_png=False, sample_chunk=CLASSES * PER_CLASS),
                       artifacts=tmp_path / "old1")
    assert [(m.metric, m.value, m.stderr, m.n) for m in suite.run(NoStart(), ctx)] == one


def test_reference_protocol_options_need_a_reference_and_an_empty_one_stops_first():
    """Options only the reference protocol reads are refused without a reference (the digits path
    ignored them); an empty reference (the ImageNet preset's) is refused before anything runs."""
    where = "r.toml: [suite.image_quality]"
    with pytest.raises(UserError, match=r"\[suite.image_quality\] extractors, vendi: only read with a reference"):
        ImageQuality.check_options({"extractors": ["digits-classifier"], "vendi": True, "n_samples": 40}, where)
    with pytest.raises(UserError, match=r"reference is empty: .*--set image_quality.reference="):
        ImageQuality.check_options({"reference": " "}, where)
    ImageQuality.check_options({"save_png": False, "n_samples": 40, "fid_bootstrap": 0}, where)  # defaults: fine
    ImageQuality.check_options({"reference": "digits:test", "extractors": ["digits-classifier"], "vendi": True},
                               where)


def test_grey_samples_follow_grey_convert_and_chunks_show_progress(files, tmp_path):
    """A greyscale model (N, H, W, 1) against a reference: grey = "convert" replicates the samples'
    channel as it does the reference's (before, only the reference's, and the cell failed); the
    sample chunks go through the runner's progress bar."""

    class Grey(ClassConditionalFake):
        name = "fake-grey"

        def sample(self, n, *, seed, batch_size=64, condition=None, steps=None, start=0):
            s = super().sample(n, seed=seed, batch_size=batch_size, condition=condition, steps=steps, start=start)
            s.images = s.images[..., :1].copy()
            return s

    bars = []

    def progress(iterable, **kw):
        bars.append(kw)
        return iterable

    ctx = SuiteContext(seed=0, options=_options(files, save_png=False, grey="convert"), artifacts=tmp_path / "g",
                       progress=progress)
    grey = {m.metric: m.value for m in ImageQuality().run(Grey(), ctx)}
    assert bars == [{"desc": "image_quality", "unit": "chunk"}]

    class Replicated(ClassConditionalFake):
        def sample(self, n, *, seed, batch_size=64, condition=None, steps=None, start=0):
            s = super().sample(n, seed=seed, batch_size=batch_size, condition=condition, steps=steps, start=start)
            s.images = np.repeat(s.images[..., :1], 3, axis=-1)
            return s

    ctx = SuiteContext(seed=0, options=_options(files, save_png=False), artifacts=tmp_path / "rgb")
    assert grey == {m.metric: m.value for m in ImageQuality().run(Replicated(), ctx)}
    # grey = "error" (the default): the message names the run-file option, not a numpy call
    ctx = SuiteContext(seed=0, options=_options(files, save_png=False), artifacts=tmp_path / "err")
    with pytest.raises(UserError, match=r'fake-grey: its samples are greyscale .*grey = "convert" in '
                                        r'\[suite.image_quality\]'):
        list(ImageQuality().run(Grey(), ctx))


def test_digits_defaults_and_path_unchanged(tmp_path):
    """The demo's digits path: same defaults, same metrics, same conventions."""
    from genbench import data
    from genbench.metrics import image as im
    from genbench.registry import EXTRACTORS

    digits_defaults = {"dataset": "digits", "reference_split": "test", "extractor": "digits-classifier",
                       "n_samples": 400, "batch_size": 200, "steps": None, "kid_subsets": 100,
                       "kid_subset_size": 200, "pr_k": 3}
    assert {k: ImageQuality.options[k] for k in digits_defaults} == digits_defaults
    assert ImageQuality.options["reference"] is None

    class Replay(Generator):
        name, paradigm, modality = "replay", "autoregressive", "image"

        def sample(self, n, *, seed, batch_size=64, condition=None, steps=None):
            return Samples(images=data.digits_arrays("val")[0][:n], nfe=n, nfe_per_sample=1.0)

    options = {**ImageQuality.options, "n_samples": 60}
    with pytest.warns(UserWarning, match="FID from 60 samples of 128-d features"):
        metrics = list(ImageQuality().run(Replay(), SuiteContext(seed=0, options=options, artifacts=tmp_path)))
    assert [m.metric for m in metrics] == ["fid", "fid_train_floor", "kid", "precision", "recall"]
    assert "fewer rows than dimensions" in metrics[0].convention["warnings"][0]
    ex = EXTRACTORS.get("digits-classifier")()
    expected = im.features_to_fid(ex.features(data.digits_arrays("val")[0][:60]),
                                  ex.features(data.digits_arrays("test")[0]))
    assert metrics[0].value == pytest.approx(expected, rel=1e-12)
    conv = metrics[0].convention
    assert conv["resize"] == "none" and conv["reference"] == "digits test split" and conv["n_samples"] == 60
    assert "not_computed" not in conv and (tmp_path / "samples.png").is_file()
