"""What a suite is: a task that turns a generator into metric values."""
from __future__ import annotations

import abc
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from genbench.interfaces import Generator


@dataclass
class Metric:
    """One number a suite produces, with everything needed to read it honestly.

    convention: how it was made, e.g. ``{"kind": "upper_bound", "mc_samples": 32}`` or
    ``{"extractor": "digits-classifier", "weights_sha256": ..., "resize": "none", "n": 1000}``.
    """

    metric: str
    value: float
    unit: str
    higher_is_better: bool
    task: str = ""
    stderr: float | None = None
    n: int | None = None
    convention: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.value = float(self.value)
        if self.stderr is not None:
            self.stderr = float(self.stderr)
            if math.isnan(self.stderr):
                self.stderr = None


@dataclass
class SuiteContext:
    """What the runner hands a suite for one cell.

    seed:       the cell's seed; every random draw in the suite derives from it.
    options:    the suite's table from the run file (e.g. ``n_samples``).
    artifacts:  a directory for the cell's files (sample grids, text samples).
    progress:   ``progress(iterable, desc=..., total=...)`` wraps long loops in a bar.
    parts:      the cell's ``genbench.partials.PartCache`` (None: results are not kept), see ``kept``.
    """

    seed: int
    options: dict[str, Any]
    artifacts: Path
    device: str = "cpu"
    progress: Callable[..., Iterable] = lambda it, **kw: it
    parts: Any = None

    def option(self, key: str, default: Any) -> Any:
        return self.options.get(key, default)

    def kept(self, what: str, args: dict[str, Any], index_range: tuple[int, int],
             compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """``compute()``, a dict of arrays with one row per item of ``index_range`` ([start, stop)),
        kept as a part of the cell until it commits: a rerun of a killed cell reads it back (after
        checking its sha256 and its key: ``what``, ``args`` hashed by content, the range, the
        cell's config and seed) instead of computing it again (``genbench.partials``)."""
        if self.parts is None:
            return compute()
        return self.parts.get_or_compute(what, args, index_range, compute)


#: options that count something, wherever a suite (or an adapter) declares them: a positive integer (or None)
COUNT_OPTIONS = frozenset({
    "n_samples", "batch_size", "repeats", "latency_repeats", "kid_subsets", "kid_subset_size", "pr_k",
    "max_examples", "max_bytes_per_document", "num_classes", "samples_per_class", "sample_chunk",
    "is_splits", "steps", "mc_samples", "length", "center_crop", "max_images", "chunk", "lpips_batch_size",
    "prdc_k", "feature_cap", "eval_batch_size", "context", "replicates",
})
#: options that count something and may be 0
NONNEGATIVE_OPTIONS = frozenset({"warmup", "fid_bootstrap"})
#: a lower bound on the bytes each sample, batch element and KID subset pair costs, for the
#: up-front memory check (uint8 images plus float64 features of the smallest extractor)
BYTES_PER_SAMPLE = 1024


def _type_name(kind: Any) -> str:
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "a table"}.get(kind, kind.__name__)


def check_option_value(key: str, value: Any, default: Any, where: str, *, counts: bool = False) -> None:
    """One option's value against its default, or a UserError naming ``where`` and the option: a
    count (``COUNT_OPTIONS``, or ``counts``) is a positive integer, a ``NONNEGATIVE_OPTIONS`` one
    an integer >= 0 (either may stay None where the default is None); otherwise the value has its
    default's type (an int default takes integers only, a float default finite numbers)."""
    from genbench.errors import UserError

    counts = counts or key in COUNT_OPTIONS
    if counts or key in NONNEGATIVE_OPTIONS:
        if value is None and default is None:
            return
        if not isinstance(value, int) or isinstance(value, bool):
            raise UserError(f"{where} {key} = {value!r}: must be a whole number, e.g. {key} = "
                            f"{default if isinstance(default, int) and not isinstance(default, bool) else 100}")
        low = 1 if counts else 0
        if value < low:
            raise UserError(f"{where} {key} = {value}: must be {'positive' if low else '>= 0'}")
    elif default is not None and value is not None:
        kind = type(default)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) if kind is float \
            else isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
        if not ok:
            raise UserError(f"{where} {key} = {value!r}: must be {_type_name(kind)}, like the default "
                            f"{key} = {default!r}")
        if kind is float and not math.isfinite(value):  # a NaN or infinite time or tolerance never ends a loop
            raise UserError(f"{where} {key} = {value!r}: must be a finite number, like the default {key} = {default!r}")


def available_memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 40


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"


class Suite(abc.ABC):
    """A task. ``options`` lists the run-file keys it accepts, with their defaults.

    ``check_options`` checks given values before anything runs: an option's type is its
    default's (an int default takes integers only; a float default takes numbers), counts
    (``COUNT_OPTIONS``, ``NONNEGATIVE_OPTIONS``, plus a suite's own ``count_options``) must be
    positive (or >= 0), ``option_choices`` lists allowed values, and a request whose memory
    lower bound exceeds the machine's is refused with the estimate.
    """

    name: str
    description: str = ""
    options: dict[str, Any] = {}
    count_options: frozenset[str] = frozenset()
    option_choices: dict[str, tuple] = {}
    #: whether the runner keeps the cell's sample / likelihood results on disk as they finish, for a
    #: rerun after a kill (``genbench.partials``); False for a suite that times those calls
    keeps_parts: bool = True

    @classmethod
    def check_options(cls, given: dict[str, Any], where: str) -> None:
        """Raise a UserError naming ``where`` and the option for the first bad value in ``given``."""
        from genbench.errors import UserError

        for key, value in given.items():
            check_option_value(key, value, cls.options.get(key), where, counts=key in cls.count_options)
            if key in cls.option_choices and value not in cls.option_choices[key]:
                raise UserError(f"{where} {key} = {value!r}: must be one of {list(cls.option_choices[key])}")
        merged = {**cls.options, **given}
        need = cls.memory_lower_bound(merged)
        have = available_memory_bytes()
        if need > have:
            raise UserError(f"{where}: these options need at least {_bytes(need)} of memory (samples and batches "
                            f"at {BYTES_PER_SAMPLE} bytes each, KID's kernel matrix and subsets), this machine "
                            f"has {_bytes(have)}; lower them")

    @classmethod
    def memory_lower_bound(cls, options: dict[str, Any]) -> int:
        """Bytes a cell needs at least: its samples and features, one batch, a KID kernel matrix."""
        def count(key: str) -> int:
            v = options.get(key)
            return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else 0

        n = max(count("n_samples"), count("num_classes") * count("samples_per_class"), count("max_examples"))
        # KID: one m x m kernel matrix at a time (m is capped by the sample count) and one value per subset
        m = min(count("kid_subset_size"), n) if count("kid_subsets") else 0
        samples = BYTES_PER_SAMPLE * (n + count("batch_size") + count("sample_chunk"))
        return samples + 8 * m * m + 8 * count("kid_subsets")

    def applies_to(self, generator: Generator) -> bool:
        return True

    def why_not(self, generator: Generator) -> str:
        """Why the suite does not apply to ``generator`` (logged by the runner)."""
        what = ", ".join(f"{k} {getattr(generator, k)}" for k in ("paradigm", "modality") if hasattr(generator, k))
        return f"the suite does not apply to a {type(generator).__name__}" + (f" ({what})" if what else "")

    @abc.abstractmethod
    def run(self, generator: Generator, ctx: SuiteContext) -> Iterable[Metric]:
        """Yield the cell's metrics (the runner records each as it arrives)."""
