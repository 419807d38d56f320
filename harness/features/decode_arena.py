"""The shared memory the decode workers write images into: a memory-mapped file that no process
leaves behind.

``_Arena`` (the parent's side) holds ``slots`` batches of ``batch`` images of ``capacity``
bytes; each worker maps it once per arena (``_worker_arena``) and writes each image at its
offset, so no pixels are pickled and the parent gets only shapes back
(``genbench.features.decode_workers``). On Linux the file never has a name (a memfd, or an
unnamed file in the temp dir): the kernel frees it when the last process holding it ends,
however it ends.
"""
from __future__ import annotations

import itertools
import mmap
import os
import sys
import tempfile

import numpy as np


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


# --- the worker's side ------------------------------------------------------------------------------
#: this worker's mapping of the parent's current arena, by ``_Arena.key``
_WORKER_ARENA: dict[str, mmap.mmap] = {}


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
