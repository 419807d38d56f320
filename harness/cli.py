"""The ``genbench`` command line."""
from __future__ import annotations

import argparse
import functools
import os
import sys
import time
import warnings
from pathlib import Path

from genbench.errors import UserError
from genbench.registry import UnknownNameError



def preset_path(name: str) -> Path:
    import genbench.suites

    path = Path(genbench.suites.__file__).parent / "presets" / f"{name}.toml"
    if not path.exists():
        raise UserError(f"no preset {name!r} in {path.parent}")
    return path


def default_out(name: str) -> Path:
    return Path("results") / "runs" / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def load_plugins(modules: list[str] | None) -> None:
    """Import each ``--plugin`` module, so that the adapters (suites, extractors) it registers
    with ``@genbench.registry.ADAPTERS.register(NAME)`` exist for this command. A module that
    fails to import, or that takes a built-in name, is a UserError naming it."""
    import importlib
    import traceback

    from genbench.registry import ADAPTERS, EXTRACTORS, SUITES

    registries = (ADAPTERS, SUITES, EXTRACTORS)
    for module in modules or []:
        # built-in names still declared lazily: a plugin registering one would replace it unseen
        lazy = [{n: r._entries[n] for n in r.names() if isinstance(r._entries[n], str)} for r in registries]
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise UserError(f"--plugin {module}: cannot import it ({e}); give an importable module name "
                            "(on sys.path or PYTHONPATH), e.g. --plugin my_package.genbench_adapter") from None
        except Exception as e:  # the plugin's own code raised: say where (its last line on the stack), on one line
            ours = (str(Path(__file__).parent), "importlib")
            frames = [f for f in traceback.extract_tb(e.__traceback__) if not any(o in f.filename for o in ours)]
            at = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames and not isinstance(e, SyntaxError) else ""
            raise UserError(f"--plugin {module}: importing it raised {type(e).__name__}: {e}{at}; fix the "
                            "module") from None
        for registry, before in zip(registries, lazy):
            for name, target in before.items():
                now = registry._entries.get(name)
                if not isinstance(now, str) and getattr(now, "__module__", None) != target.partition(":")[0]:
                    registry._entries[name] = target  # the built-in stays what the name means
                    raise UserError(f"--plugin {module}: {registry.kind} {name!r} is already registered (by "
                                    f"{target.partition(':')[0]}); register yours under another name")


def cmd_list(args: argparse.Namespace) -> int:
    from genbench.registry import ADAPTERS, EXTRACTORS, SUITES

    load_plugins(args.plugin)

    registry = {"adapters": ADAPTERS, "suites": SUITES, "extractors": EXTRACTORS}[args.what]
    for name in registry.names():
        print(name)
    return 0


def _spec_from_args(args: argparse.Namespace):
    from genbench.runner import RunSpec, load_run_file

    if args.runfile:
        spec = load_run_file(args.runfile)
        # flags narrow or extend what the file says
        if args.suite:
            spec.suites = args.suite
        if args.adapter:
            spec.adapters = args.adapter
        if args.seed:
            spec.seeds = args.seed
    else:
        spec = RunSpec(suites=args.suite or [], adapters=args.adapter or [], seeds=args.seed or [0], name="cli")
    if args.device:
        spec.device = args.device
    if args.dataset:
        takers = [s for s in ("likelihood", "tokenizer") if s in spec.suites]
        if not takers:
            raise UserError("--dataset sets the data of the likelihood and tokenizer suites; add --suite likelihood "
                            "or --suite tokenizer")
        for suite in takers:
            spec.suite_options.setdefault(suite, {})["dataset"] = args.dataset
    for item in args.set or []:
        key, eq, raw = item.partition("=")
        table, dot, field = key.partition(".")
        if table == "adapter":  # adapter.NAME.KEY: NAME may hold dots (a path), KEY may not
            table, dot, field = field.rpartition(".")
            if not eq or not dot or not table or not field:
                raise UserError(f"--set {item!r}: write adapter.NAME.KEY=VALUE, "
                                "e.g. --set adapter.masked-digits.steps=8")
            spec.adapter_options.setdefault(table, {})[field] = _parse_value(raw)
            continue
        if not eq or not dot or not field:
            raise UserError(f"--set {item!r}: write SUITE.KEY=VALUE (e.g. --set likelihood.max_examples=100) "
                            "or adapter.NAME.KEY=VALUE")
        spec.suite_options.setdefault(table, {})[field] = _parse_value(raw)
    return spec


