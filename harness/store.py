"""The results store: one directory per run, ``records.jsonl`` plus ``manifest.json``.

A cell's records are committed together: every line of the cell in one ``write`` on an
``O_APPEND`` descriptor (its byte count checked, then fsynced), followed by the cell's marker
in ``cells.jsonl``. Each record carries the ``attempt`` id of the cell run that made it; on
``--resume`` the store drops records whose attempt has no marker (a kill between the two
writes) and the partial metrics of failed attempts (the cell runs again), so ``records.jsonl``
holds each (cell, metric) once. A torn last line (a crash mid-write) is truncated before the
next append and skipped, with its line number, by the reader. One process writes a run
directory at a time: ``lock`` holds an ``fcntl.flock`` on ``.lock`` for the whole run.
"""
from __future__ import annotations

import errno
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
LOCK = ".lock"

#: keys every record carries (``load`` fills missing optional ones with None)
RECORD_KEYS = (
    "run_id", "suite", "task", "adapter", "paradigm", "modality", "metric", "value", "stderr",
    "n", "unit", "higher_is_better", "seed", "config_hash", "convention", "status", "error",
    "wall_s", "time",
)

#: record fields that differ between two runs of the same spec (timings, ids, clock)
NONDETERMINISTIC_KEYS = ("run_id", "wall_s", "time", "attempt", "traceback")
#: convention entries that time a step (e.g. image_quality's ``bootstrap_seconds``)
NONDETERMINISTIC_CONVENTION_SUFFIX = "_seconds"


def deterministic_fields(record: dict[str, Any]) -> dict[str, Any]:
    """A record without the fields two runs of one spec may differ in (``NONDETERMINISTIC_KEYS`` and
    the convention's ``*_seconds`` timings): what a resumed, sharded or merged run must reproduce."""
    out = {k: v for k, v in record.items() if k not in NONDETERMINISTIC_KEYS}
    if isinstance(out.get("convention"), dict):
        out["convention"] = {k: v for k, v in out["convention"].items()
                             if not k.endswith(NONDETERMINISTIC_CONVENTION_SUFFIX)}
    return out


class StoreWriteError(UserError):
    """A write reached the disk incomplete (disk full, I/O error): the run stops, no cell is marked."""


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


def _os_write(fd: int, data: bytes) -> int:
    """``os.write``; a seam the tests replace to simulate a full disk."""
    return os.write(fd, data)


def _write_exactly(fd: int, data: bytes, path: Path) -> None:
    """One write of ``data``; anything short of every byte is a StoreWriteError."""
    try:
        written = _os_write(fd, data)
    except OSError as e:
        reason = "the disk is full" if e.errno == errno.ENOSPC else e.strerror
        raise StoreWriteError(f"{path}: write failed ({reason}); the run stopped, no cell was marked "
                              "finished; free space and rerun with --resume") from None
    if written != len(data):
        raise StoreWriteError(f"{path}: short write ({written} of {len(data)} bytes; is the disk full?); "
                              "the run stopped, no cell was marked finished; free space and rerun with --resume")


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON to ``path`` via a temporary file and rename, so readers never see half a file."""
    text = json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n"
    write_bytes_atomic(Path(path), text.encode("utf-8"))


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """``data`` to ``path`` via ``PATH*.tmp`` and rename; every byte checked and fsynced first."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        try:
            _write_exactly(fd, data, path)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def record_line(obj: dict[str, Any]) -> str:
    """One record as its canonical JSON line (NaN stored as null, keys sorted)."""
    clean = {k: _clean_float(v) for k, v in obj.items()}
    return json.dumps(clean, sort_keys=True, default=_json_default, allow_nan=False) + "\n"


def append_lines(path: Path, objs: list[dict[str, Any]]) -> None:
    """Objects as JSON lines in one write on an O_APPEND descriptor, checked and fsynced.

    A short write is undone (the file truncated back to where it was) and raised.
    """
    data = "".join(record_line(o) for o in objs).encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        start = os.fstat(fd).st_size
        try:
            _write_exactly(fd, data, path)
        except StoreWriteError:
            try:
                os.ftruncate(fd, start)
            except OSError:
                pass  # the next open repairs the torn tail
            raise
        os.fsync(fd)
    finally:
        os.close(fd)


