"""FID and friends between two image sources (samples ``a``, reference ``b``), each number with
its convention and sample counts.

Metrics (``metrics=`` / ``--metrics fid,is,kid,pr``): FID always, sFID whenever both sides have
spatial statistics (the result says why not otherwise), the Inception Score of the samples (ADM:
logits without bias, parts of 5,000 rows taken in an order fixed by the rows' values;
torch-fidelity's 10 shuffled splits on request), KID (clean-fid's kernel_distance, with a
standard error over draws of the samples) and
precision/recall (k = 3, the reference's images as the real manifold, as ADM uses its reference
batch's ``arr_0``); ``fd`` (the same Fréchet distance named for the encoder: ``fd_dinov2``),
``prdc`` (Naeem et al.'s precision, recall, density, coverage, k = 5), ``cmmd`` (CLIP, RBF
sigma 10, biased MMD x 1000) and ``vendi``; ``bootstrap=`` adds a bootstrap interval for the
FID. Every result carries a warning when an Inception FID rests on fewer samples than the
protocol's 50,000, or any FID on fewer rows than feature dimensions.
"""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import numpy as np

from genbench.errors import UserError
from genbench.features.build import extractor_identity
from genbench.features.statistics import (Statistics, logits_status, path_to_features, paths_to_statistics,
                                          resolve_extractor, spatial_status)

#: the metrics ``compute_fid`` knows (sFID comes with FID whenever both sides allow it; ``fd`` is
#: the same Fréchet distance, named after the encoder: ``fid`` for Inception, ``fd_dinov2``...)
METRICS = ("fid", "fd", "sfid", "is", "kid", "pr", "prdc", "cmmd", "vendi")
#: metrics that need both sides' features (the rest need none, or only the samples')
PAIRED_FEATURE_METRICS = ("kid", "pr", "prdc", "cmmd")
#: the ImageNet protocol's sample count (ADM, DiT, VAR, MAR...): fewer biases FID upward
PROTOCOL_N = 50_000


def _metrics():
    from genbench.metrics import image

    return image


def _fid(mu_a, sigma_a, mu_b, sigma_b, sqrtm: str | None, what: str) -> tuple[float, str]:
    fn = _metrics().statistics_to_fid
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
    return tuple(dict.fromkeys(["fid", *(m for m in names if m != "fd")]))


def fd_name(extractor) -> str:
    """The headline name of the Fréchet distance in this extractor's features: ``fid`` for
    Inception (and a ``torchscript:`` stand-in for it), ``fd_dinov2``, ``fd_clip``..."""
    kind = str((extractor.describe() if hasattr(extractor, "describe") else {}).get("extractor", "")).partition(":")[0]
    return "fid" if kind in ("inception", "torchscript", "") else f"fd_{kind.replace('-', '_')}"


def cap_rows(features: np.ndarray, cap: int | None, seed: int = 0) -> np.ndarray:
    """At most ``cap`` rows of (N, D) ``features``: a uniform sample seeded by ``seed``, in
    their order (the kNN and kernel metrics' rows; dgm-eval uses 10,000)."""
    if cap is None or len(features) <= int(cap):
        return features
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xCA9]))
    return features[np.sort(rng.choice(len(features), int(cap), replace=False))]


def _check_enough(s: Statistics, k: int, what: str, option: str, cap: int | None = None,
                  seed: int = 0) -> np.ndarray:
    f = cap_rows(_images_needed(s, what), cap, seed)
    if len(f) < k + 1:
        raise UserError(f"{s.source}: {what} with k = {k} needs at least {k + 1} images, got {len(f)}; add images "
                        f"or lower {option}")
    return f


def _images_needed(s: Statistics, what: str) -> np.ndarray:
    if s.features is None:
        raise UserError(f"{s.source}: {what} needs the images of this side, but it holds only statistics (fields "
                        f"mu, sigma); give the images (a folder, an npz with arr_0, a data set)")
    return s.features


