"""Image sources -> features -> statistics (mean and covariance), read from or written to the
cache; statistics read from npz files (clean-fid's, ADM's reference batches, genbench's own,
which record the extractor that made them: a file from another extractor is refused)."""
from __future__ import annotations

import json
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from genbench.errors import UserError
from genbench.features.build import extractor_identity
from genbench.features.cache import (IDENTITY_KEY, cache_file_path, cache_key, default_cache_dir, read_cache,
                                     write_statistics_npz)
from genbench.features.npz import npz_fields, npz_read
from genbench.features.sources import DATASETS, ImageSource, path_to_image_source, with_center_crop

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


def _metrics():
    from genbench.metrics import image

    return image


def resolve_extractor(extractor, mode: str | None, device: str | None, trust_unknown: bool | None, threads=None):
    from genbench.features.build import build_extractor

    if isinstance(extractor, str):
        return build_extractor(extractor, mode=mode, device=device, trust_unknown=trust_unknown or None,
                               threads=threads)
    have = getattr(extractor, "mode", None)
    if mode is not None and have is not None and have != mode:
        raise UserError(f"mode={mode!r} but the extractor given was built with mode {have!r}; build it with "
                        f"mode={mode!r} or leave mode out")
    return extractor


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


def _check_dim(mu: np.ndarray, sigma: np.ndarray, dim: int | None, where: str, fields=("mu", "sigma")) -> None:
    if mu.ndim != 1 or sigma.ndim != 2 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise UserError(f"{where}: {fields[0]} has shape {mu.shape} and {fields[1]} {sigma.shape}; expected (D,) "
                        f"and (D, D)")
    if dim is not None and mu.shape[0] != dim:
        raise UserError(
            f"{where}: statistics of dimension {mu.shape[0]} (field {fields[0]}), but the extractor gives "
            f"{dim}-d features; compute both sides with the same extractor (genbench stats PATH --extractor ...)"
        )
    check_covariance(mu, sigma, where, fields)


def check_covariance(mu: np.ndarray, sigma: np.ndarray, where: str, fields=("mu", "sigma")) -> None:
    """A covariance is finite, symmetric and positive semi-definite (up to float rounding);
    anything else would give a silently wrong (or complex) Fréchet distance."""
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise UserError(f"{where}: {fields[0]} or {fields[1]} holds NaN or infinity; recompute the statistics")
    scale = float(np.abs(sigma).max()) or 1.0
    if not np.allclose(sigma, sigma.T, rtol=0, atol=1e-6 * scale):
        raise UserError(f"{where}: {fields[1]} is not symmetric, so not a covariance; recompute the statistics")
    low = float(np.linalg.eigvalsh(sigma)[0])
    if low < -1e-5 * scale:
        raise UserError(f"{where}: {fields[1]} is not positive semi-definite (smallest eigenvalue {low:.3g}), so "
                        "not a covariance; recompute the statistics")


_STAT_FIELDS = ("mu", "sigma", "n", "mu_s", "sigma_s", IDENTITY_KEY)


def npz_to_statistics(path: Path, fields: list[str], extractor, identity: dict[str, Any]) -> Statistics:
    data = npz_read(path, _STAT_FIELDS)
    for key in ("mu", "sigma", "n", "mu_s", "sigma_s"):
        if key in data and (data[key].dtype.kind not in "iuf" or (key == "n" and data[key].shape != ())):
            raise UserError(f"{path}: field {key} holds {data[key].dtype} {data[key].shape}, not "
                            f"{'one whole number' if key == 'n' else 'numbers'}; recompute the statistics")
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


def _pieces(src: ImageSource, rows: int | None):
    """A source's loaders, chunk by chunk, in pieces of at most ``rows`` (None: whole chunks)."""
    for chunk in src.chunks():
        step = rows or max(1, len(chunk))
        for start in range(0, len(chunk), step):
            yield chunk[start: start + step]


