"""Parts of a cell's work kept on disk (``genbench.partials``): read back equal, checked before reuse
(a flipped byte, a foreign file, another config / seed / range are never reused), deleted when the
cell commits; a run killed mid-cell resumes computing only the missing parts, in one process and
under torchrun, with the records of an uninterrupted run."""
from __future__ import annotations

import contextlib
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from genbench import partials, runner
from genbench.interfaces import LikelihoodKind, LogLikelihood, Samples
from genbench.partials import PartCache, PartCached
from genbench.store import RunStore, deterministic_fields
from tests.fakes import FakeAR, FakeMasked
from tests.harness.test_shard import ONE_THREAD, _close

ROOT = Path(__file__).resolve().parents[2]


class Counting:
    """A generator that counts the calls that reached it."""

    def __init__(self, inner):
        self.inner, self.calls = inner, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def sample(self, n, *, seed, batch_size=64, condition=None, steps=None, start=0):
        self.calls += 1
        return self.inner.sample(n, seed=seed, batch_size=batch_size, condition=condition, steps=steps, start=start)

    def log_likelihood(self, batch, *, seed=0, start=0):
        self.calls += 1
        return self.inner.log_likelihood(batch, seed=seed, start=start)


def _cached(directory, inner, config="c0", seed=0):
    counting = Counting(inner)
    return PartCached(counting, PartCache(directory, config_hash=config, seed=seed)), counting


def _same_samples(a: Samples, b: Samples) -> None:
    for name in ("images", "tokens"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None and y is None) or (x.dtype == y.dtype and np.array_equal(x, y))
    assert (a.texts, a.nfe, a.nfe_per_sample, a.info) == (b.texts, b.nfe, b.nfe_per_sample, b.info)


def test_samples_and_likelihoods_read_back_equal(tmp_path):
    texts = Samples(tokens=np.arange(6, dtype=np.int64).reshape(2, 3), texts=["ab", "ü\n"], nfe=7,
                    nfe_per_sample=3.5, info={"quantisation": "clip-round", "k": [1, 2]})
    value, meta = partials.npz_to_value(partials.value_to_npz(texts, {"any": "key"}))
    _same_samples(value, texts)
    assert meta["key"] == {"any": "key"}
    ll = LogLikelihood(nll=np.array([1.5, 2.25]), units=np.array([3.0, 4.0]), unit="token",
                       kind=LikelihoodKind.UPPER_BOUND, stderr=np.array([0.1, 0.2]), mc_samples=8, info={"w": 1})
    back, _ = partials.npz_to_value(partials.value_to_npz(ll, {}))
    for name in ("nll", "units", "stderr"):
        assert getattr(back, name).dtype == np.float64 and np.array_equal(getattr(back, name), getattr(ll, name))
    assert (back.unit, back.kind, back.mc_samples, back.info) == ("token", LikelihoodKind.UPPER_BOUND, 8, {"w": 1})
    assert isinstance(back.kind, LikelihoodKind)

    # through the wrapper: the second cache of the cell reads each call's part instead of computing it
    condition = np.array([3, 1, 4, 1, 5])
    first, counting = _cached(tmp_path, FakeMasked())
    s = first.sample(5, seed=2, batch_size=2, condition=condition, start=10)
    nll = first.log_likelihood(s.images, seed=2, start=10)
    assert counting.calls == 2 and len(list(tmp_path.glob("*.npz"))) == 2
    again, counting = _cached(tmp_path, FakeMasked())
    _same_samples(again.sample(5, seed=2, batch_size=4, condition=condition, start=10), s)  # batch_size: no change
    back = again.log_likelihood(s.images, seed=2, start=10)
    assert counting.calls == 0 and again._parts.reused == 2
    assert np.array_equal(back.nll, nll.nll) and np.array_equal(back.stderr, nll.stderr) and back.kind == nll.kind


def test_a_corrupted_or_foreign_part_is_recomputed_with_a_warning(tmp_path):
    wrapped, _ = _cached(tmp_path, FakeAR())
    want = wrapped.sample(6, seed=1, start=0).images
    (path,) = tmp_path.glob("*.npz")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit in the middle of the images
    path.write_bytes(bytes(data))
    wrapped, counting = _cached(tmp_path, FakeAR())
    with pytest.warns(UserWarning, match=r"sha256 .* differs from .* in its name \(a corrupted or truncated file\); "
                                         r"ignored, recomputing that part"):
        got = wrapped.sample(6, seed=1, start=0).images
    assert counting.calls == 1 and np.array_equal(got, want)
    (path,) = tmp_path.glob("*.npz")  # the bad file is gone, a good one took its place

    # a good part under another part's name (copied, renamed): its digest is fine, its key is not
    other, counting = _cached(tmp_path, FakeAR(), config="c1")
    key = hashlib_key(other._parts, "sample", {"n": 6, "args": [], "seed": 1, "start": 0}, (0, 6))
    (tmp_path / f"{key}.{path.name.split('.')[1]}.npz").write_bytes(path.read_bytes())
    with pytest.warns(UserWarning, match="holds the part of another call, config, seed or range"):
        other.sample(6, seed=1, start=0)
    assert counting.calls == 1