def statistics_to_metrics(a: Statistics, b: Statistics, extractor, metrics=("fid",), *, sqrtm: str | None = None,
                          bootstrap: int = 0, is_splits: int = 10, is_rule: str = "adm", is_order: str = "content",
                          kid_subsets: int = 100, kid_subset_size: int = 1000, pr_k: int = 3,
                          prdc_k: int | None = None, feature_cap: int | None = None, seed: int = 0) -> dict[str, Any]:
    """Metrics of samples ``a`` against reference ``b`` (their ``Statistics``, with ``features``
    where a metric needs them): a flat dict of values, each with its sample counts and options.

    fid (always) and sfid (whenever both sides have spatial statistics; ``sfid_note`` says why
    not otherwise, and asking for ``sfid`` explicitly then is an error); ``is``: Inception Score
    of ``a`` (logits without bias; ``is_rule`` "adm": parts of 5,000 rows, "torch-fidelity":
    ``is_splits`` equal parts after its seeded shuffle; ``is_order`` "content": rows first in an
    order fixed by their values, so the score does not depend on the sampling order); ``kid``:
    clean-fid's ``kernel_distance`` convention; ``pr``: precision and recall of ``a`` against
    ``b``'s images, k = ``pr_k``; ``bootstrap``: that many bootstrap replicates of ``a`` against
    ``b``'s fixed statistics give ``fid_ci`` (95 %, normal interval from the replicates' spread); ``prdc``: precision,
    recall, density and coverage (Naeem et al., ``prdc``'s strict balls), k = ``prdc_k`` (5);
    ``cmmd``: CMMD of L2-normalised embeddings (``clip:...:cmmd``); ``vendi``: Vendi score of
    ``a``. ``fd`` is ``fid`` under the encoder's name (``fd_name``): one Fréchet code path.
    feature_cap: KID, precision/recall, prdc, CMMD and Vendi use at most this many rows of each
    side (``cap_rows``); FID, IS and the bootstrap use every row there is.
    """
    im = _metrics()
    metrics = parse_metrics(metrics)
    if a.dim != b.dim:
        raise UserError(f"{a.source} has {a.dim}-d statistics but {b.source} has {b.dim}-d; use one extractor for both")
    value, method = _fid(a.mu, a.sigma, b.mu, b.sigma, sqrtm, f"FID of {a.source} against {b.source}")
    out: dict[str, Any] = {"fid": value, "fd": value, "fd_name": fd_name(extractor), "sqrtm": method, "n_a": a.n,
                           "n_b": b.n, "metrics": list(metrics)}

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
        from genbench.features.extractor_inception import SPATIAL_LAYER

        out.update(sfid=_fid(a.mu_s, a.sigma_s, b.mu_s, b.sigma_s, sqrtm, f"sFID of {a.source} against {b.source}")[0],
                   sfid_dim=int(a.mu_s.shape[0]), sfid_layer=SPATIAL_LAYER, sfid_note=None)

    if "is" in metrics:
        if logits_status(extractor) is not None:
            raise UserError(f"IS: {logits_status(extractor)}")
        fa = _images_needed(a, "the Inception Score")
        out.update(_inception_score(im, extractor.features_to_logits(fa), is_rule, is_order, is_splits))
    if "kid" in metrics:
        fa, fb = (cap_rows(_images_needed(s, "KID"), feature_cap, seed) for s in (a, b))
        size = min(kid_subset_size, len(fa), len(fb))
        est = im.features_to_kid_estimate(fa, fb, num_subsets=kid_subsets, max_subset_size=size, seed=seed)
        out.update(kid=est.value, kid_std=est.std_over_subsets, kid_stderr=est.stderr,
                   kid_bootstrap_std=est.bootstrap_std, kid_bootstrap=est.n_boot, kid_subsets=kid_subsets,
                   kid_subset_size=size, kid_n_a=len(fa), kid_n_b=len(fb))
    if "pr" in metrics:
        fa = _check_enough(a, pr_k, "precision/recall", "the precision/recall k (pr_k)", feature_cap, seed)
        fb = _check_enough(b, pr_k, "precision/recall", "the precision/recall k (pr_k)", feature_cap, seed)
        precision, recall = im.features_to_precision_recall(fb, fa, k=pr_k)
        out.update(precision=precision, recall=recall, pr_k=pr_k, pr_n_real=len(fb), pr_n_fake=len(fa),
                   pr_definition="Kynkaanniemi et al. 2019 as in ADM's evaluator (boundary inside, <=)")
    out.update(_embedding_metrics(a, b, extractor, metrics, prdc_k, feature_cap, seed))
    if bootstrap:
        fa = _images_needed(a, "the bootstrap interval of FID")
        interval = features_to_fid_interval(fa, (b.mu, b.sigma), int(bootstrap), seed, statistics=(a.mu, a.sigma))
        out.update({f"fid_{k}": v for k, v in interval.items()})
    out["warnings"] = protocol_warnings(extractor, a.n) + [
        w for w in (im.fid_sample_warning(s.n, s.dim, which) for s, which in ((a, "samples"), (b, "reference rows")))
        if w] + ([out["cmmd_warning"]] if "cmmd_warning" in out else [])
    return out


