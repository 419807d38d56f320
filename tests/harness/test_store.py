import json

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


def test_a_torn_last_line_is_skipped_not_fatal(tmp_path):
    store = RunStore(tmp_path / "run")
    store.create({"run_id": "r1"})
    store.append(_record())
    with open(store.records_path, "a") as f:
        f.write('{"run_id": "r1", "metric": "half')
    with pytest.warns(UserWarning, match="torn"):
        frame = load(tmp_path / "run")
    assert len(frame) == 1


def test_corruption_in_the_middle_is_an_error(tmp_path):
    store = RunStore(tmp_path / "run")
    store.create({"run_id": "r1"})
    store.records_path.write_text('{"a": 1}\nnot json\n{"b": 2}\n')
    with pytest.raises(UserError, match="line 2"):
        load(tmp_path / "run")


def test_load_of_a_folder_without_runs_names_it(tmp_path):
    with pytest.raises(UserError, match="no records.jsonl"):
        load(tmp_path)
