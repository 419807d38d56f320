"""Finished parts of a cell's work, kept on disk until the cell commits.

A cell is the unit of the store (``RunStore.commit_cell``), but a long cell is many calls: a suite
samples in chunks, scores examples in batches, and under torchrun each rank computes its own index
range of every call. Each such result (a **part**) is written to ``RUN/partials/<cell>/`` as it is
computed, so a killed rank or a preempted job loses only the parts it had not finished, and
``--resume`` reuses the rest.

A part is one ``.npz`` (arrays, plus a JSON ``meta`` entry; never pickle) named
``<key>.<sha256>.npz``: ``key`` hashes everything its value depends on (the cell's config hash,
the cell's seed, the call's position in the cell, the method, its arguments with the condition
array or likelihood batch hashed by content, and the index range it covers; not ``batch_size``,
which must not change results), and ``sha256`` is the digest of the file's bytes. Before a part is
reused, the digest is recomputed, the key stored inside is compared with the one asked for, and the
arrays' lengths with the range; a file that fails any check is removed with a one-line warning and
its part recomputed. Parts are written atomically (temporary file, fsync, rename:
``store.write_bytes_atomic``) and deleted when their cell commits.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import json
import shutil
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

#: the folder of a run directory that holds the parts of unfinished cells
PARTIALS = "partials"
#: bump when the file layout changes: older parts are then foreign and recomputed
FORMAT = 1
#: parts of this process: reused from disk, computed (and written), rejected (failed a check)
STATS: dict[str, int] = {"reused": 0, "computed": 0, "rejected": 0}
#: GENBENCH_PARTS=off (``genbench run --no-parts``): keep no parts (a killed cell reruns whole)
ENV = "GENBENCH_PARTS"


def enabled() -> bool:
    """Whether runs keep parts (``GENBENCH_PARTS`` unset or ``on``); any other value is refused."""
    import os

    from genbench.errors import UserError

    value = os.environ.get(ENV, "on").strip().lower()
    if value not in ("on", "off"):
        raise UserError(f"{ENV}={os.environ[ENV]!r}: use on or off (off: genbench run --no-parts)")
    return value == "on"


#: call arguments that must not change a result, so are left out of a part's key
NOT_IN_KEY = frozenset({"batch_size"})


def stats_summary(per_rank: list[dict[str, int]] | None = None) -> str:
    """One line: parts reused and computed, summed over the ranks (and per rank when several)."""
    per_rank = per_rank or [STATS]
    total = {k: sum(s[k] for s in per_rank) for k in STATS}
    line = f"parts: reused {total['reused']}, computed {total['computed']}"
    if total["rejected"]:
        line += f", rejected {total['rejected']} (failed their check; recomputed)"
    if len(per_rank) > 1:
        line += " (" + "; ".join(f"rank {r}: reused {s['reused']}, computed {s['computed']}"
                                 for r, s in enumerate(per_rank)) + ")"
    return line


def cell_dirname(suite: str, adapter: str, seed: int) -> str:
    """The folder of one cell's parts: readable, and unique per (suite, adapter label, seed)."""
    safe = "".join(c if c.isalnum() or c in "-_=," else "_" for c in adapter)
    tag = hashlib.sha256(json.dumps([suite, adapter, seed]).encode()).hexdigest()[:8]
    return f"{suite}__{safe}__seed{seed}__{tag}"


def remove_cell(run_dir: Path, suite: str, adapter: str, seed: int) -> None:
    """Delete a committed cell's parts."""
    shutil.rmtree(Path(run_dir) / PARTIALS / cell_dirname(suite, adapter, seed), ignore_errors=True)


def remove_empty(run_dir: Path) -> None:
    """Delete the ``partials`` folder when no cell has parts left (at the end of a run: earlier,
    another rank may be creating its next cell's folder in it)."""
    try:
        (Path(run_dir) / PARTIALS).rmdir()
    except OSError:
        pass  # absent, or a failed cell's parts are still there


class _NotCacheable(Exception):
    """An argument or a value this module cannot hash or store exactly: the call runs uncached."""


