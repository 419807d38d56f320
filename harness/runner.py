"""The runner: a run is suites x adapters x seeds, each cell recorded as it finishes."""
from __future__ import annotations

import os
import time
import tomllib
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from genbench import provenance
from genbench.errors import UserError
from genbench.registry import ADAPTERS, SUITES, UnknownNameError, build_adapter, split_adapter_spec
from genbench.store import RunStore, StoreWriteError
from genbench.suite import Suite, SuiteContext, check_option_value

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


#: the largest seed a run takes (numpy's RandomState, which KID's subsets use, takes 32 bits)
MAX_SEED = 2**32 - 1


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
        """Check every name, option and value before anything runs or is written.

        Each mistake is a UserError naming the file (or the command line), the field and the fix.
        """
        where = self.source or "the command line"
        _check_names(self.suites, "suites", "suite names, e.g. [\"likelihood\"]", where)
        _check_names(self.adapters, "adapters", "adapter specs, e.g. [\"ar-digits\"]", where)
        if not self.seeds:
            raise UserError(f"{where}: field 'seeds' must be a non-empty list of integers, e.g. [0, 1]")
        for s in self.seeds:
            if not isinstance(s, int) or isinstance(s, bool):
                raise UserError(f"{where}: field 'seeds' must hold integers, got {s!r}; e.g. seeds = [0, 1]")
            if s < 0:
                raise UserError(f"{where}: field 'seeds' holds {s}; seeds must be >= 0")
            if s > MAX_SEED:  # KID's subsets draw from np.random.RandomState(seed), which takes 32 bits
                raise UserError(f"{where}: field 'seeds' holds {s}; seeds must be at most {MAX_SEED} (2**32 - 1)")
        if len(set(self.seeds)) != len(self.seeds):
            raise UserError(f"{where}: field 'seeds' repeats a seed ({_repeated(self.seeds)}); "
                            "list each seed once")
        check_device(self.device, where)
        for name in self.suites:
            suite = _suite_class(name, where)
            given = self.suite_options.get(name, {})
            unknown = set(given) - set(suite.options)
            if unknown:
                raise UserError(
                    f"{where}: unknown key(s) {sorted(unknown)} in [suite.{name}]; "
                    f"valid keys: {sorted(suite.options) or 'none'}{_did_you_mean(unknown, suite.options)}"
                )
            suite.check_options(given, f"{where}: [suite.{name}]")
        for table in self.suite_options:
            if table not in self.suites:
                raise UserError(f"{where}: [suite.{table}] configures a suite the run does not include; "
                                f"add it to 'suites' or remove the table")
        names = {split_adapter_spec(a)[0] for a in self.adapters}
        for spec in self.adapters:
            name, path = split_adapter_spec(spec)
            if name not in ADAPTERS:
                raise UserError(f"{where}: field 'adapters': {ADAPTERS.unknown(name)}")
            if path is not None and not path.strip():
                raise UserError(f"{where}: field 'adapters': {spec!r} names no path after the colon; write {name} "
                                f"or {name}:DIR")
        same = {}  # one checkpoint under two spellings (DIR and DIR/) would run and be reported twice
        for spec in self.adapters:
            name, path = split_adapter_spec(spec)
            key = (name, None if path is None else os.path.normpath(path))
            if key in same:
                raise UserError(f"{where}: field 'adapters' lists {same[key]!r} and {spec!r}, one checkpoint; "
                                "list it once")
            same[key] = spec
        for table, opts in self.adapter_options.items():
            if table not in self.adapters and table not in names:
                raise UserError(f"{where}: [adapter.\"{table}\"] configures an adapter the run does not include; "
                                f"add it to 'adapters' or remove the table")
            if not isinstance(opts, dict):
                raise UserError(f"{where}: [adapter.\"{table}\"] must be a table of options, got {opts!r}")
        for variant in adapter_variants(self):  # checks the sweep tables, then each adapter's own cheap checks
            _check_adapter_options(variant, where)
            name, path = split_adapter_spec(variant.spec)
            check = getattr(_factory(name), "check_options", None)
            if check is not None:
                check(path, **dict(variant.options))
        dataset = self.suite_options.get("likelihood", {}).get("dataset")
        if dataset is not None and "likelihood" in self.suites:
            images = [a for a in self.adapters if _factory_modality(split_adapter_spec(a)[0]) == "image"]
            if not images or _is_text_dataset(dataset):
                check_text_dataset(dataset, where)
                if images:
                    raise UserError(f"{where}: likelihood dataset {dataset!r} is text data, but {images} are image "
                                    "models, which the likelihood suite scores on image data (digits[:SPLIT], "
                                    "fashion-mnist[:SPLIT], an image folder, a .npz, hf:PATH[:SPLIT]); give one of "
                                    "those as --dataset (likelihood.dataset), or run text adapters only")
            else:  # image models: an image source, as the tokenizer suite takes
                texts = [a for a in self.adapters if _factory_modality(split_adapter_spec(a)[0]) == "text"]
                if texts:
                    raise UserError(f"{where}: likelihood dataset {dataset!r} is image data, but {texts} are text "
                                    "models; run image and text adapters in separate runs")
                _check_image_dataset(dataset, where)
        return self