def _parse_value(raw: str):
    import tomllib

    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def cmd_run(args: argparse.Namespace) -> int:
    from genbench import runner

    load_plugins(args.plugin)
    spec = _spec_from_args(args)
    spec.validate()
    if (args.timeout_min is not None or args.gpus_per_node is not None) and args.slurm is None \
            and args.executor is None:
        raise UserError(f"{'--timeout-min' if args.timeout_min is not None else '--gpus-per-node'} sets the shard "
                        "jobs of --slurm PARTITION (or --executor local); this run has none: drop it or add --slurm")
    out = Path(args.out) if args.out else default_out(spec.name)
    if args.no_parts:  # through the environment, so that torchrun's ranks and submitit's jobs inherit it
        os.environ["GENBENCH_PARTS"] = "off"
    if args.nproc is not None:
        return _launch_torchrun(args, out)
    if args.slurm is not None or args.executor is not None:
        return _run_sharded_jobs(args, spec, out)
    if args.shards is not None:
        raise UserError("--shards N splits a run into N jobs for --slurm PARTITION (or --executor local); "
                        "to run one shard here, pass --shard K/N")
    shard = None
    if args.shard is not None:
        from genbench.shard import parse_shard

        shard = parse_shard(args.shard)
        out = Path(args.out) if args.out else Path(f"{out}-shard{shard[0]}of{shard[1]}")
    from genbench import distributed, partials

    lead = True
    try:
        results = runner.run(spec, out, resume=args.resume, shard=shard)
        lead = distributed.rank() == 0
        if distributed.world_size() > 1:  # rank 0 alone knows the outcome; every rank exits with it
            results = distributed.broadcast_from_rank0(results)
            part_stats = distributed.gather_in_rank_order(dict(partials.STATS))
            if lead:
                from genbench.features.ranks import counts_summary

                print(f"{distributed.calls_summary()}; {counts_summary()}")
                print(partials.stats_summary(part_stats))
        elif partials.STATS["reused"] or partials.STATS["rejected"]:
            print(partials.stats_summary())
    finally:
        distributed.finish()
    failed = [r for r in results if r.status == "failed"]
    if lead:
        print(f"records: {out / 'records.jsonl'} ({len(results)} cells run, {len(failed)} failed)")
    return 1 if failed else 0


def _launch_torchrun(args: argparse.Namespace, out: Path) -> int:
    """``--nproc N``: this same command under ``torchrun --standalone --nproc_per_node N``."""
    import subprocess

    if args.nproc < 1:
        raise UserError(f"--nproc {args.nproc}: give a number of processes >= 1")
    if args.slurm is not None or args.executor is not None:
        raise UserError("--nproc splits each cell across local processes; --slurm/--executor submits shards; "
                        "pass one of them")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise UserError("--nproc inside torchrun: drop --nproc (torchrun already started the ranks)")
    argv, skip = [], False
    for a in args.argv:  # the same command without --nproc, with --out fixed for every rank
        if skip:
            skip = False
        elif a == "--nproc" or a == "--out":
            skip = True
        elif not a.startswith(("--nproc=", "--out=")):
            argv.append(a)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(args.nproc),
           "-m", "genbench.cli", *argv, "--out", str(out)]
    print("launch: " + " ".join(cmd[1:]), flush=True)
    return subprocess.call(cmd)


def _run_sharded_jobs(args: argparse.Namespace, spec, out: Path) -> int:
    """``--slurm PARTITION`` / ``--executor local``: one job per shard, then ``genbench merge``."""
    from genbench.runner import cell_keys
    from genbench.slurm import run_on_slurm

    if args.shard is not None:
        raise UserError("--shard K/N runs one shard in this process; --slurm submits every shard; pass one of them")
    n = args.shards if args.shards is not None else len(cell_keys(spec))  # default: one job per cell
    if n < 1:
        raise UserError(f"--shards {n}: give a number of jobs >= 1")
    timeout_min = TIMEOUT_MIN if args.timeout_min is None else args.timeout_min
    if timeout_min < 1 or (args.gpus_per_node is not None and args.gpus_per_node < 0):
        raise UserError(f"--timeout-min {timeout_min} / --gpus-per-node {args.gpus_per_node}: give minutes >= 1 "
                        "and GPUs >= 0")
    out, ran = run_on_slurm(spec, out, n, partition=args.slurm, executor=args.executor or "slurm",
                            plugins=args.plugin, timeout_min=timeout_min, gpus_per_node=args.gpus_per_node)
    failed = [r for r in ran if r[3] == "failed"]
    print(f"records: {out / 'records.jsonl'} ({n} shards, {len(ran)} cells run now, {len(failed)} failed)")
    return 1 if failed else 0


