"""Every bad input tried, as a table: what the user does and what the user sees.

Each row is one test. A mistake in a run file, an option, an output path, a statistics file or a
data set is one line on stderr naming the source (exit 2), never a traceback, with nothing
written to --out. A model that cannot be loaded or that breaks the interface (wrong shapes, NaN)
is a failed cell (exit 1): the run goes on and the record holds the error. The README's table
"Bad inputs" lists these rows (``test_the_readme_lists_every_row``).
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from genbench.cli import main
from genbench.interfaces import LogLikelihood, Samples
from genbench.registry import ADAPTERS
from tests import fakes

ROOT = Path(__file__).resolve().parents[2]


# --- adapters that break the contract -----------------------------------------------------------------
class WrongShape(fakes.FakeAR):
    def sample(self, n, *, seed, batch_size=64, condition=None, steps=None):
        return Samples(images=np.zeros((n, 16), dtype=np.uint8), nfe=1)


class FloatImages(fakes.FakeAR):
    def sample(self, n, *, seed, batch_size=64, condition=None, steps=None):
        return Samples(images=np.random.default_rng(seed).random((n, 4, 4, 1)), nfe=1)


class TooFew(fakes.FakeAR):
    def sample(self, n, *, seed, batch_size=64, condition=None, steps=None):
        return Samples(images=np.zeros((n - 1, 4, 4, 1), dtype=np.uint8), nfe=1)


class NaNLikelihood(fakes.FakeAR):
    def log_likelihood(self, batch, *, seed=0, start=0):
        return LogLikelihood(nll=np.full(len(batch), np.nan), units=np.full(len(batch), 16.0), unit="dimension",
                             kind="exact")


class WrongLikelihoodShape(fakes.FakeAR):
    def log_likelihood(self, batch, *, seed=0, start=0):
        return LogLikelihood(nll=np.zeros((len(batch), 2)), units=np.full(len(batch), 16.0), unit="dimension",
                             kind="exact")


class BadUnit(fakes.FakeAR):
    def log_likelihood(self, batch, *, seed=0, start=0):
        return LogLikelihood(nll=np.zeros(len(batch)), units=np.ones(len(batch)), unit="pixel", kind="exact")


class CannotLoad(fakes.FakeAR):
    def __init__(self, path=None, *, device="cpu", steps=4):
        raise RuntimeError("cannot read the weights")


BROKEN = {"bad-shape": WrongShape, "bad-float": FloatImages, "bad-few": TooFew, "bad-nan": NaNLikelihood,
          "bad-nll-shape": WrongLikelihoodShape, "bad-unit": BadUnit, "bad-load": CannotLoad}
for _name, _cls in BROKEN.items():
    if _name not in ADAPTERS:
        ADAPTERS.register(_name, _cls)


# --- helpers that make the inputs ---------------------------------------------------------------------
def runfile(tmp: Path, text: str, name: str = "r.toml") -> str:
    path = tmp / name
    path.write_text(text)
    return str(path)


BASE = 'suites = ["toy"]\nadapters = ["fake-ar"]\n'


def run_with(text: str) -> Callable[[Path], list[str]]:
    return lambda tmp: ["run", runfile(tmp, text), "--out", str(tmp / "out")]


def flags(*argv: str) -> Callable[[Path], list[str]]:
    return lambda tmp: ["run", *argv, "--out", str(tmp / "out")]


def stats_npz(tmp: Path, sigma: np.ndarray, mu: np.ndarray | None = None) -> str:
    path = tmp / "stats.npz"
    np.savez(path, mu=np.zeros(sigma.shape[0]) if mu is None else mu, sigma=sigma)
    return str(path)


def fid_against(make_sigma: Callable[[], np.ndarray], mu: np.ndarray | None = None):
    def setup(tmp: Path) -> list[str]:
        return ["fid", "digits:test", stats_npz(tmp, make_sigma(), mu), "--extractor", "digits-classifier",
                "--no-cache"]
    return setup


def zoo_copy(tmp: Path, model: str, as_name: str) -> Path:
    """A checkpoint directory holding ``model``'s zoo files under the name ``as_name``."""
    from genbench.adapters import zoo

    d = tmp / "ckpt"
    d.mkdir(exist_ok=True)
    for ext in ("safetensors", "json"):
        shutil.copy(zoo.WEIGHTS_DIR / f"{model}.{ext}", d / f"{as_name}.{ext}")
    return d


def zoo_other_model(tmp: Path) -> list[str]:
    d = zoo_copy(tmp, "masked-digits", "ar-digits")
    return ["run", "--suite", "likelihood", "--adapter", f"ar-digits:{d}", "--set", "likelihood.max_examples=4",
            "--out", str(tmp / "out")]


def zoo_corrupt_but_hash_matches(tmp: Path) -> list[str]:
    from genbench.adapters import zoo

    d = zoo_copy(tmp, "ar-digits", "ar-digits")
    blob = bytearray((d / "ar-digits.safetensors").read_bytes())
    blob[8:40] = b"{not a header" + b" " * 19
    (d / "ar-digits.safetensors").write_bytes(bytes(blob))
    meta = json.loads((d / "ar-digits.json").read_text())
    meta["sha256"] = zoo.file_sha256(d / "ar-digits.safetensors")  # both replaced: the hash matches
    (d / "ar-digits.json").write_text(json.dumps(meta))
    return ["run", "--suite", "likelihood", "--adapter", f"ar-digits:{d}", "--set", "likelihood.max_examples=4",
            "--out", str(tmp / "out")]


def zoo_tampered(tmp: Path) -> list[str]:
    d = zoo_copy(tmp, "ar-digits", "ar-digits")
    with open(d / "ar-digits.safetensors", "ab") as f:
        f.write(b"\0")
    return ["run", "--suite", "likelihood", "--adapter", f"ar-digits:{d}", "--out", str(tmp / "out")]


def zoo_bad_card(tmp: Path) -> list[str]:
    d = zoo_copy(tmp, "ar-digits", "ar-digits")
    (d / "ar-digits.json").write_text("{half")
    return ["run", "--suite", "likelihood", "--adapter", f"ar-digits:{d}", "--out", str(tmp / "out")]


