"""``torchscript:FILE``: any TorchScript module, called exactly as clean-fid calls a
``custom_feat_extractor``: ``module(x)`` with ``x`` float32 ``(N, 3, 299, 299)`` in [0, 255]
after the mode's resize; the output is flattened to (N, D)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from genbench.errors import UserError
from genbench.features.extractor_base import ResizingExtractor
from genbench.features.weights import check_trusted, file_sha256, jit_load
from genbench.registry import EXTRACTORS


@EXTRACTORS.register("torchscript")
class TorchScriptExtractor(ResizingExtractor):
    """``torchscript:FILE``: any TorchScript module, fed float32 (N, 3, 299, 299) in [0, 255]
    after the mode's resize, exactly as clean-fid feeds a ``custom_feat_extractor``. Like every
    extractor file, it runs only when trusted (``weights.check_trusted``)."""

    name = "torchscript"
    channels_last_ok = True

    def __init__(self, path: str | Path | None = None, *, mode: str = "clean", device: str = "cpu",
                 threads: int | None = None, dim: int | None = None, trust_unknown: bool = False):
        if not path:
            raise UserError("extractor torchscript needs a file: write torchscript:FILE (a torch.jit.save'd module)")
        self.path = Path(path)
        if not self.path.is_file():
            raise UserError(f"{self.path}: no such TorchScript file (extractor torchscript:FILE)")
        self.weights_sha256 = file_sha256(self.path)
        check_trusted(self.path, self.weights_sha256, trust_unknown, "TorchScript extractor")
        super().__init__(mode=mode, device=device, threads=threads)
        self.module = jit_load(self.path, "save the extractor with torch.jit.script(...).save(FILE)").to(self.device)
        self.dim = int(dim) if dim else self._probe_dim()

    def _weights_words(self) -> str:
        return f"TorchScript {self.path}"

    def _probe_dim(self) -> int:
        probe = np.full((1, 3, self.size, self.size), 128.0, dtype=np.float32)
        try:
            return int(self._run(probe).shape[1])
        except Exception as e:
            raise UserError(f"{self.path}: calling the module on float32 (1, 3, 299, 299) in [0, 255] "
                            f"failed ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None

    def _forward(self, x):
        return self.module(x)

    def describe(self) -> dict[str, Any]:
        return {"extractor": f"torchscript:{self.path.name}", "weights_sha256": self.weights_sha256,
                "resize": self.mode, "dim": self.dim,
                "input": "float32 (N, 3, 299, 299) in [0, 255] (clean-fid custom_feat_extractor)",
                **self._layout_words()}


__all__ = ["TorchScriptExtractor"]
