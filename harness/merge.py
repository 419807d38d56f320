"""``genbench merge``: shard stores of one run -> one run store equal to a single-process run.

The shards must come from one run (one config_hash), cover every cell of it exactly once, and
each have finished every cell it was given (ok or failed, as a single run records a failure).
The merged store holds each cell's committed records (``store.is_committed``) in the order one
process runs the cells, the cells' markers, and their artifacts; only the fields in
``store.NONDETERMINISTIC_KEYS`` (run id, timings, attempt ids) differ from a single-process run.
The shard stores are only read; a merge can be repeated (it rewrites the merged files).
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from genbench.errors import UserError
from genbench.store import (CELLS, LOCK, MANIFEST, MARKER_FIELD_TYPES, RECORD_FIELD_TYPES, RECORDS, RunStore,
                            check_output_path, is_committed, markers_to_committed, read_records, record_line,
                            write_bytes_atomic, write_json_atomic)

#: what may sit in a merged run's folder besides the run's files (``genbench run --slurm`` layout)
MERGE_DIR_EXTRAS = {"shards", "slurm", "artifacts", CELLS, RECORDS, MANIFEST, LOCK}


def shard_dirs_in(paths: list[str | Path]) -> list[Path]:
    """Each path as a shard store, or the shard stores one level below it (e.g. RUN/shards)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if (p / MANIFEST).exists():
            out.append(p)
        elif p.is_dir() and any((c / MANIFEST).exists() for c in p.iterdir()):
            out += sorted((c for c in p.iterdir() if (c / MANIFEST).exists()), key=lambda c: c.name)
        else:
            raise UserError(f"{p}: no {MANIFEST} here or one level below; pass shard stores written by "
                            "`genbench run --shard K/N --out DIR`")
    return out


def _key(cell: Any) -> tuple[str, str, int]:
    return (cell[0], cell[1], int(cell[2]))


def _read_shard(path: Path) -> dict[str, Any]:
    manifest = RunStore(path).manifest()
    shard = manifest.get("shard") if manifest else None
    if not shard or not isinstance(shard, dict) or not isinstance(shard.get("cells"), list):
        raise UserError(f"{path}: not a shard store ({MANIFEST} has no 'shard' entry); pass stores written by "
                        "`genbench run --shard K/N`")
    index, count, cells = shard.get("index"), shard.get("count"), shard["cells"]
    whole = all(isinstance(x, int) and not isinstance(x, bool) for x in (index, count))
    cells_ok = all(isinstance(c, list) and len(c) == 3 and isinstance(c[0], str) and isinstance(c[1], str)
                   and isinstance(c[2], int) for c in cells)
    if not (whole and 0 <= index < count and cells_ok and isinstance(manifest.get("spec"), dict)):
        raise UserError(f"{path / MANIFEST}: its 'shard' entry (index, count, cells [suite, adapter, seed]) or "
                        "'spec' is malformed; the manifest was edited; rerun that shard")
    return {"dir": path, "manifest": manifest, "index": index, "count": count, "cells": [_key(c) for c in cells]}


