"""The runner: a run is suites x adapters x seeds, each cell recorded as it finishes."""
from __future__ import annotations

import time
import tomllib
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from genbench import provenance
from genbench.errors import UserError
from genbench.registry import ADAPTERS, SUITES, UnknownNameError, build_adapter, split_adapter_spec
from genbench.store import RunStore
from genbench.suite import Suite, SuiteContext

#: the keys a run file may hold at its top level
RUN_FILE_KEYS = {
    "name": "a label for the run (string)",
    "description": "free text",
    "suites": "suite names, e.g. [\"image_quality\", \"likelihood\"]",
    "adapters": "adapter specs NAME or NAME:PATH",
    "seeds": "integer seeds, e.g. [0, 1, 2]",
    "device": "\"cpu\", \"cuda\" or \"auto\"",
    "suite": "tables of suite options, [suite.NAME]",
    "adapter": "tables of adapter options, [adapter.\"NAME\"]",
}


@dataclass
class RunSpec:
    suites: list[str]
    adapters: list[str]
    seeds: list[int] = field(default_factory=lambda: [0])
    name: str = "run"
    description: str = ""
    device: str = "cpu"
    suite_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    adapter_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: str | None = None  # the run file it came from, for error messages

    def identity(self) -> dict[str, Any]:
        """What makes two runs the same run (hashed into the run's config_hash)."""
        d = asdict(self)
        d.pop("source")
        d.pop("description")
        return d

    def config_hash(self) -> str:
        return provenance.config_hash(self.identity())

    def validate(self) -> "RunSpec":
        """Check every name and option before anything runs or is written."""
        where = self.source or "the command line"
        if not self.suites:
            raise UserError(f"{where}: no suites given; add `suites = [...]` or pass --suite NAME")
        if not self.adapters:
            raise UserError(f"{where}: no adapters given; add `adapters = [...]` or pass --adapter NAME")
        if not self.seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in self.seeds):
            raise UserError(f"{where}: field 'seeds' must be a non-empty list of integers, got {self.seeds!r}")
        for name in self.suites:
            suite = _suite_class(name, where)
            unknown = set(self.suite_options.get(name, {})) - set(suite.options)
            if unknown:
                raise UserError(
                    f"{where}: unknown key(s) {sorted(unknown)} in [suite.{name}]; "
                    f"valid keys: {sorted(suite.options) or 'none'}"
                )
        for table in self.suite_options:
            if table not in self.suites:
                raise UserError(f"{where}: [suite.{table}] configures a suite the run does not include; "
                                f"add it to 'suites' or remove the table")
        for spec in self.adapters:
            name, _ = split_adapter_spec(spec)
            if name not in ADAPTERS:
                raise UserError(f"{where}: field 'adapters': {ADAPTERS.unknown(name)}")
        for table in self.adapter_options:
            if table not in self.adapters and table not in {split_adapter_spec(a)[0] for a in self.adapters}:
                raise UserError(f"{where}: [adapter.\"{table}\"] configures an adapter the run does not include")
        for v in adapter_variants(self):  # checks the sweep tables, then each adapter's own cheap checks
            name, path = split_adapter_spec(v.spec)
            check = getattr(ADAPTERS.get(name), "check_options", None)
            if check is not None:
                check(path, **dict(v.options))
        return self


@dataclass(frozen=True)
class Variant:
    """One adapter setting of a run: the spec, its constructor options and the swept values."""

    spec: str
    options: tuple[tuple[str, Any], ...]
    setting: tuple[tuple[str, Any], ...] = ()

    @property
    def label(self) -> str:
        """How records name it: ``masked-digits`` or ``masked-digits[steps=8]``."""
        if not self.setting:
            return self.spec
        inner = ",".join(f"{k}={_fmt(v)}" for k, v in self.setting)
        return f"{self.spec}[{inner}]"


def _fmt(v: Any) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


def adapter_variants(spec: "RunSpec") -> list[Variant]:
    """Expand each adapter's ``sweep`` table (option -> list of values) into one variant per point."""
    import itertools

    where = spec.source or "the command line"
    out = []
    for a in spec.adapters:
        name, _ = split_adapter_spec(a)
        opts = dict(spec.adapter_options.get(a, spec.adapter_options.get(name, {})))
        sweep = opts.pop("sweep", {})
        if not isinstance(sweep, dict) or not all(isinstance(v, list) and v for v in sweep.values()):
            raise UserError(f"{where}: [adapter.\"{a}\"] field 'sweep' must be a table of non-empty lists, "
                            f"e.g. sweep.steps = [4, 8, 16]; got {sweep!r}")
        keys = list(sweep)
        for values in itertools.product(*(sweep[k] for k in keys)) if keys else [()]:
            setting = tuple(zip(keys, values))
            out.append(Variant(a, tuple(sorted({**opts, **dict(setting)}.items())), setting))
    return out


