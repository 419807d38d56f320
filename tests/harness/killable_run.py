"""``genbench run`` in a process of its own, with the test fakes registered: the kill tests'
subject. ``killable_run.py ARGS`` runs ``genbench ARGS``; ``killable_run.py --zygote`` imports
genbench (and torch) once and then forks one process per request read from stdin (a JSON line
``{"argv": [...], "kill": ..., "log": PATH}``), answering ``pid N`` at once and ``rc R`` when
the child ends (R negative: killed by signal -R), so that many runs cost no import each.

``GENBENCH_TEST_KILL=WHAT:N`` (or a request's ``kill``) makes the process SIGKILL itself at the
N-th store call of one kind, to land kills at exact points no timer can hit:

- ``append:N``  right after the N-th append (a cell's records written, its marker not yet)
- ``tear:N``    in the middle of the N-th write (half its bytes on disk: a torn line)
- ``atomic:N``  after the N-th atomic file's temporary is written, before its rename
- ``part:R:N``  on torchrun rank R, just before it writes its N-th part (``genbench.partials``),
  once every other rank has written its part of that call: a rank lost mid-cell, with the parts
  of every earlier call and the other ranks' parts of this one on disk (run the script under
  ``python -m torch.distributed.run``)
"""
from __future__ import annotations

import os
import signal
import sys
import time


def _install_kill(spec: str) -> None:
    from genbench import store

    what, _, n = spec.partition(":")
    if what == "part":
        _install_part_kill(*map(int, n.split(":")))
        return
    left = {"n": int(n)}

    def due() -> bool:
        left["n"] -= 1
        return left["n"] == 0

    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    if what == "append":
        original = store.append_lines

        def append_lines(path, objs):
            original(path, objs)
            if due():
                die()

        store.append_lines = append_lines
    elif what == "tear":
        def tearing_write(fd, data):
            if due():
                os.write(fd, data[: len(data) // 2])
                die()
            return os.write(fd, data)

        store._os_write = tearing_write
    elif what == "atomic":
        original_replace = os.replace

        def replace(src, dst):
            if str(src).endswith(".tmp") and due():
                die()
            return original_replace(src, dst)

        store.os.replace = replace  # the store's view of os only matters through this name
    else:
        raise SystemExit(f"unknown kill point {spec!r}")


def _install_part_kill(rank: int, n: int) -> None:
    from genbench import partials

    if int(os.environ.get("RANK", "0")) != rank:
        return
    world = int(os.environ["WORLD_SIZE"])
    original = partials.PartCache._write
    left = {"n": n}

    def write(self, key, fields, value):
        left["n"] -= 1
        if left["n"] == 0:
            # this call's part is computed; wait for the other ranks' parts of it, then die unwritten
            deadline = time.monotonic() + 60
            while len(list(self.dir.glob("*.npz"))) < world * self.calls - 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            os.kill(os.getpid(), signal.SIGKILL)
        return original(self, key, fields, value)

    partials.PartCache._write = write


def _register_ticks() -> None:
    """A quick suite whose cell takes a moment: ``n_metrics`` values, ``pause_s`` apart (plus
    $GENBENCH_TEST_SLOW seconds, which slows a run down without changing its configuration)."""
    from genbench.registry import SUITES
    from genbench.suite import Metric, Suite

    class Ticks(Suite):
        name = "ticks"
        options = {"n_metrics": 3, "pause_s": 0.05}

        def run(self, generator, ctx):
            images = generator.sample(4, seed=ctx.seed, batch_size=4).images
            for i in range(ctx.options["n_metrics"]):
                time.sleep(ctx.options["pause_s"] + float(os.environ.get("GENBENCH_TEST_SLOW", 0)))
                yield Metric(f"tick{i}", float(images.mean()) + i * 0.5 + ctx.seed, unit="x",
                             higher_is_better=True, n=4, convention={"i": i})

    if "ticks" not in SUITES:
        SUITES.register("ticks", Ticks)


def _zygote() -> None:
    import json

    import genbench.adapters  # noqa: F401  (everything a run imports, before any fork)
    from genbench import provenance, runner  # noqa: F401
    from genbench.cli import main

    provenance.collect("cpu")
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            with open(request["log"], "ab") as log:
                os.dup2(log.fileno(), 1)
                os.dup2(log.fileno(), 2)
            if request.get("kill"):
                _install_kill(request["kill"])
            try:
                rc = main(request["argv"])
            except BaseException:  # a traceback is a failure the test reads in the log
                import traceback

                traceback.print_exc()
                rc = 99
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(rc)
        print(f"pid {pid}", flush=True)
        _, status = os.waitpid(pid, 0)
        rc = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        print(f"rc {rc}", flush=True)


if __name__ == "__main__":
    sys.path.insert(0, os.getcwd())
    from tests import fakes

    fakes.register()
    _register_ticks()
    if sys.argv[1:] == ["--zygote"]:
        _zygote()
        sys.exit(0)
    if os.environ.get("GENBENCH_TEST_KILL"):
        _install_kill(os.environ["GENBENCH_TEST_KILL"])
    from genbench.cli import main

    sys.exit(main(sys.argv[1:]))