def merge_shards(paths: list[str | Path], out: str | Path, *, log=print) -> Path:
    """Check the shard stores, then write their union to ``out`` as one run; returns ``out``."""
    from genbench.runner import RunSpec, cell_keys

    shards = [_read_shard(p) for p in shard_dirs_in(paths)]
    first = shards[0]
    chash = first["manifest"].get("config_hash")
    for s in shards[1:]:
        if s["manifest"].get("config_hash") != chash:
            raise UserError(f"{s['dir']} is a shard of another run (config_hash {s['manifest'].get('config_hash')}, "
                            f"{first['dir']} has {chash}); merge only shards of one run")
    try:
        spec = RunSpec(**first["manifest"]["spec"])
    except TypeError:  # a field renamed or added by hand
        spec = None
    if spec is None or spec.config_hash() != chash:
        raise UserError(f"{first['dir'] / MANIFEST}: its spec does not hash to its config_hash {chash}; "
                        "the manifest was edited; rerun that shard")
    owner: dict[tuple, Path] = {}
    for s in sorted(shards, key=lambda s: (s["index"] is None, s["index"])):
        for cell in s["cells"]:
            if cell in owner:
                raise UserError(f"{s['dir']} and {owner[cell]} both hold cell {cell[0]} x {cell[1]} (seed {cell[2]}); "
                                "pass each shard once, all from one --shards N")
            owner[cell] = s["dir"]
    wanted = cell_keys(spec)
    missing = [c for c in wanted if c not in owner]
    if missing:
        counts = {s["count"] for s in shards}
        given = {s["index"] for s in shards}
        absent = sorted(set(range(max(counts))) - given) if len(counts) == 1 and None not in counts else []
        which = f"shard(s) {', '.join(map(str, absent))} of {max(counts)} not given" if absent else "not in any shard"
        raise UserError(f"{len(missing)} of {len(wanted)} cells are missing ({which}; e.g. {missing[0][0]} x "
                        f"{missing[0][1]} seed {missing[0][2]}); pass every shard of the run")
    wanted_set = set(wanted)
    extra = [c for c in owner if c not in wanted_set]
    if extra:
        raise UserError(f"{owner[extra[0]]} holds cell {extra[0]} that run {chash} does not have; rerun that shard")

    records_by_cell: dict[tuple, list[dict]] = {}
    markers_by_cell: dict[tuple, list[dict]] = {}
    for s in shards:
        markers = list(read_records(s["dir"] / CELLS, check=MARKER_FIELD_TYPES, required=MARKER_FIELD_TYPES))
        final = {}
        for m in markers:
            final[_key((m["suite"], m["adapter"], m["seed"]))] = m
        unfinished = [c for c in s["cells"] if c not in final]
        if unfinished:
            raise UserError(f"{s['dir']}: shard {s['index']}/{s['count']} is incomplete ({len(s['cells']) - len(unfinished)} "
                            f"of {len(s['cells'])} cells finished); finish it with `genbench run ... --shard "
                            f"{s['index']}/{s['count']} --out {s['dir']} --resume`, then merge again")
        committed = markers_to_committed(markers)
        for m in markers:
            markers_by_cell.setdefault(_key((m["suite"], m["adapter"], m["seed"])), []).append(m)
        for rec in read_records(s["dir"] / RECORDS, check=RECORD_FIELD_TYPES, required=("suite", "adapter", "seed")):
            if is_committed(rec, committed):
                records_by_cell.setdefault(_key((rec["suite"], rec["adapter"], rec["seed"])), []).append(rec)

    out = check_output_path(Path(out), directory=True)
    store = RunStore(out)
    existing = store.manifest()
    if existing is not None and (existing.get("config_hash") != chash or "shard" in existing):
        raise UserError(f"--out {out} already holds {'a shard' if 'shard' in existing else 'a different run'} "
                        f"(config_hash {existing.get('config_hash')}); choose another --out")
    if existing is None and out.exists() and any(p.name not in MERGE_DIR_EXTRAS for p in out.iterdir()):
        raise UserError(f"--out {out} is not empty and holds no {MANIFEST}; choose an empty or new directory")
    manifests = [s["manifest"] for s in shards]
    run_id = existing["run_id"] if existing else \
        f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}-{chash[:6]}"
    with store.lock():
        for s in shards:  # each cell's artifacts keep their relative path
            for cell_dir in sorted((s["dir"] / "artifacts").glob("*")):
                target = out / "artifacts" / cell_dir.name
                if target.resolve() != cell_dir.resolve():
                    shutil.rmtree(target, ignore_errors=True)
                    shutil.copytree(cell_dir, target)
        records = [{**r, "run_id": run_id} for c in wanted for r in records_by_cell.get(c, [])]
        markers = [m for c in wanted for m in markers_by_cell.get(c, [])]
        write_bytes_atomic(out / RECORDS, "".join(record_line(r) for r in records).encode("utf-8"))
        write_bytes_atomic(out / CELLS, "".join(record_line(m) for m in markers).encode("utf-8"))
        write_json_atomic(out / MANIFEST, {
            "run_id": run_id, "name": spec.name, "description": first["manifest"].get("description", ""),
            "config_hash": chash, "spec": first["manifest"]["spec"], "source": first["manifest"].get("source"),
            "created": min(m.get("created", "") for m in manifests), "status": "finished",
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "provenance": first["manifest"].get("provenance"),
            "merged_from": [{"dir": str(s["dir"]), "run_id": s["manifest"].get("run_id"), "shard": s["index"],
                             "count": s["count"], "host": (s["manifest"].get("provenance") or {}).get("host")}
                            for s in sorted(shards, key=lambda s: s["index"])],
        })
    log(f"merged {len(shards)} shard(s), {len(wanted)} cells, {len(records)} records -> {out / RECORDS}")
    return out


__all__ = ["merge_shards", "shard_dirs_in"]