def _is_text_dataset(spec: Any) -> bool:
    """Whether a likelihood ``dataset`` names text: kjv[:split], a preset or a .txt/table file."""
    from genbench import textdata

    if not isinstance(spec, str):
        return False
    path = Path(spec.partition("#")[0])
    return (spec == "kjv" or spec.startswith("kjv:") or spec in textdata.PRESETS or path.suffix == ".txt"
            or path.suffix in textdata.TABLE_SUFFIXES)


def _check_image_dataset(spec: Any, where: str) -> None:
    """The cheap half of ``suites.common.image_source_chunks``: a built-in name, hf:, or a path that exists."""
    from genbench.data import IMAGE_DATASETS

    if not isinstance(spec, str):
        raise UserError(f"{where}: likelihood dataset must be a string (digits[:SPLIT], an image folder...), "
                        f"got {spec!r}")
    if spec.partition(":")[0] in IMAGE_DATASETS or spec.startswith("hf:"):
        return
    if not Path(spec).exists():
        raise UserError(f"{where}: likelihood dataset {spec!r} does not exist; image models take digits[:SPLIT], "
                        f"fashion-mnist[:SPLIT], an image folder, a .npz with arr_0 or hf:PATH[:SPLIT]")


def check_text_dataset(spec: Any, where: str, field: str = "likelihood dataset") -> None:
    """The cheap half of ``textdata.load_documents``: a file that must exist does, a name (and a
    KJV split) is known. field: what the run calls it, for the message."""
    from genbench import textdata
    from genbench.data import SPLITS

    if not isinstance(spec, str):
        raise UserError(f"{where}: {field} must be a string (kjv[:split], a file or a preset), got {spec!r}")
    path = Path(spec.partition("#")[0])
    if spec.startswith("kjv:") and spec.partition(":")[2] not in SPLITS:
        raise UserError(f"{where}: {field} {spec!r}: unknown KJV split; use kjv or kjv:SPLIT with SPLIT one of "
                        f"{', '.join(SPLITS)}")
    if spec == "kjv" or spec.startswith("kjv:") or spec in textdata.PRESETS:
        return
    if path.suffix == ".txt" or path.suffix in textdata.TABLE_SUFFIXES:
        if not path.is_file():
            raise UserError(f"{where}: {field} file {path} does not exist; pass an existing .txt/.jsonl/.parquet/.csv "
                            f"file or a preset ({', '.join(sorted(textdata.PRESETS))})")
        return
    raise UserError(f"{where}: unknown {field.split()[-1]} {spec!r}; use kjv[:split], a local .txt/.jsonl/.parquet/.csv "
                    f"file, or a preset: {', '.join(sorted(textdata.PRESETS))}")


def _repeated(items: list) -> Any:
    seen: set = set()
    return next(x for x in items if x in seen or seen.add(x))  # type: ignore[func-returns-value]


def _did_you_mean(unknown: set[str], valid: Any) -> str:
    import difflib

    close = [c for u in sorted(unknown) for c in difflib.get_close_matches(u, list(valid), n=1, cutoff=0.6)]
    return f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""


def _check_names(items: list, field_name: str, example: str, where: str) -> None:
    if not items:
        flag = "--suite NAME" if field_name == "suites" else "--adapter NAME"
        raise UserError(f"{where}: no {field_name} given; add `{field_name} = [...]` ({example}) or pass {flag}")
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise UserError(f"{where}: field '{field_name}' must hold {example}; got {item!r}")
    if len(set(items)) != len(items):
        raise UserError(f"{where}: field '{field_name}' lists {_repeated(items)!r} twice; list each once "
                        "(use seeds or a sweep table for repeats)")


