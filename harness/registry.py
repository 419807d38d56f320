"""Name -> object registries with lazy import strings.

``ADAPTERS``, ``SUITES`` and ``EXTRACTORS`` map a name to a factory. An entry is either
registered by decorator when its module is imported, or declared up front as a lazy
``"module:attr"`` string so that listing names never imports torch-heavy code. Third-party
adapters join through the ``genbench.adapters`` entry-point group.
"""
from __future__ import annotations

import difflib
import importlib
from importlib import metadata
from typing import Any, Callable, Iterator


class UnknownNameError(KeyError):
    """An unknown registry name; the message suggests the closest known names."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0])


class Registry:
    def __init__(self, kind: str, entry_point_group: str | None = None, builtin: str | None = None,
                 list_command: str | None = None):
        self.kind = kind
        self.list_command = list_command or f"genbench list {kind}s"  # named in the unknown-name error
        self._builtin = builtin  # module whose import declares the built-in names
        self._entries: dict[str, Any] = {}
        self._group = entry_point_group
        self._entry_points_loaded = entry_point_group is None

    # --- registration ----------------------------------------------------------
    def register(self, name: str, obj: Any = None, *, lazy: str | None = None):
        """Register ``obj`` (or a ``"module:attr"`` string) under ``name``.

        Used bare as a decorator: ``@ADAPTERS.register("ar-digits")``.
        """
        if lazy is not None:
            self._add(name, lazy)
            return lazy
        if obj is not None:
            self._add(name, obj)
            return obj

        def decorator(target):
            self._add(name, target)
            return target

        return decorator

    def _add(self, name: str, obj: Any) -> None:
        old = self._entries.get(name)
        if isinstance(obj, str) and old is not None and not isinstance(old, str):
            return  # the module that a lazy string names was imported first and registered itself
        # A lazy string is replaced by the object it names when that module registers itself.
        if old is not None and not isinstance(old, str) and old is not obj:
            if getattr(old, "__qualname__", None) != getattr(obj, "__qualname__", None):
                raise ValueError(f"{self.kind} {name!r} is already registered (by {getattr(old, '__module__', '?')}); "
                                 "register yours under another name")
        self._entries[name] = obj

    # --- lookup ----------------------------------------------------------------
    def _load_entry_points(self) -> None:
        if self._builtin is not None:
            module, self._builtin = self._builtin, None
            importlib.import_module(module)
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for ep in metadata.entry_points(group=self._group):
            self._entries.setdefault(ep.name, ep.value)

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        self._load_entry_points()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def suggest(self, name: str, n: int = 3) -> list[str]:
        return difflib.get_close_matches(name, self.names(), n=n, cutoff=0.5)

    def unknown(self, name: str) -> UnknownNameError:
        close = self.suggest(name)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        return UnknownNameError(
            f"unknown {self.kind} {name!r}.{hint} Run `{self.list_command}` for all names."
        )

    def get(self, name: str) -> Any:
        """The registered object, importing it now if it was declared lazily."""
        self._load_entry_points()
        if name not in self._entries:
            raise self.unknown(name)
        obj = self._entries[name]
        if isinstance(obj, str):
            module, _, attr = obj.partition(":")
            mod = importlib.import_module(module)
            obj = getattr(mod, attr) if attr else mod
            self._entries[name] = obj
        return obj


ADAPTERS = Registry("adapter", entry_point_group="genbench.adapters", builtin="genbench.adapters")
SUITES = Registry("suite", builtin="genbench.suites")
EXTRACTORS = Registry("extractor", builtin="genbench.adapters")


def split_adapter_spec(spec: str) -> tuple[str, str | None]:
    """``"NAME"`` or ``"NAME:PATH"`` -> (name, path or None)."""
    name, sep, path = spec.partition(":")
    return name, (path if sep else None)


def build_adapter(spec: str, **options: Any):
    """Instantiate the adapter named by ``NAME`` or ``NAME:PATH``: ``factory(path=PATH or None, **options)``."""
    name, path = split_adapter_spec(spec)
    factory: Callable[..., Any] = ADAPTERS.get(name)
    return factory(path=path, **options)
