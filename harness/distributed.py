"""``torchrun``: one cell's work split across ranks, the records those of one process.

``torchrun --nproc_per_node N -m genbench.cli run ...`` starts N ranks that run the same cells
in the same order. Inside a cell the adapter is wrapped (``RankSharded``): each ``sample(n)``
call draws only this rank's contiguous range of sample indices (the adapter takes ``start``,
the index of its first sample, so each sample keeps its own random stream), and each
``log_likelihood(batch)`` call scores only this rank's range of examples (when the adapter takes
``start``, or its likelihood is exact and so does not depend on the index). The parts are
gathered in rank order, so every rank holds exactly the samples and per-example values one
process would have, and computes the same metrics from them; rank 0 alone writes the store.
An adapter that takes no ``start`` runs whole on every rank (same result, no speed-up).
An adapter with a Monte Carlo likelihood that offers ``likelihood_grid`` (the masked diffusion
ones: ``genbench.adapters.mdlm.ElboGrid``) is split finer, by (example, sample index): each rank
runs a contiguous range of the call's (example x K) forward passes, and every rank turns the
gathered (B, K) terms into the estimates with the adapter's own combine step, the one a single
process uses.

A rank whose part raises does not leave the others waiting: the exception is caught, the rank
joins the gather with a failure marker, and every rank raises the same ``RankFailed`` naming the
rank (``rank 1: ValueError: ...``), so the cell fails everywhere (rank 0 records it) and the run
goes on to its next cell. A rank that is lost or stuck makes the others' next collective fail
after ``GENBENCH_DIST_TIMEOUT_S`` seconds (default 1800): ``RankLost``, which ends the job.
gloo on CPUs, NCCL on GPUs (each rank on ``cuda:LOCAL_RANK``).
"""
from __future__ import annotations

import contextlib
import datetime
import inspect
import os
import sys
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np

from genbench.errors import UserError

#: seconds a rank waits at a collective (a gather of parts) before the job is declared lost
TIMEOUT_ENV = "GENBENCH_DIST_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 1800.0


class RankFailed(RuntimeError):
    """Raised on every rank when some rank's part of a call raised; the message names the rank(s)."""


class RankLost(Exception):
    """A collective failed (a rank died, or did not arrive within the timeout): the job cannot go on.
    Not a cell failure: the runner lets it end the run (``--resume`` continues it)."""


@dataclass(frozen=True)
class _Failure:
    """What a rank whose part raised sends in the gather instead of its part."""

    rank: int
    message: str


def world_size() -> int:
    """Ranks of this job (1 outside torchrun)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def rank() -> int:
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def init_from_env(device: str) -> str:
    """Join the torchrun job named by the environment (WORLD_SIZE > 1); returns this rank's device.

    gloo for CPU devices, NCCL for CUDA (``cuda`` becomes ``cuda:LOCAL_RANK``)."""
    import torch
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return device
    cuda = device.startswith("cuda")
    if cuda and device == "cuda":
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    if not dist.is_initialized():
        if cuda:
            torch.cuda.set_device(torch.device(device))
        dist.init_process_group("nccl" if cuda else "gloo", timeout=datetime.timedelta(seconds=timeout_s()))
    return device


def timeout_s() -> float:
    """Seconds a collective may wait for the other ranks: env ``GENBENCH_DIST_TIMEOUT_S``, default 1800.

    Long enough for ranks whose parts take unequal time, short enough that a lost rank ends the job."""
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise UserError(f"environment variable {TIMEOUT_ENV}={raw!r} is not a number of seconds > 0; set it to e.g. "
                        f"{DEFAULT_TIMEOUT_S:.0f} (how long a rank waits for the others) or unset it")
    return value


def finish() -> None:
    """Leave the process group (torchrun warns about a group left open)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def rank_range(n: int, r: int | None = None, size: int | None = None) -> tuple[int, int]:
    """[start, stop) of rank r's contiguous share of n items (shares differ by at most one)."""
    r = rank() if r is None else r
    size = world_size() if size is None else size
    return r * n // size, (r + 1) * n // size


#: where this rank is: the cell it runs (``begin_cell``) and how many gathers it has made in it
_STEP: dict[str, Any] = {"cell": None, "gathers": 0}


def begin_cell(cell: Any) -> None:
    """Every rank enters ``cell`` (the runner calls this): the gathers inside it are numbered from 1."""
    _STEP.update(cell=cell, gathers=0)