#: how the FID's interval is made, recorded beside it
FID_BOOTSTRAP_METHOD = "normal interval from the replicates' std, eigh; samples resampled, reference fixed"


def features_to_fid_interval(features: np.ndarray, reference: tuple[np.ndarray, np.ndarray], n_boot: int,
                             seed: int, statistics: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, Any]:
    """The bootstrap interval of the FID of (N, D) sample features against fixed reference
    statistics ``(mu (D,), sigma (D, D))`` (``metrics.image.bootstrap_fid``, samples resampled):
    ``{"ci": [low, high], "ci_level", "boot_std", "bootstrap" (replicates), "bootstrap_method",
    "bootstrap_seconds"}``. statistics: the samples' own ``(mu, sigma)`` when the caller holds them."""
    import time

    t0 = time.perf_counter()
    boot = _metrics().bootstrap_fid(features, statistics1=statistics, statistics2=reference, n_boot=n_boot,
                                    seed=seed, resample="first")
    return {"ci": [boot.low, boot.high], "ci_level": boot.level, "boot_std": boot.std, "bootstrap": boot.n_boot,
            "bootstrap_method": FID_BOOTSTRAP_METHOD, "bootstrap_seconds": round(time.perf_counter() - t0, 3)}


def _embedding_metrics(a: Statistics, b: Statistics, extractor, metrics, prdc_k: int | None, cap: int | None,
                       seed: int) -> dict[str, Any]:
    """prdc (Naeem et al.), CMMD and Vendi of samples ``a`` against reference ``b`` (at most
    ``cap`` rows of each)."""
    from genbench.metrics import kernel, manifold

    def rows(s: Statistics, what: str) -> np.ndarray:
        return cap_rows(_images_needed(s, what), cap, seed)

    out: dict[str, Any] = {}
    if "prdc" in metrics:
        k = int(prdc_k or manifold.PRDC_K)
        fa = _check_enough(a, k, "precision/recall/density/coverage", "--prdc-k", cap, seed)
        fb = _check_enough(b, k, "precision/recall/density/coverage", "--prdc-k", cap, seed)
        res = manifold.features_to_prdc(fb, fa, k=k)
        out.update(prdc_precision=res.precision, prdc_recall=res.recall, density=res.density, coverage=res.coverage,
                   prdc_k=k, prdc_n_real=len(fb), prdc_n_fake=len(fa),
                   prdc_definition="Naeem et al. 2020 (prdc package; strict <, k-th neighbour radii)")
    if "cmmd" in metrics:
        d = extractor.describe() if hasattr(extractor, "describe") else {}
        if d.get("embeddings") != "L2-normalised":
            raise UserError(f"cmmd needs L2-normalised CLIP embeddings, but extractor {d.get('extractor')!r} gives "
                            f"other features; use --extractor clip:ViT-L-14-336:FILE:cmmd")
        fa, fb = rows(a, "CMMD"), rows(b, "CMMD")
        out.update(cmmd=kernel.features_to_cmmd(fa, fb), cmmd_n_a=len(fa), cmmd_n_b=len(fb),
                   cmmd_convention=(f"Gaussian RBF sigma={kernel.CMMD_SIGMA:g}, biased (minimum-variance) MMD^2 over "
                                    f"the full sets, x{kernel.CMMD_SCALE:g}, L2-normalised {d.get('extractor')} "
                                    f"embeddings"))
        if not d.get("cmmd_reference_arch"):
            out["cmmd_warning"] = (f"CMMD from {d.get('extractor')}, not CMMD's ViT-L/14@336: not comparable to "
                                   f"published CMMD")
    if "vendi" in metrics:
        fa = rows(a, "the Vendi score")
        out.update(vendi=kernel.features_to_vendi(fa), vendi_n=len(fa),
                   vendi_convention="linear kernel on L2-normalised features, of the samples")
    return out


