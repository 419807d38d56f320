import errno
import json
import os

import pandas as pd
import pytest

from genbench.errors import UserError
from genbench.store import RunStore, load


def _record(**kw):
    r = {"run_id": "r1", "suite": "s", "task": "t", "adapter": "a", "paradigm": "masked", "modality": "image",
         "metric": "m", "value": 1.5, "stderr": 0.1, "n": 10, "unit": "bits/dim", "higher_is_better": False,
         "seed": 0, "config_hash": "abc", "convention": {"kind": "upper_bound", "mc_samples": 32},
         "status": "ok", "error": None}
    r.update(kw)
    return r


def test_round_trip_keeps_every_field(tmp_path):
    store = RunStore(tmp_path / "run")
    store.create({"run_id": "r1", "config_hash": "h"})
    store.append(_record())
    store.append(_record(metric="other", value=float("nan"), stderr=None))
    frame = load(tmp_path / "run")
    assert len(frame) == 2
    row = frame.iloc[0]
    assert row["convention"] == {"kind": "upper_bound", "mc_samples": 32}
    assert row["value"] == 1.5 and row["run_id"] == "r1"
    assert pd.isna(frame.iloc[1]["value"])  # NaN is stored as null, never as invalid JSON
    for line in (tmp_path / "run" / "records.jsonl").read_text().splitlines():
        json.loads(line)


def test_load_merges_runs_from_several_machines(tmp_path):
    for i, machine in enumerate(["m1", "m2"]):
        store = RunStore(tmp_path / machine / f"run{i}")
        store.create({"run_id": f"r{i}"})
        store.append(_record(run_id=f"r{i}", value=float(i)))
    both = load(tmp_path / "m1", tmp_path / "m2")
    assert sorted(both["run_id"]) == ["r0", "r1"]
    assert len(load(tmp_path / "m1" / "run0", tmp_path / "m2" / "run1")) == 2


def test_corruption_in_the_middle_is_an_error(tmp_path):
    store = RunStore(tmp_path / "run")
    store.create({"run_id": "r1"})
    store.records_path.write_text('{"a": 1}\nnot json\n{"b": 2}\n')
    with pytest.raises(UserError, match="line 2"):
        load(tmp_path / "run")


def test_load_of_a_folder_without_runs_names_it(tmp_path):
    with pytest.raises(UserError, match="no records.jsonl"):
        load(tmp_path)


def test_a_short_write_stops_the_run_and_marks_no_cell(tmp_path, monkeypatch):
    """A full disk: the write lands half its bytes. The run stops with a UserError (exit 2), the
    half line is undone, the cell is not marked finished, and --resume then completes it."""
    from genbench import runner, store as store_mod

    out = tmp_path / "run"
    spec = runner.RunSpec(suites=["toy"], adapters=["fake-ar", "fake-masked"], seeds=[0], name="t")
    calls = {"n": 0}

    def short_write(fd, data):
        calls["n"] += data.startswith(b"{")  # the store's JSON, not the cells' parts (.npz, genbench.partials)
        if calls["n"] == 4 and data.startswith(b"{"):  # manifest, records, marker, then the second cell's records
            return os.write(fd, data[: len(data) // 2])
        return os.write(fd, data)

    monkeypatch.setattr(store_mod, "_os_write", short_write)
    with pytest.raises(store_mod.StoreWriteError, match=r"short write \(\d+ of \d+ bytes; is the disk full"):
        runner.run(spec, out, log=lambda m: None)
    assert [c["adapter"] for c in store_mod.read_records(out / "cells.jsonl")] == ["fake-ar"]
    assert out.joinpath("records.jsonl").read_bytes().endswith(b"\n")  # the half line was undone
    monkeypatch.setattr(store_mod, "_os_write", os.write)
    runner.run(spec, out, resume=True, log=lambda m: None)
    frame = load(out, latest=False)
    assert sorted(frame.adapter) == ["fake-ar", "fake-ar", "fake-masked", "fake-masked"]


def test_a_write_error_is_a_store_error_not_a_failed_cell(tmp_path, monkeypatch):
    from genbench import runner, store as store_mod

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    out = tmp_path / "run"
    spec = runner.RunSpec(suites=["toy"], adapters=["fake-ar"], seeds=[0], name="t")
    monkeypatch.setattr(store_mod, "_os_write", full)
    with pytest.raises(store_mod.StoreWriteError, match="the disk is full"):
        runner.run(spec, out, log=lambda m: None)
    assert not (out / "cells.jsonl").exists() or not (out / "cells.jsonl").read_text()


def test_a_torn_last_line_is_truncated_before_the_next_append(tmp_path):
    store = RunStore(tmp_path / "run")
    store.create({"run_id": "r1"})
    store.append(_record())
    with open(store.records_path, "a") as f:
        f.write('{"run_id": "r1", "metric": "half')
    with pytest.warns(UserWarning, match=r"line 2 is torn .* read the 1 records before it"):
        assert len(load(tmp_path / "run")) == 1  # the reader recovers what precedes it
    with pytest.warns(UserWarning, match="removed a torn last line"):
        store.reconcile()
    store.append(_record(metric="next"))
    assert [r["metric"] for r in store.records()] == ["m", "next"]  # not appended onto the torn bytes


def test_resume_drops_records_whose_cell_never_committed(tmp_path):
    store = RunStore(tmp_path / "run")
    store.create({"run_id": "r1"})
    store.commit_cell([_record(attempt="a1")], {"suite": "s", "adapter": "a", "seed": 0, "status": "ok",
                                                 "attempt": "a1"})
    store.append(_record(seed=1, attempt="a2"))  # killed before its marker
    store.commit_cell([_record(seed=2, metric="partial", attempt="a3"),
                       _record(seed=2, metric=None, status="failed", attempt="a3")],
                      {"suite": "s", "adapter": "a", "seed": 2, "status": "failed", "attempt": "a3"})
    finished, dropped = store.reconcile()
    assert finished == {("s", "a", 0)} and dropped == 2
    assert [(r["seed"], r["status"]) for r in store.records()] == [(0, "ok"), (2, "failed")]


def test_records_that_are_json_but_not_objects_name_the_line(tmp_path):
    store = RunStore(tmp_path / "run")
    store.create({"run_id": "r1"})
    store.records_path.write_text('{"a": 1}\n[1, 2]\n')
    with pytest.raises(UserError, match=r"line 2 is JSON but not an object \(a list\)"):
        load(tmp_path / "run")


def test_a_leftover_temporary_manifest_does_not_block_a_run(tmp_path):
    from genbench import runner

    out = tmp_path / "run"
    out.mkdir()
    (out / "manifest.jsonab12.tmp").write_text('{"half')
    spec = runner.RunSpec(suites=["toy"], adapters=["fake-ar"], seeds=[0], name="t")
    runner.run(spec, out, resume=True, log=lambda m: None)
    assert len(load(out)) == 2 and not list(out.glob("*.tmp"))


def test_the_lock_refuses_a_second_writer_naming_the_first(tmp_path):
    first = RunStore(tmp_path / "run").lock()
    try:
        with pytest.raises(UserError, match=rf"in use by another genbench run \(pid {os.getpid()}\)"):
            RunStore(tmp_path / "run").lock()
    finally:
        first.unlock()
    RunStore(tmp_path / "run").lock().unlock()  # free again