def repair_torn_tail(path: Path) -> int:
    """Truncate a last line that has no newline (left by a crash mid-write); returns the bytes removed."""
    path = Path(path)
    if not path.exists():
        return 0
    with open(path, "rb+") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return 0
        # find the last newline, reading backwards in blocks
        pos, keep = size, 0
        while pos > 0:
            step = min(65536, pos)
            pos -= step
            f.seek(pos)
            block = f.read(step)
            i = block.rfind(b"\n")
            if i >= 0:
                keep = pos + i + 1
                break
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
    warnings.warn(f"{path}: removed a torn last line ({size - keep} bytes) left by an interrupted write")
    return size - keep


def output_error(e: OSError, path: Path, flag: str = "--out") -> UserError:
    """A one-line UserError for an output path that cannot be created or written."""
    path = Path(path)
    blocker = next((p for p in [*reversed(path.parents), path] if p.exists() and not p.is_dir()), None)
    if isinstance(e, (FileExistsError, NotADirectoryError)) and blocker is not None and blocker != path:
        return UserError(f"{flag} {path}: {blocker} is a file, not a directory; choose another path")
    if isinstance(e, PermissionError) or e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return UserError(f"{flag} {path}: not writable ({e.strerror}); choose a path you can write to")
    return UserError(f"{flag} {path}: cannot be written ({e.strerror or e}); choose another path")


def check_output_path(path: Path, flag: str = "--out", *, directory: bool = False) -> Path:
    """Refuse, creating nothing, an output file (or, with ``directory``, folder) that cannot be
    written: a folder where a file goes, a file in the way of a folder, no permission. The
    writer creates the missing folders when it writes, so a refused command leaves none behind."""
    path = Path(path)
    if directory and path.exists() and not path.is_dir():
        raise UserError(f"{flag} {path} is a file, not a directory; choose a directory path")
    if not directory and path.is_dir():
        raise UserError(f"{flag} {path} is a directory; give a file name")
    folder = path if directory else path.parent
    existing = next((p for p in [folder, *folder.parents] if p.exists()), Path("."))
    if not existing.is_dir():
        raise UserError(f"{flag} {path}: {existing} is a file, not a directory; choose another path")
    try:  # a probe, removed at once: permission bits do not tell (root, read-only mounts, ACLs)
        os.rmdir(tempfile.mkdtemp(prefix=".genbench-probe-", dir=existing))
    except OSError as e:
        raise output_error(e, path, flag) from None
    return path