def source_to_output_parts(ex, src: ImageSource, batch_size: int, spatial: bool, rows: int | None = None,
                           workers: int | None = None):
    """Yield ``features`` (B, D) float64 (and ``spatial`` (B, Ds) when asked) of a source's images,
    chunk by chunk (``rows``: at most that many images per extractor call, for streaming), decoded
    by ``genbench.features.pipeline`` (``workers`` as there)."""
    from genbench.features.pipeline import loaders_to_images

    first_shape: list[tuple] = []
    for piece in _pieces(src, rows):
        if hasattr(ex, "outputs_from_loaders"):
            yield ex.outputs_from_loaders(piece, batch_size=batch_size, spatial=spatial, workers=workers,
                                          progress=src.label)
            continue
        # any FeatureExtractor: a stacked array (the images must share one size)
        images = loaders_to_images(piece, workers=workers)
        shapes = sorted({tuple(im.shape) for im in images} | set(first_shape[:1]))
        if len(shapes) > 1:
            raise UserError(f"{src.label}: images of different sizes ({', '.join(map(str, shapes[:4]))}), and "
                            f"extractor {getattr(ex, 'name', type(ex).__name__)!r} does not resize; resize them "
                            "to one size first, or use an extractor that resizes (inception, torchscript:FILE)")
        first_shape[:1] = shapes
        feats = ex.features(np.stack(images), batch_size=batch_size)
        yield {"features": np.asarray(feats, dtype=np.float64)}


def _check_features(feats, n: int, src: ImageSource) -> None:
    if feats.ndim != 2 or n == 0:
        raise UserError(f"{src.label}: the extractor returned features of shape {tuple(feats.shape)}; "
                        f"expected (N, D)")
    if n < 2:
        raise UserError(f"{src.label}: one image is not enough for a covariance; FID needs at least 2 (50,000 "
                        f"by convention)")


def source_to_outputs(ex, src: ImageSource, batch_size: int, spatial: bool,
                      workers: int | None = None) -> dict[str, np.ndarray]:
    """``features`` (N, D) float64, and ``spatial`` (N, Ds) when asked, of a source's images."""
    parts = list(source_to_output_parts(ex, src, batch_size, spatial, workers=workers))
    out = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    _check_features(out["features"], len(out["features"]), src)
    return out


def sources_to_accumulators(ex, sources: Sequence[ImageSource], batch_size: int, spatial: Sequence[bool],
                            keeps: Sequence[int | None], seed: int = 0,
                            workers: int | None = None) -> list[dict[str, Any]]:
    """One streamed pass over several sources: per source, ``FeatureAccumulator``s of
    ``features`` (keeping rows as its ``keeps`` entry says) and, where its ``spatial`` entry
    asks, ``spatial`` (keeping none). For a ``ResizingExtractor`` every source goes through ONE
    decode session (``pipeline.loader_groups_to_outputs``: the next source's first batches
    decode while this one's last run through the network; on CUDA the sums stay on the device
    until ``statistics()``), in pieces of ``STREAM_IMAGES`` as one source alone would be."""
    from genbench.features import ranks
    from genbench.features.accumulate import STREAM_IMAGES, FeatureAccumulator
    from genbench.features.extractor_base import ResizingExtractor

    # under torchrun each rank streams its range of each source whose rows can be merged back
    splits = [ranks.splits_accumulation(keep) for keep in keeps]
    lengths: list[list[int]] = [[] for _ in sources]
    parts_of = [ranks.source_rank_part(src, n) if split else src for src, split, n in zip(sources, splits, lengths)]

    def stream() -> list[dict[str, Any]]:
        accs: list[dict[str, Any]] = [{"features": FeatureAccumulator(keep, seed)} for keep in keeps]

        def add(i: int, part: dict) -> None:
            _check_features(part["features"], 2, sources[i])
            for key, value in part.items():
                if key == "features" or spatial[i]:
                    accs[i].setdefault(key, FeatureAccumulator(0)).add(value)

        if isinstance(ex, ResizingExtractor):
            from genbench.features.pipeline import loader_groups_to_outputs, statistics_on_device

            groups = ((i, src.label, piece) for i, src in enumerate(parts_of) for piece in _pieces(src, STREAM_IMAGES))
            # closing: on an error here the session (and its pool's lock) is given back at once
            with closing(loader_groups_to_outputs(ex, groups, batch_size=batch_size, spatial=any(spatial),
                                                  workers=workers, on_device=statistics_on_device(ex))) as parts:
                for i, part in parts:
                    add(i, part)
        else:
            for i, src in enumerate(parts_of):
                for part in source_to_output_parts(ex, src, batch_size, spatial[i], rows=STREAM_IMAGES,
                                                   workers=workers):
                    add(i, part)
        return accs

    # under torchrun a rank's error (an unreadable image in its range) fails the cell on every rank
    accs = ranks.checked(stream) if any(splits) else stream()
    accs = [ranks.reduce_accumulators(acc, keep, n) if split else acc
            for acc, keep, split, n in zip(accs, keeps, splits, lengths)]
    for acc, src in zip(accs, sources):
        _check_features(np.zeros((acc["features"].n, 1)), acc["features"].n, src)
    return accs