def _inception_score(im, logits: np.ndarray, rule: str, order: str, splits: int) -> dict[str, Any]:
    """IS of (N, C) logits with its parts and convention: ``is``, ``is_std``, ``is_splits`` (parts)..."""
    if rule not in im.IS_RULES or order not in im.IS_ORDERS:
        raise UserError(f"IS: rule must be one of {', '.join(im.IS_RULES)} and order one of "
                        f"{', '.join(im.IS_ORDERS)}; got rule={rule!r}, order={order!r}")
    splits = min(int(splits), len(logits))
    parts = len(im.inception_score_parts(len(logits), rule=rule, splits=splits))
    score, std = im.logits_to_inception_score(logits, splits=splits, rule=rule, order=order, inputs="logits")
    return {"is": score, "is_std": std, "is_splits": parts, "is_n": len(logits), "is_rule": rule,
            "is_order": order,
            "is_convention": "softmax of pool_3 x output weight (no bias); "
                             + im.inception_score_convention(rule, order, splits=splits)}


def protocol_warnings(extractor, n: int | None) -> list[str]:
    """A warning when an Inception FID (ImageNet-style) rests on fewer than 50,000 samples."""
    if getattr(extractor, "name", None) != "inception" or n is None or n >= PROTOCOL_N:
        return []
    return [f"FID from {n} samples: the ImageNet protocol (ADM, DiT, VAR, MAR) uses {PROTOCOL_N:,}; FID is biased "
            f"upward at smaller N, so this number is not comparable to published ones"]


