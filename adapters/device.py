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


#: torch.compile modes the zoo models take as the option ``compile`` ("reduce-overhead" also
#: records CUDA graphs on a GPU)
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")


def compile_module(module: torch.nn.Module, mode: str | None, name: str) -> str | None:
    """Compile ``module``'s forward in place with ``torch.compile(mode=mode, dynamic=True)``
    (None: leave it eager) and return the mode, for the model's description.

    Compilation happens at the first call of each new input shape class, and is not timed
    by the speed suite (warm-up). The results are the same computation (up to float
    rounding of fused kernels)."""
    from genbench.errors import UserError

    if mode is None or mode is False or mode == "none":
        return None
    if mode not in COMPILE_MODES:
        raise UserError(f"{name}: option compile={mode!r} must be one of {', '.join(COMPILE_MODES)} (or unset); "
                        f'set [adapter."{name}"] compile in the run file')
    module.compile(mode=mode, dynamic=True)
    return mode