def source_to_accumulators(ex, src: ImageSource, batch_size: int, spatial: bool, keep: int | None = 0,
                           seed: int = 0, workers: int | None = None) -> dict[str, Any]:
    """One streamed pass: ``FeatureAccumulator``s of ``features`` (keeping rows as ``keep`` says)
    and, when asked, ``spatial`` (keeping none): never all features in memory unless kept.
    Under torchrun each rank streams its range of the images and the accumulators are merged
    (``genbench.features.ranks``)."""
    return sources_to_accumulators(ex, [src], batch_size, [spatial], [keep], seed, workers)[0]


@dataclass
class _Pass:
    """A source still to be measured, and what its accumulators become."""

    src: ImageSource
    keep: int | None
    spatial: bool
    finish: Callable[[dict[str, Any]], Statistics]


def _plan_measure(src: ImageSource, identity: dict[str, Any], cache_dir, use_cache: bool, spatial: bool,
                  keep_features: bool, feature_cap: int | None = None) -> Statistics | _Pass:
    """A source's statistics from the cache, or the pass over its images that gives them (then cached)."""
    data_hash = src.hash_data() if use_cache else None
    key = cache_key(data_hash, identity, src.preprocessing) if use_cache else None
    target = cache_file_path(Path(cache_dir) if cache_dir else default_cache_dir(), key) if use_cache else None
    common = dict(source=src.label, kind=src.kind, identity=identity, data_hash=data_hash,
                  preprocessing=src.preprocessing)
    if target is not None and not keep_features:
        from genbench.features.ranks import all_ranks

        hit = read_cache(target, key)
        if all_ranks(hit is not None and (not spatial or "mu_s" in hit)):  # under torchrun: all hit, or all compute
            return Statistics(mu=hit["mu"], sigma=hit["sigma"], n=int(hit["n"]), cache_file=str(target),
                              from_cache=True, mu_s=hit.get("mu_s") if spatial else None,
                              sigma_s=hit.get("sigma_s") if spatial else None, **common)
    from genbench.features.ranks import is_writer

    def finish(acc: dict[str, Any]) -> Statistics:
        mu, sigma = acc["features"].statistics(src.label)
        mu_s = sigma_s = None
        if "spatial" in acc:
            mu_s, sigma_s = acc["spatial"].statistics(f"{src.label} (spatial)")
        n = acc["features"].n
        if target is not None and is_writer():  # only after the whole pass succeeded; rank 0 alone under torchrun
            write_statistics_npz(target, mu, sigma, n=n, identity=identity, mu_s=mu_s, sigma_s=sigma_s,
                                 extra={"genbench_key": key, "genbench_source": src.label,
                                        "genbench_data_hash": data_hash,
                                        "genbench_preprocessing": src.preprocessing})
        return Statistics(mu=mu, sigma=sigma, n=n, cache_file=str(target) if target else None, from_cache=False,
                          mu_s=mu_s, sigma_s=sigma_s, features=acc["features"].rows() if keep_features else None,
                          **common)

    return _Pass(src, feature_cap if keep_features else 0, spatial, finish)


