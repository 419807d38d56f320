"""Feature extraction split across torchrun ranks: each rank draws and measures only its own
contiguous range of image indices (``genbench.distributed.rank_range``), then

* the raw features (kNN, kernel and per-example metrics need them) are gathered in rank order,
  so every rank holds the very array one process would compute (exact: no arithmetic);
* streamed float64 sufficient statistics (``FeatureAccumulator``: count, sum and sum of outer
  products about a shift) are gathered in rank order and merged by
  ``FeatureAccumulator.merged``: each rank keeps its own shift (the mean of its first batch) and
  the merge re-centres every part on rank 0's before adding, in rank order, so the result is
  deterministic and equal to one pass to float64 rounding of another summation order (well
  under 1e-12 relative, ``tests/harness/test_ranks_features.py``).

Outside torchrun (world size 1) every function here is the one-process code path itself, so
the results are bit-identical to a run without this module. Rank 0 alone writes files (PNGs,
the statistics cache); the images it writes are gathered to it chunk by chunk."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from genbench.distributed import gather_in_rank_order, rank, rank_range, world_size

#: feature computations split across the ranks, and statistics reduced across them
COUNTS: dict[str, int] = {"features split": 0, "statistics reduced": 0}


def counts_summary() -> str:
    """``features split N, statistics reduced M`` (printed by rank 0 after ``calls_summary``)."""
    return ", ".join(f"{k} {v}" for k, v in COUNTS.items())


def is_writer() -> bool:
    """Whether this process writes files (rank 0, or the only process)."""
    return rank() == 0


def all_ranks(flag: bool) -> bool:
    """True when ``flag`` holds on every rank: a decision every rank must take alike (a cache
    hit on one node's disk but not another's would otherwise leave ranks waiting on each other)."""
    return bool(flag) if world_size() == 1 else all(gather_in_rank_order(bool(flag)))


def gather_to_rank0(obj: Any) -> list[Any] | None:
    """Every rank's ``obj`` in rank order on rank 0 (None on the others): for what only rank 0
    writes, so that the other ranks never hold it (``distributed.gather_to_rank0``)."""
    if world_size() == 1:
        return [obj]
    from genbench import distributed

    return distributed.gather_to_rank0(obj)


def parts_in_rank_order(obj: Any) -> list[Any]:
    """Every rank's ``obj`` in rank order (``[obj]`` outside torchrun)."""
    return [obj] if world_size() == 1 else gather_in_rank_order(obj)


def checked(compute: Callable[[], Any]) -> Any:
    """``compute()``, this rank's own work; under torchrun every rank then learns whether every
    other rank's succeeded, and if one raised, all raise the same ``RankFailed`` naming it
    (``distributed.gather_parts``): the cell fails on every rank instead of the others waiting
    in the next collective for a rank that left the cell."""
    if world_size() == 1:
        return compute()
    from genbench.distributed import gather_parts

    return gather_parts(compute, share=False)[0]


def rows_in_rank_order(compute: Callable[[], np.ndarray | None]) -> np.ndarray | None:
    """(n, ...) on every rank: the ranks' (n_r, ...) parts ``compute()`` (None: an empty range)
    concatenated in rank order; ``compute()`` itself outside torchrun. A part that raised on
    some rank raises ``RankFailed`` on every rank."""
    if world_size() == 1:
        return compute()
    from genbench.distributed import gather_parts

    COUNTS["features split"] += 1
    parts = [p for p in gather_parts(compute) if p is not None]
    return np.concatenate(parts) if parts else None


def rank_range_to_features(fn: Callable[[int, int], np.ndarray], n: int) -> np.ndarray:
    """float64 (n, D) features of n images, each rank computing ``fn(a, b)`` (features of images
    a..b-1) for its own range only; ``fn(0, n)`` outside torchrun."""
    if world_size() == 1:
        return fn(0, n)
    a, b = rank_range(n)
    return rows_in_rank_order(lambda: fn(a, b) if b > a else None)


def draw_rank_part(generator: Any, size: int, *, seed: int, start: int = 0, batch_size: int = 64,
                   condition: Any = None, steps: int | None = None) -> tuple[Any, int, int]:
    """(samples, a, b): this rank's part [a, b) of ``sample(size, seed, start=start)``, not
    gathered (``distributed.RankSharded.sample_part``); samples is None for an empty range. Outside
    torchrun it is the one call (a = 0, b = size). An adapter whose ``sample`` takes no ``start``
    draws the whole call on every rank, and the rank keeps its range of it."""
    from genbench import distributed
    from genbench.interfaces import Samples, sample_start_kwargs

    kw = {} if condition is None else {"condition": condition}
    if world_size() == 1:
        return generator.sample(size, seed=seed, batch_size=batch_size, steps=steps, **kw,
                                **sample_start_kwargs(generator, start)), 0, size
    sharded = generator if isinstance(generator, distributed.RankSharded) else distributed.RankSharded(generator)
    if not sharded.splits_sampling:
        a, b = rank_range(size)
        whole = sharded.sample(size, seed=seed, batch_size=batch_size, steps=steps, start=start, **kw)
        return Samples(images=whole.images[a:b], nfe=whole.nfe * (b - a) / max(size, 1),
                       nfe_per_sample=whole.nfe_per_sample, info=whole.info), a, b
    distributed.CALLS["sample split"] += 1
    return sharded.sample_part(size, seed=seed, batch_size=batch_size, condition=condition, steps=steps,
                               start=start)


