"""Counting the tensor operations that read a value back to the host (``HostReads``): on an
accelerator each is a wait until everything queued before it has run, so a loop that reads
once per batch keeps the host from queueing the next batch while the device works. On the CPU
the same operations run through the same dispatcher, so tests count them here, where every
machine can, and check that a hot loop makes none per batch."""
from __future__ import annotations

import collections
import traceback

from torch.utils._python_dispatch import TorchDispatchMode

#: aten operations whose result the host must wait for: a Python number or bool from a tensor
#: (item(), int(), bool() / `if tensor`), torch.equal, and outputs whose size depends on values
READS = ("aten._local_scalar_dense", "aten.is_nonzero", "aten.equal", "aten.nonzero", "aten.masked_select",
         "aten._unique", "aten.unique", "aten.repeat_interleave.Tensor")


#: Tensor methods that copy a device tensor to the host; on the CPU they run without the
#: dispatcher (the tensor is there already), so they are counted where Python calls them
#: (``numpy()`` is not one: it refuses a device tensor, so it only ever sees host tensors)
COPIES = ("cpu", "tolist", "item")


class HostReads(TorchDispatchMode):
    """``with HostReads() as reads: ...``: ``reads.count`` the read-backs made inside, and
    ``reads.where`` the first few call sites (for the failure message).

    ``reads.copies`` counts calls of the ``COPIES`` methods: on the CPU these also run on
    tensors that never were on a device, so tests compare them between two sizes of the same
    work (more steps, more batches) rather than expect none."""

    def __init__(self):
        super().__init__()
        self.count = 0
        self.copies = 0
        self.ops: collections.Counter = collections.Counter()
        self.where: list[str] = []
        self._saved: dict = {}

    def __enter__(self):
        import torch

        for name in COPIES:
            method = self._saved[name] = getattr(torch.Tensor, name)

            def counted(tensor, *args, _method=method, _name=name, **kwargs):
                self.copies += 1
                self.ops[f"Tensor.{_name}"] += 1
                return _method(tensor, *args, **kwargs)

            setattr(torch.Tensor, name, counted)
        return super().__enter__()

    def __exit__(self, *exc):
        import torch

        for name, method in self._saved.items():
            setattr(torch.Tensor, name, method)
        return super().__exit__(*exc)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func)
        if name.startswith(READS):
            self.count += 1
            self.ops[name] += 1
            if len(self.where) < 3:
                self.where.append("".join(traceback.format_stack(limit=8)[:-1]))
        return func(*args, **(kwargs or {}))