def _suite_class(name: str, where: str) -> type[Suite]:
    try:
        return SUITES.get(name)
    except UnknownNameError as e:
        raise UserError(f"{where}: field 'suites': {e}") from None


def load_run_file(path: str | Path) -> RunSpec:
    """Parse and check a TOML run file; every mistake names the file, the field and the fix."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"run file {path} does not exist")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not valid TOML ({e})") from None
    return spec_from_dict(data, source=str(path))


def spec_from_dict(data: dict[str, Any], source: str = "run file") -> RunSpec:
    unknown = set(data) - set(RUN_FILE_KEYS)
    if unknown:
        raise UserError(
            f"{source}: unknown key(s) {sorted(unknown)}; valid keys: {', '.join(sorted(RUN_FILE_KEYS))}"
        )

    def typed(key: str, kind: type, default: Any) -> Any:
        value = data.get(key, default)
        if not isinstance(value, kind):
            raise UserError(f"{source}: field '{key}' must be {RUN_FILE_KEYS[key]}, got {value!r}")
        return value

    suite_options = typed("suite", dict, {})
    adapter_options = typed("adapter", dict, {})
    for table, opts in [*suite_options.items(), *adapter_options.items()]:
        if not isinstance(opts, dict):
            raise UserError(f"{source}: [{table}] must be a table of options, got {opts!r}")
    return RunSpec(
        suites=list(typed("suites", list, [])),
        adapters=list(typed("adapters", list, [])),
        seeds=list(typed("seeds", list, [0])),
        name=typed("name", str, "run"),
        description=typed("description", str, ""),
        device=typed("device", str, "cpu"),
        suite_options=suite_options,
        adapter_options=adapter_options,
        source=source,
    )


def _progress(iterable, **kw):
    from tqdm.auto import tqdm

    return tqdm(iterable, leave=False, **kw)


@dataclass
class CellResult:
    suite: str
    adapter: str
    seed: int
    status: str
    metrics: int
    wall_s: float
    error: str | None = None


def run(spec: RunSpec, out_dir: str | Path, *, resume: bool = False,
        log: Callable[[str], None] = print) -> list[CellResult]:
    """Run every cell of ``spec``, appending its records to ``out_dir`` as each finishes.

    A cell that raises is recorded as failed and the run goes on; with ``resume`` the
    cells that already finished are skipped.
    """
    spec.validate()
    store = RunStore(Path(out_dir))
    chash = spec.config_hash()
    existing = store.check_can_open(chash, resume=resume)
    device = provenance.resolve_device(spec.device)
    if existing is None:
        run_id = f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}-{chash[:6]}"
        store.create({
            "run_id": run_id, "name": spec.name, "description": spec.description,
            "config_hash": chash, "spec": spec.identity(), "source": spec.source,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "status": "running",
            "provenance": provenance.collect(device),
        })
    else:
        run_id = existing["run_id"]
    done = store.finished_cells()

    results: list[CellResult] = []
    adapters = AdapterCache(adapter_variants(spec), device)
    # checkpoint by checkpoint, so that each is loaded once and released before the next
    cells = [(seed, v, suite) for group in adapters.groups for seed in spec.seeds for v in group
             for suite in spec.suites]
    for i, (seed, variant, suite_name) in enumerate(cells):
        if (suite_name, variant.label, seed) in done:
            log(f"skip  {suite_name} x {variant.label} (seed {seed}): already recorded")
        else:
            result = _run_cell(store, spec, run_id, seed, variant, suite_name, adapters, device, log)
            if result is not None:
                results.append(result)
        if i + 1 == len(cells) or adapters.key(cells[i + 1][1]) != adapters.key(variant):
            adapters.release(variant)
    store.update_manifest(status="finished", finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    return results


class AdapterCache:
    """One load per checkpoint: variants that differ only in the adapter's ``runtime_options``
    (``Generator.runtime_options``: steps, scheduler, guidance...) share one loaded model, each
    taking its setting from ``with_options``; ``release`` drops the model once its cells are done."""

    def __init__(self, variants: list[Variant], device: str):
        self.device = device
        self._loaded: dict[tuple, Any] = {}
        groups: dict[tuple, list[Variant]] = {}
        for v in variants:
            groups.setdefault(self.key(v), []).append(v)
        self.groups = list(groups.values())

    @staticmethod
    def _runtime(variant: Variant) -> frozenset[str]:
        try:
            factory = ADAPTERS.get(split_adapter_spec(variant.spec)[0])
        except Exception:  # an adapter that cannot even be imported fails in its cells
            return frozenset()
        return frozenset(getattr(factory, "runtime_options", ()))

    def key(self, variant: Variant) -> tuple:
        runtime = self._runtime(variant)
        return (variant.spec, tuple((k, v) for k, v in variant.options if k not in runtime))

    def get(self, variant: Variant) -> Any:
        key, runtime = self.key(variant), self._runtime(variant)
        if key not in self._loaded:
            self._loaded[key] = build_adapter(variant.spec, device=self.device, **dict(key[1]))
        return self._loaded[key].with_options(**{k: v for k, v in variant.options if k in runtime}) \
            if runtime else self._loaded[key]

    def release(self, variant: Variant) -> None:
        if self._loaded.pop(self.key(variant), None) is not None:
            import gc

            gc.collect()
            try:
                import torch

                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
            except ImportError:
                pass


def _run_cell(store: RunStore, spec: RunSpec, run_id: str, seed: int, variant: Variant,
              suite_name: str, adapters: AdapterCache, device: str, log) -> CellResult | None:
    suite: Suite = SUITES.get(suite_name)()
    options = {**suite.options, **spec.suite_options.get(suite_name, {})}
    adapter_spec = variant.label
    adapter_opts = dict(variant.options)
    base = {"run_id": run_id, "suite": suite_name, "adapter": adapter_spec, "seed": seed,
            "adapter_name": split_adapter_spec(variant.spec)[0], "setting": dict(variant.setting)}
    t0 = time.perf_counter()
    generator = None
    try:
        generator = adapters.get(variant)
        if not suite.applies_to(generator):
            log(f"n/a   {suite_name} x {adapter_spec}: {suite.why_not(generator)}")
            return None
        chash = provenance.config_hash({"suite": suite_name, "options": options, "adapter": adapter_spec,
                                        "adapter_options": adapter_opts, "model": generator.describe()})
        base.update(paradigm=getattr(generator, "paradigm", None), modality=getattr(generator, "modality", None),
                    config_hash=chash)
        safe = "".join(c if c.isalnum() or c in "-_=," else "_" for c in adapter_spec)
        artifacts = store.dir / "artifacts" / f"{suite_name}__{safe}__seed{seed}"
        artifacts.mkdir(parents=True, exist_ok=True)
        ctx = SuiteContext(seed=seed, options=options, artifacts=artifacts, device=device, progress=_progress)
        log(f"run   {suite_name} x {adapter_spec} (seed {seed})")
        count = 0
        t_last = t0
        for metric in suite.run(generator, ctx):
            now = time.perf_counter()
            store.append({**base, "task": metric.task or suite_name, "metric": metric.metric,
                          "value": metric.value, "stderr": metric.stderr, "n": metric.n, "unit": metric.unit,
                          "higher_is_better": metric.higher_is_better, "convention": metric.convention,
                          "status": "ok", "error": None, "wall_s": round(now - t_last, 4),
                          "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                          "artifacts": str(artifacts.relative_to(store.dir))})
            t_last = now
            count += 1
        wall = time.perf_counter() - t0
        store.mark_cell(suite_name, adapter_spec, seed, "ok", wall)
        return CellResult(suite_name, adapter_spec, seed, "ok", count, wall)
    except Exception as e:  # a failed cell is recorded; the run goes on
        wall = time.perf_counter() - t0
        message = f"{type(e).__name__}: {e}"
        log(f"FAIL  {suite_name} x {adapter_spec} (seed {seed}): {message}")
        store.append({**base, "task": suite_name, "metric": None, "value": None, "status": "failed",
                      "error": message, "traceback": traceback.format_exc(limit=8), "wall_s": round(wall, 4),
                      "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                      "paradigm": getattr(generator, "paradigm", None),
                      "modality": getattr(generator, "modality", None)})
        store.mark_cell(suite_name, adapter_spec, seed, "failed", wall)
        return CellResult(suite_name, adapter_spec, seed, "failed", 0, wall, message)


__all__ = ["RunSpec", "load_run_file", "spec_from_dict", "run", "CellResult"]
