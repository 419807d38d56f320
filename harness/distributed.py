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
gloo on CPUs, NCCL on GPUs (each rank on ``cuda:LOCAL_RANK``).
"""
from __future__ import annotations

import inspect
import os
from typing import Any

import numpy as np


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
        dist.init_process_group("nccl" if cuda else "gloo")
    return device


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


def gather_in_rank_order(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order, on every rank (pickled through the process group)."""
    import torch.distributed as dist

    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_from_rank0(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank."""
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


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


#: calls split across the ranks and calls run whole on every rank (no ``start``), by method
CALLS: dict[str, int] = {"sample split": 0, "sample whole": 0, "likelihood split": 0, "likelihood whole": 0}


def calls_summary() -> str:
    """One line: how many sample / likelihood calls were split across the ranks."""
    return f"torchrun: {world_size()} ranks; " + ", ".join(f"{k} {v}" for k, v in CALLS.items())


class RankSharded:
    """An adapter whose ``sample`` and ``log_likelihood`` calls are split across the ranks.

    Everything else (names, options, ``describe``, ``likelihood_kind``...) is the adapter's own."""

    def __init__(self, inner: Any):
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def sample(self, n: int, *, seed: int, batch_size: int = 64, condition: Any = None, steps: int | None = None,
               start: int = 0):
        from genbench.interfaces import Samples, sample_start_kwargs

        if not _takes(self._inner.sample, "start"):
            CALLS["sample whole"] += 1
            return self._inner.sample(n, seed=seed, batch_size=batch_size, condition=condition, steps=steps,
                                      **sample_start_kwargs(self._inner, start))
        CALLS["sample split"] += 1
        a, b = rank_range(n)
        part = self._inner.sample(b - a, seed=seed, batch_size=batch_size, start=start + a, steps=steps,
                                  condition=None if condition is None else condition[a:b])
        parts = gather_in_rank_order(part)
        return Samples(images=_concat([p.images for p in parts]), tokens=_concat([p.tokens for p in parts]),
                       texts=_concat([p.texts for p in parts]), nfe=sum(int(p.nfe) for p in parts),
                       nfe_per_sample=parts[0].nfe_per_sample, info=parts[0].info)

    def log_likelihood(self, batch: Any, *, seed: int = 0, start: int = 0):
        from genbench.interfaces import LikelihoodKind, LogLikelihood

        takes_start = _takes(self._inner.log_likelihood, "start")
        if not isinstance(batch, (list, np.ndarray)) or \
                (not takes_start and self._inner.likelihood_kind != LikelihoodKind.EXACT):
            CALLS["likelihood whole"] += 1
            # its draws are keyed by position in the batch (or the batch cannot be sliced): whole on every rank
            return self._inner.log_likelihood(batch, seed=seed, **({"start": start} if takes_start else {}))
        CALLS["likelihood split"] += 1
        a, b = rank_range(len(batch))
        kw = {"start": start + a} if takes_start else {}
        part = self._inner.log_likelihood(batch[a:b], seed=seed, **kw) if b > a else None
        parts = [p for p in gather_in_rank_order(part) if p is not None]
        first = parts[0]
        stderr = None if first.stderr is None else np.concatenate([p.stderr for p in parts])
        return LogLikelihood(nll=np.concatenate([p.nll for p in parts]),
                             units=np.concatenate([p.units for p in parts]), unit=first.unit, kind=first.kind,
                             stderr=stderr, mc_samples=first.mc_samples, info=first.info)


__all__ = ["init_from_env", "finish", "world_size", "rank", "rank_range", "gather_in_rank_order",
           "broadcast_from_rank0", "RankSharded", "CALLS", "calls_summary"]
