"""FID between two image sources, with statistics cached on disk; ``genbench fid`` / ``genbench stats``.

A *source* (``PATH`` on the command line) is one of:

* a folder of images (see ``genbench.imagefiles``: png, jpg, jpeg, bmp, webp, recursive, sorted);
* a ``.npz`` file holding
  - statistics ``mu`` (D,) and ``sigma`` (D, D): clean-fid's custom statistics, ADM's reference
    batches (which also hold ``mu_s``/``sigma_s``, the spatial statistics, and ``arr_0``, 10,000
    reference images), or a file ``genbench stats`` wrote (which records the extractor that made
    it: a file from another extractor, weights or resize is refused);
  - or only images ``arr_0`` uint8 (N, H, W, 3): ADM / DiT sample batches;
* a data set name: ``digits`` (the test split) or ``digits:SPLIT`` (``genbench.data``; the grey
  8x8 images are replicated to RGB, which the convention records).

Statistics of folders, image batches and data sets are cached under
``~/.cache/genbench/stats`` (``$XDG_CACHE_HOME`` or ``$GENBENCH_STATS_CACHE`` move it;
``cache_dir=`` / ``--cache-dir`` override it, ``use_cache=False`` / ``--no-cache`` skip it). The
key covers the sha256 of every image file's bytes (or of the npz file, or the data set's pinned
hash), the extractor's identity (name, weights sha256, resize mode, dimension) and the
preprocessing options, so a changed file or extractor can never hit a stale entry. An entry is
written atomically (temporary file, then rename) only after the whole pass succeeded.
"""
from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from genbench.errors import UserError

CACHE_ENV = "GENBENCH_STATS_CACHE"
#: bump when the way statistics are computed changes (invalidates every cache entry)
CACHE_VERSION = 1
IDENTITY_KEY = "genbench_identity"
DATASETS = ("digits",)
DEFAULT_SPLIT = "test"


def default_cache_dir() -> Path:
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "genbench" / "stats"


@dataclass
class Statistics:
    """Mean and covariance of a source's features, and where they came from.

    n: number of images (None for a foreign statistics file, which does not say).
    identity: the extractor identity the statistics belong to (None: not recorded, i.e. a
        clean-fid or ADM file; only its dimension could be checked).
    """

    mu: np.ndarray
    sigma: np.ndarray
    n: int | None
    source: str
    kind: str  # folder | images_npz | stats_npz | dataset
    identity: dict[str, Any] | None
    cache_file: str | None = None
    from_cache: bool = False
    data_hash: str | None = None
    preprocessing: dict[str, Any] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return int(self.mu.shape[0])


# --- helpers -----------------------------------------------------------------------------------
def _image_metrics():
    from genbench.metrics import image

    return image


def _get_extractor(extractor, mode: str | None, device: str | None, trust_unknown: bool | None, threads=None):
    from genbench.extractors import build_extractor

    if isinstance(extractor, str):
        return build_extractor(extractor, mode=mode, device=device, trust_unknown=trust_unknown or None,
                               threads=threads)
    have = getattr(extractor, "mode", None)
    if mode is not None and have is not None and have != mode:
        raise UserError(f"mode={mode!r} but the extractor given was built with mode {have!r}; build it with "
                        f"mode={mode!r} or leave mode out")
    return extractor


def _identity(extractor) -> dict[str, Any]:
    from genbench.extractors import extractor_identity

    return extractor_identity(extractor)


