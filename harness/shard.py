"""Shards of a run: which cells shard K of N runs, and whether a shard store is complete.

A run's cells have one order (``runner.cell_order``: checkpoint by checkpoint, then seeds,
variants and suites); shard K of N takes the K-th of N contiguous, near-equal blocks of that
order, so the assignment depends only on the run's spec (its config_hash) and N, and a
checkpoint's cells mostly stay in one shard (loaded once). Shard indices count from 0, as
Slurm array task ids do. Each shard writes a normal run store whose manifest also holds
``shard = {index, count, cells}``; ``genbench merge`` joins them (``genbench.merge``).
"""
from __future__ import annotations

import re
from typing import Any, Sequence, TypeVar

from genbench.errors import UserError
from genbench.store import RunStore

T = TypeVar("T")


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` -> (K, N), 0 <= K < N; anything else is a one-line UserError."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not m:
        raise UserError(f"--shard {text!r}: write K/N with 0 <= K < N (shards count from 0), e.g. --shard 0/4")
    k, n = int(m.group(1)), int(m.group(2))
    if n < 1 or k >= n:
        raise UserError(f"--shard {text}: K must be in 0..N-1 and N >= 1 (shards count from 0), "
                        f"e.g. --shard 0/{max(n, 2)}")
    return k, n


def shard_bounds(n_cells: int, k: int, n: int) -> tuple[int, int]:
    """[start, stop) of shard k of n over ``n_cells`` cells: contiguous blocks, sizes differing by <= 1."""
    return k * n_cells // n, (k + 1) * n_cells // n


def shard_cells(cells: Sequence[T], k: int, n: int, *, where: str = "--shard") -> list[T]:
    """The cells shard k of n runs; more shards than cells is a UserError (a shard would be empty)."""
    if n > len(cells):
        raise UserError(f"{where}: the run has {len(cells)} cell(s), fewer than {n} shards; "
                        f"use at most {len(cells)} shards")
    start, stop = shard_bounds(len(cells), k, n)
    return list(cells[start:stop])


def shard_manifest(shard: tuple[int, int], keys: list[tuple[str, str, int]]) -> dict[str, Any]:
    """The ``shard`` entry of a shard store's manifest: its index, count and cell keys in order."""
    return {"index": shard[0], "count": shard[1], "cells": [list(k) for k in keys]}


def check_shard_store(store: RunStore, shard_info: dict[str, Any]) -> None:
    """Refuse to resume a store that holds another shard (or a whole run) of the same spec."""
    manifest = store.manifest()
    if manifest is None:
        return
    held = manifest.get("shard")
    if held is None:
        raise UserError(f"--out {store.dir} holds an unsharded run; give each shard its own --out")
    if (held.get("index"), held.get("count"), held.get("cells")) != \
            (shard_info["index"], shard_info["count"], shard_info["cells"]):
        raise UserError(f"--out {store.dir} holds shard {held.get('index')}/{held.get('count')}, not "
                        f"{shard_info['index']}/{shard_info['count']}; give each shard its own --out")


def shard_state(store: RunStore, config_hash: str, k: int, n: int) -> str:
    """``"missing"`` (no store), ``"complete"`` (every cell finished ok) or ``"incomplete"``.

    A store of another run or shard is a UserError (it would never become this shard)."""
    manifest = store.manifest()
    if manifest is None:
        return "missing"
    held = manifest.get("shard") or {}
    if manifest.get("config_hash") != config_hash or (held.get("index"), held.get("count")) != (k, n):
        raise UserError(f"{store.dir} holds another run or shard (config_hash {manifest.get('config_hash')}, "
                        f"shard {held.get('index')}/{held.get('count')}), not shard {k}/{n} of {config_hash}; "
                        "move it aside or choose another --out")
    wanted = {tuple(c) for c in held.get("cells", [])}
    return "complete" if wanted and wanted <= store.finished_cells() else "incomplete"


__all__ = ["parse_shard", "shard_bounds", "shard_cells", "shard_manifest", "check_shard_store", "shard_state"]
