"""Images -> network inputs -> features, at the network's speed.

One pipeline serves every extractor (``ResizingExtractor.outputs_from_loaders``; for any other
``FeatureExtractor``, ``loaders_to_images``) and so every caller: ``genbench fid``, ``stats``,
``is`` and the image-quality suite. This module holds the entry points; the parts are

1. **Decoding in worker processes** (``genbench.features.decode_workers``). With ``workers > 0``
   that many processes decode (and, without an accelerator, resize) and write each image
   straight into shared memory (``genbench.features.decode_arena``: on Linux a file without a
   name, freed however the process ends); ``workers=0`` runs the same work on a thread pool in
   this process. ``GENBENCH_DECODE_WORKERS`` overrides the automatic choice.
2. **Batches prefetched and double-buffered, one session for many sources.** While the network
   runs on batch k, the workers fill batches k+1 and k+2 (``decode_workers.PREFETCH``); on CUDA
   each batch ships through pinned staging buffers with a non-blocking copy
   (``genbench.features.device_batches``), and the features stay on the device until the end.
   ``loader_groups_to_outputs`` runs every group of images (the pieces of both sources of an
   FID) through one session: the next group's first batches decode while this group's last
   ones run through the network, and the groups are read lazily (a folder listed, an npz
   chunk loaded) while the workers decode. For statistics on CUDA the features never leave
   the device: the float64 sums are accumulated there (``statistics_on_device``) and read back
   once per source.
3. **The resize on the accelerator** (``resize_on_device``). On CUDA the ``clean`` and
   ``legacy_pytorch`` resizes run on the device, so the host only decodes; ``clip`` stays on
   the host, in the workers.
4. **Precision: the Inception convention is float32** (``float32_convention``: TF32 off;
   ``channels_last`` opt-in). See ``genbench.features.device_batches``.

Batches are those of the earlier in-process pipeline: ``batch_size`` consecutive images of a
chunk, one network call per batch (per run of one image size for ``legacy_tensorflow``), so the
numbers on a CPU do not change with the number of workers.

Entry points: ``loaders_to_outputs`` (extractors), ``loader_groups_to_outputs`` (many groups, one
session), ``loaders_to_images`` (decoding only) and, re-exported from
``genbench.features.timing``, ``time_fid`` (FID end to end against the network alone and against
decoding and resizing alone, in images per second; for ``benchmarks/device_check.sh`` and
``bench_fid.py``).
"""
from __future__ import annotations

import itertools
from contextlib import closing
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from genbench.errors import UserError
from genbench.features.decode_workers import (WORKERS_ENV, DecodePool, _decoded_batches, _session, check_image,
                                              default_workers, prepare_image)
from genbench.features.device_batches import (_is_cuda, _layout, _network_inputs, _Staging, float32_convention,
                                              resize_on_device, statistics_on_device)
from genbench.features.timing import time_fid


# --- the entry points -------------------------------------------------------------------------------
def loaders_to_outputs(extractor, loaders: Sequence[Callable[[], np.ndarray]], *, batch_size: int = 64,
                       spatial: bool = False, workers: int | None = None, run_network: bool = True,
                       progress: str | None = None) -> dict[str, np.ndarray]:
    """``features`` float64 (N, D), and ``spatial`` float64 (N, Ds) when ``spatial``, of the
    images the loaders return (uint8 (H, W, 3) each), through a ``ResizingExtractor``'s resize
    and network.

    workers: decode worker processes (None: ``default_workers``; 0: threads in this process).
    run_network: False decodes and resizes (on the device too) but skips the network and
        returns empty dicts: the preprocessing alone, for ``time_fid``.
    progress: a label for a progress bar (shown on a terminal only).
    """
    if len(loaders) == 0:
        raise UserError("no images to extract features from")
    for _, out in loader_groups_to_outputs(extractor, [(None, progress, loaders)], batch_size=batch_size,
                                           spatial=spatial, workers=workers, run_network=run_network,
                                           on_device=False):
        return out
    raise AssertionError("one group in, one out")  # pragma: no cover