def test_a_part_that_cannot_be_written_warns_once_and_the_call_still_answers(tmp_path):
    (tmp_path / "file").write_text("in the way")
    wrapped, counting = _cached(tmp_path / "file" / "cell", FakeAR())
    with pytest.warns(UserWarning, match=r"cannot write parts \(.*\); this cell's parts are not kept") as caught:
        first = wrapped.sample(3, seed=0, start=0)
        wrapped.sample(3, seed=0, start=3)
    assert len(caught) == 1 and counting.calls == 2
    assert np.array_equal(first.images, FakeAR().sample(3, seed=0).images)


def hashlib_key(cache: PartCache, method, args, index_range) -> str:
    import hashlib

    fields = cache.key_fields(method, args, index_range)
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:32]


def test_a_part_of_another_config_seed_call_or_range_is_not_reused(tmp_path):
    wrapped, _ = _cached(tmp_path, FakeAR())
    wrapped.sample(4, seed=1, start=0)
    for config, cell_seed, kw in [("c1", 0, {"seed": 1, "start": 0}), ("c0", 5, {"seed": 1, "start": 0}),
                                  ("c0", 0, {"seed": 2, "start": 0}), ("c0", 0, {"seed": 1, "start": 4}),
                                  ("c0", 0, {"seed": 1, "start": 0, "steps": 8})]:
        other, counting = _cached(tmp_path, FakeAR(), config=config, seed=cell_seed)
        other.sample(4, **kw)
        assert counting.calls == 1, (config, cell_seed, kw)
    second, counting = _cached(tmp_path, FakeAR())
    second.sample(4, seed=1, start=0)  # call 0: reused
    second.sample(4, seed=1, start=0)  # call 1 of the cell, same arguments: its own part
    assert counting.calls == 1
    images = np.zeros((3, 4, 4, 1), np.uint8)
    ll, counting = _cached(tmp_path / "ll", FakeAR())
    ll.log_likelihood(images, seed=0, start=0)
    ll2, counting = _cached(tmp_path / "ll", FakeAR())
    images[1, 0, 0, 0] = 255  # another batch at the same place: hashed by content
    ll2.log_likelihood(images, seed=0, start=0)
    assert counting.calls == 1


def test_the_wrapper_keeps_the_generators_signatures():
    class OldFake(FakeAR):  # no start: RankSharded must see that through the wrapper
        def sample(self, n, *, seed, batch_size=64, condition=None, steps=None):
            return super().sample(n, seed=seed, batch_size=batch_size, condition=condition, steps=steps)

    from genbench.distributed import _takes

    parts = PartCache(Path("/nonexistent"), config_hash="c", seed=0)
    assert _takes(PartCached(FakeAR(), parts).sample, "start")
    assert not _takes(PartCached(OldFake(), parts).sample, "start")
    assert "start" in inspect.signature(PartCached(FakeAR(), parts).log_likelihood).parameters
    assert PartCached(FakeAR(), parts).name == "fake-ar"


def test_parts_go_when_the_cell_commits_and_stay_for_a_failed_one(tmp_path):
    store = RunStore(tmp_path / "run")
    store.create({"run_id": "r", "config_hash": "h"})
    cells = {s: store.dir / "partials" / partials.cell_dirname(s, "fake-ar[steps=2]", 0) for s in ("a", "b")}
    for d in cells.values():
        PartCached(FakeAR(), PartCache(d, config_hash="h", seed=0)).sample(2, seed=0)
        (d / "x.npz.tmp").write_bytes(b"half")  # a kill mid-write
    store.reconcile()
    assert not list(store.dir.glob("partials/*/*.tmp"))
    store.commit_cell([], {"suite": "b", "adapter": "fake-ar[steps=2]", "seed": 0, "status": "failed", "attempt": "1"})
    assert len(list(cells["b"].glob("*.npz"))) == 1  # kept for the --resume that runs it again
    for s in ("a", "b"):
        store.commit_cell([], {"suite": s, "adapter": "fake-ar[steps=2]", "seed": 0, "status": "ok", "attempt": "2"})
    assert not any(d.exists() for d in cells.values())
    partials.remove_empty(store.dir)  # the run's end
    assert not (store.dir / "partials").exists()