def zoo_missing(tmp: Path) -> list[str]:
    (tmp / "empty").mkdir()
    return ["run", "--suite", "likelihood", "--adapter", f"ar-digits:{tmp / 'empty'}", "--out", str(tmp / "out")]


def pickled_hf_checkpoint(tmp: Path) -> list[str]:
    """A tiny GPT-2 whose pytorch_model.bin holds a pickled object a safe load refuses."""
    import torch
    import transformers

    from tests.adapters.test_hf import _tokenizer

    d = tmp / "gpt2"
    config = transformers.GPT2Config(n_layer=1, n_head=2, n_embd=8, vocab_size=300, n_positions=32)
    model = transformers.GPT2LMHeadModel(config)
    config.save_pretrained(d)
    _tokenizer().save_pretrained(d)
    state = dict(model.state_dict())
    state["extra"] = {"callback": fakes.ToySuite}  # any class: only full unpickling can rebuild it
    torch.save(state, d / "pytorch_model.bin")
    return ["run", "--suite", "likelihood", "--adapter", f"hf-causal-lm:{d}", "--dataset", "kjv",
            "--out", str(tmp / "out")]


def report_of(make: Callable[[Path], Path]):
    return lambda tmp: ["report", str(make(tmp)), "--out", str(tmp / "r.md")]


def run_dir_with_records(text: str) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        d = tmp / "run"
        d.mkdir()
        (d / "manifest.json").write_text('{"run_id": "r"}')
        (d / "records.jsonl").write_text(text)
        return d
    return make


def finished_run(tmp: Path) -> Path:
    assert main(["run", "--suite", "toy", "--adapter", "fake-ar", "--out", str(tmp / "done")]) == 0
    return tmp / "done"


def a_file(tmp: Path, name: str = "file") -> Path:
    (tmp / name).write_text("x")
    return tmp / name


def unwritable(tmp: Path) -> Path:
    """A directory no one may create anything in (root ignores mode bits, but not /sys)."""
    if os.geteuid() == 0:
        if not Path("/sys").is_dir():
            pytest.skip("no read-only directory to try as root")
        return Path("/sys/genbench-test-out")
    d = tmp / "ro"
    d.mkdir()
    d.chmod(0o555)
    return d / "out"


def mixed_sizes(tmp: Path) -> list[str]:
    from PIL import Image

    d = tmp / "mixed"
    d.mkdir()
    for i in range(6):
        size = 8 if i % 2 else 12
        Image.fromarray(np.full((size, size, 3), 40 * i, np.uint8)).save(d / f"{i}.png")
    return ["fid", str(d), "digits:test", "--extractor", "digits-classifier", "--no-cache"]


def untrusted_torchscript(tmp: Path) -> list[str]:
    from tests.harness.features.helpers import tiny_torchscript

    net = tiny_torchscript(tmp / "net.pt", seed=7, trusted=False)
    return ["fid", "digits:test", "digits:val", "--extractor", f"torchscript:{net}", "--no-cache"]


def jsonl_without_text(tmp: Path) -> list[str]:
    (tmp / "d.jsonl").write_text('{"body": "In the beginning"}\n')
    return ["run", "--suite", "likelihood", "--adapter", "ar-kjv", "--dataset", str(tmp / "d.jsonl"),
            "--out", str(tmp / "out")]


def psd(d: int = 128) -> np.ndarray:
    a = np.random.default_rng(0).normal(size=(d, 2 * d))
    return a @ a.T / (2 * d)


def not_psd() -> np.ndarray:
    s = psd()
    return s - 2 * np.eye(len(s)) * np.linalg.eigvalsh(s).max()


def not_symmetric() -> np.ndarray:
    s = psd()
    s[0, 1] += 1.0
    return s


def with_nan() -> np.ndarray:
    s = psd()
    s[3, 3] = np.nan
    return s


def plugin_module(tmp: Path, name: str, text: str) -> str:
    """A module ``name`` on sys.path holding ``text`` (a plugin for --plugin)."""
    import sys

    (tmp / f"{name}.py").write_text(text)
    sys.path.insert(0, str(tmp))
    sys.modules.pop(name, None)
    return name


def two_shards(tmp: Path) -> tuple[Path, Path]:
    """The two shard stores of a run of two cells."""
    for k in (0, 1):
        assert main(["run", "--suite", "toy", "--adapter", "fake-ar", "--adapter", "fake-masked", "--shard", f"{k}/2",
                     "--out", str(tmp / f"s{k}")]) == 0
    return tmp / "s0", tmp / "s1"


def edited(path: Path, edit: Callable[[str], str]) -> Path:
    path.write_text(edit(path.read_text()))
    return path


def merge_of(edit: Callable[[Path, Path], None]) -> Callable[[Path], list[str]]:
    """``genbench merge`` of two shard stores after ``edit(s0, s1)``."""
    def setup(tmp: Path) -> list[str]:
        s0, s1 = two_shards(tmp)
        edit(s0, s1)
        return ["merge", str(s0), str(s1), "--out", str(tmp / "merged")]
    return setup


def empty_folder(tmp: Path) -> Path:
    (tmp / "empty").mkdir()
    return tmp / "empty"


def fid_digits(*extra: str) -> Callable[[Path], list[str]]:
    return lambda t: ["fid", "digits:val", "digits:test", "--extractor", "digits-classifier", "--no-cache", *extra]


@dataclass
class Case:
    id: str
    input: str          # what the user does (the README's first column)
    setup: Callable[[Path], list[str]]
    sees: str           # a fragment of what the user sees (the README's second column quotes it)
    code: int = 2       # 2: one-line error, nothing written; 1: a failed cell, the run goes on
    group: str = "run file"