def fingerprint(obj: Any) -> Any:
    """A JSON-able stand-in of a call argument: arrays by dtype, shape and sha256 of their bytes."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        if obj.dtype == object:
            return [fingerprint(x) for x in obj.tolist()]
        a = np.ascontiguousarray(obj)
        # the bytes hashed in place (a uint8 view): no copy, twice the speed of tobytes() on a
        # 10 GB ImageNet chunk of samples; the same digest
        return {"array": a.dtype.str, "shape": list(a.shape),
                "sha256": hashlib.sha256(a.reshape(-1).view(np.uint8)).hexdigest()}
    if isinstance(obj, (list, tuple)):
        return [fingerprint(x) for x in obj]
    if isinstance(obj, dict) and all(isinstance(k, str) for k in obj):
        return {k: fingerprint(v) for k, v in sorted(obj.items())}
    if type(obj).__module__.startswith("torch") and hasattr(obj, "detach"):
        return fingerprint(obj.detach().cpu().numpy())
    raise _NotCacheable(f"cannot hash a {type(obj).__name__} argument")


def _exact_json(obj: Any) -> Any:
    """``obj`` as JSON-able data that reads back equal (numpy scalars as Python numbers)."""
    def plain(x: Any) -> Any:
        if isinstance(x, np.generic):
            return x.item()
        if isinstance(x, dict):
            return {k: plain(v) for k, v in x.items()}
        if isinstance(x, list):
            return [plain(v) for v in x]
        return x

    try:
        out = plain(obj)
        if json.loads(json.dumps(out)) == out:
            return out
    except (TypeError, ValueError):
        pass
    raise _NotCacheable(f"cannot store {type(obj).__name__} exactly as JSON")


def _array(x: Any, field: str) -> np.ndarray:
    if not isinstance(x, np.ndarray) or x.dtype == object:
        raise _NotCacheable(f"{field} is not a numeric array")
    return x


def value_to_npz(value: Any, key_fields: dict[str, Any]) -> bytes:
    """A ``Samples``, a ``LogLikelihood`` or a dict of (n, ...) arrays (a suite's own part, e.g. a
    chunk's features: ``SuiteContext.kept``), and the key it answers, as the bytes of one ``.npz``."""
    from genbench.interfaces import LikelihoodKind, LogLikelihood, Samples

    arrays: dict[str, np.ndarray] = {}
    if isinstance(value, Samples):
        for name in ("images", "tokens"):
            if getattr(value, name) is not None:
                arrays[name] = _array(getattr(value, name), name)
        meta = {"type": "Samples", "texts": _exact_json(value.texts), "nfe": _exact_json(value.nfe),
                "nfe_per_sample": _exact_json(value.nfe_per_sample), "info": _exact_json(value.info)}
    elif isinstance(value, LogLikelihood):
        for name in ("nll", "units", "stderr"):
            if getattr(value, name) is not None:
                arrays[name] = _array(getattr(value, name), name)
        meta = {"type": "LogLikelihood", "unit": _exact_json(value.unit),
                "kind": LikelihoodKind(value.kind).value, "kind_is_enum": isinstance(value.kind, LikelihoodKind),
                "mc_samples": _exact_json(value.mc_samples), "info": _exact_json(value.info)}
    elif isinstance(value, dict) and value and all(isinstance(k, str) for k in value):
        for name, x in value.items():  # a suite's own arrays of the range (features of a chunk)
            arrays[name] = _array(x, name)
        meta = {"type": "arrays"}
    else:
        raise _NotCacheable(f"cannot store a {type(value).__name__}")
    meta.update(format=FORMAT, key=key_fields, arrays=sorted(arrays))
    arrays["meta"] = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def npz_to_value(data: bytes) -> tuple[Any, dict[str, Any]]:
    """The bytes of a part file -> (its ``Samples``, ``LogLikelihood`` or dict of arrays, its meta)."""
    from genbench.interfaces import LikelihoodKind, LogLikelihood, Samples

    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        meta = json.loads(npz["meta"].tobytes().decode())
        arrays = {name: npz[name] for name in meta["arrays"]}
    if meta["type"] == "Samples":
        value = Samples(images=arrays.get("images"), tokens=arrays.get("tokens"), texts=meta["texts"],
                        nfe=meta["nfe"], nfe_per_sample=meta["nfe_per_sample"], info=meta["info"])
    elif meta["type"] == "LogLikelihood":
        kind = LikelihoodKind(meta["kind"])
        value = LogLikelihood(nll=arrays["nll"], units=arrays["units"], stderr=arrays.get("stderr"),
                              unit=meta["unit"], kind=kind if meta["kind_is_enum"] else kind.value,
                              mc_samples=meta["mc_samples"], info=meta["info"])
    elif meta["type"] == "arrays":
        value = arrays
    else:
        raise ValueError(f"unknown part type {meta['type']!r}")
    return value, meta


def _lengths(value: Any) -> set[int]:
    """The leading lengths of every per-item field of a part (one value when it is consistent)."""
    from genbench.interfaces import Samples

    if isinstance(value, Samples):
        fields = [value.images, value.tokens, value.texts]
    elif isinstance(value, dict):
        fields = list(value.values())
    else:
        fields = [value.nll, value.units, value.stderr]
    return {len(f) for f in fields if f is not None}


class PartCache:
    """The parts of one cell, in ``directory`` (``RUN/partials/<cell>``).

    ``get_or_compute`` counts the calls made through it: the n-th call of a cell is keyed by n
    (and its arguments), so a rerun of the cell finds each call's part again, in order."""

    def __init__(self, directory: Path, *, config_hash: str, seed: int):
        self.dir = Path(directory)
        self.config_hash = config_hash
        self.seed = int(seed)
        self.calls = 0
        self.reused = 0
        self.computed = 0
        self._write_failed = False

    def key_fields(self, method: str, args: dict[str, Any], index_range: tuple[int, int]) -> dict[str, Any]:
        """What a part's value depends on (raises ``_NotCacheable`` for an argument it cannot hash)."""
        return {"format": FORMAT, "config_hash": self.config_hash, "cell_seed": self.seed, "call": self.calls,
                "method": method, "range": [int(index_range[0]), int(index_range[1])],
                # a digest: a likelihood batch of documents would otherwise be copied into every key
                "args": hashlib.sha256(json.dumps(fingerprint({k: v for k, v in args.items() if k not in NOT_IN_KEY}),
                                                  sort_keys=True).encode()).hexdigest()}

    def get_or_compute(self, method: str, args: dict[str, Any], index_range: tuple[int, int],
                       compute: Callable[[], Any]) -> Any:
        """The part for this call: read back and checked when a good copy is on disk, else computed
        and written. index_range: [start, stop) of the items it covers (its length is checked)."""
        try:
            fields = self.key_fields(method, args, index_range)
        except _NotCacheable:
            fields = None
        self.calls += 1
        if fields is None:
            return compute()
        key = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:32]
        found = self._read(key, fields, index_range[1] - index_range[0])
        if found is not None:
            self.reused += 1
            STATS["reused"] += 1
            return found
        value = compute()
        self._write(key, fields, value)
        self.computed += 1
        STATS["computed"] += 1
        return value

    def _reject(self, path: Path, reason: str) -> None:
        STATS["rejected"] += 1
        warnings.warn(f"{path}: {reason}; ignored, recomputing that part", stacklevel=3)
        path.unlink(missing_ok=True)

    def _read(self, key: str, fields: dict[str, Any], length: int) -> Any | None:
        for path in sorted(self.dir.glob(f"{key}.*.npz")):
            recorded = path.name[len(key) + 1: -len(".npz")]
            try:
                data = path.read_bytes()
            except OSError as e:
                self._reject(path, f"cannot be read ({e.strerror})")
                continue
            digest = hashlib.sha256(data).hexdigest()
            if digest != recorded:
                self._reject(path, f"sha256 {digest[:12]}... differs from the {recorded[:12]}... in its name "
                                   "(a corrupted or truncated file)")
                continue
            try:
                value, meta = npz_to_value(data)
            except Exception as e:  # any unreadable content is a bad file, never a crash or a guess
                self._reject(path, f"not a readable part ({type(e).__name__}: {e})")
                continue
            if meta.get("key") != fields:
                self._reject(path, "holds the part of another call, config, seed or range (a foreign file)")
                continue
            if _lengths(value) != {length}:
                self._reject(path, f"holds {sorted(_lengths(value))} items where its range has {length}")
                continue
            return value
        return None

    def _write(self, key: str, fields: dict[str, Any], value: Any) -> None:
        from genbench.store import StoreWriteError, write_bytes_atomic

        try:
            data = value_to_npz(value, fields)
        except _NotCacheable:
            return  # e.g. tokens as a list: the call simply is not cached
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            write_bytes_atomic(self.dir / f"{key}.{hashlib.sha256(data).hexdigest()}.npz", data)
        except (OSError, StoreWriteError) as e:  # a part not kept costs a rerun its reuse, not this run
            if not self._write_failed:
                reason = e.strerror if isinstance(e, OSError) and e.strerror else "a short write: is the disk full?"
                warnings.warn(f"{self.dir}: cannot write parts ({reason}); this cell's parts are not kept for a "
                              "rerun", stacklevel=3)
            self._write_failed = True


