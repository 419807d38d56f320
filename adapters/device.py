"""Host-to-device copies shared by the adapters' likelihood paths."""
from __future__ import annotations

import torch


def to_device(x: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """A tensor on ``device``: unchanged when already there; from the CPU to an accelerator
    through pinned memory without blocking, so the host goes on preparing the next batch while
    the copy and the compute run (the caching host allocator keeps the pinned buffer alive
    until the copy is done)."""
    device = torch.device(device)
    if x.device == device:
        return x
    if device.type == "cuda" and x.device.type == "cpu":
        return x.pin_memory().to(device, non_blocking=True)
    return x.to(device)