def _dump(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def _npz_sha256(path: Path) -> str:
    from genbench.extractors import file_sha256

    return file_sha256(path)


def _looks_like_dataset(text: str) -> bool:
    name = text.partition(":")[0]
    return name in DATASETS


def _features_of_array(extractor, images: np.ndarray, batch_size: int) -> np.ndarray:
    return np.asarray(extractor.features(images, batch_size=batch_size), dtype=np.float64)


def _check_dim(mu: np.ndarray, sigma: np.ndarray, dim: int | None, where: str, fields=("mu", "sigma")) -> None:
    if mu.ndim != 1 or sigma.ndim != 2 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise UserError(f"{where}: {fields[0]} has shape {mu.shape} and {fields[1]} {sigma.shape}; expected (D,) "
                        f"and (D, D)")
    if dim is not None and mu.shape[0] != dim:
        raise UserError(
            f"{where}: statistics of dimension {mu.shape[0]} (field {fields[0]}), but the extractor gives "
            f"{dim}-d features; compute both sides with the same extractor (genbench stats PATH --extractor ...)"
        )


# --- the cache --------------------------------------------------------------------------------------
def cache_key(data_hash: str, identity: dict[str, Any], preprocessing: dict[str, Any]) -> str:
    """sha256 over what decides the statistics: data, extractor identity, preprocessing, version."""
    material = {"version": CACHE_VERSION, "data": data_hash, "extractor": identity, "preprocessing": preprocessing}
    return hashlib.sha256(_dump(material).encode()).hexdigest()


def _cache_file(cache_dir: Path, key: str) -> Path:
    return cache_dir / f"{key}.npz"


def _read_cache(path: Path, key: str) -> dict[str, np.ndarray] | None:
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
                         identity: dict[str, Any] | None, extra: dict[str, Any] | None = None) -> Path:
    """Write ``mu``/``sigma`` (clean-fid's keys) plus genbench's identity fields, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, Any] = {"mu": np.asarray(mu, np.float64), "sigma": np.asarray(sigma, np.float64),
                              "n": np.asarray(-1 if n is None else int(n))}
    if identity is not None:
        arrays[IDENTITY_KEY] = np.asarray(_dump(identity))
    for k, v in (extra or {}).items():
        arrays[k] = np.asarray(v if not isinstance(v, (dict, list)) else _dump(v))
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


# --- sources ----------------------------------------------------------------------------------------
#: images read from an npz at a time (an ADM sample batch at 256x256 holds 9.8 GB)
NPZ_CHUNK = 1000
_STAT_FIELDS = ("mu", "sigma", "n", IDENTITY_KEY)


def _npz_fields(path: Path) -> list[str]:
    """The field names of an npz, read from its zip directory (no array is loaded)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return list(z.files)
    except Exception as e:
        raise UserError(f"{path}: not a readable .npz file ({type(e).__name__}: {e})") from None