class PartCached:
    """A generator whose ``sample`` and ``log_likelihood`` calls go through a ``PartCache``.

    Everything else (names, ``describe``, ``likelihood_kind``...) is the generator's own, and the
    two methods keep the generator's signatures (``inspect.signature`` sees them), so a wrapper
    that asks whether ``sample`` takes ``start`` (``distributed.RankSharded``) gets the true answer.
    Under torchrun ``RankSharded`` wraps this, so each rank caches the part it computes: its range
    of a call's examples, or of a masked model's Monte Carlo grid (``likelihood_grid``, whose
    ``terms`` go through the cache)."""

    def __init__(self, inner: Any, parts: PartCache):
        self._inner = inner
        self._parts = parts
        if callable(getattr(inner, "sample", None)):
            def sample(n: int, *args: Any, **kw: Any) -> Any:
                start = int(kw.get("start", 0))
                return parts.get_or_compute("sample", {"n": n, "args": list(args), **kw}, (start, start + int(n)),
                                            lambda: inner.sample(n, *args, **kw))

            self.sample = functools.update_wrapper(sample, inner.sample)
        if callable(getattr(inner, "log_likelihood", None)):
            def log_likelihood(batch: Any, *args: Any, **kw: Any) -> Any:
                start = int(kw.get("start", 0))
                if not hasattr(batch, "__len__"):  # a stream: no range to check a part against
                    return inner.log_likelihood(batch, *args, **kw)
                return parts.get_or_compute("log_likelihood", {"batch": batch, "args": list(args), **kw},
                                            (start, start + len(batch)),
                                            lambda: inner.log_likelihood(batch, *args, **kw))

            self.log_likelihood = functools.update_wrapper(log_likelihood, inner.log_likelihood)
        if callable(getattr(inner, "likelihood_grid", None)):
            def likelihood_grid(batch: Any, *args: Any, **kw: Any) -> Any:
                # under torchrun each rank runs one flat range of a Monte Carlo grid
                # (``RankSharded.log_likelihood``): that range is the part it keeps
                grid = inner.likelihood_grid(batch, *args, **kw)
                call = {"batch": batch, "args": list(args), **kw}

                def terms(s0: int, s1: int) -> np.ndarray:
                    return parts.get_or_compute("likelihood_grid.terms", call, (s0, s1),
                                                lambda: {"terms": grid.terms(s0, s1)})["terms"]

                return dataclasses.replace(grid, terms=terms)

            self.likelihood_grid = functools.update_wrapper(likelihood_grid, inner.likelihood_grid)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


__all__ = ["PARTIALS", "STATS", "ENV", "enabled", "PartCache", "PartCached", "cell_dirname", "remove_cell", "remove_empty",
           "stats_summary",
           "fingerprint", "value_to_npz", "npz_to_value"]
