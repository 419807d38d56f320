"""Sharded runs: `genbench run --shard K/N` + `genbench merge`, and `--slurm` through submitit's
LocalExecutor, give records equal to a single-process run in every deterministic field
(``store.deterministic_fields``); bad shard sets are refused in one line; a rerun after a lost or
killed shard recomputes only what that shard had not finished."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from genbench import runner
from genbench.cli import main
from genbench.shard import parse_shard, shard_bounds, shard_cells
from genbench.store import deterministic_fields
from genbench.errors import UserError

# 4 cells on two zoo models (about 1 s each): image quality from 8 samples, likelihood on 8 digits
RUN = """name = "shards"
seeds = [0]
suites = ["image_quality", "likelihood"]
adapters = ["ar-digits", "masked-digits"]
[suite.image_quality]
n_samples = 8
[suite.likelihood]
max_examples = 8
"""


def _records(out) -> list[dict]:
    return [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]


def _same(out) -> list[dict]:
    return [deterministic_fields(r) for r in _records(out)]


def _err_line(capsys) -> str:
    err = [l for l in capsys.readouterr().err.strip().splitlines() if l.startswith("genbench: error")]
    assert len(err) == 1, err
    return err[0]


@pytest.fixture(scope="module")
def runfile(tmp_path_factory):
    path = tmp_path_factory.mktemp("spec") / "run.toml"
    path.write_text(RUN)
    return path


@pytest.fixture(scope="module")
def reference(runfile, tmp_path_factory):
    """The single-process run every sharded run must reproduce."""
    out = tmp_path_factory.mktemp("single") / "run"
    results = runner.run(runner.load_run_file(runfile), out, log=lambda m: None)
    assert [r.status for r in results] == ["ok"] * 4
    records = _same(out)
    assert len(records) > 4 and all(r["status"] == "ok" for r in records)
    return records


#: processes the tests launch run on one thread, torch's and BLAS's alike: the float sums of a
#: 2-thread matrix product differ in the last bits from a 1-thread one (the bootstrap's eigh
#: moves ~1e-8), and that is the machine's arithmetic, not the sharding
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def reference_process(runfile, tmp_path_factory):
    """The single-process run, as its own process on one thread: what runs in other processes
    (submitit jobs, torchrun ranks) must reproduce."""
    out = tmp_path_factory.mktemp("single_process") / "run"
    proc = subprocess.run([sys.executable, "-m", "genbench.cli", "run", str(runfile), "--out", str(out)],
                          capture_output=True, text=True, timeout=300, env=ONE_THREAD)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return _same(out)


def test_shards_partition_the_cells_in_run_order():
    cells = list(range(10))
    for n in (1, 3, 4, 10):
        blocks = [shard_cells(cells, k, n) for k in range(n)]
        assert sum(blocks, []) == cells  # contiguous, disjoint, complete
        assert max(map(len, blocks)) - min(map(len, blocks)) <= 1
    assert shard_bounds(10, 2, 4) == (5, 7)
    with pytest.raises(UserError, match="fewer than 11 shards"):
        shard_cells(cells, 0, 11)
    assert parse_shard(" 2/4") == (2, 4)
    for bad in ("4/4", "1", "a/b", "-1/3", "0/0"):
        with pytest.raises(UserError, match="--shard"):
            parse_shard(bad)


def test_shard_stores_merge_into_the_single_process_run(runfile, reference, tmp_path, capsys):
    shards = [tmp_path / f"s{k}" for k in range(3)]
    for k, out in enumerate(shards):
        assert main(["run", str(runfile), "--shard", f"{k}/3", "--out", str(out)]) == 0
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["shard"]["index"] == k and manifest["shard"]["count"] == 3
    # each shard ran only its own cells, and together they ran each cell once
    cells = [tuple(json.loads(l)[x] for x in ("suite", "adapter", "seed"))
             for s in shards for l in (s / "cells.jsonl").read_text().splitlines()]
    assert sorted(cells) == sorted(runner.cell_keys(runner.load_run_file(runfile)))
    merged = tmp_path / "merged"
    assert main(["merge", *map(str, shards), "--out", str(merged)]) == 0
    assert _same(merged) == reference
    assert len({r["run_id"] for r in _records(merged)}) == 1
    for r in _records(merged):  # artifacts copied beside the merged records
        assert (merged / r["artifacts"]).is_dir()
    again = (merged / "records.jsonl").read_bytes()
    assert main(["merge", *map(str, shards), "--out", str(merged)]) == 0  # a merge can be repeated
    assert (merged / "records.jsonl").read_bytes() == again
    capsys.readouterr()

    # refusals: one line each, and nothing written
    assert main(["merge", str(shards[0]), str(shards[1]), "--out", str(tmp_path / "m2")]) == 2
    assert "shard(s) 2 of 3 not given" in _err_line(capsys)
    assert main(["merge", str(shards[0]), str(shards[0]), str(shards[1]), str(shards[2]),
                 "--out", str(tmp_path / "m2")]) == 2
    assert "both hold cell" in _err_line(capsys)
    other = tmp_path / "other"
    assert main(["run", str(runfile), "--seed", "1", "--shard", "0/3", "--out", str(other)]) == 0
    capsys.readouterr()
    assert main(["merge", str(shards[0]), str(other), str(shards[2]), "--out", str(tmp_path / "m2")]) == 2
    assert "shard of another run" in _err_line(capsys)
    assert main(["merge", str(reference_dir := tmp_path / "nope"), "--out", str(tmp_path / "m2")]) == 2
    assert "no manifest.json" in _err_line(capsys) and not reference_dir.exists()
    assert not (tmp_path / "m2").exists()
    # a shard store resumed as another shard; more shards than cells; --shards without --slurm
    assert main(["run", str(runfile), "--shard", "1/3", "--out", str(shards[0]), "--resume"]) == 2
    assert "holds shard 0/3, not 1/3" in _err_line(capsys)
    assert main(["run", str(runfile), "--shard", "0/5", "--out", str(tmp_path / "x")]) == 2
    assert "4 cell(s), fewer than 5 shards" in _err_line(capsys)
    assert main(["run", str(runfile), "--shards", "2", "--out", str(tmp_path / "x")]) == 2
    assert "--shard K/N" in _err_line(capsys)
    assert not (tmp_path / "x").exists()


def test_an_incomplete_shard_is_refused_then_resumed(runfile, reference, tmp_path, capsys):
    shards = [tmp_path / f"s{k}" for k in range(2)]
    for k, out in enumerate(shards):
        assert main(["run", str(runfile), "--shard", f"{k}/2", "--out", str(out)]) == 0
    # a kill after the shard's first cell: its second cell's marker never landed
    cells = (shards[1] / "cells.jsonl").read_text().splitlines(keepends=True)
    (shards[1] / "cells.jsonl").write_text(cells[0])
    capsys.readouterr()
    assert main(["merge", *map(str, shards), "--out", str(tmp_path / "m")]) == 2
    assert "shard 1/2 is incomplete (1 of 2 cells finished)" in _err_line(capsys)
    assert main(["run", str(runfile), "--shard", "1/2", "--out", str(shards[1]), "--resume"]) == 0
    assert main(["merge", *map(str, shards), "--out", str(tmp_path / "m")]) == 0
    assert _same(tmp_path / "m") == reference


def test_slurm_through_submitits_local_executor(runfile, reference_process, tmp_path, capsys, monkeypatch):
    for key in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(key, "1")  # the jobs inherit it
    out = tmp_path / "run"
    assert main(["run", str(runfile), "--executor", "local", "--shards", "2", "--out", str(out)]) == 0
    reference = reference_process
    assert _same(out) == reference
    assert sorted(p.name for p in (out / "shards").iterdir()) == ["0", "1"]
    kept = {f: (out / "shards" / "0" / f).read_bytes() for f in ("records.jsonl", "cells.jsonl", "manifest.json")}
    markers1 = [json.loads(l) for l in (out / "shards" / "1" / "cells.jsonl").read_text().splitlines()]
    capsys.readouterr()

    # a lost job: shard 1's store is gone, and its job fails (a file where its store goes): the
    # error names shard 1, nothing is merged, shard 0 is not resubmitted
    shutil.rmtree(out / "shards" / "1")
    (out / "shards" / "1").write_text("in the way")
    merged = (out / "records.jsonl").read_bytes()
    assert main(["run", str(runfile), "--executor", "local", "--shards", "2", "--out", str(out)]) == 2
    line = _err_line(capsys)
    assert "1 shard job(s) failed: shard 1 (job" in line and "is a file" in line and "rerun the same command" in line
    assert (out / "records.jsonl").read_bytes() == merged
    # the rerun submits only shard 1 and leaves shard 0 untouched
    (out / "shards" / "1").unlink()
    assert main(["run", str(runfile), "--executor", "local", "--shards", "2", "--out", str(out)]) == 0
    log = capsys.readouterr().out
    assert "shard 0/2: complete, kept" in log and "shard 1/2: missing, submitting" in log
    assert "submitted 1 job(s)" in log and "(2 shards, 2 cells run now" in log
    assert {f: (out / "shards" / "0" / f).read_bytes() for f in kept} == kept
    assert _same(out) == reference

    # a killed job: shard 1 finished its first cell only; the rerun runs only the second cell
    lines = (out / "shards" / "1" / "cells.jsonl").read_text().splitlines(keepends=True)
    (out / "shards" / "1" / "cells.jsonl").write_text(lines[0])
    first_attempt = json.loads(lines[0])["attempt"]
    assert main(["run", str(runfile), "--executor", "local", "--shards", "2", "--out", str(out)]) == 0
    log = capsys.readouterr().out
    assert "shard 1/2: incomplete, submitting" in log and "(2 shards, 1 cells run now" in log
    after = [json.loads(l) for l in (out / "shards" / "1" / "cells.jsonl").read_text().splitlines()]
    assert after[0]["attempt"] == first_attempt and len(after) == 2
    assert [(m["suite"], m["adapter"]) for m in after] == [(m["suite"], m["adapter"]) for m in markers1]
    assert _same(out) == reference
    assert main(["report", str(out), "--out", str(tmp_path / "r.md")]) == 0  # the merged run reads as one run


def test_slurm_without_sbatch_is_one_line(runfile, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    assert main(["run", str(runfile), "--slurm", "gpu", "--shards", "2", "--out", str(tmp_path / "r")]) == 2
    line = _err_line(capsys)
    assert "no `sbatch` on PATH" in line and "--executor local" in line
    assert not (tmp_path / "r").exists()
    assert main(["run", str(runfile), "--slurm", "gpu", "--shard", "0/2", "--out", str(tmp_path / "r")]) == 2
    assert "pass one of them" in _err_line(capsys)


def test_slurm_without_sbatch_says_nothing_of_submitting(runfile, tmp_path, capsys, monkeypatch):
    """The one-line refusal comes before the per-shard lines: no "shard 0/2: missing, submitting" first."""
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    assert main(["run", str(runfile), "--slurm", "gpu", "--shards", "2", "--out", str(tmp_path / "r")]) == 2
    out = capsys.readouterr()
    assert "no `sbatch` on PATH" in out.err and "submitting" not in out.out + out.err


def test_ranks_split_a_call_from_start_and_an_old_adapter_says_what_it_lacks(monkeypatch):
    """``RankSharded.sample(n, start=k)`` (a suite sampling in chunks, under torchrun) gives rank r
    samples k + its range; every adapter's own ``start`` is checked in tests/adapters/test_sampling.py."""
    from genbench import distributed
    from genbench.errors import UserError
    from tests.fakes import FakeAR

    whole = FakeAR().sample(9, seed=3).images
    parts = []
    for r in (0, 1):  # two ranks, simulated one after the other
        monkeypatch.setattr(distributed, "rank", lambda r=r: r)
        monkeypatch.setattr(distributed, "world_size", lambda: 2)
        monkeypatch.setattr(distributed, "gather_in_rank_order", lambda part: [part])
        parts.append(distributed.RankSharded(FakeAR()).sample(5, seed=3, batch_size=2, start=4).images)
    assert [len(p) for p in parts] == [2, 3] and (np.concatenate(parts) == whole[4:]).all()

    class OldFake(FakeAR):  # written before sample() took start: run whole on every rank
        def sample(self, n, *, seed, batch_size=64, condition=None, steps=None):
            return super().sample(n, seed=seed, batch_size=batch_size, condition=condition, steps=steps)

    assert (distributed.RankSharded(OldFake()).sample(9, seed=3).images == whole).all()
    with pytest.raises(UserError, match=r"'fake-ar': its sample\(\) takes no start="):
        distributed.RankSharded(OldFake()).sample(5, seed=3, start=4)


