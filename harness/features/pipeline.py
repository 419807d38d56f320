"""Images -> network inputs -> features, at the network's speed.

One pipeline serves every extractor (``ResizingExtractor.outputs_from_loaders``; for any other
``FeatureExtractor``, ``loaders_to_images``) and so every caller: ``genbench fid``, ``stats``,
``is`` and the image-quality suite.

1. **Decoding in worker processes.** Pillow releases the GIL while it inflates and resizes, but
   the PNG chunk parsing around it is Python, so threads stop scaling after a few cores. With
   ``workers > 0`` that many processes (forked on Linux, as torch's DataLoader does) decode (and, without an accelerator, resize) and write
   each image straight into a shared memory-mapped buffer (no pixels are pickled; on Linux a
   file without a name, freed however the process ends: ``_Arena``); the parent gets shapes
   back. ``workers=0`` runs the same work on a thread pool in this process (the default
   for small jobs and on machines with at most 2 cores: starting processes costs more there
   than it saves). ``GENBENCH_DECODE_WORKERS`` overrides the automatic choice.
2. **Batches prefetched and double-buffered, one session for many sources.** While the network
   runs on batch k, the workers fill batches k+1 and k+2 (``PREFETCH``); on CUDA the host
   copies each batch into one of two pinned staging buffers and ships it with a non-blocking
   copy, and the features stay on the device until the end (no synchronisation per batch).
   ``loader_groups_to_outputs`` runs every group of images (the pieces of both sources of an
   FID) through one session: the next group's first batches decode while this group's last
   ones run through the network, and the groups are read lazily (a folder listed, an npz
   chunk loaded) while the workers decode. For statistics on CUDA the features never leave
   the device: the float64 sums are accumulated there (``statistics_on_device``) and read back
   once per source.
3. **The resize on the accelerator.** On CUDA the ``clean`` and ``legacy_pytorch`` resizes run
   on the device (``genbench.features.resize.TENSOR_RESIZERS``: Pillow's float bicubic as two
   float64 matrix products; the same numbers as the host path to float32 rounding, tested
   against clean-fid on CPU tensors), so the host only decodes. ``clip`` (Pillow's uint8
   resize) stays on the host, in the workers.
4. **Precision: the Inception convention is float32.** The network runs with TF32 off for
   convolutions and matrix products (PyTorch lets cuDNN use TF32 by default on Ampere and
   later GPUs, which rounds inputs to a 10-bit mantissa and moves pool_3 features far more than
   float32 rounding). ``channels_last`` (NHWC inputs and weights) is opt-in
   (``ResizingExtractor.set_channels_last``, ``--channels-last``): still float32, but the
   features move by float32 rounding (on the CPU an Inception-v3 with random weights: 6e-6 of
   their largest, about as far from float64 as NCHW's own 4e-6; not within 1e-6), and cuDNN
   skips the layout conversions around each convolution; recorded as ``layout`` in
   ``describe()`` and in compute_fid's result.

Batches are those of the earlier in-process pipeline: ``batch_size`` consecutive images of a
chunk, one network call per batch (per run of one image size for ``legacy_tensorflow``), so the
numbers on a CPU do not change with the number of workers.

Entry points: ``loaders_to_outputs`` (extractors), ``loader_groups_to_outputs`` (many groups, one
session), ``loaders_to_images`` (decoding only) and
``time_fid`` (FID end to end against the network alone and against decoding and resizing
alone, in images per second; for ``benchmarks/device_check.sh`` and ``bench_fid.py``).
"""
from __future__ import annotations

import atexit
import itertools
import math
import mmap
import os
import sys
import tempfile
import threading
import time
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from genbench.errors import UserError
from genbench.features.resize import DEVICE_RESIZE_MODES, RESIZERS, TENSOR_RESIZERS

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


#: this worker's mapping of the parent's current arena, by ``_Arena.key``
_WORKER_ARENA: dict[str, mmap.mmap] = {}


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


def _worker_arena(key: str, path: str, nbytes: int) -> mmap.mmap:
    """The arena ``key`` mapped in this worker, opened at ``path`` (on Linux the parent's
    descriptor, /proc/<pid>/fd/<fd>: the file has no name)."""
    arena = _WORKER_ARENA.get(key)
    if arena is None:
        for old in list(_WORKER_ARENA):  # an arena the parent replaced: let its memory go
            _WORKER_ARENA.pop(old).close()
        with open(path, "r+b") as f:
            arena = _WORKER_ARENA[key] = mmap.mmap(f.fileno(), nbytes)
    return arena


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


