"""Statistics files on disk: the npz genbench writes (clean-fid's ``mu``/``sigma``, ADM's
``mu_s``/``sigma_s``, plus the extractor identity that made them), and the cache of them.

Statistics of folders, image batches and data sets are cached under ``~/.cache/genbench/stats``
(``$XDG_CACHE_HOME`` or ``$GENBENCH_STATS_CACHE`` move it; ``cache_dir=`` / ``--cache-dir``
override it, ``use_cache=False`` / ``--no-cache`` skip it). The key covers the sha256 of every
image's bytes (or of the npz file, or the data set's pinned hash), the extractor's identity
(name, weights sha256, resize mode, dimension) and the preprocessing options, so a changed file
or extractor can never hit a stale entry. An entry is written atomically (temporary file, then
rename) only after the whole pass succeeded.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

CACHE_ENV = "GENBENCH_STATS_CACHE"
#: bump when the way statistics are computed changes (invalidates every cache entry)
CACHE_VERSION = 1
IDENTITY_KEY = "genbench_identity"


def default_cache_dir() -> Path:
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "genbench" / "stats"


def dump_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def cache_key(data_hash: str, identity: dict[str, Any], preprocessing: dict[str, Any]) -> str:
    """sha256 over what decides the statistics: data, extractor identity, preprocessing, version."""
    material = {"version": CACHE_VERSION, "data": data_hash, "extractor": identity, "preprocessing": preprocessing}
    return hashlib.sha256(dump_json(material).encode()).hexdigest()


def cache_file_path(cache_dir: Path, key: str) -> Path:
    return cache_dir / f"{key}.npz"


def read_cache(path: Path, key: str) -> dict[str, np.ndarray] | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
        if str(data.get("genbench_key", "")) != key:
            return None
        return data
    except Exception:
        return None  # an unreadable entry is recomputed (and overwritten)


def write_statistics_npz(path: str | Path, mu: np.ndarray, sigma: np.ndarray, *, n: int | None,
                         identity: dict[str, Any] | None, extra: dict[str, Any] | None = None,
                         mu_s: np.ndarray | None = None, sigma_s: np.ndarray | None = None) -> Path:
    """Write ``mu``/``sigma`` (clean-fid's keys; ``mu_s``/``sigma_s`` ADM's spatial ones) plus
    genbench's identity fields, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, Any] = {"mu": np.asarray(mu, np.float64), "sigma": np.asarray(sigma, np.float64),
                              "n": np.asarray(-1 if n is None else int(n))}
    if mu_s is not None and sigma_s is not None:
        arrays["mu_s"], arrays["sigma_s"] = np.asarray(mu_s, np.float64), np.asarray(sigma_s, np.float64)
    if identity is not None:
        arrays[IDENTITY_KEY] = np.asarray(dump_json(identity))
    for k, v in (extra or {}).items():
        arrays[k] = np.asarray(v if not isinstance(v, (dict, list)) else dump_json(v))
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


__all__ = ["CACHE_ENV", "CACHE_VERSION", "IDENTITY_KEY", "default_cache_dir", "dump_json", "cache_key",
           "cache_file_path", "read_cache", "write_statistics_npz"]