def check_device(device: Any, where: str) -> None:
    """``cpu``, ``auto``, ``cuda[:N]`` or ``mps``, and only one this torch can use."""
    import re

    if not isinstance(device, str) or not re.fullmatch(r"cpu|auto|mps|cuda(:\d+)?", device):
        raise UserError(f"{where}: field 'device' must be \"cpu\", \"cuda\", \"cuda:N\", \"mps\" or \"auto\", "
                        f"got {device!r}")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            built = "this torch is built without CUDA" if torch.version.cuda is None else "no CUDA device is visible"
            raise UserError(f"{where}: device {device!r} is not available ({built}); use --device cpu or auto")
        index = int(device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise UserError(f"{where}: device {device!r} is not available ({torch.cuda.device_count()} CUDA "
                            "device(s)); use cuda:0 or auto")
    if device == "mps":
        import torch

        if not torch.backends.mps.is_available():
            raise UserError(f"{where}: device 'mps' is not available on this machine; use --device cpu or auto")


def _factory(name: str) -> Any:
    """The adapter's factory, or None when importing it fails (the run records that failure once)."""
    try:
        return ADAPTERS.get(name)
    except UnknownNameError:
        raise
    except Exception:
        return None


def _factory_modality(name: str) -> str | None:
    modality = getattr(_factory(name), "modality", None)
    return modality if isinstance(modality, str) else None


def adapter_option_names(factory: Any) -> set[str] | None:
    """The keyword options a factory accepts, following ``**options`` up the class hierarchy;
    None when it takes any keyword (a ``**kwargs`` that is not forwarded to a known base)."""
    defaults = adapter_option_defaults(factory)
    return None if defaults is None else set(defaults)


def adapter_option_defaults(factory: Any) -> dict[str, Any] | None:
    """Each keyword option a factory accepts -> its default (None where it has none), the
    nearest class's first; None when it takes any keyword (see ``adapter_option_names``)."""
    import inspect

    defaults: dict[str, Any] = {}
    if inspect.isclass(factory):
        inits = [c.__dict__["__init__"] for c in factory.__mro__ if "__init__" in c.__dict__ and c is not object]
    else:
        inits = [factory]
    for init in inits:
        try:
            params = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):
            return None
        for p in params:
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name not in ("self", "path", "device"):
                defaults.setdefault(p.name, None if p.default is p.empty else p.default)
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            return defaults
    return None


def _check_adapter_options(variant: "Variant", where: str) -> None:
    name, _ = split_adapter_spec(variant.spec)
    factory = _factory(name)
    if factory is None:
        return
    valid = adapter_option_names(factory)
    given = {k for k, _ in variant.options}
    if "device" in given or "path" in given:
        key = "device" if "device" in given else "path"
        fix = "set `device` at the top of the run file or pass --device" if key == "device" else \
            f"name the checkpoint in the adapter spec, e.g. \"{name}:DIR\""
        raise UserError(f"{where}: [adapter.\"{variant.spec}\"] option '{key}' is not an adapter option; {fix}")
    if valid is None:
        return
    unknown = given - valid
    if unknown:
        raise UserError(f"{where}: [adapter.\"{variant.spec}\"] unknown option(s) {sorted(unknown)}; "
                        f"{name} takes {sorted(valid) or 'no options'}{_did_you_mean(unknown, valid)}")
    defaults = adapter_option_defaults(factory) or {}
    for key, value in variant.options:  # a value of the default's type: kv_cache = "no" is not true
        check_option_value(key, value, defaults.get(key), f"{where}: [adapter.\"{variant.spec}\"]")


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
        if a != name and a in spec.adapter_options and name in spec.adapter_options:
            raise UserError(f"{where}: [adapter.\"{a}\"] and [adapter.\"{name}\"] both configure {a} (the first "
                            f"would silently win); keep one table")
        opts = dict(spec.adapter_options.get(a, spec.adapter_options.get(name, {})))
        sweep = opts.pop("sweep", {})
        if not isinstance(sweep, dict) or not all(isinstance(v, list) and v for v in sweep.values()):
            raise UserError(f"{where}: [adapter.\"{a}\"] field 'sweep' must be a table of non-empty lists, "
                            f"e.g. sweep.steps = [4, 8, 16]; got {sweep!r}")
        for key, values in sweep.items():
            if key in opts:
                raise UserError(f"{where}: [adapter.\"{a}\"] sets {key} = {opts[key]!r} and sweeps it "
                                f"(sweep.{key}); keep one of them")
            if any(values.index(v) != i for i, v in enumerate(values)):
                raise UserError(f"{where}: [adapter.\"{a}\"] sweep.{key} repeats a value ({_repeated(values)!r}), "
                                "which would run the same cells twice; list each value once")
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
    if path.is_dir():
        raise UserError(f"run file {path} is a directory; give a TOML file (see suites/presets/)")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not valid TOML ({e})") from None
    except OSError as e:
        raise UserError(f"run file {path} cannot be read ({e.strerror or e})") from None
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