class _Arena:
    """A shared memory-mapped file: ``slots`` batches of ``batch`` images of ``capacity`` bytes.

    In /dev/shm when it has room (a container's is often 64 MB), else in the temp dir. On Linux
    the file never has a name (a memfd, or an unnamed file in the temp dir): the kernel frees it
    when the last process holding it ends, however it ends (SIGKILL, a Slurm preemption), so
    none is left behind. This process keeps the descriptor open and the workers, whenever they
    were forked, open it as /proc/<pid>/fd/<fd>. Elsewhere a named file, removed at ``close()``
    (at exit for the pools' arenas).
    """

    def __init__(self, slots: int, batch: int, capacity: int):
        self.slots, self.batch, self.capacity = slots, batch, capacity
        self.nbytes = slots * batch * capacity
        # what the workers know the arena by: a later arena may get the same fd, hence /proc path
        self.key = f"{os.getpid()}-{next(_ARENA_KEYS)}"
        self.fd, self.path, self.named = _arena_file(self.nbytes)
        try:
            os.ftruncate(self.fd, self.nbytes)
            self.map = mmap.mmap(self.fd, self.nbytes)
        except BaseException:
            self._release_file()
            raise
        if self.named:  # the workers open it by its name
            os.close(self.fd)
            self.fd = None
        self.array = np.frombuffer(self.map, np.uint8)

    @property
    def ref(self) -> tuple[str, str, int]:
        """What a worker needs to map the arena (``_worker_arena``)."""
        return self.key, self.path, self.nbytes

    def offset(self, slot: int, i: int) -> int:
        return (slot * self.batch + i) * self.capacity

    def close(self) -> None:
        self.array = None
        try:
            self.map.close()
        except BufferError:  # a view is still alive somewhere: the mapping goes with it
            pass
        self._release_file()

    def _release_file(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self.named:
            try:
                os.unlink(self.path)
            except OSError:
                pass


_ARENA_KEYS = itertools.count()


def _arena_file(nbytes: int) -> tuple[int, str, bool]:
    """A new empty file for an arena of ``nbytes``: (fd, the path workers open, whether that
    path is a name to remove at close)."""
    in_shm = _free_bytes("/dev/shm") > 2 * nbytes
    folder = "/dev/shm" if in_shm else tempfile.gettempdir()
    if not sys.platform.startswith("linux"):
        fd, path = tempfile.mkstemp(prefix="genbench-decode-", suffix=".arena", dir=folder)
        return fd, path, True
    fd = None
    # a memfd is shared memory as /dev/shm's files are (its size is checked there all the same:
    # where /dev/shm is small, shared memory is scarce), but never has a name
    if in_shm and hasattr(os, "memfd_create"):
        try:
            fd = os.memfd_create("genbench-decode", os.MFD_CLOEXEC)
        except OSError:  # e.g. refused by a sandbox: an unnamed file in /dev/shm instead
            pass
    if fd is None:
        fd = _unnamed_file(folder)
    return fd, f"/proc/{os.getpid()}/fd/{fd}", False


def _unnamed_file(folder: str) -> int:
    """A read-write file in ``folder`` without a name (Linux)."""
    try:
        return os.open(folder, os.O_TMPFILE | os.O_RDWR, 0o600)
    except OSError:  # a file system without O_TMPFILE: named for a moment only
        fd, path = tempfile.mkstemp(prefix="genbench-decode-", suffix=".arena", dir=folder)
        os.unlink(path)
        return fd


def _free_bytes(folder: str) -> int:
    try:
        st = os.statvfs(folder)
        return st.f_bavail * st.f_frsize
    except OSError:
        return 0


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


# --- batches onto the device ------------------------------------------------------------------------
class _Staging:
    """Two pinned host buffers, used in turn: a batch is copied into one and shipped with a
    non-blocking copy while the device still works on the previous one."""

    def __init__(self, device):
        self.device = device
        self.buffers: list = [None, None]
        self.events: list = [None, None]
        self.turn = 0

    def host_view(self, shape: tuple, dtype):
        """The next pinned buffer as (torch tensor, numpy view of it) of ``shape`` and ``dtype``
        (waits until that buffer's previous copy to the device is done)."""
        import torch

        i = self.turn % 2
        if self.events[i] is not None:
            self.events[i].synchronize()
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape)) * dtype.itemsize
        if self.buffers[i] is None or self.buffers[i].numel() < nbytes:
            self.buffers[i] = torch.empty(max(nbytes, 1), dtype=torch.uint8).pin_memory()
        torch_dtype = {"|u1": torch.uint8, "<f4": torch.float32}[dtype.str]  # what the pipeline ships
        tensor = self.buffers[i][:nbytes].view(torch_dtype).view(shape)
        return tensor, tensor.numpy()

    def ship(self, host):
        """A pinned tensor from ``host_view`` -> the same on the device (non-blocking)."""
        import torch

        i = self.turn % 2
        self.turn += 1
        t = host.to(self.device, non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        self.events[i] = event
        return t


def _runs(images: list[np.ndarray]) -> list[list[np.ndarray]]:
    """Consecutive images of one shape."""
    runs: list[list[np.ndarray]] = []
    for img in images:
        if runs and runs[-1][0].shape == img.shape:
            runs[-1].append(img)
        else:
            runs.append([img])
    return runs


def _to_device(run_or_array, staging: _Staging | None, device, stacked: bool):
    """A list of same-shape arrays (stacked here) or one array -> a tensor on the device."""
    import torch

    if staging is None:
        array = run_or_array if stacked else np.stack(run_or_array)
        return torch.from_numpy(np.ascontiguousarray(array)).to(device)
    if stacked:
        tensor, host = staging.host_view(run_or_array.shape, run_or_array.dtype)
        np.copyto(host, run_or_array)
    else:
        tensor, host = staging.host_view((len(run_or_array), *run_or_array[0].shape), run_or_array[0].dtype)
        np.stack(run_or_array, out=host)
    return staging.ship(tensor)


def _network_inputs(batch: DecodedBatch, mode: str, size: int, device, staging, resize_on_device: bool) -> list:
    """Float32 network inputs on the device: one (B, 3, S, S) tensor per batch (for
    legacy_tensorflow, one per run of one image size, at that size)."""
    import torch

    if batch.resized is not None:
        return [_to_device(batch.resized, staging, device, stacked=True)]
    runs = _runs(batch.images)
    if mode == "legacy_tensorflow":
        # clean-fid feeds ToTensor()(uint8) * 255, which is exactly x for every uint8 x
        return [_to_device(run, staging, device, stacked=False).permute(0, 3, 1, 2).to(torch.float32).contiguous()
                for run in runs]
    assert resize_on_device
    resize = TENSOR_RESIZERS[mode]
    parts = [resize(_to_device(run, staging, device, stacked=False), size) for run in runs]
    return [parts[0] if len(parts) == 1 else torch.cat(parts)]


@contextmanager
def float32_convention(device):
    """TF32 off on CUDA for the duration (see the module docstring); nothing elsewhere."""
    import torch

    if getattr(device, "type", str(device)) != "cuda":
        yield
        return
    before = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


def statistics_on_device(extractor) -> bool:
    """Whether streamed statistics keep their float64 sums on the extractor's device: on CUDA
    (``device_statistics`` on the extractor forces it either way, e.g. for tests)."""
    forced = getattr(extractor, "device_statistics", None)
    return _is_cuda(extractor.device) if forced is None else bool(forced)


def resize_on_device(extractor) -> bool:
    """Whether the extractor's resize runs on its device: on CUDA for the modes that have a
    tensor resize (``device_resize`` on the extractor forces it either way, e.g. for tests)."""
    forced = getattr(extractor, "device_resize", None)
    if forced is not None:
        return bool(forced) and extractor.mode in DEVICE_RESIZE_MODES
    return getattr(extractor.device, "type", "cpu") == "cuda" and extractor.mode in DEVICE_RESIZE_MODES


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


def _layout(extractor, x):
    """The network's input in the extractor's memory format (``channels_last`` when it asks)."""
    if getattr(extractor, "channels_last", False):
        import torch

        return x.contiguous(memory_format=torch.channels_last)
    return x


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


def _is_cuda(device) -> bool:
    return getattr(device, "type", "cpu") == "cuda"


def _progress(total: int, label: str | None):
    if label is None:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=label, unit="img", leave=False, disable=None)


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
    * ``preprocess``: decoding and resizing alone (this pipeline with the network skipped).

    Each is the median of ``repeats`` timed runs after one warm-up, the device synchronised
    before the clock is read. Returns a flat dict: ``n_images``, ``*_images_per_s``,
    ``*_s`` (median seconds), ``end_to_end_over_network``, ``end_to_end_over_preprocess``,
    ``fid``, ``device``, ``workers``, ``resize_on`` ("device" or "host"), ``batch_size``,
    ``precision`` and the extractor's ``describe()``. Device check entry point; see the
    module docstring for what runs where.
    """
    import torch

    from genbench.features.fid import compute_fid
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


__all__ = ["loaders_to_outputs", "loader_groups_to_outputs", "statistics_on_device", "loaders_to_images", "time_fid", "default_workers", "resize_on_device",
           "float32_convention", "check_image", "prepare_image", "WORKERS_ENV", "DecodePool"]