class RunStore:
    """One run's directory. ``check_can_open`` refuses a directory that holds a different run."""

    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self._lock_fd: int | None = None

    @property
    def records_path(self) -> Path:
        return self.dir / RECORDS

    @property
    def manifest_path(self) -> Path:
        return self.dir / MANIFEST

    @property
    def cells_path(self) -> Path:
        return self.dir / CELLS

    def manifest(self) -> dict[str, Any] | None:
        if not self.manifest_path.exists():
            return None
        try:
            manifest = json.loads(self.manifest_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise UserError(f"{self.manifest_path}: not valid JSON ({e}); "
                            "move the directory aside or use another --out")
        if not isinstance(manifest, dict):
            raise UserError(f"{self.manifest_path}: not a JSON object; move the directory aside or use another --out")
        return manifest

    def _leftovers(self) -> list[Path]:
        """Temporary files a kill can leave behind (they never hold committed data), the parts'
        (``partials/<cell>/*.tmp``, ``genbench.partials``) included."""
        return [p for p in [*self.dir.glob("*.tmp"), *self.dir.glob("partials/*/*.tmp")] if p.is_file()]

    def check_can_open(self, config_hash: str, *, resume: bool) -> dict[str, Any] | None:
        """Validate before anything is written; returns the existing manifest when resuming."""
        if self.dir.exists() and not self.dir.is_dir():
            raise UserError(f"--out {self.dir} is a file, not a directory; choose a directory path")
        for parent in self.dir.parents:
            if parent.exists():
                if not parent.is_dir():
                    raise UserError(f"--out {self.dir}: {parent} is a file, not a directory; choose another path")
                break
        existing = self.manifest()
        if existing is None:
            ignorable = {LOCK, *(p.name for p in self._leftovers())}
            if self.dir.exists() and any(p.name not in ignorable for p in self.dir.iterdir()):
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

    # --- the writer's lock ------------------------------------------------------
    def lock(self) -> "RunStore":
        """Create the directory (atomically: mkdir, no check-then-write) and take its lock.

        A second process on the same directory gets a UserError naming the holder's pid. The
        lock is held until ``unlock`` (or the process ends: the OS releases it even on SIGKILL).
        """
        import fcntl
        import time

        try:
            self.dir.parent.mkdir(parents=True, exist_ok=True)
            os.mkdir(self.dir)
        except FileExistsError:
            if not self.dir.is_dir():
                raise UserError(f"--out {self.dir} is a file, not a directory; choose a directory path") from None
        except OSError as e:
            raise output_error(e, self.dir) from None
        try:
            fd = os.open(self.dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise output_error(e, self.dir) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = ""
            for _ in range(20):  # the holder writes its pid just after taking the lock
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
                if holder:
                    break
                time.sleep(0.05)
            os.close(fd)
            raise UserError(f"--out {self.dir} is in use by another genbench run (pid {holder or 'unknown'}); "
                            "wait for it to finish or choose another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd
        return self

    def unlock(self) -> None:
        if self._lock_fd is not None:
            import fcntl

            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> "RunStore":
        return self.lock() if self._lock_fd is None else self

    def __exit__(self, *exc: Any) -> None:
        self.unlock()

    # --- writing ----------------------------------------------------------------
    def create(self, manifest: dict[str, Any]) -> None:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise output_error(e, self.dir) from None
        write_json_atomic(self.manifest_path, manifest)

    def update_manifest(self, **fields: Any) -> None:
        manifest = self.manifest() or {}
        manifest.update(fields)
        write_json_atomic(self.manifest_path, manifest)

    def append(self, record: dict[str, Any]) -> None:
        """Append one record as one line, durable before returning."""
        append_lines(self.records_path, [record])

    def commit_cell(self, records: list[dict[str, Any]], marker: dict[str, Any]) -> None:
        """A cell's records in one checked write, then its marker: the cell counts only once both landed.

        A finished cell's parts (``genbench.partials``) are deleted then; a failed cell's are kept
        for the ``--resume`` that runs it again."""
        if records:
            append_lines(self.records_path, records)
        append_lines(self.cells_path, [marker])
        if marker.get("status") == "ok":
            from genbench import partials

            partials.remove_cell(self.dir, marker["suite"], marker["adapter"], marker["seed"])

    def reconcile(self) -> tuple[set[tuple[str, str, int]], int]:
        """Make the files whole again after a kill, before the next append.

        Removes leftover temporary files, truncates torn last lines, and drops from
        ``records.jsonl`` every record whose attempt has no marker in ``cells.jsonl`` (written
        before a kill) and the metrics of failed attempts (their cell runs again), keeping the
        failure records as history. Returns the finished cells and the number of lines dropped.
        """
        for p in self._leftovers():
            p.unlink(missing_ok=True)
        repair_torn_tail(self.records_path)
        repair_torn_tail(self.cells_path)
        markers = list(read_records(self.cells_path))
        committed = markers_to_committed(markers)
        finished = {(m["suite"], m["adapter"], m["seed"]) for m in markers if m.get("status") == "ok"}
        if not self.records_path.exists():
            return finished, 0
        raw = self.records_path.read_bytes().splitlines(keepends=True)
        keep = []
        for line, rec in zip(raw, _parse_lines(self.records_path, raw)):
            if rec is not None and is_committed(rec, committed):
                keep.append(line)
        dropped = sum(1 for line in raw if line.strip()) - len(keep)
        if dropped:
            write_bytes_atomic(self.records_path, b"".join(keep))
        return finished, dropped

    def finished_cells(self) -> set[tuple[str, str, int]]:
        return {(c["suite"], c["adapter"], c["seed"]) for c in read_records(self.cells_path)
                if c.get("status") == "ok"}

    def records(self) -> list[dict[str, Any]]:
        return list(read_records(self.records_path))


def markers_to_committed(markers: list[dict[str, Any]]) -> dict[str, Any]:
    """Cell markers (``cells.jsonl``) -> attempt id -> the status its cell finished with."""
    return {m["attempt"]: m.get("status") for m in markers if m.get("attempt")}


def is_committed(record: dict[str, Any], committed: dict[str, Any]) -> bool:
    """Whether a record survives ``reconcile``: its attempt has an ok marker, or it is the failure
    record of a failed attempt. committed: attempt id -> its marker's status."""
    attempt = record.get("attempt")
    state = committed.get(attempt) if attempt else "ok"  # records older than attempt ids stay
    return state == "ok" or (state == "failed" and record.get("status") == "failed")


def _parse_lines(path: Path, lines: list[bytes]) -> list[dict[str, Any] | None]:
    """Each line as a JSON object (None for a blank one); a bad line is a UserError naming it."""
    out: list[dict[str, Any] | None] = []
    for i, line in enumerate(lines):
        if not line.strip():
            out.append(None)
            continue
        try:
            obj = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise UserError(f"{path}: line {i + 1} is not valid JSON ({e}); the file was edited or corrupted; "
                            f"remove or fix that line") from None
        if not isinstance(obj, dict):
            raise UserError(f"{path}: line {i + 1} is JSON but not an object (a {type(obj).__name__}); "
                            "each line must be one record {...}; remove or fix that line")
        out.append(obj)
    return out


#: the fields a record must hold, and the types a record's fields may have (None: null)
REQUIRED_RECORD_KEYS = ("suite", "adapter")
RECORD_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "suite": (str,), "adapter": (str,), "status": (str,), "metric": (str, type(None)), "seed": (int, type(None)),
    "value": (int, float, type(None)), "stderr": (int, float, type(None)),
}
#: a cell marker's (``cells.jsonl``)
MARKER_FIELD_TYPES: dict[str, tuple[type, ...]] = {"suite": (str,), "adapter": (str,), "seed": (int,),
                                                  "status": (str,)}


def check_record(record: dict[str, Any], where: str, types: dict[str, tuple[type, ...]] = RECORD_FIELD_TYPES,
                 required: Iterable[str] = REQUIRED_RECORD_KEYS) -> None:
    """A UserError naming ``where`` (file and line) for a record that lacks a field or holds one of
    the wrong type (an edited or foreign file), instead of a wrong row or a crash further on."""
    for key in required:
        if key not in record:
            raise UserError(f"{where} has no field {key!r} (every line needs {', '.join(required)}); the file was "
                            "edited or corrupted; fix or remove that line")
    for key, kinds in types.items():
        value = record.get(key)
        if key in record and (not isinstance(value, kinds) or isinstance(value, bool)):
            words = {str: "a string", int: "an integer", float: "a number", type(None): "null"}
            what = " or ".join(words[k] for k in kinds if not (k is int and float in kinds))
            raise UserError(f"{where} field {key!r} is {value!r}, not {what}; the file was edited or corrupted; "
                            "fix or remove that line")


def read_records(path: Path, check: dict[str, tuple[type, ...]] | None = None,
                 required: Iterable[str] = REQUIRED_RECORD_KEYS) -> Iterable[dict[str, Any]]:
    """Records of one file. A torn last line (a crash mid-write) is reported by its number with a
    warning and the records before it are returned; a bad line elsewhere is a UserError naming it.
    check: field types each record must have (``check_record``; None: any object)."""
    path = Path(path)
    if not path.exists():
        return []
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UserError(f"{path}: cannot be read ({e.strerror})") from None
    lines = data.split(b"\n")
    torn = b""
    if lines and lines[-1].strip():  # no newline after the last line: a write was interrupted
        torn = lines.pop()
        try:
            if isinstance(json.loads(torn), dict):
                lines.append(torn)  # complete, only its newline is missing
                torn = b""
        except (json.JSONDecodeError, UnicodeDecodeError):
            pass
    parsed = _parse_lines(path, lines)
    if check is not None:
        for i, r in enumerate(parsed):
            if r is not None:
                check_record(r, f"{path}: line {i + 1}", check, required)
    records = [r for r in parsed if r is not None]
    if torn:
        warnings.warn(f"{path}: line {len(lines) + 1} is torn ({len(torn)} bytes, an interrupted write); "
                      f"read the {len(records)} records before it")
    return records


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

    latest: within a run, keep only the last record per (suite, task, adapter, metric, seed,
    extractor and its weights), so a cell re-run by ``--resume`` replaces its earlier partial or
    failed attempt, while two encoders that name their number alike (Inception's and a
    ``torchscript:`` stand-in's ``fid``) both stay.
    """
    import pandas as pd

    if not dirs:
        raise UserError("load() needs at least one run directory")
    rows: list[dict[str, Any]] = []
    for d in dirs:
        for run_dir in _run_dirs(Path(d)):
            manifest = RunStore(run_dir).manifest() or {}
            for rec in read_records(run_dir / RECORDS, check=RECORD_FIELD_TYPES):
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
        measured_by = frame["convention"].map(_measured_by)
        key_cols = ["run_id", "suite", "task", "adapter", "metric", "seed"]
        frame = frame[~frame[key_cols].astype(str).assign(_by=measured_by).duplicated(keep="last")]
        frame = frame.reset_index(drop=True)
    return frame


def _measured_by(convention: Any) -> str:
    """The extractor and weights a record's number comes from ('' when none is recorded)."""
    if not isinstance(convention, dict):
        return ""
    return f"{convention.get('extractor') or ''}|{convention.get('weights_sha256') or ''}"