def _plan_path(path, ex, identity: dict[str, Any], *, grey: str, alpha: str, cache_dir, use_cache: bool,
               npz_prefer: str, center_crop: int | None, spatial: bool | None, want_spatial: bool,
               keep_features: bool, feature_cap: int | None) -> Statistics | _Pass:
    """What ``path_to_statistics`` does for one path, short of the pass over images."""
    p = Path(path)
    if p.is_file():
        if p.suffix.lower() != ".npz":
            raise UserError(f"{p}: a source must be a folder of images, a .npz of statistics or images, "
                            f"hf:PATH[:SPLIT], or a data set name ({', '.join(DATASETS)}); got a "
                            f"{p.suffix or 'plain'} file")
        fields = npz_fields(p)
        has_stats = "mu" in fields and "sigma" in fields
        has_images = "arr_0" in fields
        if has_stats and (npz_prefer == "stats" or not has_images):
            stats = npz_to_statistics(p, fields, ex, identity)
            if spatial is False:  # a file's own spatial statistics count whatever the extractor gives
                stats.mu_s = stats.sigma_s = None
            if not (keep_features and has_images):
                return stats

            def with_features(acc: dict[str, Any]) -> Statistics:
                stats.features = acc["features"].rows()
                return stats

            src = with_center_crop(path_to_image_source(p, grey=grey, alpha=alpha), center_crop)
            return _Pass(src, feature_cap, False, with_features)
        if not has_images:
            raise UserError(f"{p}: the npz has fields {', '.join(sorted(fields)) or 'none'}; expected mu and sigma "
                            f"(statistics) or arr_0 (uint8 images)")
    src = path_to_image_source(path, grey=grey, alpha=alpha)
    if src is None:
        raise UserError(f"{path}: no such file or folder, not hf:PATH[:SPLIT], and not a data set name "
                        f"({', '.join(DATASETS)}, optionally :SPLIT)")
    return _plan_measure(with_center_crop(src, center_crop), identity, cache_dir, use_cache, want_spatial,
                         keep_features, feature_cap)