def cmd_merge(args: argparse.Namespace) -> int:
    from genbench.merge import merge_shards

    merge_shards(args.dirs, Path(args.out))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from genbench.reports.build import write_report_files

    if args.out:
        from genbench.store import check_output_path

        check_output_path(Path(args.out))
    for out in write_report_files(args.dirs, Path(args.out) if args.out else None, formats=args.format,
                                  baseline=args.baseline):
        print(f"report: {out}")
    return 0


DEMO_PRESETS = ("quickstart", "tradeoff")
#: --slurm's time limit per shard job, minutes
TIMEOUT_MIN = 240


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the embedded presets (one run directory each under --out) and one report over all."""
    from genbench import runner
    from genbench.reports.build import write_report_files

    presets = args.preset or list(DEMO_PRESETS)
    if len(set(presets)) != len(presets):
        raise UserError(f"--preset {next(p for i, p in enumerate(presets) if p in presets[:i])} is given twice; "
                        "name each preset once")
    specs = [runner.load_run_file(preset_path(p)) for p in presets]
    for spec in specs:
        spec.validate()  # every preset checked before anything runs
    out = Path(args.out) if args.out else default_out("demo")
    t0 = time.perf_counter()
    results = []
    for spec in specs:
        results += runner.run(spec, out / spec.name, resume=args.resume)
    reports = write_report_files([str(out / s.name) for s in specs], out / "report.md")  # and report.html
    failed = [r for r in results if r.status == "failed"]
    print(f"records: {', '.join(str(out / s.name / 'records.jsonl') for s in specs)}\n"
          f"report: {', '.join(map(str, reports))}\n"
          f"{len(results)} cells, {len(failed)} failed, {time.perf_counter() - t0:.0f} s")
    return 1 if failed else 0


def cmd_zoo(args: argparse.Namespace) -> int:
    import genbench.adapters  # noqa: F401  (declares the trainers)
    from genbench.adapters import zoo

    if args.action == "list":
        for name in zoo.TRAINERS.names():
            print(name)
        return 0
    if args.seed < 0:
        raise UserError(f"--seed {args.seed}: seeds must be >= 0")
    names = args.model or None
    if names:
        for n in names:
            if n not in zoo.TRAINERS:
                raise zoo.TRAINERS.unknown(n)
    from genbench.store import check_output_path

    out = check_output_path(Path(args.out) if args.out else zoo.WEIGHTS_DIR, directory=True)
    zoo.train(names, seed=args.seed, out_dir=out, jobs=args.jobs)
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (as every genbench error), exit code 2."""

    def error(self, message: str):  # type: ignore[override]
        print(f"genbench: error: {self.prog}: {message}; see `{self.prog} --help`", file=sys.stderr)
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="genbench", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    ls = sub.add_parser("list", help="list registered adapters, suites or extractors")
    ls.add_argument("what", choices=["adapters", "suites", "extractors"])
    plugin = dict(action="append", metavar="MODULE",
                  help="import MODULE first, registering its adapters (repeatable)")
    ls.add_argument("--plugin", **plugin)
    ls.set_defaults(func=cmd_list)

    run = sub.add_parser("run", help="run suites x adapters x seeds and record every metric")
    run.add_argument("runfile", nargs="?", help="a TOML run file (see suites/presets/)")
    run.add_argument("--suite", action="append", help="suite name (repeatable)")
    run.add_argument("--adapter", action="append", help="adapter NAME or NAME:PATH (repeatable)")
    run.add_argument("--seed", action="append", type=int, help="seed (repeatable)")
    run.add_argument("--out", help="run directory (default results/runs/NAME-TIME)")
    run.add_argument("--resume", action="store_true", help="finish a run in --out, skipping finished cells")
    run.add_argument("--device", help="cpu, cuda or auto")
    run.add_argument("--dataset", help="likelihood / tokenizer data: text (kjv[:split], a .txt/.jsonl/.parquet "
                     "file, a preset) or images (digits[:split], fashion-mnist[:split], a folder, .npz, hf:PATH[:SPLIT])")
    run.add_argument("--set", action="append", metavar="SUITE.KEY=VALUE",
                     help="override a suite option, or an adapter's with adapter.NAME.KEY=VALUE")
    run.add_argument("--plugin", **plugin)
    run.add_argument("--shard", metavar="K/N", help="run only shard K of N (K from 0) into --out, a shard store "
                     "for `genbench merge`")
    run.add_argument("--slurm", metavar="PARTITION", help="submit one Slurm array task per shard (submitit), "
                     "each into --out/shards/K, then merge them into --out; a rerun submits only unfinished shards")
    run.add_argument("--shards", type=int, metavar="N", help="number of shards for --slurm or --executor local "
                     "(default: one per cell)")
    run.add_argument("--executor", choices=["slurm", "local"],
                     help="slurm (with --slurm PARTITION; the default) or local (the shards as local processes, "
                          "submitit's LocalExecutor; no --slurm needed)")
    run.add_argument("--nproc", type=int, metavar="N", help="split each cell's sampling, features and likelihood "
                     "across N local processes (runs this command under torchrun --nproc_per_node N; gloo on CPU, "
                     "NCCL on GPU)")
    run.add_argument("--no-parts", action="store_true", help="keep no parts of unfinished cells on disk "
                     "(genbench.partials; sets GENBENCH_PARTS=off for torchrun ranks and Slurm jobs too): a killed "
                     "cell then reruns whole")
    run.add_argument("--timeout-min", type=int, help=f"--slurm: time limit per shard job, minutes (default {TIMEOUT_MIN})")
    run.add_argument("--gpus-per-node", type=int, help="--slurm: GPUs per shard job")
    run.set_defaults(func=cmd_run)

    merge = sub.add_parser("merge", help="combine the shard stores of one run into one run store")
    merge.add_argument("dirs", nargs="+", help="shard stores (genbench run --shard K/N), or a folder of them")
    merge.add_argument("--out", required=True, help="directory for the merged run")
    merge.set_defaults(func=cmd_merge)

    demo = sub.add_parser("demo", help="run the embedded default suite on the reference models and write a report")
    demo.add_argument("--out", help="directory for the runs and report.md (default results/runs/demo-TIME)")
    demo.add_argument("--preset", action="append",
                      help="preset run file in suites/presets/ (repeatable; default quickstart and tradeoff)")
    demo.add_argument("--resume", action="store_true")
    demo.set_defaults(func=cmd_demo)

    rep = sub.add_parser("report", help="write the comparison report (one self-contained HTML page) from run directories")
    rep.add_argument("dirs", nargs="+", help="run directories, or folders of them")
    rep.add_argument("--out", help="report file (default DIR/report.html); other formats take its stem")
    rep.add_argument("--format", action="append", choices=["html", "md", "latex", "csv"],
                     help="html (default; images embedded), md, latex (booktabs tables) or csv (one row per "
                          "model x metric); repeatable")
    rep.add_argument("--baseline", metavar="RUN", help="run id or name: show each model's change against it")
    rep.set_defaults(func=cmd_report)

    from genbench.features import commands as image_commands

    image_commands.add_commands(sub)

    zoo = sub.add_parser("zoo", help="the reference models: list them, or retrain their weights from a seed")
    zoo.add_argument("action", choices=["train", "list"])
    zoo.add_argument("--model", action="append", help="model name (repeatable; default all)")
    zoo.add_argument("--seed", type=int, default=0)
    zoo.add_argument("--out", help="weights directory (default: the package's adapters/weights)")
    zoo.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                     help="models trained at once, one process and one thread each (default 2)")
    zoo.set_defaults(func=cmd_zoo)
    return p