def _npz_read(path: Path, fields) -> dict[str, np.ndarray]:
    """Only the named fields of an npz (missing ones are left out)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in fields if k in z.files}
    except Exception as e:
        raise UserError(f"{path}: cannot read fields {', '.join(fields)} ({type(e).__name__}: {e})") from None


class _NpzImages:
    """Streams the uint8 images of an npz field in chunks, without loading the whole array."""

    def __init__(self, path: Path, field: str = "arr_0"):
        import zipfile

        self.path, self.field = path, field
        try:
            with zipfile.ZipFile(path) as zf, zf.open(f"{field}.npy") as f:
                self.shape, fortran, self.dtype = self._header(f)
        except (KeyError, OSError, ValueError, zipfile.BadZipFile) as e:
            raise UserError(f"{path}: field {field} cannot be read ({type(e).__name__}: {e})") from None
        if fortran:
            raise UserError(f"{path}: field {field} is stored in Fortran order; save it with np.savez from a "
                            f"C-ordered array")
        if self.dtype != np.uint8 or len(self.shape) != 4 or self.shape[-1] not in (1, 3):
            raise UserError(f"{path}: field {field} must hold uint8 images (N, H, W, 3); got {self.dtype} "
                            f"{self.shape}")
        if self.shape[0] == 0:
            raise UserError(f"{path}: field {field} holds no images")

    @staticmethod
    def _header(f):
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            return np.lib.format.read_array_header_1_0(f)
        return np.lib.format.read_array_header_2_0(f)

    def __len__(self) -> int:
        return int(self.shape[0])

    def chunks(self, rows: int | None = None):
        import zipfile

        rows = rows or NPZ_CHUNK
        row_bytes = int(np.prod(self.shape[1:]))
        with zipfile.ZipFile(self.path) as zf, zf.open(f"{self.field}.npy") as f:
            self._header(f)
            for start in range(0, len(self), rows):
                n = min(rows, len(self) - start)
                raw = f.read(n * row_bytes)
                if len(raw) != n * row_bytes:
                    raise UserError(f"{self.path}: field {self.field} is truncated at image {start + len(raw) // row_bytes}")
                yield np.frombuffer(raw, dtype=np.uint8).reshape((n, *self.shape[1:]))


def _stats_from_npz(path: Path, fields: list[str], extractor, identity: dict[str, Any]) -> Statistics:
    data = _npz_read(path, _STAT_FIELDS)
    mu = np.asarray(data["mu"], np.float64)
    sigma = np.asarray(data["sigma"], np.float64)
    _check_dim(mu, sigma, getattr(extractor, "dim", None), str(path))
    stored = None
    if IDENTITY_KEY in data:
        try:
            stored = json.loads(str(data[IDENTITY_KEY]))
        except ValueError:
            raise UserError(f"{path}: field {IDENTITY_KEY} is not JSON; rewrite the file with genbench stats") from None
        if stored != identity:
            diff = sorted(k for k in set(stored) | set(identity) if stored.get(k) != identity.get(k))
            details = "; ".join(f"{k}: file {stored.get(k)!r} vs now {identity.get(k)!r}" for k in diff)
            raise UserError(
                f"{path}: statistics from another extractor ({details}); recompute them with "
                f"`genbench stats SOURCE --extractor ... --out {path.name}` using the same extractor and mode"
            )
    n = int(data["n"]) if "n" in data and int(data["n"]) >= 0 else None
    kind = "adm_reference" if "mu_s" in fields else "stats_npz"
    return Statistics(mu=mu, sigma=sigma, n=n, source=str(path), kind=kind, identity=stored)


def source_description(path: str | Path) -> str:
    return str(path)


def path_to_statistics(path: str | Path, extractor="inception", mode: str | None = None, *,
                       batch_size: int = 64, device: str | None = None, grey: str = "error",
                       alpha: str = "error", cache_dir: str | Path | None = None, use_cache: bool = True,
                       npz_prefer: str = "stats", trust_unknown: bool = False,
                       threads: int | None = None) -> Statistics:
    """Statistics (mu, sigma, n) of an image folder, a ``.npz`` or a data set name.

    extractor: an extractor name (``inception``, ``torchscript:FILE``...) or a FeatureExtractor.
    mode: resize mode for a named extractor (None: its default, ``clean``).
    npz_prefer: for an npz holding both statistics and images (ADM's reference batch):
        ``"stats"`` uses its ``mu``/``sigma``; ``"images"`` recomputes them from ``arr_0``.
    """
    if npz_prefer not in ("stats", "images"):
        raise UserError(f"npz_prefer={npz_prefer!r}: use stats or images")
    if batch_size < 1:
        raise UserError(f"batch_size={batch_size}: must be >= 1")
    ex = _get_extractor(extractor, mode, device, trust_unknown, threads)
    identity = _identity(ex)
    p = Path(path)

    if p.is_dir():
        from genbench.imagefiles import ImageFolder

        folder = ImageFolder(p, grey=grey, alpha=alpha)
        pre = {"source": "image folder", "decode": "Pillow", "grey": grey, "alpha": alpha, "recursive": True}
        return _cached(lambda: _folder_stats(ex, folder, batch_size), folder.content_hash(), identity, pre,
                       str(p), "folder", cache_dir, use_cache)

    if p.is_file():
        if p.suffix.lower() != ".npz":
            raise UserError(f"{p}: a source must be a folder of images, a .npz of statistics or images, or a "
                            f"data set name ({', '.join(DATASETS)}); got a {p.suffix or 'plain'} file")
        fields = _npz_fields(p)
        has_stats = "mu" in fields and "sigma" in fields
        has_images = "arr_0" in fields
        if has_stats and (npz_prefer == "stats" or not has_images):
            return _stats_from_npz(p, fields, ex, identity)
        if has_images:
            images = _NpzImages(p)
            if images.shape[-1] == 1 and grey != "convert":
                raise UserError(f"{p}: field arr_0 holds greyscale images (N, H, W, 1); pass grey='convert' "
                                f"(--grey convert) to replicate the channel")
            pre = {"source": "npz arr_0", "grey": grey}
            return _cached(lambda: _npz_features(ex, images, batch_size), _npz_sha256(p), identity, pre,
                           str(p), "images_npz", cache_dir, use_cache)
        raise UserError(f"{p}: the npz has fields {', '.join(sorted(fields)) or 'none'}; expected mu and sigma "
                        f"(statistics) or arr_0 (uint8 images)")

    text = str(path)
    if _looks_like_dataset(text):
        name, _, split = text.partition(":")
        split = split or DEFAULT_SPLIT
        from genbench import data as gdata

        if name == "digits":
            images = gdata.digits_arrays(split)[0]
            data_hash = f"dataset:digits:{split}:{gdata.DIGITS_SHA256}"
        else:  # pragma: no cover - DATASETS lists only what is handled
            raise UserError(f"unknown data set {name!r}")
        pre = {"source": "dataset", "grey": "replicated to RGB (the data set is greyscale)"}
        rgb = np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images
        return _cached(lambda: _array_stats(ex, rgb, batch_size), data_hash, identity, pre,
                       f"{name}:{split}", "dataset", cache_dir, use_cache)

    raise UserError(f"{text}: no such file or folder, and not a data set name ({', '.join(DATASETS)}, "
                    f"optionally :SPLIT)")


def _folder_stats(ex, folder, batch_size: int):
    if hasattr(ex, "folder_features"):
        feats = ex.folder_features(folder, batch_size=batch_size)
    else:
        feats = _features_of_array(ex, folder.array(), batch_size)
    return feats


def _array_stats(ex, images: np.ndarray, batch_size: int):
    return _features_of_array(ex, images, batch_size)


def _npz_features(ex, images: "_NpzImages", batch_size: int) -> np.ndarray:
    """Features of an npz's images, a chunk at a time (features do not depend on batching)."""
    parts = []
    for chunk in images.chunks():
        if chunk.shape[-1] == 1:
            chunk = np.repeat(chunk, 3, axis=-1)
        parts.append(_features_of_array(ex, chunk, batch_size))
    return np.concatenate(parts)


def _cached(compute_features, data_hash: str, identity: dict[str, Any], pre: dict[str, Any], source: str,
            kind: str, cache_dir, use_cache: bool) -> Statistics:
    key = cache_key(data_hash, identity, pre)
    target = _cache_file(Path(cache_dir) if cache_dir else default_cache_dir(), key) if use_cache else None
    if target is not None:
        hit = _read_cache(target, key)
        if hit is not None:
            n = int(hit["n"])
            return Statistics(mu=hit["mu"], sigma=hit["sigma"], n=n, source=source, kind=kind, identity=identity,
                              cache_file=str(target), from_cache=True, data_hash=data_hash, preprocessing=pre)
    feats = compute_features()
    if feats.ndim != 2 or len(feats) == 0:
        raise UserError(f"{source}: the extractor returned features of shape {feats.shape}; expected (N, D)")
    if len(feats) < 2:
        raise UserError(f"{source}: one image is not enough for a covariance; FID needs at least 2 (50,000 "
                        f"by convention)")
    mu, sigma = _image_metrics().features_to_statistics(feats)
    mu, sigma = np.asarray(mu, np.float64), np.asarray(sigma, np.float64)
    if target is not None:  # only after the whole pass succeeded
        write_statistics_npz(target, mu, sigma, n=len(feats), identity=identity,
                             extra={"genbench_key": key, "genbench_source": source, "genbench_data_hash": data_hash,
                                    "genbench_preprocessing": pre})
    return Statistics(mu=mu, sigma=sigma, n=len(feats), source=source, kind=kind, identity=identity,
                      cache_file=str(target) if target else None, from_cache=False, data_hash=data_hash,
                      preprocessing=pre)


def path_to_features(path: str | Path, extractor="inception", mode: str | None = None, *, batch_size: int = 64,
                     device: str | None = None, grey: str = "error", alpha: str = "error",
                     trust_unknown: bool = False) -> np.ndarray:
    """float64 (N, D) features of an image folder, an npz's ``arr_0`` or a data set (not cached)."""
    ex = _get_extractor(extractor, mode, device, trust_unknown)
    p = Path(path)
    if p.is_dir():
        from genbench.imagefiles import ImageFolder

        return _folder_stats(ex, ImageFolder(p, grey=grey, alpha=alpha), batch_size)
    if p.is_file() and p.suffix.lower() == ".npz":
        if "arr_0" not in _npz_fields(p):
            raise UserError(f"{p}: features need images (field arr_0); this file has "
                            f"{', '.join(_npz_fields(p))}")
        images = _NpzImages(p)
        if images.shape[-1] == 1 and grey != "convert":
            raise UserError(f"{p}: field arr_0 holds greyscale images; pass grey='convert' to replicate the channel")
        return _npz_features(ex, images, batch_size)
    if _looks_like_dataset(str(path)):
        from genbench import data as gdata

        name, _, split = str(path).partition(":")
        images = gdata.digits_arrays(split or DEFAULT_SPLIT)[0]
        return _features_of_array(ex, np.repeat(images, 3, axis=-1), batch_size)
    raise UserError(f"{path}: no such file or folder, and not a data set name ({', '.join(DATASETS)})")


# --- FID ----------------------------------------------------------------------------------------
def _fid(a: Statistics, b: Statistics, sqrtm: str | None) -> tuple[float, str]:
    fn = _image_metrics().statistics_to_fid
    params = inspect.signature(fn).parameters
    kw: dict[str, Any] = {}
    method = None
    for name in ("method", "sqrtm"):
        if name in params:
            if sqrtm is not None:
                kw[name] = sqrtm
            default = params[name].default
            method = sqrtm or (default if default is not inspect.Parameter.empty else None)
            break
    else:
        if sqrtm is not None:
            raise UserError(f"--sqrtm {sqrtm}: genbench.metrics.image.statistics_to_fid takes no method option")
    try:
        value = float(fn(a.mu, a.sigma, b.mu, b.sigma, **kw))
    except ValueError as e:  # e.g. scipy's sqrtm with a large imaginary part
        raise UserError(f"FID of {a.source} against {b.source}: {e}") from None
    return value, str(method or "default of genbench.metrics.image.statistics_to_fid")


def compute_fid(path_a, path_b, extractor="inception", mode: str | None = None, *, batch_size: int = 64,
                device: str | None = None, grey: str = "error", alpha: str = "error",
                cache_dir: str | Path | None = None, use_cache: bool = True, trust_unknown: bool = False,
                sqrtm: str | None = None, npz_prefer: str = "stats", threads: int | None = None) -> dict[str, Any]:
    """FID between two sources, with its convention: a flat dict (``fid``, ``extractor``,
    ``weights_sha256``, ``mode``, ``dim``, ``n_a``, ``n_b``, ``sqrtm``, sources, cache use)."""
    ex = _get_extractor(extractor, mode, device, trust_unknown, threads)
    kw = dict(batch_size=batch_size, grey=grey, alpha=alpha, cache_dir=cache_dir, use_cache=use_cache,
              npz_prefer=npz_prefer)
    a = path_to_statistics(path_a, ex, **kw)
    b = path_to_statistics(path_b, ex, **kw)
    if a.dim != b.dim:
        raise UserError(f"{path_a} has {a.dim}-d statistics but {path_b} has {b.dim}-d; use one extractor for both")
    value, method = _fid(a, b, sqrtm)
    ident = _identity(ex)
    return {
        "fid": value,
        "extractor": ex.describe().get("extractor"),
        "weights_sha256": ident.get("weights_sha256"),
        "mode": ident.get("resize", getattr(ex, "mode", None)),
        "dim": a.dim,
        "n_a": a.n,
        "n_b": b.n,
        "sqrtm": method,
        "a": a.source,
        "b": b.source,
        "a_statistics": _origin(a),
        "b_statistics": _origin(b),
        "identity": ident,
    }


def _origin(s: Statistics) -> str:
    if s.kind in ("stats_npz", "adm_reference"):
        return "file, extractor recorded and checked" if s.identity else "file from another tool: only its dimension was checked"
    return "cache" if s.from_cache else ("computed, cached" if s.cache_file else "computed")


# --- CLI ----------------------------------------------------------------------------------------
def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--extractor", default="inception", help="inception, inception:FILE, torchscript:FILE or a "
                   "registered name (default inception)")
    p.add_argument("--mode", default=None, choices=["clean", "legacy_pytorch", "legacy_tensorflow"],
                   help="resize mode (default clean)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default=None, help="cpu, cuda or auto (default cpu)")
    p.add_argument("--grey", default="error", choices=["error", "convert"],
                   help="a greyscale image: error (default) or convert (replicate the channel)")
    p.add_argument("--alpha", default="error", choices=["error", "drop"],
                   help="an image with transparency: error (default) or drop the alpha channel")
    p.add_argument("--cache-dir", default=None, help=f"statistics cache (default ~/.cache/genbench/stats, or ${CACHE_ENV})")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the statistics cache")
    p.add_argument("--trust-unknown", action="store_true", help="accept Inception weights whose sha256 is not known")
    p.add_argument("--npz-prefer", default="stats", choices=["stats", "images"],
                   help="an npz with both statistics and arr_0 images: use which (default stats)")


def cmd_fid(args: argparse.Namespace) -> int:
    result = compute_fid(args.path_a, args.path_b, args.extractor, args.mode, batch_size=args.batch_size,
                         device=args.device, grey=args.grey, alpha=args.alpha, cache_dir=args.cache_dir,
                         use_cache=not args.no_cache, trust_unknown=args.trust_unknown, sqrtm=args.sqrtm,
                         npz_prefer=args.npz_prefer)
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        sha = (result["weights_sha256"] or "")[:12]
        print(f"FID {result['fid']:.6g}  ({result['extractor']} {sha} mode={result['mode']}, "
              f"n_a={result['n_a']}, n_b={result['n_b']}, sqrtm={result['sqrtm']})")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    ex = _get_extractor(args.extractor, args.mode, args.device, args.trust_unknown)
    stats = path_to_statistics(args.path, ex, batch_size=args.batch_size, grey=args.grey, alpha=args.alpha,
                               cache_dir=args.cache_dir, use_cache=not args.no_cache, npz_prefer=args.npz_prefer)
    identity = _identity(ex)
    if stats.identity is None:
        raise UserError(f"{args.path}: a statistics file from another tool records no extractor; genbench stats "
                        f"will not relabel it as {identity.get('extractor')}'s")
    out = write_statistics_npz(args.out, stats.mu, stats.sigma, n=stats.n, identity=identity,
                               extra={"genbench_source": stats.source,
                                      "genbench_data_hash": stats.data_hash or "",
                                      "genbench_preprocessing": stats.preprocessing})
    print(f"statistics: {out} (n={stats.n}, dim={stats.dim}, {identity.get('extractor')} mode={identity.get('resize')})")
    return 0


def add_commands(subparsers) -> None:
    """Add ``fid`` and ``stats`` to the ``genbench`` CLI's subparsers."""
    fid = subparsers.add_parser("fid", help="FID between two image folders, npz files or data sets")
    fid.add_argument("path_a", metavar="PATH_A")
    fid.add_argument("path_b", metavar="PATH_B")
    _add_common(fid)
    fid.add_argument("--sqrtm", default=None, help="matrix square root method of statistics_to_fid (default its own)")
    fid.add_argument("--json", action="store_true", help="print one JSON object: fid and its convention")
    fid.set_defaults(func=cmd_fid)

    stats = subparsers.add_parser("stats", help="write a source's feature statistics to an npz (mu, sigma + identity)")
    stats.add_argument("path", metavar="PATH")
    _add_common(stats)
    stats.add_argument("--out", required=True, help="the .npz to write")
    stats.set_defaults(func=cmd_stats)


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m genbench.fidtool fid A B``) until the CLI wires add_commands."""
    parser = argparse.ArgumentParser(prog="genbench")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    from genbench.registry import UnknownNameError

    try:
        return args.func(args)
    except (UserError, UnknownNameError) as e:
        print(f"genbench: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())


__all__ = [
    "Statistics", "path_to_statistics", "path_to_features", "compute_fid", "add_commands", "cache_key",
    "default_cache_dir", "write_statistics_npz", "CACHE_ENV",
]