def images_on_rank0(images: np.ndarray | None, a: int, first: int | None = None) -> np.ndarray | None:
    """uint8 (m, H, W, C) on rank 0: the first ``first`` images (all when None) of one call whose
    rank parts start at ``a``; None on the other ranks. Only what rank 0 writes travels."""
    if world_size() == 1:
        return images if first is None or images is None else images[:first]
    mine = images if first is None or images is None else images[: max(0, first - a)]
    parts = gather_to_rank0(mine if mine is None or len(mine) else None)
    if parts is None:
        return None
    parts = [p for p in parts if p is not None]
    return np.concatenate(parts) if parts else None


def nfe_per_sample_of_parts(parts: list[tuple[float, int]]) -> float:
    """The call's NFE per sample from its parts' (nfe_per_sample, size): one part's own value
    when every part reports the same (as one process would), else the size-weighted mean."""
    given = [(v, m) for v, m in parts if m]
    if len({float(v) for v, _ in given}) == 1:
        return given[0][0]
    total = sum(m for _, m in parts)
    return sum(float(v) * m for v, m in parts) / max(total, 1)


def reduce_accumulators(accs: dict[str, Any], keep: int | None, lengths: list[int] | None = None) -> dict[str, Any]:
    """Each key's ``FeatureAccumulator`` merged over the ranks (``accs`` itself outside torchrun).

    Rank r streamed its range of each chunk of the source (``source_rank_part``; ``lengths``: the
    chunks' sizes, None for one chunk of ``sum(n_r)`` images): sums are merged in rank order, kept
    rows (``keep`` None) are put back in image order, chunk by chunk and rank by rank, so that
    they are exactly one pass's rows. A key held by only some ranks (a rank with no images made no
    ``spatial`` accumulator) merges from those that hold it."""
    from genbench.features.accumulate import FeatureAccumulator

    if world_size() == 1:
        return accs
    COUNTS["statistics reduced"] += 1
    gathered = gather_in_rank_order({key: acc.part() for key, acc in accs.items()})
    keys = list(dict.fromkeys([k for g in gathered for k in g]))
    out = {}
    for key in keys:
        parts = [g[key] for g in gathered if key in g]
        if key == "features" and keep is None:
            parts = _rows_in_image_order(gathered, lengths)
        out[key] = FeatureAccumulator.merged(parts, keep=keep if key == "features" else 0)
    return out


def _rows_in_image_order(gathered: list[dict], lengths: list[int] | None) -> list[dict]:
    """The ranks' kept rows as parts in image order: chunk k's rank 0 range, its rank 1 range..."""
    size = len(gathered)
    rows = [g["features"]["rows"] if "features" in g and g["features"]["n"] else None for g in gathered]
    if lengths is None:
        lengths = [sum(0 if r is None else len(r) for r in rows)]
    offsets, parts = [0] * size, []
    for length in lengths:
        for r in range(size):
            a, b = rank_range(length, r, size)
            if b > a:
                parts.append({"n": b - a, "rows": rows[r][offsets[r]: offsets[r] + b - a]})
                offsets[r] += b - a
    return parts


def splits_accumulation(keep: int | None) -> bool:
    """Whether a streamed pass over a source is split across the ranks: under torchrun, unless a
    capped reservoir of rows is asked (``keep`` > 0: the single pass's random sample of rows
    cannot be rebuilt from the ranks' parts, so every rank streams the whole source)."""
    return world_size() > 1 and (keep is None or keep == 0)


def source_rank_part(src: Any, lengths: list[int]) -> Any:
    """The ``ImageSource`` of this rank's contiguous range of each of the source's chunks
    (``lengths`` gets the chunks' sizes as they are read): chunks stay streamed, and only the
    loaders of the rank's ranges are ever called (decoded)."""
    from dataclasses import replace

    def chunks():
        for chunk in src.chunks():
            lengths.append(len(chunk))
            a, b = rank_range(len(chunk))
            yield list(chunk[a:b])

    return replace(src, chunks=chunks)


__all__ = ["COUNTS", "counts_summary", "is_writer", "all_ranks", "gather_to_rank0", "parts_in_rank_order",
           "checked", "rows_in_rank_order", "rank_range_to_features", "draw_rank_part", "images_on_rank0", "nfe_per_sample_of_parts",
           "reduce_accumulators", "splits_accumulation", "source_rank_part"]