@contextlib.contextmanager
def killed_before_the_marker(monkeypatch):
    """Inside: a cell's records land but its marker never does (a kill between the two writes)."""
    from genbench import store as store_module

    original = store_module.append_lines

    def killed(path, objs):
        if Path(path).name == store_module.CELLS:
            raise KeyboardInterrupt
        original(path, objs)

    monkeypatch.setattr(store_module, "append_lines", killed)
    try:
        yield
    finally:
        monkeypatch.setattr(store_module, "append_lines", original)


LIKELIHOOD = dict(suites=["likelihood"], adapters=["ar-digits"],
                  suite_options={"likelihood": {"max_examples": 8, "batch_size": 4}})


def test_a_run_killed_before_its_cell_commits_resumes_from_its_parts(tmp_path, monkeypatch):
    """One process: the cell's two likelihood calls were kept; the resumed cell computes neither."""

    reference = tmp_path / "reference"
    runner.run(runner.RunSpec(**LIKELIHOOD), reference, log=lambda m: None)
    out = tmp_path / "run"
    with killed_before_the_marker(monkeypatch), pytest.raises(KeyboardInterrupt):
        runner.run(runner.RunSpec(**LIKELIHOOD), out, log=lambda m: None)
    assert len(list(out.glob("partials/*/*.npz"))) == 2
    before = dict(partials.STATS)
    lines: list[str] = []
    runner.run(runner.RunSpec(**LIKELIHOOD), out, resume=True, log=lines.append)
    assert partials.STATS["reused"] - before["reused"] == 2 and partials.STATS["computed"] == before["computed"]
    assert "      reused 2 of the cell's 2 part(s) from an earlier attempt" in lines
    assert not (out / "partials").exists()
    same = [deterministic_fields(r) for r in RunStore(out).records()]
    assert same == [deterministic_fields(r) for r in RunStore(reference).records()]


def test_no_parts_keeps_none_and_a_bad_setting_is_one_line(tmp_path, monkeypatch, capsys):
    """``genbench run --no-parts`` (GENBENCH_PARTS=off, inherited by torchrun ranks and Slurm jobs):
    a killed cell leaves no parts; a value other than on/off is refused before anything is written."""
    from genbench.cli import main
    from genbench.errors import UserError

    monkeypatch.setenv("GENBENCH_PARTS", "maybe")
    with pytest.raises(UserError, match="GENBENCH_PARTS='maybe': use on or off"):
        runner.run(runner.RunSpec(**LIKELIHOOD), tmp_path / "bad", log=lambda m: None)
    assert not (tmp_path / "bad").exists()
    monkeypatch.setenv("GENBENCH_PARTS", "on")  # the flag below turns it off (restored after the test)
    with killed_before_the_marker(monkeypatch):
        assert main(["run", "--suite", "likelihood", "--adapter", "ar-digits", "--set", "likelihood.max_examples=8",
                     "--no-parts", "--out", str(tmp_path / "run")]) != 0  # interrupted
    assert os.environ["GENBENCH_PARTS"] == "off"
    assert (tmp_path / "run" / "records.jsonl").exists() and not list((tmp_path / "run").glob("partials/*/*"))


def test_a_killed_image_quality_cell_reads_back_its_samples_and_features(tmp_path, monkeypatch):
    """The reference path samples in chunks and measures each: both the chunks' samples and each
    chunk's features are kept, so the resumed cell draws and extracts nothing again."""
    from genbench.registry import ADAPTERS
    from tests.harness import ranks_run
    from tests.harness.features.helpers import digit_images, tiny_torchscript, write_pngs

    monkeypatch.setitem(ADAPTERS._entries, ranks_run.RGBDigits.name, ranks_run.RGBDigits)  # this test's only
    reference = write_pngs(tmp_path / "ref", digit_images(0, 12))
    net = tiny_torchscript(tmp_path / "tiny.pt")
    spec = dict(suites=["image_quality"], adapters=["fake-rgb-digits"], suite_options={"image_quality": {
        "reference": str(reference), "extractor": f"torchscript:{net}", "extractor_mode": "clean", "n_samples": 6,
        "sample_chunk": 3, "fid_bootstrap": 0, "kid_subset_size": 100}})
    monkeypatch.setenv("GENBENCH_STATS_CACHE", str(tmp_path / "cache"))
    whole = tmp_path / "whole"
    runner.run(runner.RunSpec(**spec), whole, log=lambda m: None)
    out = tmp_path / "run"
    with killed_before_the_marker(monkeypatch), pytest.raises(KeyboardInterrupt):
        runner.run(runner.RunSpec(**spec), out, log=lambda m: None)
    kinds = [json.loads(np.load(p)["meta"].tobytes())["type"] for p in sorted(out.glob("partials/*/*.npz"))]
    assert sorted(kinds) == ["Samples", "Samples", "arrays", "arrays"]  # 2 chunks, drawn and measured
    before = dict(partials.STATS)
    runner.run(runner.RunSpec(**spec), out, resume=True, log=lambda m: None)
    assert partials.STATS["reused"] - before["reused"] == 4 and partials.STATS["computed"] == before["computed"]
    same = [deterministic_fields(r) for r in RunStore(out).records()]
    assert same == [deterministic_fields(r) for r in RunStore(whole).records()] and len(same) > 3


