"""FID and friends between two image sources, with statistics cached on disk; ``genbench fid``,
``genbench is`` and ``genbench stats``.

A *source* (``PATH`` on the command line) is one of:

* a folder of images (see ``genbench.imagefiles``: png, jpg, jpeg, bmp, webp, recursive, sorted);
* a ``.npz`` file holding
  - statistics ``mu`` (D,) and ``sigma`` (D, D): clean-fid's custom statistics, ADM's reference
    batches (which also hold ``mu_s``/``sigma_s``, the spatial statistics of sFID, and
    ``arr_0``, 10,000 reference images for precision/recall and KID), or a file ``genbench
    stats`` wrote (which records the extractor that made it: a file from another extractor,
    weights or resize is refused);
  - or only images ``arr_0`` uint8 (N, H, W, 3): ADM / DiT sample batches;
* a data set name: ``digits`` (the test split) or ``digits:SPLIT`` (``genbench.data``; the grey
  8x8 images are replicated to RGB, which the convention records);
* ``hf:PATH[:SPLIT]``: anything Hugging Face ``datasets`` loads offline (a ``save_to_disk``
  directory, an ``imagefolder`` directory, a cached hub data set; ``genbench.imagefiles``).

Real images can be centre-cropped first as ADM prepares ImageNet (``center_crop=256``,
``--center-crop 256``; ``imagefiles.center_crop_arr``).

Statistics of folders, image batches and data sets are cached under
``~/.cache/genbench/stats`` (``$XDG_CACHE_HOME`` or ``$GENBENCH_STATS_CACHE`` move it;
``cache_dir=`` / ``--cache-dir`` override it, ``use_cache=False`` / ``--no-cache`` skip it). The
key covers the sha256 of every image's bytes (or of the npz file, or the data set's pinned
hash), the extractor's identity (name, weights sha256, resize mode, dimension) and the
preprocessing options, so a changed file or extractor can never hit a stale entry. An entry is
written atomically (temporary file, then rename) only after the whole pass succeeded. With the
inception extractor an entry also holds the spatial statistics (``mu_s``, ``sigma_s``).

Metrics (``metrics=`` / ``--metrics fid,is,kid,pr``; PATH_A holds the samples, PATH_B the
reference): FID always, sFID whenever both sides have spatial statistics (the result says why
not otherwise), the Inception Score of PATH_A (ADM: logits without bias, consecutive splits),
KID (clean-fid's kernel_distance) and precision/recall (k = 3, PATH_B's images as the real
manifold, as ADM uses its reference batch's ``arr_0``); ``bootstrap=`` adds a bootstrap
interval for the FID. Every result carries its convention and sample counts, and a warning
when an Inception FID rests on fewer samples than the protocol's 50,000.
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
from typing import Any, Callable, Iterator

import numpy as np

from genbench.errors import UserError

CACHE_ENV = "GENBENCH_STATS_CACHE"
#: bump when the way statistics are computed changes (invalidates every cache entry)
CACHE_VERSION = 1
IDENTITY_KEY = "genbench_identity"
DATASETS = ("digits",)
DEFAULT_SPLIT = "test"
#: the metrics ``compute_fid`` knows (sFID comes with FID whenever both sides allow it)
METRICS = ("fid", "sfid", "is", "kid", "pr")
#: the ImageNet protocol's sample count (ADM, DiT, VAR, MAR...): fewer biases FID upward
PROTOCOL_N = 50_000


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
    mu_s, sigma_s: spatial (sFID) statistics, (Ds,) and (Ds, Ds), when the source has them.
    features: float64 (N, D) features of the source's images, when they were asked for (never
        cached); for an ADM reference batch, those of its ``arr_0`` images.
    """

    mu: np.ndarray
    sigma: np.ndarray
    n: int | None
    source: str
    kind: str  # folder | images_npz | stats_npz | adm_reference | dataset | hf
    identity: dict[str, Any] | None
    cache_file: str | None = None
    from_cache: bool = False
    data_hash: str | None = None
    preprocessing: dict[str, Any] = field(default_factory=dict)
    mu_s: np.ndarray | None = None
    sigma_s: np.ndarray | None = None
    features: np.ndarray | None = None

    @property
    def dim(self) -> int:
        return int(self.mu.shape[0])

    @property
    def has_spatial(self) -> bool:
        return self.mu_s is not None and self.sigma_s is not None


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


def spatial_status(extractor) -> str | None:
    """None when the extractor gives spatial (sFID) features, else why not."""
    status = getattr(extractor, "spatial_status", None)
    if status is None:
        return f"extractor {getattr(extractor, 'name', extractor)!r} has no spatial (sFID) features"
    return status()


