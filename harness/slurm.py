"""``genbench run --slurm PARTITION``: one Slurm array task per shard through submitit, then a merge.

Layout of ``--out DIR``: ``DIR/shards/K`` is shard K's store (``genbench run --shard K/N``),
``DIR/slurm`` submitit's pickles and logs (``JOBID_0_log.err``), and ``DIR`` itself the merged run. Before submitting,
each shard store is checked: a complete shard is kept, a missing or incomplete one is
(re)submitted and resumes its store, so a rerun after a lost job recomputes only that shard.
``executor="local"`` runs the same array as local processes (submitit's LocalExecutor) for tests
and single machines.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Callable

from genbench.errors import UserError
from genbench.merge import merge_shards
from genbench.shard import shard_state
from genbench.store import RunStore

EXECUTORS = ("slurm", "local")


def run_shard_job(spec: Any, out: str, k: int, n: int, plugins: list[str] | None = None) -> list[tuple]:
    """The array task: shard k of n into ``out/shards/k`` (resuming it); returns (suite, adapter, seed, status)."""
    from genbench import runner
    from genbench.cli import load_plugins

    load_plugins(plugins)
    results = runner.run(spec, Path(out) / "shards" / str(k), resume=True, shard=(k, n))
    return [(r.suite, r.adapter, r.seed, r.status) for r in results]


def run_on_slurm(spec: Any, out: str | Path, n_shards: int, *, partition: str | None,
                 executor: str = "slurm", plugins: list[str] | None = None, timeout_min: int = 240,
                 gpus_per_node: int | None = None, cpus_per_task: int | None = None,
                 log: Callable[[str], None] = print) -> tuple[Path, list[tuple]]:
    """Submit the missing shards of ``spec`` as one job array, wait, and merge every shard into ``out``.

    Returns the merged run directory and the (suite, adapter, seed, status) of the cells run now.
    A job that dies is a UserError naming its shard and log after the others finished; the
    finished shards stay, so rerunning the same command submits only the lost ones.
    """
    from genbench.runner import cell_keys
    from genbench.shard import shard_cells

    if executor not in EXECUTORS:
        raise UserError(f"--executor {executor!r}: use one of {', '.join(EXECUTORS)}")
    out = Path(out)
    chash = spec.config_hash()
    shard_cells(cell_keys(spec), 0, n_shards, where=f"--shards {n_shards}")  # more shards than cells
    merged = RunStore(out).manifest()
    if merged is not None and (merged.get("config_hash") != chash or "shard" in merged):
        raise UserError(f"--out {out} already holds a different run (config_hash {merged.get('config_hash')}, "
                        f"this run is {chash}); choose another --out")
    states = {k: shard_state(RunStore(out / "shards" / str(k)), chash, k, n_shards) for k in range(n_shards)}
    stale = sorted(int(p.name) for p in (out / "shards").glob("*") if p.name.isdigit() and int(p.name) >= n_shards)
    if stale:
        raise UserError(f"--out {out}/shards holds shard {stale[0]}, beyond --shards {n_shards}; rerun with the "
                        "--shards N that made it, or choose another --out")
    todo = [k for k, state in states.items() if state != "complete"]
    if todo and executor == "slurm" and shutil.which("sbatch") is None:  # before saying "submitting"
        raise UserError("--slurm: no `sbatch` on PATH (not a Slurm login node); run there, or pass "
                        "--executor local to run the shards as local processes")
    for k, state in states.items():
        log(f"shard {k}/{n_shards}: {'complete, kept' if state == 'complete' else state + ', submitting'}")
    ran: list[tuple] = []
    if todo:
        import submitit

        ex = submitit.AutoExecutor(folder=out / "slurm", cluster=executor)
        ex.update_parameters(name=f"genbench-{spec.name}", timeout_min=timeout_min, gpus_per_node=gpus_per_node,
                             cpus_per_task=cpus_per_task, slurm_partition=partition,
                             slurm_array_parallelism=len(todo))
        jobs = ex.map_array(run_shard_job, [spec] * len(todo), [str(out)] * len(todo), todo,
                            [n_shards] * len(todo), [plugins] * len(todo))
        log(f"submitted {len(jobs)} job(s): {', '.join(j.job_id for j in jobs)} (logs in {out / 'slurm'})")
        lost = []
        for k, job in zip(todo, jobs):
            try:
                ran += job.result()
                log(f"shard {k}/{n_shards}: finished (job {job.job_id})")
            except Exception as e:  # a lost job loses only its shard
                lost.append(f"shard {k} (job {job.job_id}: {_job_error(e)[:300]}; log {job.paths.stderr})")
        if lost:
            raise UserError(f"{len(lost)} shard job(s) failed: {'; '.join(lost)}; the other shards are kept: "
                            "rerun the same command to recompute only the failed shards")
    merge_shards([out / "shards" / str(k) for k in range(n_shards)], out, log=log)
    return out, ran


def _job_error(e: Exception) -> str:
    """The exception line of a failed job's traceback (submitit wraps it), else its first line."""
    import re

    lines = [l for l in str(e).splitlines() if l.strip()]
    raised = [l for l in lines if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit): ", l)]
    return (raised or lines or [type(e).__name__])[-1 if raised else 0].strip()


__all__ = ["run_on_slurm", "run_shard_job", "EXECUTORS"]