def loader_groups_to_outputs(extractor, groups: Iterable[tuple[Any, str | None, Sequence]], *, batch_size: int = 64,
                             spatial: bool = False, workers: int | None = None, run_network: bool = True,
                             on_device: bool | None = None) -> Iterator[tuple[Any, dict]]:
    """``(tag, outputs)`` for each ``(tag, label, loaders)`` group, in order, all through ONE
    decode session: the next group's first batches decode while this group's last ones run
    through the network, and the groups are pulled from ``groups`` lazily (a folder listed,
    an npz chunk read, while the workers decode what was submitted before).

    outputs: ``features`` (N, D), and ``spatial`` (N, Ds) when ``spatial``, of the group's
    images, batched within the group exactly as ``loaders_to_outputs`` batches them (so the
    same numbers). ``on_device`` False: float64 numpy arrays, checked finite group by group;
    True: float32 tensors on the extractor's device, no copy to the host and no
    synchronisation (finiteness is checked once, when the stream ends, before it returns);
    None: True on CUDA. label: a progress bar's label per group (None: no bar). Empty groups
    are skipped. The session's workers are decided by the first group's size, as
    ``loaders_to_outputs`` decides them."""
    import torch

    if batch_size < 1:
        raise UserError(f"batch_size={batch_size}: must be >= 1")
    if spatial and extractor.spatial_status() is not None:
        raise UserError(extractor.spatial_status())
    device, mode, size = extractor.device, extractor.mode, extractor.size
    on_device = _is_cuda(device) if on_device is None else bool(on_device)
    resize_here = resize_on_device(extractor)
    host_resize = None if resize_here or mode == "legacy_tensorflow" else mode
    staging = _Staging(device) if _is_cuda(device) else None
    groups = (g for g in groups if len(g[2]) > 0)
    first = next(groups, None)
    if first is None:
        return
    finite: list = []  # 0-d bool tensors on the device, read once at the end (on_device)

    def batches():
        for tag, label, loaders in itertools.chain([first], groups):
            group = _Group(tag, label, len(loaders))
            for s in range(0, len(loaders), batch_size):
                yield group, loaders[s: s + batch_size]

    group, parts, bar = None, {}, None
    try:
        with _session(extractor, len(first[2]), batch_size, host_resize, size, workers) as session, \
                closing(_decoded_batches(session, batches())) as decoded:
            for (g, loaders), batch in decoded:
                if g is not group:
                    group, parts, bar = g, {}, _progress(g.n, g.label)
                with float32_convention(device), torch.inference_mode():
                    inputs = _network_inputs(batch, mode, size, device, staging, resize_here)
                    if run_network:
                        for x in inputs:
                            for key, y in extractor._tensor_outputs(_layout(extractor, x), spatial).items():
                                parts.setdefault(key, []).append(y if staging is not None or on_device else
                                                                 y.to("cpu", torch.float64).numpy())
                del batch, inputs  # views of the slot that is refilled next
                group.done += len(loaders)
                if bar is not None:
                    bar.update(len(loaders))
                if group.done < group.n:
                    continue
                if bar is not None:
                    bar.close()
                    bar = None
                yield group.tag, _group_outputs(extractor, parts, on_device, finite)
                parts = {}
    finally:
        if bar is not None:
            bar.close()
    if finite:
        with torch.inference_mode():
            if not bool(torch.stack(finite).all()):  # the stream's one synchronisation
                raise UserError(f"extractor {extractor.name!r} returned NaN or inf features")


@dataclass
class _Group:
    tag: Any
    label: str | None
    n: int
    done: int = 0


def _group_outputs(extractor, parts: dict[str, list], on_device: bool, finite: list) -> dict:
    """One group's per-batch outputs -> one array (host) or tensor (device) per key."""
    import torch

    with torch.inference_mode():
        if on_device:
            out = {key: torch.cat(v) if len(v) > 1 else v[0] for key, v in parts.items()}
            finite.extend(torch.isfinite(t).all() for t in out.values())
            return out
        out = {key: (torch.cat(v).to("cpu", torch.float64).numpy() if isinstance(v[0], torch.Tensor)
                     else np.concatenate(v)) for key, v in parts.items()}
    for key, value in out.items():
        if not np.all(np.isfinite(value)):
            raise UserError(f"extractor {extractor.name!r} returned NaN or inf {key}")
    return out


def loaders_to_images(loaders: Sequence[Callable[[], np.ndarray]], *, workers: int | None = None,
                      batch_size: int = 64) -> list[np.ndarray]:
    """The decoded uint8 (H, W, 3) images (copies), decoded as ``loaders_to_outputs`` decodes:
    for extractors that take whole images (any ``FeatureExtractor``)."""
    batches = [loaders[s: s + batch_size] for s in range(0, len(loaders), batch_size)]
    out: list[np.ndarray] = []
    with _session(None, len(loaders), batch_size, None, 299, workers) as session, \
            closing(_decoded_batches(session, ((None, b) for b in batches))) as decoded:
        for _, batch in decoded:
            out.extend(np.array(img) for img in batch.images)
    return out


def _progress(total: int, label: str | None):
    if label is None:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=label, unit="img", leave=False, disable=None)


__all__ = ["loaders_to_outputs", "loader_groups_to_outputs", "statistics_on_device", "loaders_to_images", "time_fid", "default_workers", "resize_on_device",
           "float32_convention", "check_image", "prepare_image", "WORKERS_ENV", "DecodePool"]
