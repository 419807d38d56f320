"""Exact resume: a real ``genbench run`` process SIGKILLed at many points, then resumed until it
finishes, leaves the records an uninterrupted run writes: each (cell, metric) once, equal in
every deterministic field, in the same order. Two runs on one --out: the second is refused."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from genbench.store import NONDETERMINISTIC_KEYS

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tests" / "harness" / "killable_run.py"
# 8 cells: ticks (3 metrics, 20 ms apart) and toy (mean pixel, bits/dim) x 2 adapters x 2 seeds
ARGS = ["run", "--suite", "ticks", "--suite", "toy", "--adapter", "fake-ar", "--adapter", "fake-masked",
        "--seed", "0", "--seed", "1", "--set", "ticks.pause_s=0.02"]


class Zygote:
    """One process that imported genbench forks each run (see killable_run.py): a run costs no import."""

    def __init__(self, log: Path):
        self.log = log
        self.proc = subprocess.Popen([sys.executable, str(SCRIPT), "--zygote"], cwd=ROOT, text=True,
                                     env={**os.environ, "OMP_NUM_THREADS": "1"},
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def start(self, out: Path, *extra: str, kill: str | None = None) -> int:
        request = {"argv": [*ARGS, "--out", str(out), *extra], "kill": kill, "log": str(self.log)}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().split()
        assert answer[:1] == ["pid"], answer
        return int(answer[1])

    def wait(self) -> int:
        answer = self.proc.stdout.readline().split()
        assert answer[:1] == ["rc"], (answer, self.log.read_text()[-2000:])
        return int(answer[1])

    def run(self, out: Path, *extra: str, kill: str | None = None) -> int:
        self.start(out, *extra, kill=kill)
        return self.wait()

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def zygote(tmp_path_factory):
    z = Zygote(tmp_path_factory.mktemp("logs") / "runs.log")
    yield z
    z.close()


def _deterministic(out: Path) -> list[dict]:
    lines = (out / "records.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in NONDETERMINISTIC_KEYS} for line in lines]


def _keys(records: list[dict]) -> list[tuple]:
    return [(r["suite"], r["adapter"], r["seed"], r["metric"]) for r in records]


#: wall time of the uninterrupted run, in seconds: timed kills land at fractions of it
WALL: dict[str, float] = {}


@pytest.fixture(scope="module")
def reference(tmp_path_factory, zygote) -> list[dict]:
    out = tmp_path_factory.mktemp("ref") / "run"
    zygote.start(out)
    t0 = time.monotonic()  # from the fork: the zygote's own start-up is not the run's
    assert zygote.wait() == 0, zygote.log.read_text()[-2000:]
    WALL["run"] = time.monotonic() - t0
    records = _deterministic(out)
    assert len(records) == 2 * 2 * (3 + 2)  # ticks: 3 metrics; toy: mean pixel and bits/dim
    assert len(set(_keys(records))) == len(records)
    return records


def _kill_when(zygote: Zygote, pid: int, out: Path, *, after_s: float | None = None,
               cells: int | None = None) -> int:
    """SIGKILL the run ``pid`` after a delay, or once cells.jsonl lists ``cells`` finished cells."""
    t0 = time.monotonic()
    cells_file = out / "cells.jsonl"
    while time.monotonic() - t0 < 60:
        if after_s is not None and time.monotonic() - t0 >= after_s:
            break
        if cells is not None and cells_file.exists() and cells_file.read_bytes().count(b"\n") >= cells:
            break
        time.sleep(0.002)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # it had finished
    return zygote.wait()


# Each chain kills one run directory's runs in turn, then resumes until the run finishes.
# Kill points: time after start (s); progress (cells finished); exact store calls (see
# killable_run.py): right after an append (a cell's records in, its marker not yet), in the middle
# of a write (a torn line), after a temporary file (the manifest, or the records rewritten by a
# resume) is written but before its rename.
CHAINS = {
    "timed": [("time", 0.3), ("time", 0.1), ("time", 0.5), ("time", 0.2)],  # fractions of the whole run
    "progress": [("cells", 1), ("cells", 3), ("cells", 6)],
    "exact": [("store", "append:1"), ("store", "tear:2"), ("store", "append:4"), ("store", "tear:1")],
    "manifest": [("store", "atomic:1"), ("store", "append:3"), ("store", "atomic:1"), ("store", "tear:3")],
}


@pytest.mark.parametrize("chain", sorted(CHAINS))
def test_killed_and_resumed_runs_equal_the_uninterrupted_run(tmp_path, zygote, reference, chain):
    out = tmp_path / "run"
    kills = 0
    for kind, point in CHAINS[chain]:
        resume = ("--resume",) if out.exists() else ()
        if kind == "store":
            rc = zygote.run(out, *resume, kill=point)
        else:
            pid = zygote.start(out, *resume)
            when = {"after_s": point * WALL["run"]} if kind == "time" else {"cells": point}
            rc = _kill_when(zygote, pid, out, **when)
        assert rc in (-signal.SIGKILL, 0), (rc, zygote.log.read_text()[-2000:])
        kills += rc == -signal.SIGKILL
    # the kills landed (a timed one, or one waiting for progress, may come after a resume's end)
    assert kills >= len(CHAINS[chain]) - (2 if chain in ("timed", "progress") else 0)
    for _ in range(3):  # resume until it finishes (one resume always does)
        assert zygote.run(out, *(("--resume",) if out.exists() else ())) == 0, zygote.log.read_text()[-2000:]
        if json.loads((out / "manifest.json").read_text())["status"] == "finished":
            break
    records = _deterministic(out)
    assert len(set(_keys(records))) == len(records), "a (cell, metric) appears twice"
    assert records == reference
    assert not list(out.glob("*.tmp"))


def test_a_second_run_on_the_same_out_is_refused_at_once(tmp_path, zygote, reference):
    """Two real `genbench run` processes on one --out: the second exits 2 naming the first. Then
    the first is SIGKILLed mid-run, and a resume gives the uninterrupted run's records."""
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GENBENCH_TEST_SLOW": "1.0"}

    def launch(*extra):
        return subprocess.Popen([sys.executable, str(SCRIPT), *ARGS, "--out", str(out), *extra],
                                cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    first = launch()
    t0 = time.monotonic()
    while not (out / "manifest.json").exists() and time.monotonic() - t0 < 60:
        time.sleep(0.01)
    assert first.poll() is None, "the first run ended before the second could start"
    second = launch("--resume")
    _, err = second.communicate(timeout=60)
    assert first.poll() is None, "the second run was not refused while the first ran"
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=60)
    assert second.returncode == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, lines
    assert f"pid {first.pid}" in lines[0] and "in use by another genbench run" in lines[0]
    assert zygote.run(out, "--resume") == 0  # the killed process's lock went with it
    assert _deterministic(out) == reference