def logits_status(extractor) -> str | None:
    """None when the extractor gives class logits (Inception Score), else why not."""
    status = getattr(extractor, "logits_status", None)
    if status is None:
        return f"extractor {getattr(extractor, 'name', extractor)!r} has no classifier logits"
    return status()


def _dump(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def _npz_sha256(path: Path) -> str:
    from genbench.extractors import file_sha256

    return file_sha256(path)


def _looks_like_dataset(text: str) -> bool:
    name = text.partition(":")[0]
    return name in DATASETS


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


# --- npz files ---------------------------------------------------------------------------------------
#: images read from an npz at a time (an ADM sample batch at 256x256 holds 9.8 GB)
NPZ_CHUNK = 1000
_STAT_FIELDS = ("mu", "sigma", "n", "mu_s", "sigma_s", IDENTITY_KEY)


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


def _npz_images(path: Path, grey: str) -> _NpzImages:
    images = _NpzImages(path)
    if images.shape[-1] == 1 and grey != "convert":
        raise UserError(f"{path}: field arr_0 holds greyscale images (N, H, W, 1); pass grey='convert' "
                        f"(--grey convert) to replicate the channel")
    return images


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
    mu_s = sigma_s = None
    if "mu_s" in data and "sigma_s" in data:
        mu_s, sigma_s = np.asarray(data["mu_s"], np.float64), np.asarray(data["sigma_s"], np.float64)
        _check_dim(mu_s, sigma_s, getattr(extractor, "spatial_dim", None), str(path), fields=("mu_s", "sigma_s"))
    n = int(data["n"]) if "n" in data and int(data["n"]) >= 0 else None
    kind = "adm_reference" if "mu_s" in fields else "stats_npz"
    return Statistics(mu=mu, sigma=sigma, n=n, source=str(path), kind=kind, identity=stored, mu_s=mu_s,
                      sigma_s=sigma_s)


# --- image sources --------------------------------------------------------------------------------
@dataclass
class _ImageSource:
    """Images to measure: chunks of zero-argument loaders, each returning uint8 (H, W, 3).

    hash_data: the content hash (read only when the cache is used: hashing reads every file).
    """

    label: str
    kind: str
    hash_data: Callable[[], str]
    preprocessing: dict[str, Any]
    chunks: Callable[[], Iterator[list[Callable[[], np.ndarray]]]]


def _rgb(image: np.ndarray) -> np.ndarray:
    return np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image


def _array_chunks(images: np.ndarray) -> Callable[[], Iterator[list[Callable[[], np.ndarray]]]]:
    return lambda: iter([[(lambda im=im: _rgb(im)) for im in images]])


def _image_source(path, *, grey: str, alpha: str) -> _ImageSource | None:
    """The images a path names, or None when it is a statistics-only npz (or no images at all)."""
    p = Path(path)
    if p.is_dir():
        from genbench.imagefiles import ImageFolder

        folder = ImageFolder(p, grey=grey, alpha=alpha)
        pre = {"source": "image folder", "decode": "Pillow", "grey": grey, "alpha": alpha, "recursive": True}
        return _ImageSource(str(p), "folder", folder.content_hash, pre,
                            lambda: iter([[(lambda i=i: folder.load(i)) for i in range(len(folder))]]))
    if p.is_file() and p.suffix.lower() == ".npz":
        if "arr_0" not in _npz_fields(p):
            return None
        images = _npz_images(p, grey)
        pre = {"source": "npz arr_0", "grey": grey}
        return _ImageSource(str(p), "images_npz", lambda: _npz_sha256(p), pre,
                            lambda: ([(lambda im=im: _rgb(im)) for im in chunk] for chunk in images.chunks()))
    text = str(path)
    from genbench.imagefiles import HF_PREFIX

    if text.startswith(HF_PREFIX):
        from genbench.imagefiles import DatasetImages

        ds = DatasetImages(text, grey=grey, alpha=alpha)
        pre = {"source": "datasets", "column": ds.column, "decode": "Pillow", "grey": grey, "alpha": alpha}
        return _ImageSource(ds.label, "hf", ds.content_hash, pre, ds.chunks)
    if _looks_like_dataset(text):
        name, _, split = text.partition(":")
        split = split or DEFAULT_SPLIT
        from genbench import data as gdata

        images = gdata.digits_arrays(split)[0]
        pre = {"source": "dataset", "grey": "replicated to RGB (the data set is greyscale)"}
        return _ImageSource(f"{name}:{split}", "dataset", lambda: f"dataset:digits:{split}:{gdata.DIGITS_SHA256}",
                            pre, _array_chunks(images))
    return None


def _center_cropped(src: _ImageSource, size: int | None) -> _ImageSource:
    """ADM's ImageNet preprocessing applied to every image (part of the cache key)."""
    if not size:
        return src
    from genbench.imagefiles import center_crop_arr

    if size < 1:
        raise UserError(f"center_crop={size}: must be a positive image size, e.g. 256")
    pre = {**src.preprocessing, "center_crop": f"ADM center_crop_arr to {size}x{size}"}

    def chunks():
        for chunk in src.chunks():
            yield [(lambda f=f: center_crop_arr(f(), size)) for f in chunk]

    return _ImageSource(src.label, src.kind, src.hash_data, pre, chunks)


def _source_outputs(ex, src: _ImageSource, batch_size: int, spatial: bool) -> dict[str, np.ndarray]:
    """``features`` (N, D) float64, and ``spatial`` (N, Ds) when asked, of a source's images."""
    parts = []
    for chunk in src.chunks():
        if hasattr(ex, "outputs_from_loaders"):
            parts.append(ex.outputs_from_loaders(chunk, batch_size=batch_size, spatial=spatial))
        else:  # any FeatureExtractor: a stacked array (the images must share one size)
            feats = ex.features(np.stack([f() for f in chunk]), batch_size=batch_size)
            parts.append({"features": np.asarray(feats, dtype=np.float64)})
    out = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    feats = out["features"]
    if feats.ndim != 2 or len(feats) == 0:
        raise UserError(f"{src.label}: the extractor returned features of shape {feats.shape}; expected (N, D)")
    if len(feats) < 2:
        raise UserError(f"{src.label}: one image is not enough for a covariance; FID needs at least 2 (50,000 "
                        f"by convention)")
    return out


def _measure(src: _ImageSource, ex, identity: dict[str, Any], batch_size: int, cache_dir, use_cache: bool,
             spatial: bool, keep_features: bool) -> Statistics:
    """A source's statistics from the cache, or from one pass over its images (then cached)."""
    data_hash = src.hash_data() if use_cache else None
    key = cache_key(data_hash, identity, src.preprocessing) if use_cache else None
    target = _cache_file(Path(cache_dir) if cache_dir else default_cache_dir(), key) if use_cache else None
    common = dict(source=src.label, kind=src.kind, identity=identity, data_hash=data_hash,
                  preprocessing=src.preprocessing)
    if target is not None and not keep_features:
        hit = _read_cache(target, key)
        if hit is not None and (not spatial or "mu_s" in hit):
            return Statistics(mu=hit["mu"], sigma=hit["sigma"], n=int(hit["n"]), cache_file=str(target),
                              from_cache=True, mu_s=hit.get("mu_s") if spatial else None,
                              sigma_s=hit.get("sigma_s") if spatial else None, **common)
    out = _source_outputs(ex, src, batch_size, spatial)
    metrics = _image_metrics()
    mu, sigma = metrics.features_to_statistics(out["features"])
    mu_s = sigma_s = None
    if "spatial" in out:
        mu_s, sigma_s = metrics.features_to_statistics(out["spatial"])
    n = len(out["features"])
    if target is not None:  # only after the whole pass succeeded
        write_statistics_npz(target, mu, sigma, n=n, identity=identity, mu_s=mu_s, sigma_s=sigma_s,
                             extra={"genbench_key": key, "genbench_source": src.label,
                                    "genbench_data_hash": data_hash, "genbench_preprocessing": src.preprocessing})
    return Statistics(mu=mu, sigma=sigma, n=n, cache_file=str(target) if target else None, from_cache=False,
                      mu_s=mu_s, sigma_s=sigma_s, features=out["features"] if keep_features else None, **common)


def source_description(path: str | Path) -> str:
    return str(path)


def path_to_statistics(path: str | Path, extractor="inception", mode: str | None = None, *,
                       batch_size: int = 64, device: str | None = None, grey: str = "error",
                       alpha: str = "error", cache_dir: str | Path | None = None, use_cache: bool = True,
                       npz_prefer: str = "stats", trust_unknown: bool = False,
                       threads: int | None = None, center_crop: int | None = None,
                       spatial: bool | None = None, keep_features: bool = False) -> Statistics:
    """Statistics (mu, sigma, n; mu_s, sigma_s where spatial) of an image folder, a ``.npz``,
    a data set name or ``hf:PATH[:SPLIT]``.

    extractor: an extractor name (``inception``, ``torchscript:FILE``...) or a FeatureExtractor.
    mode: resize mode for a named extractor (None: its default, ``clean``).
    npz_prefer: for an npz holding both statistics and images (ADM's reference batch):
        ``"stats"`` uses its ``mu``/``sigma``; ``"images"`` recomputes them from ``arr_0``.
    center_crop: ADM's ``center_crop_arr`` to this size before the extractor (real images).
    spatial: compute sFID's spatial statistics too (None: whenever the extractor gives them).
    keep_features: also return the (N, D) features in ``.features`` (for KID, precision/recall,
        IS; for a statistics file with ``arr_0``, the features of those images).
    """
    if npz_prefer not in ("stats", "images"):
        raise UserError(f"npz_prefer={npz_prefer!r}: use stats or images")
    if batch_size < 1:
        raise UserError(f"batch_size={batch_size}: must be >= 1")
    ex = _get_extractor(extractor, mode, device, trust_unknown, threads)
    identity = _identity(ex)
    reason = spatial_status(ex)
    if spatial and reason is not None:
        raise UserError(reason)
    want_spatial = reason is None if spatial is None else bool(spatial)
    p = Path(path)

    if p.is_file():
        if p.suffix.lower() != ".npz":
            raise UserError(f"{p}: a source must be a folder of images, a .npz of statistics or images, "
                            f"hf:PATH[:SPLIT], or a data set name ({', '.join(DATASETS)}); got a "
                            f"{p.suffix or 'plain'} file")
        fields = _npz_fields(p)
        has_stats = "mu" in fields and "sigma" in fields
        has_images = "arr_0" in fields
        if has_stats and (npz_prefer == "stats" or not has_images):
            stats = _stats_from_npz(p, fields, ex, identity)
            if spatial is False:  # a file's own spatial statistics count whatever the extractor gives
                stats.mu_s = stats.sigma_s = None
            if keep_features and has_images:
                src = _center_cropped(_image_source(p, grey=grey, alpha=alpha), center_crop)
                stats.features = _source_outputs(ex, src, batch_size, False)["features"]
            return stats
        if not has_images:
            raise UserError(f"{p}: the npz has fields {', '.join(sorted(fields)) or 'none'}; expected mu and sigma "
                            f"(statistics) or arr_0 (uint8 images)")
    src = _image_source(path, grey=grey, alpha=alpha)
    if src is None:
        raise UserError(f"{path}: no such file or folder, not hf:PATH[:SPLIT], and not a data set name "
                        f"({', '.join(DATASETS)}, optionally :SPLIT)")
    src = _center_cropped(src, center_crop)
    return _measure(src, ex, identity, batch_size, cache_dir, use_cache, want_spatial, keep_features)


def path_to_features(path: str | Path, extractor="inception", mode: str | None = None, *, batch_size: int = 64,
                     device: str | None = None, grey: str = "error", alpha: str = "error",
                     trust_unknown: bool = False, center_crop: int | None = None) -> np.ndarray:
    """float64 (N, D) features of an image folder, an npz's ``arr_0``, a data set or
    ``hf:PATH[:SPLIT]`` (not cached)."""
    ex = _get_extractor(extractor, mode, device, trust_unknown)
    p = Path(path)
    if p.is_file() and p.suffix.lower() == ".npz" and "arr_0" not in _npz_fields(p):
        raise UserError(f"{p}: features need images (field arr_0); this file has {', '.join(_npz_fields(p))}")
    src = _image_source(path, grey=grey, alpha=alpha)
    if src is None:
        raise UserError(f"{path}: no such file or folder, not hf:PATH[:SPLIT], and not a data set name "
                        f"({', '.join(DATASETS)})")
    return _source_outputs(ex, _center_cropped(src, center_crop), batch_size, False)["features"]


# --- metrics ------------------------------------------------------------------------------------------
def _fid(mu_a, sigma_a, mu_b, sigma_b, sqrtm: str | None, what: str) -> tuple[float, str]:
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
        value = float(fn(mu_a, sigma_a, mu_b, sigma_b, **kw))
    except ValueError as e:  # e.g. scipy's sqrtm with a large imaginary part
        raise UserError(f"{what}: {e}") from None
    return value, str(method or "default of genbench.metrics.image.statistics_to_fid")


def parse_metrics(text: str | tuple | list) -> tuple[str, ...]:
    """``"fid,is,kid,pr"`` (or a sequence) -> the metric names, checked; FID is always included."""
    names = [m.strip().lower() for m in (text.split(",") if isinstance(text, str) else text) if m.strip()]
    unknown = [m for m in names if m not in METRICS]
    if unknown:
        raise UserError(f"--metrics: unknown metric(s) {', '.join(unknown)}; use a comma-separated list of "
                        f"{', '.join(METRICS)}")
    return tuple(dict.fromkeys(["fid", *names]))


def _images_needed(s: Statistics, what: str) -> np.ndarray:
    if s.features is None:
        raise UserError(f"{s.source}: {what} needs the images of this side, but it holds only statistics (fields "
                        f"mu, sigma); give the images (a folder, an npz with arr_0, a data set)")
    return s.features


def statistics_to_metrics(a: Statistics, b: Statistics, extractor, metrics=("fid",), *, sqrtm: str | None = None,
                          bootstrap: int = 0, is_splits: int = 10, kid_subsets: int = 100,
                          kid_subset_size: int = 1000, pr_k: int = 3, seed: int = 0) -> dict[str, Any]:
    """Metrics of samples ``a`` against reference ``b`` (their ``Statistics``, with ``features``
    where a metric needs them): a flat dict of values, each with its sample counts and options.

    fid (always) and sfid (whenever both sides have spatial statistics; ``sfid_note`` says why
    not otherwise, and asking for ``sfid`` explicitly then is an error); ``is``: Inception Score
    of ``a`` (ADM: logits without bias, ``is_splits`` consecutive parts, no shuffle); ``kid``:
    clean-fid's ``kernel_distance`` convention; ``pr``: precision and recall of ``a`` against
    ``b``'s images, k = ``pr_k``; ``bootstrap``: that many bootstrap replicates of ``a`` against
    ``b``'s fixed statistics give ``fid_ci`` (95 %, basic interval).
    """
    im = _image_metrics()
    metrics = parse_metrics(metrics)
    if a.dim != b.dim:
        raise UserError(f"{a.source} has {a.dim}-d statistics but {b.source} has {b.dim}-d; use one extractor for both")
    value, method = _fid(a.mu, a.sigma, b.mu, b.sigma, sqrtm, f"FID of {a.source} against {b.source}")
    out: dict[str, Any] = {"fid": value, "sqrtm": method, "n_a": a.n, "n_b": b.n, "metrics": list(metrics)}

    missing = [s for s in (a, b) if not s.has_spatial]
    note = None
    if missing:
        reason = spatial_status(extractor)
        files = [s.source for s in missing if s.kind in ("stats_npz", "adm_reference")]
        note = (f"no sFID: {reason}" if reason is not None and len(files) < len(missing) else
                f"no sFID: no spatial statistics (mu_s, sigma_s) in {' and '.join(files or [s.source for s in missing])}")
    elif a.mu_s.shape != b.mu_s.shape:
        note = (f"no sFID: spatial statistics of {a.mu_s.shape[0]} dimensions ({a.source}) against "
                f"{b.mu_s.shape[0]} ({b.source})")
    if note is not None:
        if "sfid" in metrics:
            raise UserError(note.replace("no sFID: ", "sFID asked for, but: "))
        out.update(sfid=None, sfid_note=note)
    else:
        from genbench.extractors import SPATIAL_LAYER

        out.update(sfid=_fid(a.mu_s, a.sigma_s, b.mu_s, b.sigma_s, sqrtm, f"sFID of {a.source} against {b.source}")[0],
                   sfid_dim=int(a.mu_s.shape[0]), sfid_layer=SPATIAL_LAYER, sfid_note=None)

    if "is" in metrics:
        if logits_status(extractor) is not None:
            raise UserError(f"IS: {logits_status(extractor)}")
        fa = _images_needed(a, "the Inception Score")
        score, std = im.logits_to_inception_score(extractor.features_to_logits(fa), splits=min(is_splits, len(fa)),
                                                  inputs="logits")
        out.update({"is": score, "is_std": std, "is_splits": min(is_splits, len(fa)), "is_n": len(fa),
                    "is_convention": "ADM: softmax of pool_3 x output weight (no bias), consecutive splits, "
                                     "no shuffle"})
    if "kid" in metrics:
        fa, fb = _images_needed(a, "KID"), _images_needed(b, "KID")
        size = min(kid_subset_size, len(fa), len(fb))
        kid, kid_std = im.features_to_kid(fa, fb, num_subsets=kid_subsets, max_subset_size=size, seed=seed)
        out.update(kid=kid, kid_std=kid_std, kid_subsets=kid_subsets, kid_subset_size=size,
                   kid_n_a=len(fa), kid_n_b=len(fb))
    if "pr" in metrics:
        fa, fb = _images_needed(a, "precision/recall"), _images_needed(b, "precision/recall")
        precision, recall = im.features_to_precision_recall(fb, fa, k=pr_k)
        out.update(precision=precision, recall=recall, pr_k=pr_k, pr_n_real=len(fb), pr_n_fake=len(fa))
    if bootstrap:
        fa = _images_needed(a, "the bootstrap interval of FID")
        boot = im.bootstrap_fid(fa, statistics2=(b.mu, b.sigma), n_boot=int(bootstrap), seed=seed, resample="first")
        out.update(fid_ci=[boot.low, boot.high], fid_ci_level=boot.level, fid_boot_std=boot.std,
                   fid_bootstrap=boot.n_boot, fid_bootstrap_method="eigh, samples resampled, reference fixed")
    out["warnings"] = protocol_warnings(extractor, a.n)
    return out


def protocol_warnings(extractor, n: int | None) -> list[str]:
    """A warning when an Inception FID (ImageNet-style) rests on fewer than 50,000 samples."""
    if getattr(extractor, "name", None) != "inception" or n is None or n >= PROTOCOL_N:
        return []
    return [f"FID from {n} samples: the ImageNet protocol (ADM, DiT, VAR, MAR) uses {PROTOCOL_N:,}; FID is biased "
            f"upward at smaller N, so this number is not comparable to published ones"]


def compute_fid(path_a, path_b, extractor="inception", mode: str | None = None, *, batch_size: int = 64,
                device: str | None = None, grey: str = "error", alpha: str = "error",
                cache_dir: str | Path | None = None, use_cache: bool = True, trust_unknown: bool = False,
                sqrtm: str | None = None, npz_prefer: str = "stats", threads: int | None = None,
                metrics=("fid",), bootstrap: int = 0, center_crop: int | None = None) -> dict[str, Any]:
    """FID (and sFID, IS, KID, precision/recall: ``metrics``) of samples ``path_a`` against
    reference ``path_b``, with its convention: a flat dict (``fid``, ``sfid``, ``extractor``,
    ``weights_sha256``, ``mode``, ``dim``, ``n_a``, ``n_b``, ``sqrtm``, sources, cache use...).
    center_crop: ADM's centre crop applied to both sides' images (real images, e.g. ImageNet)."""
    ex = _get_extractor(extractor, mode, device, trust_unknown, threads)
    metrics = parse_metrics(metrics)
    if "is" in metrics and logits_status(ex) is not None:  # before any pass over the images
        raise UserError(f"IS: {logits_status(ex)}")
    both = bool({"kid", "pr"} & set(metrics))  # these need both sides' features; IS and bootstrap only a's
    kw = dict(batch_size=batch_size, grey=grey, alpha=alpha, cache_dir=cache_dir, use_cache=use_cache,
              npz_prefer=npz_prefer, center_crop=center_crop)
    a = path_to_statistics(path_a, ex, keep_features=both or bool(bootstrap) or "is" in metrics, **kw)
    b = path_to_statistics(path_b, ex, keep_features=both, **kw)
    if a.dim != b.dim:
        raise UserError(f"{path_a} has {a.dim}-d statistics but {path_b} has {b.dim}-d; use one extractor for both")
    out = statistics_to_metrics(a, b, ex, metrics, sqrtm=sqrtm, bootstrap=bootstrap)
    ident = _identity(ex)
    out.update({
        "extractor": ex.describe().get("extractor"),
        "weights_sha256": ident.get("weights_sha256"),
        "mode": ident.get("resize", getattr(ex, "mode", None)),
        "dim": a.dim,
        "quantisation": "uint8 as stored in the sources",
        "center_crop": center_crop,
        "a": a.source,
        "b": b.source,
        "a_statistics": statistics_origin(a),
        "b_statistics": statistics_origin(b),
        "identity": ident,
    })
    return out


def compute_inception_score(path, extractor="inception", mode: str | None = None, *, batch_size: int = 64,
                            device: str | None = None, grey: str = "error", alpha: str = "error",
                            trust_unknown: bool = False, splits: int = 10,
                            center_crop: int | None = None) -> dict[str, Any]:
    """The Inception Score of one source's images (ADM's convention), with its convention."""
    ex = _get_extractor(extractor, mode, device, trust_unknown)
    if logits_status(ex) is not None:
        raise UserError(f"IS: {logits_status(ex)}")
    feats = path_to_features(path, ex, batch_size=batch_size, grey=grey, alpha=alpha, center_crop=center_crop)
    k = min(splits, len(feats))
    score, std = _image_metrics().logits_to_inception_score(ex.features_to_logits(feats), splits=k, inputs="logits")
    ident = _identity(ex)
    return {"is": score, "is_std": std, "is_splits": k, "n": len(feats), "source": str(path),
            "extractor": ex.describe().get("extractor"), "weights_sha256": ident.get("weights_sha256"),
            "mode": ident.get("resize"), "quantisation": "uint8 as stored in the source",
            "is_convention": "ADM: softmax of pool_3 x output weight (no bias), consecutive splits, no shuffle"}


def statistics_origin(s: Statistics) -> str:
    """Where statistics came from, in words (a file, the cache, computed)."""
    if s.kind in ("stats_npz", "adm_reference"):
        return "file, extractor recorded and checked" if s.identity else "file from another tool: only its dimension was checked"
    return "cache" if s.from_cache else ("computed, cached" if s.cache_file else "computed")


# --- CLI ----------------------------------------------------------------------------------------
def _add_common(p: argparse.ArgumentParser) -> None:
    from genbench.extractors import RESIZE_MODES

    p.add_argument("--extractor", default="inception", help="inception, inception:FILE, torchscript:FILE, "
                   "clip:ARCH:FILE or a registered name (default inception)")
    p.add_argument("--mode", default=None, choices=list(RESIZE_MODES),
                   help="resize mode (default: the extractor's, clean for inception)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default=None, help="cpu, cuda or auto (default cpu)")
    p.add_argument("--grey", default="error", choices=["error", "convert"],
                   help="a greyscale image: error (default) or convert (replicate the channel)")
    p.add_argument("--alpha", default="error", choices=["error", "drop"],
                   help="an image with transparency: error (default) or drop the alpha channel")
    p.add_argument("--center-crop", type=int, default=None, metavar="SIZE",
                   help="ADM's ImageNet preprocessing of the images first (BOX halvings, BICUBIC, centre crop)")
    p.add_argument("--trust-unknown", action="store_true", help="accept Inception weights whose sha256 is not known")


def _add_cache(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cache-dir", default=None, help=f"statistics cache (default ~/.cache/genbench/stats, or ${CACHE_ENV})")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the statistics cache")
    p.add_argument("--npz-prefer", default="stats", choices=["stats", "images"],
                   help="an npz with both statistics and arr_0 images: use which (default stats)")


def _fmt_n(n) -> str:
    return "?" if n is None else str(n)


def result_to_text(result: dict[str, Any]) -> str:
    """``compute_fid``'s result as lines of text: each number with its convention and counts."""
    sha = (result.get("weights_sha256") or "")[:12]
    lines = [f"FID {result['fid']:.6g}  ({result['extractor']} {sha} mode={result['mode']}, "
             f"n_a={_fmt_n(result['n_a'])}, n_b={_fmt_n(result['n_b'])}, sqrtm={result['sqrtm']})"]
    if result.get("fid_ci"):
        low, high = result["fid_ci"]
        lines.append(f"  {result['fid_ci_level']:.0%} bootstrap interval [{low:.6g}, {high:.6g}] "
                     f"({result['fid_bootstrap']} replicates of the samples, reference fixed)")
    if result.get("sfid") is not None:
        lines.append(f"sFID {result['sfid']:.6g}  ({result['sfid_layer']}, {result['sfid_dim']}-d, "
                     f"n_a={_fmt_n(result['n_a'])}, n_b={_fmt_n(result['n_b'])})")
    else:
        lines.append(f"sFID n/a: {result['sfid_note'].removeprefix('no sFID: ')}")
    if "is" in result:
        lines.append(f"IS {result['is']:.6g} +- {result['is_std']:.3g}  (of {result['a']}, {result['is_splits']} "
                     f"splits, n={result['is_n']}; {result['is_convention']})")
    if "kid" in result:
        lines.append(f"KID {result['kid']:.6g} +- {result['kid_std']:.3g}  ({result['kid_subsets']} subsets of "
                     f"{result['kid_subset_size']}, n_a={result['kid_n_a']}, n_b={result['kid_n_b']})")
    if "precision" in result:
        lines.append(f"precision {result['precision']:.4f}, recall {result['recall']:.4f}  (k={result['pr_k']}, "
                     f"{result['pr_n_fake']} samples against {result['pr_n_real']} reference images)")
    return "\n".join(lines)


def cmd_fid(args: argparse.Namespace) -> int:
    result = compute_fid(args.path_a, args.path_b, args.extractor, args.mode, batch_size=args.batch_size,
                         device=args.device, grey=args.grey, alpha=args.alpha, cache_dir=args.cache_dir,
                         use_cache=not args.no_cache, trust_unknown=args.trust_unknown, sqrtm=args.sqrtm,
                         npz_prefer=args.npz_prefer, metrics=parse_metrics(args.metrics), bootstrap=args.bootstrap,
                         center_crop=args.center_crop)
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        print(result_to_text(result))
    for w in result["warnings"]:
        print(f"genbench: warning: {w}", file=sys.stderr)
    return 0


def cmd_is(args: argparse.Namespace) -> int:
    result = compute_inception_score(args.path, args.extractor, args.mode, batch_size=args.batch_size,
                                     device=args.device, grey=args.grey, alpha=args.alpha,
                                     trust_unknown=args.trust_unknown, splits=args.splits,
                                     center_crop=args.center_crop)
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        print(f"IS {result['is']:.6g} +- {result['is_std']:.3g}  ({result['extractor']} "
              f"{(result['weights_sha256'] or '')[:12]} mode={result['mode']}, {result['is_splits']} splits, "
              f"n={result['n']}; {result['is_convention']})")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    ex = _get_extractor(args.extractor, args.mode, args.device, args.trust_unknown)
    stats = path_to_statistics(args.path, ex, batch_size=args.batch_size, grey=args.grey, alpha=args.alpha,
                               cache_dir=args.cache_dir, use_cache=not args.no_cache, npz_prefer=args.npz_prefer,
                               center_crop=args.center_crop)
    identity = _identity(ex)
    if stats.identity is None:
        raise UserError(f"{args.path}: a statistics file from another tool records no extractor; genbench stats "
                        f"will not relabel it as {identity.get('extractor')}'s")
    out = write_statistics_npz(args.out, stats.mu, stats.sigma, n=stats.n, identity=identity,
                               mu_s=stats.mu_s, sigma_s=stats.sigma_s,
                               extra={"genbench_source": stats.source,
                                      "genbench_data_hash": stats.data_hash or "",
                                      "genbench_preprocessing": stats.preprocessing})
    spatial = f", spatial {stats.mu_s.shape[0]}-d" if stats.has_spatial else ""
    print(f"statistics: {out} (n={stats.n}, dim={stats.dim}{spatial}, {identity.get('extractor')} "
          f"mode={identity.get('resize')})")
    return 0


def add_commands(subparsers) -> None:
    """Add ``fid``, ``is`` and ``stats`` to the ``genbench`` CLI's subparsers."""
    fid = subparsers.add_parser("fid", help="FID (sFID, IS, KID, precision/recall) of samples against a reference")
    fid.add_argument("path_a", metavar="PATH_A", help="the samples: folder, npz, data set or hf:PATH[:SPLIT]")
    fid.add_argument("path_b", metavar="PATH_B", help="the reference: folder, npz (statistics, ADM reference "
                     "batch), data set or hf:PATH[:SPLIT]")
    _add_common(fid)
    _add_cache(fid)
    fid.add_argument("--metrics", default="fid", help=f"comma-separated, from {','.join(METRICS)} (default fid; "
                     f"sFID is reported whenever both sides allow it)")
    fid.add_argument("--bootstrap", type=int, default=0, metavar="N",
                     help="N bootstrap replicates of the samples for a 95%% interval of the FID (default off)")
    fid.add_argument("--sqrtm", default=None, help="matrix square root method of statistics_to_fid (default its own)")
    fid.add_argument("--json", action="store_true", help="print one JSON object: the numbers and their convention")
    fid.set_defaults(func=cmd_fid)

    is_ = subparsers.add_parser("is", help="Inception Score of one image source (ADM's convention)")
    is_.add_argument("path", metavar="PATH")
    _add_common(is_)
    is_.add_argument("--splits", type=int, default=10, help="consecutive splits, no shuffle (default 10)")
    is_.add_argument("--json", action="store_true")
    is_.set_defaults(func=cmd_is)

    stats = subparsers.add_parser("stats", help="write a source's feature statistics to an npz (mu, sigma + identity)")
    stats.add_argument("path", metavar="PATH")
    _add_common(stats)
    _add_cache(stats)
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
    "Statistics", "path_to_statistics", "path_to_features", "compute_fid", "compute_inception_score",
    "statistics_to_metrics", "parse_metrics", "protocol_warnings", "result_to_text", "spatial_status", "logits_status",
    "statistics_origin", "add_commands", "cache_key",
    "default_cache_dir", "write_statistics_npz", "CACHE_ENV", "METRICS", "PROTOCOL_N",
]