C = Case
CASES = [
    # --- run files ------------------------------------------------------------------------------
    C("runfile-missing", "a run file that does not exist", lambda t: ["run", str(t / "nope.toml")], "does not exist"),
    C("runfile-not-toml", "a run file that is not TOML", run_with("suites = [\n"), "not valid TOML"),
    C("runfile-unknown-key", "an unknown top-level key (`seed`)", run_with(BASE + "seed = [1]\n"),
      "unknown key(s) ['seed']; valid keys"),
    C("runfile-suites-string", "`suites = \"toy\"` (not a list)", run_with('suites = "toy"\n'), "field 'suites'"),
    C("runfile-unknown-suite", "a misspelt suite", run_with('suites = ["toi"]\nadapters = ["fake-ar"]\n'),
      "Did you mean 'toy'"),
    C("runfile-unknown-adapter", "a misspelt adapter", run_with('suites = ["toy"]\nadapters = ["fake-arr"]\n'),
      "Did you mean 'fake-ar'"),
    C("runfile-adapter-not-string", "an adapter entry that is not a string (`adapters = [1]`)",
      run_with('suites = ["toy"]\nadapters = [1]\n'), "field 'adapters' must hold adapter specs"),
    C("runfile-no-adapters", "no adapters", run_with('suites = ["toy"]\n'), "no adapters given"),
    C("runfile-no-suites", "no suites", run_with('adapters = ["fake-ar"]\n'), "no suites given"),
    C("runfile-duplicate-adapter", "the same adapter twice",
      run_with('suites = ["toy"]\nadapters = ["fake-ar", "fake-ar"]\n'), "lists 'fake-ar' twice"),
    C("runfile-duplicate-suite", "the same suite twice", run_with('suites = ["toy", "toy"]\nadapters = ["fake-ar"]\n'),
      "lists 'toy' twice"),
    C("runfile-seed-string", "a seed that is not an integer", run_with(BASE + 'seeds = ["a"]\n'),
      "field 'seeds' must hold integers"),
    C("runfile-seed-float", "a seed `1.5`", run_with(BASE + "seeds = [1.5]\n"), "field 'seeds' must hold integers"),
    C("runfile-seed-bool", "a seed `true`", run_with(BASE + "seeds = [true]\n"), "field 'seeds' must hold integers"),
    C("runfile-seed-negative", "a negative seed", run_with(BASE + "seeds = [-1]\n"), "seeds must be >= 0"),
    C("runfile-seed-duplicate", "the same seed twice", run_with(BASE + "seeds = [0, 0]\n"), "repeats a seed (0)"),
    C("runfile-seeds-empty", "`seeds = []`", run_with(BASE + "seeds = []\n"), "must be a non-empty list"),
    C("runfile-name-not-string", "`name = 5`", run_with(BASE + "name = 5\n"), "field 'name'"),
    C("runfile-device-unknown", "`device = \"gpu\"`", run_with(BASE + 'device = "gpu"\n'), "field 'device' must be"),
    C("runfile-suite-option-unknown", "a misspelt suite option (`n_sample`)",
      run_with(BASE + "[suite.toy]\nn_sample = 3\n"), "unknown key(s) ['n_sample'] in [suite.toy]"),
    C("runfile-suite-option-string", "`n_samples = \"abc\"`", run_with(BASE + '[suite.toy]\nn_samples = "abc"\n'),
      "n_samples = 'abc': must be a whole number"),
    C("runfile-suite-option-float", "`n_samples = 10.7`", run_with(BASE + "[suite.toy]\nn_samples = 10.7\n"),
      "n_samples = 10.7: must be a whole number"),
    C("runfile-suite-option-zero", "`n_samples = 0`", run_with(BASE + "[suite.toy]\nn_samples = 0\n"),
      "n_samples = 0: must be positive"),
    C("runfile-batch-negative", "`batch_size = -1`", run_with(BASE + "[suite.toy]\nbatch_size = -1\n"),
      "batch_size = -1: must be positive"),
    C("runfile-max-examples-negative", "likelihood `max_examples = -1` (was a `[:-1]` slice)",
      run_with('suites = ["likelihood"]\nadapters = ["fake-ar"]\n[suite.likelihood]\nmax_examples = -1\n'),
      "max_examples = -1: must be positive"),
    C("runfile-repeats-zero", "speed `repeats = 0` (was an IndexError)",
      run_with('suites = ["speed"]\nadapters = ["fake-ar"]\n[suite.speed]\nrepeats = 0\n'),
      "repeats = 0: must be positive"),
    C("runfile-warmup-negative", "speed `warmup = -2`",
      run_with('suites = ["speed"]\nadapters = ["fake-ar"]\n[suite.speed]\nwarmup = -2\n'),
      "warmup = -2: must be >= 0"),
    C("runfile-bool-option", "speed `flops = \"yes\"`",
      run_with('suites = ["speed"]\nadapters = ["fake-ar"]\n[suite.speed]\nflops = "yes"\n'),
      "flops = 'yes': must be true or false"),
    C("runfile-string-option", "image_quality `extractor = 5`",
      run_with('suites = ["image_quality"]\nadapters = ["fake-ar"]\n[suite.image_quality]\nextractor = 5\n'),
      "extractor = 5: must be a string"),
    C("runfile-huge-n-samples", "image_quality `n_samples = 10**13` (would exhaust memory)",
      run_with('suites = ["image_quality"]\nadapters = ["fake-ar"]\n[suite.image_quality]\n'
               "n_samples = 10_000_000_000_000\n"), "need at least"),
    C("runfile-huge-kid-subset", "image_quality `kid_subset_size = n_samples = 10**8` (a 10**16-entry kernel)",
      run_with('suites = ["image_quality"]\nadapters = ["fake-ar"]\n[suite.image_quality]\n'
               "kid_subset_size = 100_000_000\nn_samples = 100_000_000\n"), "need at least"),
    C("runfile-huge-kid-subsets", "image_quality `kid_subsets = 10**15`",
      run_with('suites = ["image_quality"]\nadapters = ["fake-ar"]\n[suite.image_quality]\n'
               "kid_subsets = 1_000_000_000_000_000\n"), "need at least"),
    C("runfile-huge-batch", "toy `batch_size = 10**14`",
      run_with(BASE + "[suite.toy]\nbatch_size = 100_000_000_000_000\n"), "need at least"),
    C("runfile-suite-table-unused", "a `[suite.X]` table for a suite the run does not include",
      run_with(BASE + "[suite.likelihood]\nmax_examples = 3\n"), "configures a suite the run does not include"),
    C("runfile-suite-table-not-table", "`suite.toy = 3`", run_with(BASE + "suite.toy = 3\n"),
      "must be a table of options"),
    C("runfile-adapter-option-typo", "a misspelt adapter option (`stepz`)",
      run_with(BASE + '[adapter."fake-ar"]\nstepz = 2\n'), "unknown option(s) ['stepz']; fake-ar takes ['steps']"),
    C("runfile-adapter-option-temprature", "`temprature = 0.5` for ar-digits",
      run_with('suites = ["toy"]\nadapters = ["ar-digits"]\n[adapter."ar-digits"]\ntemprature = 0.5\n'),
      "(did you mean 'temperature'?)"),
    C("runfile-adapter-option-device", "`device` in an adapter table",
      run_with(BASE + '[adapter."fake-ar"]\ndevice = "cpu"\n'), "option 'device' is not an adapter option"),
    C("runfile-adapter-table-unused", "an adapter table for an adapter the run does not include",
      run_with(BASE + '[adapter."fake-masked"]\nsteps = 2\n'), "configures an adapter the run does not include"),
    C("runfile-sweep-not-list", "`sweep.steps = 4` (not a list)",
      run_with(BASE + '[adapter."fake-ar"]\nsweep.steps = 4\n'), "sweep.steps = [4, 8, 16]"),
    C("runfile-sweep-typo", "a sweep over a misspelt option",
      run_with(BASE + '[adapter."fake-ar"]\nsweep.stepz = [1, 2]\n'), "unknown option(s) ['stepz']"),
    # --- command-line options -------------------------------------------------------------------
    C("flag-set-no-equals", "`--set toy.n_samples`",
      flags("--suite", "toy", "--adapter", "fake-ar", "--set", "toy.n_samples"), "write SUITE.KEY=VALUE",
      group="options"),
    C("flag-set-adapter-no-key", "`--set adapter.fake-ar=3`",
      flags("--suite", "toy", "--adapter", "fake-ar", "--set", "adapter.fake-ar=3"), "write adapter.NAME.KEY=VALUE",
      group="options"),
    C("flag-set-adapter-typo", "`--set adapter.fake-ar.stepz=3`",
      flags("--suite", "toy", "--adapter", "fake-ar", "--set", "adapter.fake-ar.stepz=3"),
      "unknown option(s) ['stepz']", group="options"),
    C("flag-set-value-type", "`--set toy.n_samples=abc`",
      flags("--suite", "toy", "--adapter", "fake-ar", "--set", "toy.n_samples=abc"), "must be a whole number",
      group="options"),
    C("flag-set-unknown-suite-key", "`--set toy.nsamples=3`",
      flags("--suite", "toy", "--adapter", "fake-ar", "--set", "toy.nsamples=3"), "(did you mean 'n_samples'?)",
      group="options"),
    C("flag-dataset-image-adapter", "`--dataset kjv` for an image adapter (was silently ignored)",
      flags("--suite", "likelihood", "--adapter", "ar-digits", "--dataset", "kjv"), "are image models",
      group="options"),
    C("flag-dataset-without-likelihood", "`--dataset` without the likelihood suite",
      flags("--suite", "toy", "--adapter", "fake-ar", "--dataset", "kjv"), "add --suite likelihood", group="options"),
    C("flag-seed-negative", "`--seed -1`", flags("--suite", "toy", "--adapter", "fake-ar", "--seed", "-1"),
      "seeds must be >= 0", group="options"),
    C("flag-seed-duplicate", "`--seed 0 --seed 0`", flags("--suite", "toy", "--adapter", "fake-ar", "--seed", "0",
                                                          "--seed", "0"), "repeats a seed", group="options"),
    C("flag-adapter-duplicate", "`--adapter fake-ar --adapter fake-ar`",
      flags("--suite", "toy", "--adapter", "fake-ar", "--adapter", "fake-ar"), "twice", group="options"),
    C("flag-device-unknown", "`--device tpu`", flags("--suite", "toy", "--adapter", "fake-ar", "--device", "tpu"),
      "field 'device' must be", group="options"),
    C("flag-device-cuda", "`--device cuda` on a CPU-only torch",
      flags("--suite", "toy", "--adapter", "fake-ar", "--device", "cuda"), "is not available", group="options"),
    C("flag-bootstrap-negative", "`genbench fid --bootstrap -3`",
      lambda t: ["fid", "digits:test", "digits:val", "--extractor", "digits-classifier", "--bootstrap", "-3"],
      "--bootstrap -3: give 0 (off)", group="options"),
    C("flag-bootstrap-huge", "`genbench fid --bootstrap 1000000000`",
      lambda t: ["fid", "digits:test", "digits:val", "--extractor", "digits-classifier", "--bootstrap", "1000000000"],
      "from 2 to 10,000", group="options"),
    C("flag-bootstrap-float", "`genbench fid --bootstrap 1e9`",
      lambda t: ["fid", "digits:test", "digits:val", "--bootstrap", "1e9"],
      "argument --bootstrap: invalid int value: '1e9'", group="options"),
    C("flag-seed-not-int", "`--seed abc`", flags("--suite", "toy", "--adapter", "fake-ar", "--seed", "abc"),
      "argument --seed: invalid int value: 'abc'", group="options"),
    C("flag-unknown", "an unknown flag `--seeds 1`", flags("--suite", "toy", "--adapter", "fake-ar", "--seeds", "1"),
      "unrecognized arguments: --seeds", group="options"),
    C("flag-bootstrap-one", "`genbench fid --bootstrap 1`",
      lambda t: ["fid", "digits:test", "digits:val", "--extractor", "digits-classifier", "--bootstrap", "1"],
      "from 2 to 10,000", group="options"),
    # --- output paths ---------------------------------------------------------------------------
    C("out-under-file", "`run --out` under a file", lambda t: ["run", "--suite", "toy", "--adapter", "fake-ar", "--out",
                                                             str(a_file(t) / "out")], "is a file, not a directory",
      group="output paths"),
    C("out-is-file", "`run --out` is a file",
      lambda t: ["run", "--suite", "toy", "--adapter", "fake-ar", "--out", str(a_file(t))],
      "is a file, not a directory", group="output paths"),
    C("out-unwritable", "`run --out` in a place you cannot write",
      lambda t: ["run", "--suite", "toy", "--adapter", "fake-ar", "--out", str(unwritable(t))], "not writable",
      group="output paths"),
    C("out-not-empty", "`run --out` a non-empty folder that holds no run",
      lambda t: ["run", "--suite", "toy", "--adapter", "fake-ar", "--out", str(a_file(t, "x").parent)],
      "is not empty and holds no manifest.json", group="output paths"),
    C("out-other-run", "`run --out` a folder holding a different run",
      lambda t: ["run", "--suite", "toy", "--adapter", "fake-masked", "--out", str(finished_run(t))],
      "already holds a different run", group="output paths"),
    C("out-same-run", "`run --out` a finished run without `--resume`",
      lambda t: ["run", "--suite", "toy", "--adapter", "fake-ar", "--out", str(finished_run(t))],
      "pass --resume to finish it", group="output paths"),
    C("out-bad-manifest", "`run --out` whose manifest.json is not JSON",
      lambda t: ["run", "--suite", "toy", "--adapter", "fake-ar", "--out",
                 str(run_dir_with_records("")(t).joinpath("manifest.json").write_text("{") and t / "run")],
      "manifest.json: not valid JSON", group="output paths"),
    C("report-out-under-file", "`report --out` under a file",
      lambda t: ["report", str(finished_run(t)), "--out", str(a_file(t) / "r.md")], "is a file, not a directory",
      group="output paths"),
    C("report-out-is-dir", "`report --out` is a folder", lambda t: ["report", str(finished_run(t)), "--out", str(t)],
      "is a directory; give a file name", group="output paths"),
    C("report-out-unwritable", "`report --out` in a place you cannot write",
      lambda t: ["report", str(finished_run(t)), "--out", str(unwritable(t) / "r.md")], "not writable",
      group="output paths"),
    C("stats-out-under-file", "`stats --out` under a file",
      lambda t: ["stats", "digits:test", "--extractor", "digits-classifier", "--out", str(a_file(t) / "s.npz")],
      "is a file, not a directory", group="output paths"),
    C("stats-out-unwritable", "`stats --out` in a place you cannot write",
      lambda t: ["stats", "digits:test", "--extractor", "digits-classifier", "--out", str(unwritable(t) / "s.npz")],
      "not writable", group="output paths"),
    # --- records --------------------------------------------------------------------------------
    C("records-none", "`report` of a folder that holds files but no run", lambda t: ["report", str(a_file(t).parent)],
      "no records.jsonl",
      group="records"),
    C("records-not-objects", "records that are JSON but not objects",
      report_of(run_dir_with_records('{"suite": "s"}\n[1, 2]\n')), "line 2 is JSON but not an object", group="records"),
    C("records-corrupt-middle", "a corrupt line in the middle of records.jsonl",
      report_of(run_dir_with_records('{"suite": "s"}\nnot json\n{"suite": "s"}\n')), "line 2 is not valid JSON",
      group="records"),
    # --- statistics files -----------------------------------------------------------------------
    C("stats-not-psd", "a statistics .npz whose sigma is not positive semi-definite", fid_against(not_psd),
      "is not positive semi-definite", group="statistics files"),
    C("stats-not-symmetric", "a statistics .npz whose sigma is not symmetric", fid_against(not_symmetric),
      "is not symmetric", group="statistics files"),
    C("stats-nan", "a statistics .npz with NaN in sigma", fid_against(with_nan), "holds NaN or infinity",
      group="statistics files"),
    C("stats-shapes", "a statistics .npz whose mu and sigma disagree", fid_against(psd, mu=np.zeros(5)),
      "expected (D,) and (D, D)", group="statistics files"),
    C("stats-wrong-dim", "a statistics .npz of another extractor's dimension", fid_against(lambda: psd(64)),
      "statistics of dimension 64", group="statistics files"),
    # --- data sets and images -------------------------------------------------------------------
    C("fid-mixed-sizes", "`genbench fid` on a folder of mixed image sizes with a non-resizing extractor",
      mixed_sizes, "images of different sizes", group="data sets"),
    C("fid-missing-source", "`genbench fid` on a folder that does not exist",
      lambda t: ["fid", str(t / "missing"), "digits:test", "--extractor", "digits-classifier"], "missing",
      group="data sets"),
    C("torchscript-untrusted", "`--extractor torchscript:FILE` of an unknown file without --trust-unknown",
      untrusted_torchscript, "runs a user's file only when trusted", group="data sets"),
    C("dataset-no-text-column", "`--dataset FILE.jsonl` without a `text` field", jsonl_without_text,
      "no column 'text' (columns: ['body'])", code=1, group="data sets"),
    C("dataset-missing-file", "`--dataset missing.jsonl`",
      lambda t: ["run", "--suite", "likelihood", "--adapter", "ar-kjv", "--dataset", str(t / "missing.jsonl"),
                 "--out", str(t / "out")], "missing.jsonl does not exist", group="data sets"),
    C("dataset-unknown-name", "`--dataset wikitext` (not a preset)",
      flags("--suite", "likelihood", "--adapter", "ar-kjv", "--dataset", "wikitext"), "unknown dataset 'wikitext'",
      group="data sets"),
    C("image-dataset-unknown", "image_quality `dataset = \"cifar\"` (not offline)",
      run_with('suites = ["image_quality"]\nadapters = ["fake-ar"]\n[suite.image_quality]\ndataset = "cifar"\n'
               "n_samples = 8\n"), "unknown image dataset 'cifar'", code=1, group="data sets"),
    # --- checkpoints ----------------------------------------------------------------------------
    C("zoo-other-model", "a zoo weights file of another model (was `KeyError: 'bos_id'`)", zoo_other_model,
      "holds the weights of zoo model 'masked-digits', not 'ar-digits'", code=1, group="checkpoints"),
    C("zoo-corrupt-hash-matches", "a corrupt safetensors file whose hash matches its card",
      zoo_corrupt_but_hash_matches, "not a readable safetensors file", code=1, group="checkpoints"),
    C("zoo-tampered", "a zoo weights file whose sha256 does not match its card", zoo_tampered,
      "does not match ar-digits.json field 'sha256'", code=1, group="checkpoints"),
    C("zoo-bad-card", "a zoo card that is not JSON", zoo_bad_card, "ar-digits.json: not valid JSON", code=1,
      group="checkpoints"),
    C("zoo-missing", "`ar-digits:DIR` with no weights in DIR", zoo_missing, "no weights for zoo model 'ar-digits'",
      code=1, group="checkpoints"),
    C("hf-pickle-only", "an HF checkpoint whose pytorch_model.bin needs pickle", pickled_hf_checkpoint,
      "convert them to safetensors", code=1, group="checkpoints"),
    C("hf-missing-dir", "`hf-causal-lm:DIR` with DIR missing",
      lambda t: ["run", "--suite", "likelihood", "--adapter", f"hf-causal-lm:{t / 'nope'}", "--dataset", "kjv",
                 "--out", str(t / "out")], "does not exist", code=1, group="checkpoints"),
    C("hf-file-not-dir", "`hf-causal-lm:FILE` (a file, not a checkpoint directory)",
      lambda t: ["run", "--suite", "likelihood", "--adapter", f"hf-causal-lm:{a_file(t)}", "--dataset", "kjv",
                 "--out", str(t / "out")], "is a file, not a checkpoint directory", code=1, group="checkpoints"),
    C("adapter-option-value", "ar-kjv `length = 999` (beyond its context)",
      lambda t: ["run", "--suite", "text_quality", "--adapter", "ar-kjv", "--set", "adapter.ar-kjv.length=999",
                 "--out", str(t / "out")], "length must be between 1 and 256", code=1, group="checkpoints"),
    # --- adapters that break the interface ------------------------------------------------------
    C("adapter-wrong-shape", "an adapter returning images of shape (N, 16)",
      flags("--suite", "toy", "--adapter", "bad-shape"), "images must be a uint8 array (N, H, W, C)", code=1,
      group="adapters"),
    C("adapter-float-images", "an adapter returning float images",
      flags("--suite", "toy", "--adapter", "bad-float"), "images must be a uint8 array", code=1, group="adapters"),
    C("adapter-too-few", "an adapter returning fewer samples than asked",
      flags("--suite", "toy", "--adapter", "bad-few"), "asked for 8 samples, got 7", code=1, group="adapters"),
    C("adapter-nan-likelihood", "an adapter returning a NaN log-likelihood",
      flags("--suite", "toy", "--adapter", "bad-nan"), "log-likelihood is not finite", code=1, group="adapters"),
    C("adapter-nll-shape", "an adapter returning an (N, 2) log-likelihood",
      flags("--suite", "toy", "--adapter", "bad-nll-shape"), "nll and units must both have shape (N,)", code=1,
      group="adapters"),
    C("adapter-bad-unit", "an adapter reporting the unit `pixel`",
      flags("--suite", "toy", "--adapter", "bad-unit"), "unit must be one of", code=1, group="adapters"),
    C("adapter-cannot-load", "an adapter that fails to load, in a run of two suites",
      flags("--suite", "toy", "--suite", "crash_after_one", "--adapter", "bad-load"), "cannot read the weights",
      code=1, group="adapters"),
    # --- found by the bad-input audit: each was a traceback, a late or unclear error, or a silent change ------
    C("runfile-is-dir", "a run file that is a directory (was IsADirectoryError)", lambda t: ["run", str(t)],
      "is a directory; give a TOML file"),
    C("runfile-seed-too-big", "a seed `4294967296` (KID's RandomState takes 32 bits; was a failed image_quality cell)",
      run_with(BASE + "seeds = [4294967296]\n"), "seeds must be at most 4294967295"),
    C("runfile-adapter-empty-path", "`adapters = [\"fake-ar:\"]` (was read as the current directory)",
      run_with('suites = ["toy"]\nadapters = ["fake-ar:"]\n'), "names no path after the colon"),
    C("runfile-adapter-same-checkpoint", "`adapters = [\"fake-ar:a\", \"fake-ar:a/\"]` (ran one checkpoint twice)",
      run_with('suites = ["toy"]\nadapters = ["fake-ar:a", "fake-ar:a/"]\n'), "one checkpoint; list it once"),
    C("runfile-adapter-option-bool", "`kv_cache = \"no\"` for ar-digits (was read as true)",
      run_with('suites = ["toy"]\nadapters = ["ar-digits"]\n[adapter."ar-digits"]\nkv_cache = "no"\n'),
      "kv_cache = 'no': must be true or false"),
    C("runfile-adapter-option-cut", "`mc_samples = 32.5` for diffusion-digits (was cut to 32)",
      run_with('suites = ["toy"]\nadapters = ["diffusion-digits"]\n[adapter."diffusion-digits"]\nmc_samples = 32.5\n'),
      "mc_samples = 32.5: must be a whole number"),
    C("runfile-adapter-option-nan", "`temperature = nan` for ar-digits (was accepted)",
      run_with('suites = ["toy"]\nadapters = ["ar-digits"]\n[adapter."ar-digits"]\ntemperature = nan\n'),
      "temperature = nan: must be a finite number"),
    C("runfile-adapter-option-zero", "`eval_batch_size = 0` for masked-digits (was `range() arg 3 must not be zero`)",
      run_with('suites = ["toy"]\nadapters = ["masked-digits"]\n[adapter."masked-digits"]\neval_batch_size = 0\n'),
      "eval_batch_size = 0: must be positive"),
    C("runfile-sweep-repeat", "`sweep.steps = [2, 2]` (ran the same cells twice)",
      run_with(BASE + '[adapter."fake-ar"]\nsweep.steps = [2, 2]\n'), "sweep.steps repeats a value (2)"),
    C("runfile-sweep-and-option", "`steps = 2` beside `sweep.steps = [2, 4]` (the option was dropped)",
      run_with(BASE + '[adapter."fake-ar"]\nsteps = 2\nsweep.steps = [2, 4]\n'), "sets steps = 2 and sweeps it"),
    C("runfile-two-adapter-tables", "`[adapter.\"fake-ar\"]` and `[adapter.\"fake-ar:x\"]` for `fake-ar:x` (one ignored)",
      run_with('suites = ["toy"]\nadapters = ["fake-ar:x"]\n[adapter."fake-ar"]\nsteps = 2\n'
               '[adapter."fake-ar:x"]\nsteps = 3\n'), "both configure fake-ar:x"),
    C("runfile-speed-min-repeat-inf", "speed `min_repeat_s = inf` (never returned)",
      run_with('suites = ["speed"]\nadapters = ["fake-ar"]\n[suite.speed]\nmin_repeat_s = inf\n'),
      "min_repeat_s = inf: must be a finite number"),
    C("runfile-speed-tolerance-negative", "speed `stable_tolerance = -1.0`",
      run_with('suites = ["speed"]\nadapters = ["fake-ar"]\n[suite.speed]\nstable_tolerance = -1.0\n'),
      "stable_tolerance = -1.0: must be >= 0"),
    C("runfile-tokenizer-max-images", "tokenizer `max_images = -1` (was a `[:-1]` slice)",
      run_with('suites = ["tokenizer"]\nadapters = ["vq-digits"]\n[suite.tokenizer]\nmax_images = -1\n'),
      "max_images = -1: must be positive"),
    C("runfile-first-token", "text_quality `first_token = \"first\"` (was a failed cell)",
      run_with('suites = ["text_quality"]\nadapters = ["ar-kjv"]\n[suite.text_quality]\nfirst_token = "first"\n'),
      "first_token = 'first': must be one of ['unscored', 'scored']"),
    C("runfile-scorer-unknown", "text_quality `scorer = \"ar-kvj\"` (was a failed cell)",
      run_with('suites = ["text_quality"]\nadapters = ["ar-kjv"]\n[suite.text_quality]\nscorer = "ar-kvj"\n'),
      "Did you mean 'ar-kjv'"),
    C("runfile-text-reference-missing", "text_quality `reference = \"missing.txt\"` (was a failed cell)",
      run_with('suites = ["text_quality"]\nadapters = ["ar-kjv"]\n[suite.text_quality]\nreference = "missing.txt"\n'),
      "reference file missing.txt does not exist"),
    C("runfile-is-rule", "image_quality `is_rule = \"tf\"`",
      run_with('suites = ["image_quality"]\nadapters = ["fake-ar"]\n[suite.image_quality]\nis_rule = "tf"\n'),
      "is_rule = 'tf': must be one of"),
    C("flag-kjv-split", "`--dataset kjv:tset` (was a failed cell)",
      flags("--suite", "likelihood", "--adapter", "ar-kjv", "--dataset", "kjv:tset"), "unknown KJV split",
      group="options"),
    C("flag-timeout-without-slurm", "`--timeout-min 5` without `--slurm` (was ignored)",
      flags("--suite", "toy", "--adapter", "fake-ar", "--timeout-min", "5"), "drop it or add --slurm", group="options"),
    C("flag-plugin-raises", "`--plugin` of a module that raises (was a traceback)",
      lambda t: ["list", "adapters", "--plugin", plugin_module(t, "genbench_test_plugin_raises",
                                                              "raise RuntimeError('no GPU here')\n")],
      "importing it raised RuntimeError: no GPU here at", group="options"),
    C("flag-plugin-builtin-name", "`--plugin` registering `ar-digits` (replaced the built-in unseen)",
      lambda t: ["list", "adapters", "--plugin", plugin_module(
          t, "genbench_test_plugin_shadow", "from genbench.registry import ADAPTERS\n\n\n"
          "class Mine:\n    pass\n\n\nADAPTERS.register('ar-digits', Mine)\n")],
      "'ar-digits' is already registered (by genbench.adapters.autoregressive); register yours under another name",
      group="options"),
    C("flag-demo-preset-twice", "`demo --preset quickstart --preset quickstart` (ran it, then failed)",
      lambda t: ["demo", "--preset", "quickstart", "--preset", "quickstart", "--out", str(t / "demo")],
      "is given twice", group="options"),
    C("flag-zoo-seed-negative", "`zoo train --seed -1` (trained)",
      lambda t: ["zoo", "train", "--model", "ar-digits", "--seed", "-1", "--out", str(t / "w")], "seeds must be >= 0",
      group="options"),
    C("flag-zoo-unknown-model", "`zoo train --model ar-digitz` (named `genbench list zoo models`, no such command)",
      lambda t: ["zoo", "train", "--model", "ar-digitz", "--out", str(t / "w")], "genbench zoo list",
      group="options"),
    C("flag-fid-device", "`genbench fid --device gpu` (was a traceback)", fid_digits("--device", "gpu"),
      "field 'device' must be", group="options"),
    C("flag-fid-sqrtm", "`genbench fid --sqrtm foo` (refused after the features were measured)",
      fid_digits("--sqrtm", "foo"), "--sqrtm 'foo': use one of eigh, scipy_sqrtm", group="options"),
    C("flag-fid-prdc-k-unused", "`genbench fid --prdc-k 3` without prdc in --metrics (was ignored)",
      fid_digits("--prdc-k", "3"), "add prdc to --metrics", group="options"),
    C("flag-fid-feature-cap-zero", "`genbench fid --metrics kid --feature-cap 0` (said the side held no images)",
      fid_digits("--metrics", "kid", "--feature-cap", "0"), "--feature-cap 0: give a whole number >= 1",
      group="options"),
    C("flag-fid-center-crop-zero", "`genbench fid --center-crop 0` (was no crop)", fid_digits("--center-crop", "0"),
      "center_crop=0: must be a positive image size", group="options"),
    C("flag-is-splits-zero", "`genbench is --rule torch-fidelity --splits 0` (was a ValueError traceback)",
      lambda t: ["is", "digits:val", "--rule", "torch-fidelity", "--splits", "0"], "--splits 0: give a whole number",
      group="options"),
    C("fid-cache-dir-file", "`genbench fid --cache-dir FILE` (was FileExistsError)",
      lambda t: ["fid", "digits:val", "digits:test", "--extractor", "digits-classifier", "--cache-dir", str(a_file(t))],
      "is a file, not a directory", group="output paths"),
    C("stats-out-refused-source", "`stats` of an empty folder with `--out NEW/s.npz` (left NEW behind)",
      lambda t: ["stats", str(empty_folder(t)), "--extractor", "digits-classifier", "--out", str(t / "new" / "s.npz")],
      "empty folder", group="output paths"),
    C("report-out-refused-store", "`report --out NEW/r.md` of a corrupt store (left NEW behind)",
      lambda t: ["report", str(run_dir_with_records('{"suite": "s"}\nnot json\n')(t)), "--out",
                 str(t / "new" / "r.md")], "line 2 is not valid JSON", group="output paths"),
    C("merge-out-is-file", "`merge --out FILE` (was NotADirectoryError)",
      lambda t: ["merge", *map(str, two_shards(t)), "--out", str(a_file(t))], "is a file, not a directory",
      group="output paths"),
    C("stats-mu-strings", "a statistics .npz whose mu holds strings (was a ValueError traceback)",
      lambda t: ["fid", "digits:test", str((np.savez(t / "s.npz", mu=np.array(["a"] * 128), sigma=psd()),
                                          t / "s.npz")[1]), "--extractor", "digits-classifier", "--no-cache"],
      "field mu holds <U1 (128,), not numbers", group="statistics files"),
    C("records-missing-suite", "a record without `suite` (was a TypeError traceback)",
      report_of(run_dir_with_records('{"adapter": "a", "value": 1.0}\n')), "line 1 has no field 'suite'",
      group="records"),
    C("records-value-string", "a record whose value is a string (was a ValueError traceback)",
      report_of(run_dir_with_records('{"suite": "s", "adapter": "a", "value": "x"}\n')),
      "field 'value' is 'x', not a number or null", group="records"),
    C("merge-spec-edited", "`merge` of a shard whose manifest's spec was edited (was a TypeError traceback)",
      merge_of(lambda s0, s1: edited(s0 / "manifest.json", lambda m: m.replace('"suites"', '"suitez"'))),
      "the manifest was edited", group="records"),
    C("merge-marker-missing-key", "`merge` of a shard whose cells.jsonl has a line without `suite` (was a KeyError)",
      merge_of(lambda s0, s1: edited(s0 / "cells.jsonl", lambda c: c + '{"adapter": "fake-ar"}\n')),
      "line 2 has no field 'suite'", group="records"),
    C("dataset-jsonl-broken-line", "`--dataset FILE.jsonl` with a broken line (was `DatasetGenerationError`)",
      lambda t: ["run", "--suite", "likelihood", "--adapter", "ar-kjv", "--dataset",
                 str(edited(a_file(t, "d.jsonl"), lambda _: '{"text": "a"}\n{"text": \n')), "--out", str(t / "out")],
      "line 2 is not JSON", code=1, group="data sets"),
    C("dataset-jsonl-empty", "`--dataset FILE.jsonl` of an empty file (was `StopIteration`)",
      lambda t: ["run", "--suite", "likelihood", "--adapter", "ar-kjv", "--dataset",
                 str(edited(a_file(t, "d.jsonl"), lambda _: "")), "--out", str(t / "out")],
      "the file is empty", code=1, group="data sets"),
]


