"""The decode arena: shared memory that no process leaves behind (a process killed inside a
session, an arena replaced by a larger one, the file without a name wherever it lives)."""
from __future__ import annotations

import glob
import hashlib
import json
import mmap
import os
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest

from genbench.features import decode_arena, decode_workers
from tests.harness.features.helpers import digit_images, write_pngs


_IN_A_SESSION = """
import hashlib, json, os, sys, time
from genbench.features import decode_workers
from genbench.features.loaders import FileImage
loaders = [FileImage(os.path.join(sys.argv[1], f)) for f in sorted(os.listdir(sys.argv[1]))]
pool = decode_workers.decode_pool(2)
with pool.session(len(loaders), None, 32) as session:
    batch = session.collect(session.submit(loaders, 0))
    print(json.dumps({"arena": session.arena.path, "workers": sorted(pool.executor._processes),
                      "images": [hashlib.sha1(img.tobytes()).hexdigest() for img in batch.images]}), flush=True)
    time.sleep(60)  # SIGKILLed here, inside the session
"""


def _arena_names() -> set:
    return {p for folder in ("/dev/shm", tempfile.gettempdir()) for p in glob.glob(f"{folder}/genbench-decode-*")}


def _wait_until_gone(pids, seconds: float = 8.0) -> set:
    deadline = time.monotonic() + seconds
    while True:
        alive = set()
        for pid in pids:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[0] != "Z":  # a zombie holds no memory
                        alive.add(pid)
            except OSError:
                pass
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


LINUX = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="nameless files need Linux")


@LINUX
def test_a_killed_process_leaves_no_arena_behind(tmp_path):
    """A process SIGKILLed inside a decode session (a torchrun rank killed, a Slurm preemption):
    its arena never had a name (workers map it through /proc), so nothing is left in /dev/shm or
    the temp dir, and its workers end with it (orphans would hold the arena's memory)."""
    images = digit_images(0, 4)
    folder = write_pngs(tmp_path / "imgs", images)
    before = _arena_names()
    child = subprocess.Popen([sys.executable, "-c", _IN_A_SESSION, str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        inside = json.loads(child.stdout.readline())
        assert inside["images"] == [hashlib.sha1(img.tobytes()).hexdigest() for img in images]
        arena = os.stat(inside["arena"])  # /proc/<pid>/fd/<fd>
        assert arena.st_nlink == 0 and arena.st_size > 0, "the arena has a name in some folder"
        for pid in inside["workers"]:  # each worker maps that very file, nameless
            with open(f"/proc/{pid}/maps") as f:
                maps = [line.split() for line in f]
            mine = [m for m in maps if len(m) > 5 and m[4] == str(arena.st_ino) and m[1].endswith("s")]
            assert mine and all(m[-1] == "(deleted)" for m in mine), f"worker {pid} does not map the arena"
        assert _arena_names() == before
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
    assert not _wait_until_gone(inside["workers"]), "workers outlived the process that started them"
    assert _arena_names() == before


def test_arena_replaced_workers_follow(tmp_path):
    """A larger batch replaces the arena (the new one likely gets the old one's fd, and so its
    /proc path): the workers map the new one, and the images come out right."""
    from genbench.features.loaders import FileImage

    images = digit_images(0, 6)
    loaders = [FileImage(p) for p in sorted(write_pngs(tmp_path / "imgs", images).iterdir())]
    pool = decode_workers.DecodePool(2)
    keys = []
    try:
        for batch in (2, 5):  # grows: a new arena
            with pool.session(batch, None, 32) as session:
                for slot, start in enumerate(range(0, len(loaders), batch)):
                    got = session.collect(session.submit(loaders[start: start + batch], slot % session.slots))
                    np.testing.assert_array_equal(np.stack(got.images), images[start: start + batch])
                keys.append(session.arena.key)
    finally:
        pool.close()
    assert keys[0] != keys[1]


@LINUX
@pytest.mark.parametrize("where", ["shm", "tempdir", "tempdir without O_TMPFILE"])
def test_the_arena_file_has_no_name(where, monkeypatch):
    """/dev/shm with room: a memfd; too small: an unnamed file in the temp dir (O_TMPFILE, or
    named for a moment where the file system lacks it). What a worker writes through the path
    it is given, the parent reads; close() lets the file go."""
    if where == "shm" and decode_arena._free_bytes("/dev/shm") < 2**20:
        pytest.skip("no room in /dev/shm here")
    if where != "shm":
        monkeypatch.setattr(decode_arena, "_free_bytes", lambda folder: 0)
    if where == "tempdir without O_TMPFILE":
        monkeypatch.setattr(os, "O_TMPFILE", os.O_DIRECTORY)  # opening the folder read-write: EISDIR
    before = _arena_names()
    arena = decode_arena._Arena(slots=3, batch=2, capacity=4096)
    try:
        link = os.readlink(arena.path)
        assert os.fstat(arena.fd).st_nlink == 0 and _arena_names() == before
        # a memfd (or, where a sandbox refuses memfd_create, an unnamed file in /dev/shm)
        folders = ("/memfd:genbench-decode", "/dev/shm/") if where == "shm" else (tempfile.gettempdir(),)
        assert link.startswith(folders) and link.endswith("(deleted)"), link
        with open(arena.path, "r+b") as f, mmap.mmap(f.fileno(), arena.nbytes) as worker_view:
            worker_view[arena.offset(2, 1): arena.offset(2, 1) + 3] = b"abc"
        assert bytes(arena.array[arena.offset(2, 1):][:3]) == b"abc"
    finally:
        inode = os.fstat(arena.fd).st_ino
        arena.close()
    assert arena.fd is None and inode not in _open_inodes() and _arena_names() == before


def _open_inodes() -> set:
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            inodes.add(os.stat(f"/proc/self/fd/{fd}").st_ino)
        except OSError:  # the listing's own descriptor
            pass
    return inodes