@functools.cache
def _genbench_dirs() -> tuple[str, ...]:
    """The folders genbench's modules live in (``genbench`` and its top-level sub-packages), found
    once, not per warning."""
    import importlib

    names = ("genbench", "genbench.adapters", "genbench.suites", "genbench.reports", "genbench.results")
    return tuple(str(Path(importlib.import_module(n).__file__).resolve().parent) + os.sep for n in names)


def warning_line(message, category, filename, lineno, line=None) -> str:
    """A warning as one line: genbench's own as the user reads them (`genbench: warning: ...`), not
    Python's file:line and source line; another library's with its category and origin, so it is
    not taken for genbench's."""
    if str(Path(filename).resolve()).startswith(_genbench_dirs()):
        return f"genbench: warning: {message}\n"
    return f"genbench: warning from {Path(filename).name}:{lineno} ({category.__name__}): {message}\n"


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    from genbench.distributed import RankLost

    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # for --nproc, which reruns the command
    previous, warnings.formatwarning = warnings.formatwarning, warning_line  # restored: main() runs in tests too
    try:
        return args.func(args)
    except (UserError, UnknownNameError) as e:
        print(f"genbench: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("genbench: interrupted; finished cells are in the records file (use --resume)", file=sys.stderr)
        return 130
    except RankLost as e:  # torchrun: another rank died or never arrived
        print(f"genbench: error: {e}; finished cells are in the records file (use --resume)", file=sys.stderr)
        return 1
    finally:
        warnings.formatwarning = previous


if __name__ == "__main__":
    sys.exit(main())
