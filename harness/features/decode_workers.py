"""Images decoded (and resized on the host) ahead of the network: in worker processes or on threads.

Pillow releases the GIL while it inflates and resizes, but the PNG chunk parsing around it is
Python, so threads stop scaling after a few cores. With ``workers > 0`` that many processes
(forked on Linux, as torch's DataLoader does) decode (and, without an accelerator, resize) and
write each image straight into a shared memory-mapped buffer (no pixels are pickled; on Linux a
file without a name, freed however the process ends: ``genbench.features.decode_arena``); the
parent gets shapes back. ``workers=0`` runs the same work on a thread pool in this process (the
default for small jobs and on machines with at most 2 cores: starting processes costs more there
than it saves). ``GENBENCH_DECODE_WORKERS`` overrides the automatic choice.

A session (``_session``: ``_ProcessSession`` or ``_ThreadSession``) takes batches of loaders
and hands back ``DecodedBatch``es; ``_decoded_batches`` keeps ``PREFETCH`` batches decoding
ahead of the one the consumer holds.
"""
from __future__ import annotations

import atexit
import math
import os
import sys
import threading
import time
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import numpy as np

from genbench.errors import UserError
from genbench.features.decode_arena import _Arena, _worker_arena
from genbench.features.resize import RESIZERS

#: environment variable: decode worker processes (0: threads in this process)
WORKERS_ENV = "GENBENCH_DECODE_WORKERS"
#: batches decoded ahead of the one the network is on
PREFETCH = 2
#: below this many images a job decodes on threads (starting processes costs ~0.5 s)
MIN_IMAGES_FOR_PROCESSES = 512
#: how often a worker checks that the process that started it is still alive, seconds
PARENT_CHECK_S = 0.5


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def default_workers(n_images: int) -> int:
    """Decode worker processes for a job of ``n_images``: ``$GENBENCH_DECODE_WORKERS`` if set,
    else every core when there are more than 2 and the job is large enough, else 0 (threads)."""
    env = os.environ.get(WORKERS_ENV)
    if env not in (None, ""):
        try:
            return max(0, int(env))
        except ValueError:
            raise UserError(f"${WORKERS_ENV}={env!r}: must be a whole number of processes (0: threads)") from None
    cores = cpu_count()
    return cores if cores > 2 and n_images >= MIN_IMAGES_FOR_PROCESSES else 0


# --- the per-image work (runs in a worker process or a thread) ---------------------------------------
def check_image(img: np.ndarray, where: str = "") -> None:
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        got = f"{type(img).__name__} {getattr(img, 'dtype', '')} {getattr(img, 'shape', '')}"
        hint = (" (greyscale: replicate the channel first, e.g. np.repeat(images, 3, axis=-1))"
                if getattr(img, "ndim", 0) == 3 and img.shape[2] == 1 else "")
        raise UserError(f"{where}images must be uint8 (N, H, W, 3); got {got}{hint}")


def prepare_image(loader: Callable[[], np.ndarray], resize: str | None, size: int,
                  out: np.ndarray | None = None) -> np.ndarray:
    """One image: load (decode), check, and resize on the host when ``resize`` names a mode:
    uint8 (H, W, 3), or float32 (3, size, size) written into ``out`` if given."""
    img = loader()
    check_image(img)
    if resize is None:
        return img
    return RESIZERS[resize](img, size, out=out)


def _init_worker(parent: int | None = None) -> None:
    """One thread per worker process for BLAS (the banded resize) and torch (the legacy_pytorch
    resize): the processes already use every core. Given ``parent`` (a pid), the worker ends
    when that process does."""
    if parent is not None:
        threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True, name="genbench-parent-check").start()
    os.environ["OMP_NUM_THREADS"] = "1"  # read by torch when a worker imports it
    if "torch" in sys.modules:  # inherited by fork: one thread, so OpenMP never runs after the fork
        sys.modules["torch"].set_num_threads(1)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:  # pragma: no cover - scikit-learn brings threadpoolctl
        pass