def cell_order(spec: RunSpec, adapters: "AdapterCache") -> list[tuple[int, Variant, str]]:
    """Every cell of a run as (seed, variant, suite), in the order one process runs them:
    checkpoint by checkpoint, so that each is loaded once and released before the next."""
    return [(seed, v, suite) for group in adapters.groups for seed in spec.seeds for v in group
            for suite in spec.suites]


def cell_keys(spec: RunSpec) -> list[tuple[str, str, int]]:
    """The (suite, adapter label, seed) keys of every cell, in run order; loads no model."""
    adapters = AdapterCache(adapter_variants(spec), "cpu")
    return [(suite, v.label, seed) for seed, v, suite in cell_order(spec, adapters)]


def run(spec: RunSpec, out_dir: str | Path, *, resume: bool = False,
        log: Callable[[str], None] = print, shard: tuple[int, int] | None = None) -> list[CellResult]:
    """Run every cell of ``spec``, committing each cell's records to ``out_dir`` as it finishes.

    A cell that raises is recorded as failed and the run goes on; with ``resume`` the cells
    that already finished are skipped and a kill's leftovers are cleaned first. One process
    holds the directory's lock for the whole run; a store write that fails stops the run.
    shard: (K, N) runs only shard K of N's cells (``genbench.shard.shard_cells``) into a shard
    store, which carries the run's config_hash and its cell list for ``genbench merge``.
    """
    from genbench import distributed, partials, shard as sharding

    spec.validate()
    keep_parts = partials.enabled()  # GENBENCH_PARTS: checked before anything is written
    store = RunStore(Path(out_dir))
    chash = spec.config_hash()
    # before anything is written (under torchrun every rank checks before the process group's
    # rendezvous, so before rank 0 can have created the store)
    store.check_can_open(chash, resume=resume)
    # under torchrun every rank runs every cell, sharing each cell's work; rank 0 alone writes
    adapters = AdapterCache(adapter_variants(spec), distributed.init_from_env(provenance.resolve_device(spec.device)))
    world = distributed.world_size()
    cells = cell_order(spec, adapters)
    shard_info = None
    if shard is not None:
        cells = sharding.shard_cells(cells, *shard, where=f"--shard {shard[0]}/{shard[1]}")
        shard_info = sharding.shard_manifest(shard, [(s, v.label, seed) for seed, v, s in cells])
        sharding.check_shard_store(store, shard_info)
    device = adapters.device
    if world > 1 and distributed.rank() != 0:
        run_id, done, run_dir = distributed.broadcast_from_rank0(None)
        _run_cells(None, spec, run_id, done, cells, adapters, lambda message: None,
                   parts_dir=_shared_parts_dir(Path(run_dir), run_id) if keep_parts else None)
        return []
    with store.lock():
        existing = store.check_can_open(chash, resume=resume)  # again, now that no one else can write
        if existing is None:
            run_id = f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}-{chash[:6]}"
            if shard is not None:
                run_id += f"-shard{shard[0]}of{shard[1]}"
            store.create({
                "run_id": run_id, "name": spec.name, "description": spec.description,
                "config_hash": chash, "spec": spec.identity(), "source": spec.source,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "status": "running",
                "provenance": provenance.collect(device),
                **({"shard": shard_info} if shard_info else {}),
                **({"world_size": world} if world > 1 else {}),
            })
        else:
            run_id = existing["run_id"]
        done, dropped = store.reconcile()
        if dropped:
            log(f"resume: removed {dropped} record(s) of cells that had not finished; they run again")
        if world > 1:  # the other ranks keep their parts in rank 0's run directory (a shared filesystem)
            distributed.broadcast_from_rank0((run_id, done, str(store.dir.resolve())))
        results = _run_cells(store, spec, run_id, done, cells, adapters, log,
                             parts_dir=store.dir / partials.PARTIALS if keep_parts else None)
        partials.remove_empty(store.dir)
        store.update_manifest(status="finished", finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    return results


def _shared_parts_dir(run_dir: Path, run_id: str) -> Path | None:
    """Rank 0's ``RUN/partials`` as another rank sees it, or None (with a warning) when this rank
    cannot see rank 0's run directory (nodes without a shared filesystem): its parts are then not
    kept, and a rerun recomputes them."""
    import json
    import warnings

    from genbench import distributed, partials

    try:
        seen = json.loads((run_dir / "manifest.json").read_text()).get("run_id")
    except (OSError, ValueError):
        seen = None
    if seen != run_id:
        warnings.warn(f"rank {distributed.rank()}: rank 0's run directory {run_dir} is not visible here (no shared "
                      "filesystem?); this rank's parts are not kept, a rerun recomputes them")
        return None
    return run_dir / partials.PARTIALS


def _run_cells(store: RunStore | None, spec: RunSpec, run_id: str, done: set, cells: list,
               adapters: "AdapterCache", log, parts_dir: Path | None = None) -> list[CellResult]:
    """The cells not in ``done``, in order; store None: a torchrun rank other than 0 (writes nothing).
    parts_dir: where cells keep their finished parts (``genbench.partials``); None: nowhere."""
    results: list[CellResult] = []
    for i, (seed, variant, suite_name) in enumerate(cells):
        if (suite_name, variant.label, seed) in done:
            log(f"skip  {suite_name} x {variant.label} (seed {seed}): already recorded")
        else:
            result = _run_cell(store, spec, run_id, seed, variant, suite_name, adapters, adapters.device, log,
                               parts_dir)
            if result is not None:
                results.append(result)
        if i + 1 == len(cells) or adapters.key(cells[i + 1][1]) != adapters.key(variant):
            adapters.release(variant)
    return results


class _LoadFailed:
    """A checkpoint whose construction raised: its first cell records the error, the others skip."""

    def __init__(self, message: str):
        self.message = message


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
            try:
                self._loaded[key] = build_adapter(variant.spec, device=self.device, **dict(key[1]))
            except Exception as e:  # recorded in this cell; the checkpoint's other cells are skipped
                self._loaded[key] = _LoadFailed(f"{type(e).__name__}: {e}")
                raise
        if isinstance(self._loaded[key], _LoadFailed):
            raise RuntimeError(self._loaded[key].message)
        return self._loaded[key].with_options(**{k: v for k, v in variant.options if k in runtime}) \
            if runtime else self._loaded[key]

    def failed(self, variant: Variant) -> str | None:
        """Why this variant's checkpoint failed to load in an earlier cell, or None."""
        loaded = self._loaded.get(self.key(variant))
        return loaded.message if isinstance(loaded, _LoadFailed) else None

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


def _run_cell(store: RunStore | None, spec: RunSpec, run_id: str, seed: int, variant: Variant,
              suite_name: str, adapters: AdapterCache, device: str, log,
              parts_dir: Path | None = None) -> CellResult | None:
    """Run one cell and commit its records and marker together (``RunStore.commit_cell``).

    Its ``sample`` / ``log_likelihood`` results are kept in ``parts_dir`` as they finish
    (``genbench.partials``; under torchrun each rank's part), so a rerun after a kill reuses them."""
    import uuid

    from genbench import distributed, partials
    from genbench.interfaces import Generator

    suite: Suite = SUITES.get(suite_name)()
    options = {**suite.options, **spec.suite_options.get(suite_name, {})}
    adapter_spec = variant.label
    adapter_opts = dict(variant.options)
    attempt = uuid.uuid4().hex[:12]
    base = {"run_id": run_id, "suite": suite_name, "adapter": adapter_spec, "seed": seed,
            "adapter_name": split_adapter_spec(variant.spec)[0], "setting": dict(variant.setting),
            "attempt": attempt}
    t0 = time.perf_counter()
    generator = None
    parts: "partials.PartCache | None" = None
    root: Path | None = None
    records: list[dict[str, Any]] = []
    if adapters.failed(variant) is not None:
        log(f"skip  {suite_name} x {adapter_spec} (seed {seed}): the adapter failed to load "
            f"({adapters.failed(variant)}); recorded once")
        return None
    try:
        if distributed.world_size() > 1:  # the cell's gathers are numbered from here, alike on every rank
            distributed.begin_cell((suite_name, adapter_spec, seed))
        generator = adapters.get(variant)
        if not suite.applies_to(generator):
            log(f"n/a   {suite_name} x {adapter_spec}: {suite.why_not(generator)}")
            return None
        chash = provenance.config_hash({"suite": suite_name, "options": options, "adapter": adapter_spec,
                                        "adapter_options": adapter_opts, "model": generator.describe()})
        if isinstance(generator, Generator) and parts_dir is not None and suite.keeps_parts:
            parts = partials.PartCache(parts_dir / partials.cell_dirname(suite_name, adapter_spec, seed),
                                       config_hash=chash, seed=seed)
            generator = partials.PartCached(generator, parts)
        if distributed.world_size() > 1 and isinstance(generator, (Generator, partials.PartCached)):
            generator = distributed.RankSharded(generator)
        base.update(paradigm=getattr(generator, "paradigm", None), modality=getattr(generator, "modality", None),
                    config_hash=chash)
        safe = "".join(c if c.isalnum() or c in "-_=," else "_" for c in adapter_spec)
        if store is None:  # a torchrun rank other than 0: its artifacts go to a scratch folder
            import tempfile

            root = Path(tempfile.mkdtemp(prefix=f"genbench-rank{distributed.rank()}-"))
        else:
            root = store.dir
        artifacts = root / "artifacts" / f"{suite_name}__{safe}__seed{seed}"
        artifacts.mkdir(parents=True, exist_ok=True)
        ctx = SuiteContext(seed=seed, options=options, artifacts=artifacts, device=device,
                           progress=_progress if store is not None else (lambda it, **kw: it), parts=parts)
        log(f"run   {suite_name} x {adapter_spec} (seed {seed})")
        t_last = t0
        for metric in suite.run(generator, ctx):
            now = time.perf_counter()
            records.append({**base, "task": metric.task or suite_name, "metric": metric.metric,
                            "value": metric.value, "stderr": metric.stderr, "n": metric.n, "unit": metric.unit,
                            "higher_is_better": metric.higher_is_better, "convention": metric.convention,
                            "status": "ok", "error": None, "wall_s": round(now - t_last, 4),
                            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                            "artifacts": str(artifacts.relative_to(root))})
            t_last = now
        if parts is not None and parts.reused:
            log(f"      reused {parts.reused} of the cell's {parts.calls} part(s) from an earlier attempt"
                + (" (rank 0's; see the run's `parts:` line for all ranks)" if distributed.world_size() > 1 else ""))
        status, message = "ok", None
    except (StoreWriteError, distributed.RankLost):  # the run cannot go on (a lost rank: --resume later)
        raise
    except Exception as e:  # a failed cell is recorded; the run goes on
        message = f"{type(e).__name__}: {e}"
        log(f"FAIL  {suite_name} x {adapter_spec} (seed {seed}): {message}")
        records.append({**base, "task": suite_name, "metric": None, "value": None, "status": "failed",
                        "error": message, "traceback": traceback.format_exc(limit=8),
                        "wall_s": round(time.perf_counter() - t0, 4),
                        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                        "paradigm": getattr(generator, "paradigm", None),
                        "modality": getattr(generator, "modality", None)})
        status = "failed"
    wall = time.perf_counter() - t0
    if store is None:
        import shutil

        if root is not None:
            shutil.rmtree(root, ignore_errors=True)
        return None
    store.commit_cell(records, {"suite": suite_name, "adapter": adapter_spec, "seed": seed, "status": status,
                                "wall_s": round(wall, 3), "attempt": attempt})
    n_metrics = sum(r["status"] == "ok" for r in records)
    return CellResult(suite_name, adapter_spec, seed, status, n_metrics, wall, message)


__all__ = ["RunSpec", "load_run_file", "spec_from_dict", "run", "CellResult"]