def path_to_statistics(path: str | Path, extractor="inception", mode: str | None = None, *,
                       batch_size: int = 64, device: str | None = None, grey: str = "error",
                       alpha: str = "error", cache_dir: str | Path | None = None, use_cache: bool = True,
                       npz_prefer: str = "stats", trust_unknown: bool = False,
                       threads: int | None = None, center_crop: int | None = None,
                       spatial: bool | None = None, keep_features: bool = False,
                       feature_cap: int | None = None, workers: int | None = None) -> Statistics:
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
    feature_cap: keep at most this many rows (a seeded uniform sample) in ``.features``; the
        statistics are streamed over every image either way (None: keep all).
    workers: decode worker processes (``genbench.features.decode_workers``; None: automatic, 0: threads).
    """
    return paths_to_statistics([path], extractor, mode, batch_size=batch_size, device=device, grey=grey,
                               alpha=alpha, cache_dir=cache_dir, use_cache=use_cache, npz_prefer=npz_prefer,
                               trust_unknown=trust_unknown, threads=threads, center_crop=center_crop,
                               spatial=spatial, keep_features=[keep_features], feature_cap=[feature_cap],
                               workers=workers)[0]


def paths_to_statistics(paths: Sequence[str | Path], extractor="inception", mode: str | None = None, *,
                        batch_size: int = 64, device: str | None = None, grey: str = "error",
                        alpha: str = "error", cache_dir: str | Path | None = None, use_cache: bool = True,
                        npz_prefer: str = "stats", trust_unknown: bool = False,
                        threads: int | None = None, center_crop: int | None = None,
                        spatial: bool | None = None, keep_features: bool | Sequence[bool] = False,
                        feature_cap: int | None | Sequence[int | None] = None,
                        workers: int | None = None) -> list[Statistics]:
    """``path_to_statistics`` of several paths (``keep_features`` and ``feature_cap`` one for
    all, or one per path), the images of all of them measured in one streamed pass through one
    decode session (``sources_to_accumulators``). Every path is checked (and hashed, when the
    cache is used) before any image is decoded; the statistics are the same as one path at a
    time (tested)."""
    if npz_prefer not in ("stats", "images"):
        raise UserError(f"npz_prefer={npz_prefer!r}: use stats or images")
    if batch_size < 1:
        raise UserError(f"batch_size={batch_size}: must be >= 1")
    keeps = list(keep_features) if isinstance(keep_features, (list, tuple)) else [keep_features] * len(paths)
    caps = list(feature_cap) if isinstance(feature_cap, (list, tuple)) else [feature_cap] * len(paths)
    if not (len(keeps) == len(caps) == len(paths)):
        raise UserError(f"{len(paths)} paths but {len(keeps)} keep_features and {len(caps)} feature_cap values")
    ex = resolve_extractor(extractor, mode, device, trust_unknown, threads)
    identity = extractor_identity(ex)
    reason = spatial_status(ex)
    if spatial and reason is not None:
        raise UserError(reason)
    want_spatial = reason is None if spatial is None else bool(spatial)
    plans = [_plan_path(path, ex, identity, grey=grey, alpha=alpha, cache_dir=cache_dir, use_cache=use_cache,
                        npz_prefer=npz_prefer, center_crop=center_crop, spatial=spatial, want_spatial=want_spatial,
                        keep_features=keep, feature_cap=cap) for path, keep, cap in zip(paths, keeps, caps)]
    passes = [p for p in plans if isinstance(p, _Pass)]
    if passes:
        accs = iter(sources_to_accumulators(ex, [p.src for p in passes], batch_size, [p.spatial for p in passes],
                                            [p.keep for p in passes], workers=workers))
        plans = [p.finish(next(accs)) if isinstance(p, _Pass) else p for p in plans]
    return plans


def path_to_features(path: str | Path, extractor="inception", mode: str | None = None, *, batch_size: int = 64,
                     device: str | None = None, grey: str = "error", alpha: str = "error",
                     trust_unknown: bool = False, center_crop: int | None = None,
                     workers: int | None = None) -> np.ndarray:
    """float64 (N, D) features of an image folder, an npz's ``arr_0``, a data set or
    ``hf:PATH[:SPLIT]`` (not cached)."""
    ex = resolve_extractor(extractor, mode, device, trust_unknown)
    p = Path(path)
    if p.is_file() and p.suffix.lower() == ".npz" and "arr_0" not in npz_fields(p):
        raise UserError(f"{p}: features need images (field arr_0); this file has {', '.join(npz_fields(p))}")
    src = path_to_image_source(path, grey=grey, alpha=alpha)
    if src is None:
        raise UserError(f"{path}: no such file or folder, not hf:PATH[:SPLIT], and not a data set name "
                        f"({', '.join(DATASETS)})")
    return source_to_outputs(ex, with_center_crop(src, center_crop), batch_size, False, workers)["features"]


__all__ = ["Statistics", "path_to_statistics", "path_to_features", "resolve_extractor", "spatial_status",
           "logits_status", "source_to_outputs", "source_to_output_parts", "source_to_accumulators",
           "sources_to_accumulators", "paths_to_statistics",
           "npz_to_statistics"]