def gather_in_rank_order(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order, on every rank (pickled through the process group).

    Each rank sends its step along (cell, number of this gather in the cell): ranks at different
    steps (one left a cell early, raising outside the split calls) raise ``RankLost`` rather than
    join parts of different calls."""
    import torch.distributed as dist

    out: list[Any] = [None] * world_size()
    with _collective("gather"):
        dist.all_gather_object(out, (_next_step(), obj))
    return _in_step(out)


def gather_to_rank0(obj: Any) -> list[Any] | None:
    """Every rank's ``obj`` in rank order on rank 0, None on the others (for what rank 0 alone
    writes: the others never hold it). Numbered and checked as ``gather_in_rank_order``'s: rank 0
    raises ``RankLost`` for ranks out of step, and the others then fail at their next collective."""
    import torch.distributed as dist

    out: list[Any] | None = [None] * world_size() if rank() == 0 else None
    with _collective("gather"):
        dist.gather_object((_next_step(), obj), out, dst=0)
    return None if out is None else _in_step(out)


def _next_step() -> tuple[Any, int]:
    _STEP["gathers"] += 1
    return _STEP["cell"], _STEP["gathers"]


def _in_step(gathered: list[tuple[Any, Any]]) -> list[Any]:
    """The gathered objects, once every rank's step is the same (else ``RankLost``)."""
    steps = [repr(s) for s, _ in gathered]
    if len(set(steps)) > 1:
        raise RankLost("ranks out of step (" + "; ".join(f"rank {r} at gather {s}" for r, s in enumerate(steps))
                       + "): a cell raised on some ranks only, outside the split calls")
    return [o for _, o in gathered]