RUN = """name = "parts"
seeds = [0]
suites = ["image_quality", "likelihood"]
adapters = ["ar-digits"]
[suite.image_quality]
n_samples = 8
[suite.likelihood]
max_examples = 8
batch_size = 4
"""


def _run_killed_on_rank_1(tmp_path, run: str, kill: str):
    """The run file ``run`` in one process (the records to match), then under torchrun with 2 ranks,
    rank 1 SIGKILLed at its ``kill``-th part (``part:1:N``): (run file, one process's dir, killed dir)."""
    runfile = tmp_path / "run.toml"
    runfile.write_text(run)
    single = tmp_path / "single"
    proc = subprocess.run([sys.executable, "-m", "genbench.cli", "run", str(runfile), "--out", str(single)],
                          capture_output=True, text=True, timeout=300, env=ONE_THREAD)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "run"
    killed = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                             str(ROOT / "tests" / "harness" / "killable_run.py"), "run", str(runfile),
                             "--out", str(out)], capture_output=True, text=True, timeout=300, cwd=ROOT,
                            env={**ONE_THREAD, "GENBENCH_TEST_KILL": f"part:1:{kill}"})
    assert killed.returncode != 0
    return runfile, single, out


def _resume_reuses_3_computes_1(runfile, single, out, min_records: int) -> None:
    """``--resume`` on 2 ranks: 3 parts reused, the lost one computed; records equal one process's."""
    resumed = subprocess.run([sys.executable, "-m", "genbench.cli", "run", str(runfile), "--nproc", "2", "--resume",
                              "--out", str(out)], capture_output=True, text=True, timeout=300, env=ONE_THREAD)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "parts: reused 3, computed 1 (rank 0: reused 2, computed 0; rank 1: reused 1, computed 1)" \
        in resumed.stdout, resumed.stdout
    assert not (out / "partials").exists()
    # (a failure record of the killed attempt stays as history, as after any failed cell)
    got = [deterministic_fields(r) for r in RunStore(out).records() if r["status"] == "ok"]
    want = [deterministic_fields(r) for r in RunStore(single).records()]
    assert len(got) == len(want) >= min_records
    for g, w in zip(got, want):
        assert _close(g, w), (g, w)


def test_a_rank_killed_mid_cell_costs_only_its_missing_part(tmp_path):
    """torchrun, 2 ranks: rank 1 dies before writing its part of the likelihood cell's second call;
    the resumed run reuses the 3 parts on disk, computes that one, and its records equal one process's."""
    # parts written by rank 1: the image_quality cell's sample part, then the likelihood cell's two
    runfile, single, out = _run_killed_on_rank_1(tmp_path, RUN, "3")
    # rank 0's gather fails when rank 1 dies: its cell is recorded as failed (or not at all, when
    # torchrun's SIGTERM comes first); either way it keeps its parts and runs again on --resume
    markers = [json.loads(line) for line in (out / "cells.jsonl").read_text().splitlines()]
    assert [m["suite"] for m in markers if m["status"] == "ok"] == ["image_quality"]
    (cell,) = (out / "partials").iterdir()  # the committed cell's parts are gone
    assert cell.name.startswith("likelihood__") and len(list(cell.glob("*.npz"))) == 3
    _resume_reuses_3_computes_1(runfile, single, out, min_records=3)


class GridSpy:
    """A masked model whose grid counts the flat ranges of Monte Carlo passes it really runs."""

    def __init__(self, inner):
        self.inner, self.ranges = inner, []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def likelihood_grid(self, batch, *, seed=0, start=0):
        import dataclasses

        grid = self.inner.likelihood_grid(batch, seed=seed, start=start)

        def terms(s0, s1):
            self.ranges.append((s0, s1))
            return grid.terms(s0, s1)

        return dataclasses.replace(grid, terms=terms)