def _no_traceback(text: str) -> None:
    assert "Traceback" not in text, text


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path, capsys):
    if case.id == "flag-device-cuda":
        import torch

        if torch.cuda.is_available():
            pytest.skip("a CUDA device is available here")
    argv = case.setup(tmp_path)
    capsys.readouterr()
    out = Path(argv[argv.index("--out") + 1]) if "--out" in argv else None
    # the outermost folder of --out that does not exist yet: a refused command must not create it
    missing = None if out is None else next((p for p in [*reversed(out.parents), out] if not p.exists()), None)
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's usage errors
        code = e.code
    captured = capsys.readouterr()
    _no_traceback(captured.out + captured.err)
    assert "weights_only=False" not in captured.out + captured.err  # never suggest running a pickle
    assert code == case.code, (captured.out, captured.err)
    if case.code == 2:
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1, lines
        assert lines[0].startswith("genbench: error: ") and case.sees in lines[0], lines[0]
        if missing is not None:
            assert not missing.exists(), f"{missing} was written"
    else:  # a failed cell: the FAIL line names it, the record holds the error, the run went on
        fails = [line for line in captured.out.splitlines() if line.startswith("FAIL")]
        assert fails and case.sees in fails[0], captured.out
        records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
        failed = [r for r in records if r["status"] == "failed"]
        assert len(failed) == 1 and case.sees in failed[0]["error"]  # once, even with two suites


def readme_table_rows() -> list[str]:
    """The README's "Bad inputs" table, one row per case.

    Regenerate it with ``python -m tests.harness.test_bad_inputs``."""
    rows = ["| # | input | what the user sees | exit |", "|---|---|---|---|"]
    for i, c in enumerate(CASES, 1):
        sees = c.sees.replace("|", "\\|")
        kind = "one line" if c.code == 2 else "failed cell"
        rows.append(f"| {i} | {c.group}: {c.input} | {kind}: `…{sees}…` | {c.code} |")
    return rows


def test_the_readme_lists_every_row():
    readme = (ROOT / "README.md").read_text()
    assert len(CASES) >= 60
    missing = [row for row in readme_table_rows() if row not in readme]
    assert not missing, f"README's bad-input table is stale; first missing row: {missing[0]}"


if __name__ == "__main__":
    print("\n".join(readme_table_rows()))