def test_an_empty_likelihood_batch_under_ranks_is_the_adapters_empty_answer(monkeypatch):
    """Every rank's range of an empty batch is empty: the call answers as the adapter does for
    an empty batch (no parts to concatenate), on every rank."""
    from genbench import distributed
    from tests.fakes import FakeAR

    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    monkeypatch.setattr(distributed, "gather_in_rank_order", lambda part: [part, part])
    for r in (0, 1):
        monkeypatch.setattr(distributed, "rank", lambda r=r: r)
        ll = distributed.RankSharded(FakeAR()).log_likelihood(np.zeros((0, 4, 4, 1), np.uint8), seed=2)
        assert len(ll.nll) == len(ll.units) == 0 and ll.kind == "exact" and ll.unit == "dimension"


#: records of a torchrun run must equal one process's: numbers to 1e-12 relative (a float64
#: reduction in another order), everything else exactly
REL = 1e-12


def _close(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= REL * max(abs(a), abs(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    return a == b


def test_torchrun_two_ranks_equal_one_process(runfile, reference_process, tmp_path):
    reference = reference_process
    out = tmp_path / "run"
    # `genbench run --nproc 2` is `torchrun --standalone --nproc_per_node 2 -m genbench.cli run ...` (gloo, CPU)
    proc = subprocess.run([sys.executable, "-m", "genbench.cli", "run", str(runfile), "--nproc", "2", "--out", str(out)],
                          capture_output=True, text=True, timeout=300, env=ONE_THREAD)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "launch: -m torch.distributed.run --standalone --nproc_per_node 2 -m genbench.cli run" in proc.stdout
    # the work was split: both image_quality cells' sampling, ar-digits' exact likelihood by example,
    # masked-digits' Monte Carlo ELBO by (example, sample): 8 images x 32 forward passes, 128 a rank
    # (its draws keyed by the example's index in the run, start + i)
    assert "torchrun: 2 ranks; sample split 2, sample whole 0, likelihood split 1, " \
           "likelihood split by (example, sample) 1, likelihood whole 0" in proc.stdout, proc.stdout
    assert proc.stdout.count("records:") == 1  # rank 0 alone reports (and writes)
    assert json.loads((out / "manifest.json").read_text())["world_size"] == 2
    records = _same(out)
    assert len(records) == len(reference)
    for got, want in zip(records, reference):
        assert _close(got, want), (got, want)


def _torchrun(args: list[str], tmp_path, **env) -> tuple[subprocess.CompletedProcess, float]:
    """``genbench run ... --nproc 2`` on the rank_fakes plugin (tiny: a toy suite of 4 samples)."""
    import time

    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "genbench.cli", "run", "--suite", "toy", "--set",
                           "toy.n_samples=4", "--plugin", "tests.harness.rank_fakes", *args, "--nproc", "2",
                           "--out", str(tmp_path / "run")], capture_output=True, text=True, timeout=240,
                          env={**ONE_THREAD, "PYTHONPATH": os.getcwd(), **env})
    return proc, time.perf_counter() - t0


def test_a_cell_failing_on_one_rank_fails_on_all_and_the_run_goes_on(tmp_path):
    """Rank 1's sampling raises, rank 0's does not: both raise RankFailed at the gather (no hang),
    rank 0 records the cell failed naming rank 1, and both go on to the next cell."""
    proc, wall = _torchrun(["--adapter", "fake-fails-on-rank-1", "--adapter", "fake-ar"], tmp_path)
    assert proc.returncode == 1, proc.stderr[-3000:]  # a failed cell, and nothing else
    assert "records:" in proc.stdout and "(2 cells run, 1 failed)" in proc.stdout, proc.stdout
    records = _records(tmp_path / "run")
    failed = [r for r in records if r["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["adapter"] == "fake-fails-on-rank-1"
    assert failed[0]["error"] == "RankFailed: rank 1: ValueError: sampling broke on this rank only"
    ok = [r for r in records if r["status"] == "ok"]
    assert ok and {r["adapter"] for r in ok} == {"fake-ar"} and {r["metric"] for r in ok} >= {"mean_pixel"}
    assert "genbench rank 1: its part raised" in proc.stderr  # the failing rank's own traceback
    print(f"torchrun with a failing rank: {wall:.1f} s")


def test_a_stuck_rank_ends_the_job_after_the_timeout(tmp_path):
    """Rank 1 never reaches the gather: rank 0 gives up after GENBENCH_DIST_TIMEOUT_S and ends the
    job (RankLost, not a recorded cell), and torchrun stops rank 1."""
    proc, wall = _torchrun(["--adapter", "fake-stuck-on-rank-1"], tmp_path, GENBENCH_DIST_TIMEOUT_S="4")
    assert proc.returncode != 0
    assert "genbench: error: rank 0: the ranks' gather failed" in proc.stderr, proc.stderr[-3000:]
    assert "GENBENCH_DIST_TIMEOUT_S=4 s; finished cells are in the records file (use --resume)" in proc.stderr
    assert wall < 200  # not rank 1's 300 s sleep
    assert not (tmp_path / "run" / "cells.jsonl").exists() or not (tmp_path / "run" / "cells.jsonl").read_text()


def test_a_part_that_raises_is_raised_on_every_rank_and_the_timeout_is_checked(monkeypatch):
    """``gather_parts`` (two ranks simulated): a part's exception becomes a marker in the gather,
    and every rank raises one RankFailed naming the rank(s); ranks at different steps are lost,
    never joined; GENBENCH_DIST_TIMEOUT_S is checked."""
    import torch.distributed as dist

    from genbench import distributed

    monkeypatch.setattr(distributed, "rank", lambda: 0)
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    others = [distributed._Failure(1, "ValueError: boom")]  # rank 1's part
    ahead = [0]  # how many gathers rank 1 is ahead of rank 0

    def all_gather_object(out, sent):  # rank 0 sends (step, part); rank 1 sends its own
        (cell, n), _ = sent
        out[:] = [sent, ((cell, n + ahead[0]), others[0])]

    monkeypatch.setattr(dist, "all_gather_object", all_gather_object)
    monkeypatch.setattr(distributed, "_STEP", {"cell": None, "gathers": 0})
    distributed.begin_cell(("toy", "fake-ar", 0))
    with pytest.raises(distributed.RankFailed, match=r"^rank 1: ValueError: boom$"):
        distributed.gather_parts(lambda: np.arange(3))  # rank 0's part was fine

    def broken():
        raise ValueError("boom")

    with pytest.raises(distributed.RankFailed, match=r"^ranks 0, 1: ValueError: boom$"):
        distributed.gather_parts(broken)
    others[:] = [np.arange(2)]
    assert [list(p) for p in distributed.gather_parts(lambda: np.arange(3))] == [[0, 1, 2], [0, 1]]
    assert list(distributed.gather_parts(lambda: np.arange(3), share=False)[0]) == [0, 1, 2]
    ahead[0] = 1  # rank 1 left a cell early: its gathers are not rank 0's
    with pytest.raises(distributed.RankLost, match=r"out of step \(rank 0 at gather \(\('toy', 'fake-ar', 0\), 5\); "
                                                   r"rank 1 at gather \(\('toy', 'fake-ar', 0\), 6\)"):
        distributed.gather_in_rank_order(None)

    def gather_object(sent, out, dst):  # what only rank 0 receives (images it writes): checked alike
        (cell, n), _ = sent
        out[:] = [sent, ((cell, n + ahead[0]), "rank 1's images")]

    monkeypatch.setattr(dist, "gather_object", gather_object)
    with pytest.raises(distributed.RankLost, match=r"out of step \(rank 0 at gather \(\('toy', 'fake-ar', 0\), 6\); "
                                                   r"rank 1 at gather \(\('toy', 'fake-ar', 0\), 7\)"):
        distributed.gather_to_rank0("rank 0's images")
    ahead[0] = 0
    assert distributed.gather_to_rank0("rank 0's images") == ["rank 0's images", "rank 1's images"]
    monkeypatch.delenv("GENBENCH_DIST_TIMEOUT_S", raising=False)
    assert distributed.timeout_s() == distributed.DEFAULT_TIMEOUT_S == 1800
    monkeypatch.setenv("GENBENCH_DIST_TIMEOUT_S", "2.5")
    assert distributed.timeout_s() == 2.5
    for bad in ("0", "-3", "soon", "inf"):
        monkeypatch.setenv("GENBENCH_DIST_TIMEOUT_S", bad)
        with pytest.raises(UserError, match=f"GENBENCH_DIST_TIMEOUT_S='{bad}' is not a number of seconds > 0"):
            distributed.timeout_s()