def test_a_ranks_range_of_a_masked_models_grid_is_a_part(tmp_path, monkeypatch):
    """Under torchrun a masked model's call is one flat range of its Monte Carlo grid per rank
    (``RankSharded.log_likelihood``): through ``PartCached`` that range is kept, so a rerun reads
    it back (no forward pass) with estimates equal to the adapter's own; another range (another
    world size) or seed is computed anew."""
    from genbench import data, distributed
    from genbench.adapters import mdlm

    model = GridSpy(mdlm.MaskedDigits(mc_samples=4))
    images = data.digits_arrays("test")[0][:3]
    want = model.inner.log_likelihood(images, seed=1, start=2)
    for r, world in ((0, 1), (0, 2), (1, 2)):
        monkeypatch.setattr(distributed, "world_size", lambda world=world: world)
        monkeypatch.setattr(distributed, "rank", lambda r=r: r)
        monkeypatch.setattr(distributed, "gather_in_rank_order", lambda part: [part])
        for attempt in range(2):  # a run, then its rerun
            sharded = distributed.RankSharded(PartCached(model, PartCache(tmp_path / f"w{world}r{r}",
                                                                          config_hash="c", seed=0)))
            before = len(model.ranges)
            if world == 1:
                got = sharded.log_likelihood(images, seed=1, start=2)
                np.testing.assert_array_equal(got.nll, want.nll)
                np.testing.assert_array_equal(got.stderr, want.stderr)
            else:  # one rank's half of the 3 x 4 grid (its gather is faked: the range alone)
                grid = sharded.likelihood_grid(images, seed=1, start=2)
                a, b = distributed.rank_range(grid.size)
                np.testing.assert_array_equal(grid.terms(a, b), model.inner.likelihood_grid(
                    images, seed=1, start=2).terms(a, b))
            assert len(model.ranges) - before == (attempt == 0), (world, r, attempt)
    assert model.ranges == [(0, 12), (0, 6), (6, 12)]
    other_seed = PartCached(model, PartCache(tmp_path / "w1r0", config_hash="c", seed=0))
    other_seed.likelihood_grid(images, seed=2, start=2).terms(0, 12)
    assert model.ranges[-1] == (0, 12) and len(model.ranges) == 4


RUN_MASKED = """name = "grid-parts"
seeds = [0]
suites = ["likelihood"]
adapters = ["masked-digits"]
[suite.likelihood]
max_examples = 8
batch_size = 4
"""


def test_a_rank_killed_mid_grid_costs_only_its_missing_part(tmp_path):
    """torchrun, 2 ranks, a masked model (its calls split by Monte Carlo pass): rank 1 dies before
    writing its range of the second call; the resumed run computes only that range."""
    runfile, single, out = _run_killed_on_rank_1(tmp_path, RUN_MASKED, "2")
    (cell,) = (out / "partials").iterdir()
    assert cell.name.startswith("likelihood__") and len(list(cell.glob("*.npz"))) == 3
    _resume_reuses_3_computes_1(runfile, single, out, min_records=2)


@pytest.mark.parametrize("array", [np.arange(24, dtype=np.uint8).reshape(2, 3, 4),
                                   np.linspace(0, 1, 12).reshape(3, 4).T,  # not contiguous
                                   np.array(3.5, dtype=np.float32), np.zeros((0, 5), dtype=np.int64),
                                   np.array([True, False]), np.arange(0, 4, dtype="datetime64[s]")])
def test_fingerprint_hashes_the_array_bytes_in_place(array):
    """The digest is that of the C-order bytes (as tobytes() gives them), for any layout and dtype,
    so keys of parts written before stay valid; a changed element changes it."""
    import hashlib

    got = partials.fingerprint(array)
    c = np.ascontiguousarray(array)  # (a 0-d array comes out 1-d, as it always did in keys)
    assert got == {"array": array.dtype.str, "shape": list(c.shape), "sha256": hashlib.sha256(c.tobytes()).hexdigest()}
    if array.size:
        changed = np.array(array, copy=True)
        changed.flat[0] = changed.flat[-1] if changed.flat[0] != changed.flat[-1] else changed.flat[0] + 1
        assert partials.fingerprint(changed)["sha256"] != got["sha256"]
    # a fingerprint taken once stands for the array in any key (image_quality hashes a chunk's
    # images once for all its extractors): the same key, so the same part
    cache = PartCache(Path("unused"), config_hash="c", seed=0)
    assert cache.key_fields("features", {"images": got, "x": 1}, (0, 2)) == \
        cache.key_fields("features", {"images": array, "x": 1}, (0, 2))