def broadcast_from_rank0(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank."""
    import torch.distributed as dist

    box = [obj]
    with _collective("broadcast"):
        dist.broadcast_object_list(box, src=0)
    return box[0]


@contextlib.contextmanager
def _collective(what: str) -> Iterator[None]:
    """A collective's failure (a peer gone, the timeout passed) as ``RankLost``, naming this rank."""
    try:
        yield
    except Exception as e:
        first = (str(e).strip().splitlines() or [""])[0]
        raise RankLost(f"rank {rank()}: the ranks' {what} failed ({type(e).__name__}: {first}); a rank died or did "
                       f"not arrive within {TIMEOUT_ENV}={timeout_s():g} s") from e


def gather_parts(compute: Callable[[], Any], *, share: bool = True) -> list[Any]:
    """Every rank's part in rank order, this rank's being ``compute()`` (its share of the call).

    If ``compute`` raised on any rank, every rank raises the same ``RankFailed`` naming the
    rank(s) and their errors, instead of the others waiting for a part that never comes.
    share=False: the part stays on this rank (a call run whole on every rank): only whether it
    succeeded is gathered, and the list holds this rank's part alone."""
    try:
        part, error = compute(), None
    except Exception as e:  # sent to the other ranks; raised below on every rank alike
        part, error = None, e
        print(f"genbench rank {rank()}: its part raised:\n{traceback.format_exc(limit=8)}", file=sys.stderr)
    mine = _Failure(rank(), f"{type(error).__name__}: {error}") if error is not None else (part if share else None)
    parts = gather_in_rank_order(mine)
    failures = [p for p in parts if isinstance(p, _Failure)]
    if failures:
        ranks: dict[str, list[int]] = {}  # the same error on several ranks is said once
        for f in failures:
            ranks.setdefault(f.message, []).append(f.rank)
        raise RankFailed("; ".join(f"rank{'s' * (len(r) > 1)} {', '.join(map(str, r))}: {m}"
                                   for m, r in ranks.items())) from error
    return parts if share else [part]


def _takes(fn: Any, name: str) -> bool:
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _concat(parts: list[Any]) -> Any:
    if all(p is None for p in parts):
        return None
    if isinstance(parts[0], list):
        return [x for p in parts for x in p]
    return np.concatenate(parts)


#: calls split across the ranks and calls run whole on every rank (no ``start``), by method; a
#: likelihood "split by (example, sample)" spread its Monte Carlo forward passes (``likelihood_grid``)
CALLS: dict[str, int] = {"sample split": 0, "sample whole": 0, "likelihood split": 0,
                         "likelihood split by (example, sample)": 0, "likelihood whole": 0}


def calls_summary() -> str:
    """One line: how many sample / likelihood calls were split across the ranks."""
    return f"torchrun: {world_size()} ranks; " + ", ".join(f"{k} {v}" for k, v in CALLS.items())


class RankSharded:
    """An adapter whose ``sample`` and ``log_likelihood`` calls are split across the ranks.

    Everything else (names, options, ``describe``, ``likelihood_kind``...) is the adapter's own.
    Each call computes this rank's part in one step (the callable given to ``gather_parts``),
    then gathers the parts in rank order."""

    def __init__(self, inner: Any):
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def sample(self, n: int, *, seed: int, batch_size: int = 64, condition: Any = None, steps: int | None = None,
               start: int = 0):
        from genbench.interfaces import Samples, sample_start_kwargs

        if not self.splits_sampling:
            CALLS["sample whole"] += 1
            kw = sample_start_kwargs(self._inner, start)  # a chunk from start > 0 it cannot draw: refused alike
            return gather_parts(lambda: self._inner.sample(n, seed=seed, batch_size=batch_size, condition=condition,
                                                           steps=steps, **kw), share=False)[0]
        CALLS["sample split"] += 1
        parts = [p for p in gather_parts(lambda: self.sample_part(n, seed=seed, batch_size=batch_size,
                                                                  condition=condition, steps=steps, start=start)[0])
                 if p is not None]
        if not parts:  # n = 0: every range is empty
            return self._inner.sample(0, seed=seed, batch_size=batch_size, condition=condition, steps=steps,
                                      start=start)
        return Samples(images=_concat([p.images for p in parts]), tokens=_concat([p.tokens for p in parts]),
                       texts=_concat([p.texts for p in parts]), nfe=sum(int(p.nfe) for p in parts),
                       nfe_per_sample=parts[0].nfe_per_sample, info=parts[0].info)

    @property
    def splits_sampling(self) -> bool:
        """Whether the adapter's ``sample`` takes ``start`` (else each call runs whole on every rank)."""
        return _takes(self._inner.sample, "start")

    def sample_part(self, n: int, *, seed: int, batch_size: int = 64, condition: Any = None,
                    steps: int | None = None, start: int = 0) -> tuple[Any, int, int]:
        """(samples or None, a, b): this rank's part [a, b) of ``sample(n, start=start)``, drawn by
        the adapter itself as ``sample(b - a, start=start + a)`` with ``condition[a:b]`` (each
        sample has its own stream: the images of one call); None for an empty range. Not gathered:
        ``sample`` gathers the parts, ``features.ranks.draw_rank_part`` measures its own first."""
        a, b = rank_range(n)
        if b == a:
            return None, a, b
        return self._inner.sample(b - a, seed=seed, batch_size=batch_size, start=start + a, steps=steps,
                                  condition=None if condition is None else condition[a:b]), a, b

    def log_likelihood(self, batch: Any, *, seed: int = 0, start: int = 0):
        from genbench.interfaces import LikelihoodKind, LogLikelihood

        takes_start = _takes(self._inner.log_likelihood, "start")
        sliceable = isinstance(batch, (list, np.ndarray))
        if sliceable and callable(getattr(self._inner, "likelihood_grid", None)):
            CALLS["likelihood split by (example, sample)"] += 1
            # every rank lays out the same grid (it checks the batch: a bad one fails alike everywhere)
            grid = self._inner.likelihood_grid(batch, seed=seed, start=start)
            a, b = rank_range(grid.size)
            terms = np.concatenate(gather_parts(lambda: grid.terms(a, b)))
            return grid.to_likelihood(terms.reshape(grid.rows, grid.mc_samples))
        if not sliceable or (not takes_start and self._inner.likelihood_kind != LikelihoodKind.EXACT):
            CALLS["likelihood whole"] += 1
            # its draws are keyed by position in the batch (or the batch cannot be sliced): whole on every rank
            return gather_parts(lambda: self._inner.log_likelihood(batch, seed=seed,
                                                                   **({"start": start} if takes_start else {})),
                                share=False)[0]
        CALLS["likelihood split"] += 1
        a, b = rank_range(len(batch))
        kw = {"start": start + a} if takes_start else {}
        parts = [p for p in gather_parts(lambda: self._inner.log_likelihood(batch[a:b], seed=seed, **kw)
                                         if b > a else None) if p is not None]
        if not parts:  # an empty batch: every range is empty; the adapter's own empty answer
            return self._inner.log_likelihood(batch, seed=seed, **({"start": start} if takes_start else {}))
        return LogLikelihood.concat(parts)  # the ranks' infos merged, not rank 0's alone (its window count...)


__all__ = ["init_from_env", "finish", "world_size", "rank", "rank_range", "gather_in_rank_order", "gather_to_rank0",
           "broadcast_from_rank0", "begin_cell", "gather_parts", "timeout_s", "RankSharded", "RankFailed", "RankLost", "CALLS",
           "calls_summary"]
