"""FID end to end against its parts, in images per second: ``time_fid`` (FID end to end against the
network alone and against decoding and resizing alone, through ``genbench.features.pipeline``),
for ``benchmarks/device_check.sh`` and ``bench_fid.py``."""
from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from genbench.errors import UserError
from genbench.features.decode_workers import default_workers
from genbench.features.device_batches import _layout, float32_convention, resize_on_device, statistics_on_device


def _sync(device) -> None:
    if getattr(device, "type", "cpu") == "cuda":
        import torch

        torch.cuda.synchronize(device)


def time_fid(path_a, path_b, extractor="inception", *, mode: str | None = None, device: str | None = "auto",
             batch_size: int = 64, workers: int | None = None, repeats: int = 3, trust_unknown: bool = False,
             center_crop: int | None = None, channels_last: bool = False) -> dict[str, Any]:
    """FID between two sources end to end, against its parts, in images per second.

    * ``end_to_end``: ``genbench.features.fid.compute_fid(path_a, path_b, ..., use_cache=False)``
      -- decoding, resize, network, statistics and the Fréchet distance of both sources;
    * ``network``: the extractor's network alone on as many batches of the same shape, inputs
      already on the device (the rate the issue's "network alone" means);
    * ``preprocess``: decoding and resizing alone (the pipeline with the network skipped).

    Each is the median of ``repeats`` timed runs after one warm-up, the device synchronised
    before the clock is read. Returns a flat dict: ``n_images``, ``*_images_per_s``,
    ``*_s`` (median seconds), ``end_to_end_over_network``, ``end_to_end_over_preprocess``,
    ``fid``, ``device``, ``workers``, ``resize_on`` ("device" or "host"), ``batch_size``,
    ``precision`` and the extractor's ``describe()``. Device check entry point; see
    ``genbench.features.pipeline``'s docstring for what runs where.
    """
    import torch

    from genbench.features.fid import compute_fid
    from genbench.features.pipeline import loader_groups_to_outputs  # here: pipeline re-exports time_fid
    from genbench.features.sources import path_to_image_source, with_center_crop
    from genbench.features.statistics import resolve_extractor

    ex = resolve_extractor(extractor, mode, device, trust_unknown)
    if channels_last:
        ex.set_channels_last()
    sources = []
    for path in (path_a, path_b):
        src = path_to_image_source(path, grey="error", alpha="error")
        if src is None:
            raise UserError(f"{path}: time_fid needs images on both sides (a folder, an npz with arr_0, a data set)")
        sources.append(with_center_crop(src, center_crop))
    chunks = [chunk for src in sources for chunk in src.chunks()]
    n = sum(len(c) for c in chunks)

    def end_to_end():
        return compute_fid(path_a, path_b, ex, batch_size=batch_size, use_cache=False, center_crop=center_crop,
                           workers=workers)["fid"]

    def preprocess():
        for _ in loader_groups_to_outputs(ex, [(None, None, chunk) for chunk in chunks], batch_size=batch_size,
                                          workers=workers, run_network=False):
            pass
        _sync(ex.device)

    n_batches = sum(math.ceil(len(c) / batch_size) for c in chunks)
    side = ex.size if ex.mode != "legacy_tensorflow" else 256
    x = _layout(ex, torch.rand(batch_size, 3, side, side, device=ex.device) * 255)

    def network():
        with float32_convention(ex.device), torch.inference_mode():
            for _ in range(n_batches):
                ex._tensor_outputs(x, False)
        _sync(ex.device)

    def timed(fn, warm_up: bool = True) -> float:
        if warm_up:  # TorchScript profiling runs, cuDNN autotuning, worker start-up, page cache
            fn()
        times = []
        for _ in range(max(1, repeats)):
            _sync(ex.device)
            t0 = time.perf_counter()
            fn()
            _sync(ex.device)
            times.append(time.perf_counter() - t0)
        return float(np.median(times))

    fid = end_to_end()  # the warm-up of end_to_end
    t_e2e, t_net, t_pre = timed(end_to_end, warm_up=False), timed(network), timed(preprocess)
    effective_workers = default_workers(n) if workers is None else int(workers)
    return {
        "n_images": n, "batch_size": batch_size, "repeats": repeats, "fid": fid,
        "end_to_end_s": t_e2e, "network_s": t_net, "preprocess_s": t_pre,
        "end_to_end_images_per_s": n / t_e2e, "network_images_per_s": n / t_net,
        "preprocess_images_per_s": n / t_pre,
        "end_to_end_over_network": t_net / t_e2e, "end_to_end_over_preprocess": t_pre / t_e2e,
        "device": str(ex.device), "workers": effective_workers,
        "decode": "processes" if effective_workers else "threads",
        "resize_on": "device" if resize_on_device(ex) else "host",
        "precision": ("float32, TF32 off" if getattr(ex.device, "type", "cpu") == "cuda" else "float32")
                     + (", channels_last" if ex.channels_last else ""),
        "statistics_on": "device" if statistics_on_device(ex) else "host",
        "extractor": ex.describe(),
    }
