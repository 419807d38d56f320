"""What a suite is: a task that turns a generator into metric values."""
from __future__ import annotations

import abc
import math
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
    """

    seed: int
    options: dict[str, Any]
    artifacts: Path
    device: str = "cpu"
    progress: Callable[..., Iterable] = lambda it, **kw: it

    def option(self, key: str, default: Any) -> Any:
        return self.options.get(key, default)


class Suite(abc.ABC):
    """A task. ``options`` lists the run-file keys it accepts, with their defaults."""

    name: str
    description: str = ""
    options: dict[str, Any] = {}

    def applies_to(self, generator: Generator) -> bool:
        return True

    def why_not(self, generator: Generator) -> str:
        """Why the suite does not apply to ``generator`` (logged by the runner)."""
        what = ", ".join(f"{k} {getattr(generator, k)}" for k in ("paradigm", "modality") if hasattr(generator, k))
        return f"the suite does not apply to a {type(generator).__name__}" + (f" ({what})" if what else "")

    @abc.abstractmethod
    def run(self, generator: Generator, ctx: SuiteContext) -> Iterable[Metric]:
        """Yield the cell's metrics (the runner records each as it arrives)."""
