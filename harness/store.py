"""The results store: one directory per run, ``records.jsonl`` plus ``manifest.json``.

Each metric value is one JSON line, appended with a single ``write`` on an ``O_APPEND``
descriptor and fsynced, so a crash loses at most the line being written (``load`` skips a
torn last line). A failed cell is a record with ``status: "failed"`` and its error.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterable

from genbench.errors import UserError

RECORDS = "records.jsonl"
MANIFEST = "manifest.json"
CELLS = "cells.jsonl"

#: keys every record carries (``load`` fills missing optional ones with None)
RECORD_KEYS = (
    "run_id", "suite", "task", "adapter", "paradigm", "modality", "metric", "value", "stderr",
    "n", "unit", "higher_is_better", "seed", "config_hash", "convention", "status", "error",
    "wall_s", "time",
)


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in a record")


def _clean_float(x: Any) -> Any:
    # JSON has no NaN; a missing number is stored as null.
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON to ``path`` via a temporary file and rename, so readers never see half a file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=True, default=_json_default)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def append_json_line(path: Path, obj: dict[str, Any]) -> None:
    """One JSON object as one line, with a single write on an O_APPEND descriptor, then fsync."""
    clean = {k: _clean_float(v) for k, v in obj.items()}
    line = json.dumps(clean, sort_keys=True, default=_json_default, allow_nan=False) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)


class RunStore:
    """One run's directory. ``open`` refuses a directory that holds a different run."""

    def __init__(self, directory: Path):
        self.dir = Path(directory)

    @property
    def records_path(self) -> Path:
        return self.dir / RECORDS

    @property
    def manifest_path(self) -> Path:
        return self.dir / MANIFEST

    def manifest(self) -> dict[str, Any] | None:
        if not self.manifest_path.exists():
            return None
        try:
            return json.loads(self.manifest_path.read_text())
        except json.JSONDecodeError as e:
            raise UserError(f"{self.manifest_path}: not valid JSON ({e}); move the directory aside or use another --out")

    def check_can_open(self, config_hash: str, *, resume: bool) -> dict[str, Any] | None:
        """Validate before anything is written; returns the existing manifest when resuming."""
        if self.dir.exists() and not self.dir.is_dir():
            raise UserError(f"--out {self.dir} is a file, not a directory; choose a directory path")
        existing = self.manifest()
        if existing is None:
            if self.dir.exists() and any(self.dir.iterdir()):
                raise UserError(
                    f"--out {self.dir} is not empty and holds no {MANIFEST}; choose an empty or new directory"
                )
            return None
        if existing.get("config_hash") != config_hash:
            raise UserError(
                f"--out {self.dir} already holds a different run (config_hash "
                f"{existing.get('config_hash')} in {MANIFEST}, this run is {config_hash}); "
                "choose another --out"
            )
        if not resume:
            raise UserError(
                f"--out {self.dir} already holds this run ({existing.get('run_id')}); "
                "pass --resume to finish it, or choose another --out"
            )
        return existing

    def create(self, manifest: dict[str, Any]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.manifest_path, manifest)

    def update_manifest(self, **fields: Any) -> None:
        manifest = self.manifest() or {}
        manifest.update(fields)
        write_json_atomic(self.manifest_path, manifest)

    def append(self, record: dict[str, Any]) -> None:
        """Append one record as one line, durable before returning."""
        append_json_line(self.records_path, record)

    def mark_cell(self, suite: str, adapter: str, seed: int, status: str, wall_s: float) -> None:
        """Note a finished cell in cells.jsonl, which ``--resume`` reads."""
        append_json_line(self.dir / CELLS, {"suite": suite, "adapter": adapter, "seed": seed,
                                            "status": status, "wall_s": round(wall_s, 3)})

    def finished_cells(self) -> set[tuple[str, str, int]]:
        return {(c["suite"], c["adapter"], c["seed"]) for c in read_records(self.dir / CELLS)
                if c.get("status") == "ok"}

    def records(self) -> list[dict[str, Any]]:
        return list(read_records(self.records_path))


def read_records(path: Path) -> Iterable[dict[str, Any]]:
    """Records of one file; a torn final line (a crash mid-write) is skipped with a warning."""
    path = Path(path)
    if not path.exists():
        return
    lines = path.read_text(encoding="utf-8").split("\n")
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except json.JSONDecodeError as e:
            last = all(not rest.strip() for rest in lines[i + 1 :])
            if last:
                warnings.warn(f"{path}: skipped a torn last line ({len(line)} chars), left by an interrupted write")
                return
            raise UserError(f"{path}: line {i + 1} is not valid JSON ({e}); the file was edited or corrupted")


def _run_dirs(path: Path) -> list[Path]:
    path = Path(path)
    if (path / RECORDS).exists() or (path / MANIFEST).exists():
        return [path]
    if path.is_dir():
        found = sorted(p.parent for p in path.glob(f"*/{RECORDS}"))
        if found:
            return found
    raise UserError(f"{path}: no {RECORDS} here or one level below; pass a run directory written by `genbench run`")


def load(*dirs: str | Path, latest: bool = True):
    """Records of one or more runs (or folders of runs, e.g. copied from several machines) as a DataFrame.

    latest: within a run, keep only the last record per (suite, task, adapter, metric, seed),
    so a cell re-run by ``--resume`` replaces its earlier partial or failed attempt.
    """
    import pandas as pd

    if not dirs:
        raise UserError("load() needs at least one run directory")
    rows: list[dict[str, Any]] = []
    for d in dirs:
        for run_dir in _run_dirs(Path(d)):
            manifest = RunStore(run_dir).manifest() or {}
            for rec in read_records(run_dir / RECORDS):
                rec.setdefault("run_id", manifest.get("run_id"))
                rec["run_dir"] = str(run_dir)
                rows.append(rec)
    frame = pd.DataFrame(rows)
    for key in RECORD_KEYS:
        if key not in frame.columns:
            frame[key] = None
    if latest and len(frame):
        order = pd.Series(range(len(frame)), index=frame.index)
        cell = frame[["run_id", "suite", "adapter", "seed"]].astype(str).agg("|".join, axis=1)
        last_ok = order[frame["status"] == "ok"].groupby(cell).max()
        # A failure that a later --resume of the same cell fixed is history, not a result.
        superseded = (frame["status"] == "failed") & (order < cell.map(last_ok).fillna(-1))
        frame = frame[~superseded]
        key_cols = ["run_id", "suite", "task", "adapter", "metric", "seed"]
        frame = frame.drop_duplicates(subset=key_cols, keep="last").reset_index(drop=True)
    return frame