def _exit_with_parent(parent: int) -> None:
    """Ends this worker once ``parent`` has died without shutting the pool down (SIGKILL, a
    preemption): an orphan would otherwise sleep on forever, holding the arena's memory."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_S)
    os._exit(1)


def _decode_into_arena(ref: tuple[str, str, int], jobs: list, resize: str | None, size: int) -> list:
    """Worker side: each (offset, capacity, loader) -> its image written at ``offset`` of the
    arena ``ref`` (``_Arena.ref``: key, path, bytes); returns (shape, dtype) per image, or
    (shape, dtype, array) when it did not fit."""
    arena = _worker_arena(*ref)
    out = []
    for offset, capacity, loader in jobs:
        if resize is not None:
            view = np.frombuffer(arena, np.float32, 3 * size * size, offset).reshape(3, size, size)
            prepare_image(loader, resize, size, out=view)
            out.append(((3, size, size), "<f4"))
            continue
        img = prepare_image(loader, None, size)
        if img.nbytes <= capacity:
            np.frombuffer(arena, np.uint8, img.nbytes, offset).reshape(img.shape)[...] = img
            out.append((img.shape, "|u1"))
        else:
            out.append((img.shape, "|u1", img))
    return out


# --- the two ways of running the per-image work -------------------------------------------------------
@dataclass
class DecodedBatch:
    """A batch off the workers: host-resized float32 (B, 3, S, S), or uint8 (H, W, 3) images."""

    resized: np.ndarray | None
    images: list[np.ndarray] | None


class _ThreadSession:
    """The work on a thread pool in this process (each image into a fresh batch array)."""

    slots = PREFETCH + 1

    def __init__(self, pool: ThreadPoolExecutor, resize: str | None, size: int):
        self.pool, self.resize, self.size = pool, resize, size

    def submit(self, loaders: Sequence, slot: int):
        if self.resize is None:
            return None, [self.pool.submit(prepare_image, f, None, self.size) for f in loaders]
        out = np.empty((len(loaders), 3, self.size, self.size), dtype=np.float32)
        return out, [self.pool.submit(prepare_image, f, self.resize, self.size, out[i]) for i, f in enumerate(loaders)]

    def collect(self, job) -> DecodedBatch:
        out, futures = job
        results = [f.result() for f in futures]  # re-raises a worker's error here
        return DecodedBatch(out, None) if out is not None else DecodedBatch(None, results)

    @staticmethod
    def futures(job) -> list[Future]:
        return job[1]


class _ProcessSession:
    """The work in worker processes, written into the arena; the parent reads views of it."""

    slots = PREFETCH + 1

    def __init__(self, pool: "DecodePool", arena: _Arena, batch: int, resize: str | None, size: int):
        self.pool, self.arena, self.resize, self.size = pool, arena, resize, size
        self.per_task = max(1, math.ceil(batch / pool.workers))  # one task per worker and batch

    def submit(self, loaders: Sequence, slot: int):
        a = self.arena
        futures = []
        for start in range(0, len(loaders), self.per_task):
            jobs = [(a.offset(slot, i), a.capacity, loaders[i])
                    for i in range(start, min(start + self.per_task, len(loaders)))]
            futures.append(self.pool.executor.submit(_decode_into_arena, a.ref, jobs, self.resize, self.size))
        return slot, len(loaders), futures

    def collect(self, job) -> DecodedBatch:
        slot, n, futures = job
        results = [r for f in futures for r in f.result()]  # re-raises a worker's error here
        a = self.arena
        if self.resize is not None:  # images of exactly `capacity` bytes, one after another
            start = a.offset(slot, 0)
            flat = a.array[start: start + n * a.capacity].view(np.float32)
            return DecodedBatch(flat.reshape(n, 3, self.size, self.size), None)
        images = []
        for i, r in enumerate(results):
            if len(r) == 3:
                images.append(r[2])
            else:
                shape, _ = r
                start = a.offset(slot, i)
                images.append(a.array[start: start + int(np.prod(shape))].reshape(shape))
        return DecodedBatch(None, images)

    @staticmethod
    def futures(job) -> list[Future]:
        return job[2]


class DecodePool:
    """Worker processes for decoding (shared by every extractor of this process; closed at exit)."""

    def __init__(self, workers: int):
        import multiprocessing

        # fork on Linux, as torch's DataLoader: a script without an `if __name__ == "__main__":`
        # guard still works (forkserver and spawn re-run the main script in every worker), and
        # workers start at once. They touch neither CUDA nor torch's thread pool (_init_worker).
        method = "fork" if sys.platform.startswith("linux") else "spawn"
        self.workers = workers
        self.executor = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method),
                                            initializer=_init_worker, initargs=(os.getpid(),))
        self.lock = threading.Lock()
        self.arena: _Arena | None = None

    @contextmanager
    def session(self, batch: int, resize: str | None, size: int):
        capacity = 3 * size * size * 4  # a resized float32 image; decoded uint8 images up to that size
        with self.lock:  # one job at a time owns the arena
            slots = _ProcessSession.slots
            if self.arena is None or self.arena.slots < slots or self.arena.batch < batch \
                    or self.arena.capacity != capacity:
                if self.arena is not None:
                    self.arena.close()
                self.arena = _Arena(slots, batch, capacity)
            yield _ProcessSession(self, self.arena, batch, resize, size)

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
        if self.arena is not None:
            self.arena.close()
            self.arena = None


_POOLS: dict[int, DecodePool] = {}
_POOLS_LOCK = threading.Lock()


def decode_pool(workers: int) -> DecodePool:
    with _POOLS_LOCK:
        pool = _POOLS.get(workers)
        if pool is None:
            pool = _POOLS[workers] = DecodePool(workers)
        return pool


@atexit.register
def close_decode_pools() -> None:
    with _POOLS_LOCK:
        for pool in _POOLS.values():
            pool.close()
        _POOLS.clear()


@contextmanager
def _session(extractor, n_images: int, batch: int, resize: str | None, size: int, workers: int | None):
    workers = default_workers(n_images) if workers is None else int(workers)
    if workers < 0:
        raise UserError(f"workers={workers}: must be >= 0 (0: decode on threads in this process)")
    if workers == 0:
        yield _ThreadSession(extractor_threads(extractor), resize, size)
        return
    with decode_pool(workers).session(batch, resize, size) as s:
        yield s


def extractor_threads(extractor) -> ThreadPoolExecutor:
    """The extractor's own thread pool (``ResizingExtractor._executor``), or a shared one."""
    get = getattr(extractor, "_executor", None)
    if get is not None:
        return get()
    global _SHARED_THREADS
    if _SHARED_THREADS is None:
        _SHARED_THREADS = ThreadPoolExecutor(max(1, min(8, cpu_count())), thread_name_prefix="genbench-decode")
    return _SHARED_THREADS


_SHARED_THREADS: ThreadPoolExecutor | None = None


def _decoded_batches(session, batches: Iterable):
    """((tag, loaders), DecodedBatch) for each (tag, loaders) of ``batches``, in order, pulled lazily, PREFETCH batches decoding ahead; a batch's
    slot is refilled once the consumer asks for the next one. On an error (or an early exit)
    every task still running is cancelled or waited for, so none writes into a slot later."""
    items = iter(batches)
    inflight: deque = deque()
    current = None
    submitted = 0

    def submit_next() -> None:
        nonlocal submitted
        item = next(items, None)
        if item is not None:
            inflight.append((item, session.submit(item[1], submitted % session.slots)))
            submitted += 1

    try:
        for _ in range(session.slots):
            submit_next()
        while inflight:
            item, current = inflight.popleft()
            batch = session.collect(current)
            current = None
            yield item, batch
            del batch
            submit_next()
    finally:
        pending = [f for job in ([current] if current is not None else []) + [job for _, job in inflight]
                   for f in session.futures(job)]
        for f in pending:
            f.cancel()
        for f in pending:
            if not f.cancelled():
                f.exception()  # waits; the error, if any, was raised already or does not matter now
