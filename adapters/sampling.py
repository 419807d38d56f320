"""Seeded randomness and draws shared by the adapters, and the reference models' LR schedule.

Every random draw of an example (a sample, or one Monte Carlo estimate of a likelihood)
comes from its own generator, :func:`example_generator`, keyed by ``(run seed, example
index[, more indices])`` and a named stream, so a draw never depends on which other
examples share its batch or on the batch size, and two run seeds give independent draws
(seed 1 does not reuse seed 0's noise shifted by one example).
"""
from __future__ import annotations

import hashlib
import math
from typing import Sequence

import numpy as np
import torch

#: the streams the zoo draws from; any other short name works too (each name is its own stream)
STREAMS = ("sample", "likelihood")


def key_to_generator(*key: int) -> torch.Generator:
    """A CPU torch.Generator seeded from a key of non-negative integers; numpy's SeedSequence
    mixes the key so that nearby keys ((0, 1) vs (1, 0)) give unrelated streams."""
    if any(int(k) < 0 for k in key):
        raise ValueError(f"generator keys must be non-negative integers, got {key}")
    state = np.random.SeedSequence([int(k) for k in key]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed((int(state[0]) << 32) | int(state[1]))


def _stream_word(stream: str) -> int:
    # a stable 32-bit number for the stream's name (Python's hash() differs between processes)
    return int.from_bytes(hashlib.sha256(stream.encode("utf-8")).digest()[:4], "little")


def example_generator(seed: int, index: int | Sequence[int], *, stream: str) -> torch.Generator:
    """The one source of randomness of one example: a CPU ``torch.Generator``.

    seed: the run seed (>= 0). index: the example's index in the call (``i``), or a tuple of
    indices (``(document, window)``, ``(example, mc_sample)``...). stream: what the draws are
    for (``"sample"``, ``"likelihood"``...), so that sampling and scoring the same example
    never share noise. The key is ``(seed, stream, len(index), *index)`` mixed by numpy's
    SeedSequence: streams of different seeds, indices or names are statistically independent.
    """
    idx = (int(index),) if isinstance(index, (int, np.integer)) else tuple(int(i) for i in index)
    if not isinstance(stream, str) or not stream:
        raise ValueError(f"stream must be a non-empty name, got {stream!r}")
    return key_to_generator(int(seed), _stream_word(stream), len(idx), *idx)


def examples_to_uniforms(seed: int, start: int, count: int, shape: Sequence[int], *, stream: str = "sample",
                         dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Uniforms in [0, 1) for examples ``start .. start+count-1``: (count, *shape), row ``r``
    drawn from ``example_generator(seed, start + r, stream=stream)``."""
    rows = [torch.rand(*shape, generator=example_generator(seed, start + r, stream=stream), dtype=dtype)
            for r in range(count)]
    return torch.stack(rows) if rows else torch.empty(0, *shape, dtype=dtype)


def logits_to_ids(logits: torch.Tensor, u: torch.Tensor, temperature: float) -> torch.Tensor:
    """Inverse-CDF draws: logits (B, V), uniforms u (B,) in [0, 1) -> ids (B,) int64 on the
    logits' device.

    The CDF is built in float64, row by row, so a draw depends only on its row's logits, not on
    how a batch rounds its sums; an id of probability zero is never drawn. ``temperature == 0``
    is argmax. Nothing is read back to the host: on an accelerator a sampler that reads once
    per token holds the host until the device has caught up, every token (callers move ``u``
    to the device once per batch; a draw there can differ from the CPU's only where ``u``
    falls within float64 rounding of a CDF step).
    """
    logits = logits.detach().to(torch.float64)
    if temperature == 0:
        return logits.argmax(-1)
    cdf = torch.softmax(logits / temperature, dim=-1).cumsum(-1)
    x = (u.to(logits.device, torch.float64) * cdf[:, -1]).unsqueeze(-1)
    ids = torch.searchsorted(cdf, x, right=True).squeeze(-1)
    return ids.clamp_(max=logits.shape[-1] - 1)


def broken_positions(logits: torch.Tensor) -> torch.Tensor:
    """logits (..., V) -> bool (...,): True where a distribution holds NaN, +inf, or no finite
    value (-inf alone is allowed: some models rule ids out that way)."""
    return torch.isnan(logits).any(-1) | torch.isposinf(logits).any(-1) | ~torch.isfinite(logits).any(-1)


class BrokenLogits:
    """Rows whose logits were NaN, +inf or nowhere finite at some step of a sampler, noted on the
    device at every step and read once, when the batch is done (a check per step would read a
    value back every token; the draws from broken logits are garbage, never an error)."""

    def __init__(self):
        self.first: torch.Tensor | None = None  # (B,) int64: each row's first broken step, -1 for none

    def note(self, logits: torch.Tensor, step: int) -> None:
        """logits (B, V) of one step."""
        broken = broken_positions(logits)
        if self.first is None:
            self.first = torch.full(broken.shape, -1, dtype=torch.int64, device=logits.device)
        self.first = torch.where(broken & (self.first < 0), step, self.first)

    def earliest(self) -> tuple[int, int] | None:
        """(row, step) of the earliest broken logits (the lowest row among ties), or None: one read."""
        if self.first is None:
            return None
        first = self.first.cpu().numpy()
        if not (first >= 0).any():
            return None
        steps = np.where(first >= 0, first, np.iinfo(np.int64).max)
        row = int(steps.argmin())
        return row, int(steps[row])


def cosine_lr(step: int, total: int, peak: float, warmup: int, floor: float = 0.0) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay from ``peak`` to ``floor * peak``."""
    if step < warmup:
        return peak * (step + 1) / warmup
    cos = 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))
    return peak * (floor + (1 - floor) * cos)
