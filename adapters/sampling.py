"""Seeded randomness and draws shared by the adapters, and the reference models' LR schedule.

Every sample takes its randomness from its own generator keyed by ``(seed, index)``, so a
sample does not depend on which other samples share its batch.
"""
from __future__ import annotations

import math

import numpy as np
import torch


def key_to_generator(*key: int) -> torch.Generator:
    """A CPU torch.Generator seeded from an integer key; numpy's SeedSequence mixes the key so
    that nearby keys ((0, 1) vs (1, 0)) give unrelated streams."""
    state = np.random.SeedSequence([int(k) for k in key]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed((int(state[0]) << 32) | int(state[1]))


def logits_to_ids(logits: torch.Tensor, u: torch.Tensor, temperature: float) -> torch.Tensor:
    """Inverse-CDF draws: logits (B, V), uniforms u (B,) in [0, 1) -> ids (B,) int64 on the CPU.

    The CDF is built in float64 on the CPU, so a draw depends only on the logits, not on how
    a batch rounds its sums; an id of probability zero is never drawn. ``temperature == 0``
    is argmax.
    """
    logits = logits.detach().to("cpu", torch.float64)
    if temperature == 0:
        return logits.argmax(-1)
    cdf = torch.softmax(logits / temperature, dim=-1).cumsum(-1)
    x = (u.to(torch.float64) * cdf[:, -1]).unsqueeze(-1)
    ids = torch.searchsorted(cdf, x, right=True).squeeze(-1)
    return ids.clamp_(max=logits.shape[-1] - 1)


def cosine_lr(step: int, total: int, peak: float, warmup: int, floor: float = 0.0) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay from ``peak`` to ``floor * peak``."""
    if step < warmup:
        return peak * (step + 1) / warmup
    cos = 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))
    return peak * (floor + (1 - floor) * cos)