def _check_fid_options(metrics: tuple[str, ...], sqrtm: str | None, prdc_k: Any, feature_cap: Any) -> None:
    """``--sqrtm``, ``--prdc-k`` and ``--feature-cap``, before any pass over the images (and any cache write)."""
    from typing import get_args

    methods = get_args(_metrics().FIDMethod)
    if sqrtm is not None and sqrtm not in methods:
        raise UserError(f"--sqrtm {sqrtm!r}: use one of {', '.join(methods)}")
    for flag, value in (("--prdc-k", prdc_k), ("--feature-cap", feature_cap)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise UserError(f"{flag} {value!r}: give a whole number >= 1")
    if prdc_k is not None and "prdc" not in metrics:
        raise UserError("--prdc-k sets the k of precision/recall/density/coverage, which --metrics does not ask "
                        "for; add prdc to --metrics or drop --prdc-k")
    capped = sorted(set(metrics) & {"kid", "pr", "prdc", "cmmd", "vendi"})
    if feature_cap is not None and not capped:
        raise UserError("--feature-cap caps the rows of kid, pr, prdc, cmmd and vendi, none of which --metrics asks "
                        "for (FID always uses every image); add one to --metrics or drop --feature-cap")


#: the most bootstrap replicates --bootstrap takes (each is one D x D eigendecomposition)
MAX_BOOTSTRAP = 10_000


def check_splits(n: Any) -> None:
    """``genbench is --splits N``: a whole number of parts >= 1."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise UserError(f"--splits {n!r}: give a whole number of parts >= 1")


def check_bootstrap(n: Any) -> None:
    """``--bootstrap N``: 0 (off) or 2..MAX_BOOTSTRAP replicates."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0 or n == 1 or n > MAX_BOOTSTRAP:
        raise UserError(f"--bootstrap {n!r}: give 0 (off) or a whole number of replicates from 2 to "
                        f"{MAX_BOOTSTRAP:,} (1,000 is plenty for a 95% interval)")


def compute_fid(path_a, path_b, extractor="inception", mode: str | None = None, *, batch_size: int = 64,
                device: str | None = None, grey: str = "error", alpha: str = "error",
                cache_dir: str | Path | None = None, use_cache: bool = True, trust_unknown: bool = False,
                sqrtm: str | None = None, npz_prefer: str = "stats", threads: int | None = None,
                metrics=("fid",), bootstrap: int = 0, center_crop: int | None = None, prdc_k: int | None = None,
                feature_cap: int | None = None, workers: int | None = None) -> dict[str, Any]:
    """FID (and sFID, IS, KID, precision/recall: ``metrics``) of samples ``path_a`` against
    reference ``path_b``, with its convention: a flat dict (``fid``, ``sfid``, ``extractor``,
    ``weights_sha256``, ``mode``, ``dim``, ``n_a``, ``n_b``, ``sqrtm``, sources, cache use...).
    center_crop: ADM's centre crop applied to both sides' images (real images, e.g. ImageNet).
    feature_cap: the kNN and kernel metrics use at most this many rows of each side (a seeded
    uniform sample; dgm-eval uses 10,000); FD always uses every image (None: all rows).
    workers: decode worker processes (``genbench.features.decode_workers``; None: automatic, 0: threads)."""
    check_bootstrap(bootstrap)
    metrics = parse_metrics(metrics)
    _check_fid_options(metrics, sqrtm, prdc_k, feature_cap)
    ex = resolve_extractor(extractor, mode, device, trust_unknown, threads)
    if "is" in metrics and logits_status(ex) is not None:  # before any pass over the images
        raise UserError(f"IS: {logits_status(ex)}")
    both = bool(set(PAIRED_FEATURE_METRICS) & set(metrics))  # IS, Vendi and bootstrap need only a's features
    kw = dict(batch_size=batch_size, grey=grey, alpha=alpha, cache_dir=cache_dir, use_cache=use_cache,
              npz_prefer=npz_prefer, center_crop=center_crop, workers=workers)
    # the samples' rows are capped while they stream in, unless IS or the bootstrap needs all
    a_cap = None if bootstrap or "is" in metrics else feature_cap
    # both sources in one streamed pass (one decode session: b's first batches decode while a's last run)
    a, b = paths_to_statistics([path_a, path_b], ex,
                               keep_features=[both or bool(bootstrap) or bool({"is", "vendi"} & set(metrics)), both],
                               feature_cap=[a_cap, feature_cap], **kw)
    if a.dim != b.dim:
        raise UserError(f"{path_a} has {a.dim}-d statistics but {path_b} has {b.dim}-d; use one extractor for both")
    out = statistics_to_metrics(a, b, ex, metrics, sqrtm=sqrtm, bootstrap=bootstrap, prdc_k=prdc_k,
                                feature_cap=feature_cap)
    if feature_cap is not None:
        out["feature_cap"] = int(feature_cap)
    ident = extractor_identity(ex)
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
    layout = ex.describe().get("layout") if hasattr(ex, "describe") else None
    if layout:  # only when asked for: results stay as they were
        out["layout"] = layout
    return out


def compute_inception_score(path, extractor="inception", mode: str | None = None, *, batch_size: int = 64,
                            device: str | None = None, grey: str = "error", alpha: str = "error",
                            trust_unknown: bool = False, splits: int = 10, rule: str = "adm",
                            order: str = "content", center_crop: int | None = None,
                            workers: int | None = None) -> dict[str, Any]:
    """The Inception Score of one source's images (ADM's parts of 5,000 by default), with its convention."""
    check_splits(splits)
    ex = resolve_extractor(extractor, mode, device, trust_unknown)
    if logits_status(ex) is not None:
        raise UserError(f"IS: {logits_status(ex)}")
    feats = path_to_features(path, ex, batch_size=batch_size, grey=grey, alpha=alpha, center_crop=center_crop,
                             workers=workers)
    result = _inception_score(_metrics(), ex.features_to_logits(feats), rule, order, splits)
    ident = extractor_identity(ex)
    return {**result, "n": len(feats), "source": str(path),
            "extractor": ex.describe().get("extractor"), "weights_sha256": ident.get("weights_sha256"),
            "mode": ident.get("resize"), "quantisation": "uint8 as stored in the source"}


def statistics_origin(s: Statistics) -> str:
    """Where statistics came from, in words (a file, the cache, computed)."""
    if s.kind in ("stats_npz", "adm_reference"):
        return "file, extractor recorded and checked" if s.identity else "file from another tool: only its dimension was checked"
    return "cache" if s.from_cache else ("computed, cached" if s.cache_file else "computed")


__all__ = ["METRICS", "PAIRED_FEATURE_METRICS", "fd_name", "cap_rows", "PROTOCOL_N", "compute_fid",
           "compute_inception_score", "statistics_to_metrics", "parse_metrics", "protocol_warnings", "statistics_origin",
           "check_bootstrap", "check_splits", "MAX_BOOTSTRAP", "FID_BOOTSTRAP_METHOD", "features_to_fid_interval"]
