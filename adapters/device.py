"""Host-device traffic shared by the adapters: copies to the device that do not wait for it
(``to_device``), and no read-back in transformers' mask preparation (``rows_not_packed``); the
zoo models' compile option."""
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


class rows_not_packed:  # noqa: N801  (used as a function: ``with rows_not_packed():``)
    """For the duration, transformers' check for packed sequences answers "not packed" without
    reading the device.

    transformers (5.x) runs ``masking_utils.find_packed_sequence_indices`` on every forward pass
    without an attention mask or a cache, on the position ids the model makes itself, and ends it
    with a Python ``if`` on a device tensor: one read-back per forward pass, which on an
    accelerator keeps the host from queueing the next batch until this one is done. Each row
    here is one window at the model's default positions 0..T-1, for which that check returns
    None, so None is the answer: the same causal mask (SDPA's ``is_causal`` path). Absent in
    other transformers versions: then nothing is changed. Entered once per forward pass, so it
    costs about a microsecond (the module is looked up once)."""

    def __enter__(self) -> None:
        masking = _masking_utils()
        self._saved = getattr(masking, "find_packed_sequence_indices", None)
        if self._saved is not None:
            masking.find_packed_sequence_indices = _not_packed

    def __exit__(self, *exc: object) -> None:
        if self._saved is not None:
            _masking_utils().find_packed_sequence_indices = self._saved


_MASKING: list = []  # transformers.masking_utils once imported (None where it does not exist)


def _masking_utils():
    if not _MASKING:
        try:
            import transformers.masking_utils as masking
        except ImportError:
            masking = None
        _MASKING.append(masking)
    return _MASKING[0]


def _not_packed(position_ids: torch.Tensor) -> None:
    return None


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
