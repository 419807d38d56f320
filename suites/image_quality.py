"""Image quality: FID, KID and precision/recall of samples against a held-out split.

Every number carries its convention: extractor and weights hash, resize, quantisation,
sample and reference counts. The FID of the training split against the same reference
(``fid_train_floor``) is recorded beside it: a model cannot be expected to beat it.

Two ways to name the reference:

* a built-in data set split (``dataset`` / ``reference_split``; the digits defaults, which
  the demo runs): features from ``extractor`` on the arrays, the train split as the floor;
* ``reference``: any source ``genbench fid`` takes (an ``.npz`` of statistics such as ADM's
  ``VIRTUAL_imagenet256_labeled.npz``, an image folder, ``hf:PATH[:SPLIT]``...), with a
  resizing extractor such as ``inception``. Then the samples can be class-conditional
  (``samples_per_class`` of each of ``num_classes`` labels, in a random order seeded by the
  cell's seed, as ADM's and DiT's samplers draw labels at random), drawn in chunks of
  ``sample_chunk`` and saved as PNGs (``save_png``) into the cell's artifacts; sFID is reported
  when both sides have spatial statistics, the Inception Score when the extractor has logits,
  KID and precision/recall when the reference holds images (ADM's ``arr_0``), and the floor
  only when a ``train_reference`` is given. See ``suites/presets/imagenet256.toml``.

  ``extractors`` (a list, in place of ``extractor``) measures the same samples with several
  encoders, one pass each: Inception (or a ``torchscript:`` stand-in) records ``fid``, ``kid``...;
  another encoder records the same metrics suffixed with its name (``fd_dinov2``,
  ``kid_dinov2``, ``density_dinov2``...; ``genbench.features.fid.fd_name``). Every encoder
  also records ``density`` and ``coverage`` (Naeem et al., k = ``prdc_k``, their precision and
  recall in the convention) when the reference holds images, and ``clip:...:cmmd`` records
  ``cmmd``. ``reports.ranking.ranking_agreement`` says whether the encoders rank models alike.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from genbench.errors import UserError
from genbench.features import ranks
from genbench.features.decode import GREY_OPTIONS
from genbench.interfaces import Generator
from genbench.metrics import image as image_metrics
from genbench.partials import fingerprint
from genbench.registry import EXTRACTORS
from genbench.suite import Metric, Suite, SuiteContext
from genbench.suites.common import images_to_grid_png, reference_images, subset


class ImageQuality(Suite):
    name = "image_quality"
    description = "FID / KID / precision-recall of samples vs a held-out split, with the train-split floor"
    options = {
        "dataset": "digits",
        "reference_split": "test",
        "extractor": "digits-classifier",
        "n_samples": 400,
        "batch_size": 200,
        "steps": None,
        "kid_subsets": 100,
        "kid_subset_size": 200,
        "kid_bootstrap": 200,
        "pr_k": 3,
        # --- a reference by path (None: the data set split above) ---
        "reference": None,
        "extractor_mode": None,
        "num_classes": None,
        "samples_per_class": None,
        "sample_chunk": 1000,
        "save_png": False,
        "quantisation": None,
        "center_crop": None,
        "grey": "error",
        "is_rule": "adm",
        "is_order": "content",
        "is_splits": 10,
        # replicates of a bootstrap 95% interval of FID (samples resampled, reference fixed); 0: none
        "fid_bootstrap": 100,
        "train_reference": None,
        # --- several encoders (None: just ``extractor``), Naeem et al.'s k, rows for kNN/kernel metrics ---
        "extractors": None,
        "prdc_k": 5,
        "feature_cap": None,
        "vendi": False,
        # accept weights whose sha256 genbench does not know (Inception, DINOv2); the hash is recorded
        "trust_unknown": False,
    }
    option_choices = {"grey": GREY_OPTIONS, "is_rule": image_metrics.IS_RULES, "is_order": image_metrics.IS_ORDERS}

    #: what only the protocol with a ``reference`` reads; without one they are refused, not ignored
    REFERENCE_ONLY = ("extractor_mode", "num_classes", "samples_per_class", "sample_chunk", "save_png",
                      "quantisation", "center_crop", "grey", "is_rule", "is_order", "is_splits", "train_reference",
                      "extractors", "prdc_k", "feature_cap", "vendi", "trust_unknown")

    @classmethod
    def check_options(cls, given: dict[str, Any], where: str) -> None:
        """The base checks, then: an empty ``reference`` (the ImageNet preset's until --set), and
        options of the reference protocol given without a reference (the digits path ignores them)."""
        super().check_options(given, where)
        reference = given.get("reference")
        if isinstance(reference, str) and not reference.strip():
            raise UserError(f"{where} reference is empty: give the reference statistics or images, e.g. "
                            "--set image_quality.reference=PATH/VIRTUAL_imagenet256_labeled.npz")
        unused = [k for k in cls.REFERENCE_ONLY if k in given and given[k] != cls.options[k]]
        if reference is None and unused:
            raise UserError(f"{where} {', '.join(unused)}: only read with a reference (reference = an image folder, "
                            "a .npz, hf:PATH[:SPLIT] or digits:test); the digits default path takes extractor, "
                            "n_samples, batch_size, steps, fid_bootstrap, kid_* and pr_k. Set reference, or remove "
                            f"{'them' if len(unused) > 1 else 'it'}")

    def applies_to(self, generator: Generator) -> bool:
        return getattr(generator, "modality", None) == "image" and hasattr(generator, "sample")

    def run(self, generator: Generator, ctx: SuiteContext) -> Iterable[Metric]:
        o = ctx.options
        if o.get("reference") is not None:
            yield from self._run_reference(generator, ctx)
            return
        extractor = EXTRACTORS.get(o["extractor"])()
        reference = reference_images(o["dataset"], o["reference_split"])
        n = int(o["n_samples"])
        # under torchrun each rank draws and measures its range of the samples (and of the
        # reference and train images); the features are gathered in rank order (features.ranks)
        def draw() -> tuple[Any, int, int]:
            s, i, j = ranks.draw_rank_part(generator, n, seed=ctx.seed, batch_size=int(o["batch_size"]),
                                           steps=o["steps"])
            if s is not None:
                s.validate(j - i, "image")
            return s, i, j

        samples, a, b = ranks.checked(draw)  # a rank's error fails the cell on every rank
        grid = ranks.images_on_rank0(None if samples is None else samples.images, a, 128)
        if grid is not None:
            images_to_grid_png(grid, ctx.artifacts / "samples.png")
        nfe_per_sample = ranks.nfe_per_sample_of_parts(ranks.parts_in_rank_order(
            (None if samples is None else samples.nfe_per_sample, b - a)))

        f_ref = ranks.rank_range_to_features(lambda i, j: extractor.features(reference[i:j]), len(reference))
        f_gen = ranks.rows_in_rank_order(lambda: None if samples is None else extractor.features(samples.images))
        train = subset(reference_images(o["dataset"], "train"), len(reference), seed=0)
        f_train = ranks.rank_range_to_features(lambda i, j: extractor.features(train[i:j]), len(train))
        mu_r, sigma_r = image_metrics.features_to_statistics(f_ref)

        convention = {
            **extractor.describe(),
            "resize": "none",
            "quantisation": "model output on the data's grey levels (uint8)",
            "reference": f"{o['dataset']} {o['reference_split']} split",
            "n_reference": int(len(reference)),
            "n_samples": n,
            "sqrtm": "eigh",
            "nfe_per_sample": nfe_per_sample,
            "steps": o["steps"],
        }
        few = image_metrics.fid_sample_warning(n, f_gen.shape[1])
        if few:
            warnings.warn(few, stacklevel=2)
        stats_gen = image_metrics.features_to_statistics(f_gen)
        fid = image_metrics.statistics_to_fid(*stats_gen, mu_r, sigma_r)
        fid_conv, fid_se = _fid_bootstrap(f_gen, stats_gen, (mu_r, sigma_r), int(o["fid_bootstrap"] or 0), ctx.seed)
        yield Metric("fid", fid, unit="FID", higher_is_better=False, n=n, task=o["dataset"], stderr=fid_se,
                     convention={**convention, **fid_conv, **({"warnings": [few]} if few else {})})

        stats_train = image_metrics.features_to_statistics(f_train)
        floor = image_metrics.statistics_to_fid(*stats_train, mu_r, sigma_r)
        floor_conv, floor_se = _fid_bootstrap(f_train, stats_train, (mu_r, sigma_r), int(o["fid_bootstrap"] or 0),
                                              ctx.seed)
        yield Metric("fid_train_floor", floor, unit="FID", higher_is_better=False, n=len(train), task=o["dataset"],
                     stderr=floor_se, convention={**convention, **floor_conv, "n_samples": int(len(train)),
                                                  "what": "train split images in place of samples: the floor"})

        size = min(int(o["kid_subset_size"]), n, len(reference))
        kid = image_metrics.features_to_kid_estimate(f_gen, f_ref, num_subsets=int(o["kid_subsets"]),
                                                     max_subset_size=size, seed=ctx.seed,
                                                     n_boot=int(o["kid_bootstrap"]))
        yield Metric("kid", kid.value, unit="KID", higher_is_better=False, stderr=kid.stderr, n=n, task=o["dataset"],
                     convention={**convention, **_kid_convention(kid)})

        precision, recall = image_metrics.features_to_precision_recall(f_ref, f_gen, k=int(o["pr_k"]))
        pr_conv = {**convention, "k": int(o["pr_k"]), "definition": "Kynkaanniemi et al. 2019 (ADM)"}
        yield Metric("precision", precision, unit="fraction", higher_is_better=True, n=n, task=o["dataset"], convention=pr_conv)
        yield Metric("recall", recall, unit="fraction", higher_is_better=True, n=n, task=o["dataset"], convention=pr_conv)

    # --- a reference given by path (ImageNet-style protocols) -----------------------------------
    def _run_reference(self, generator: Generator, ctx: SuiteContext) -> Iterable[Metric]:
        from genbench.features.build import build_extractor
        from genbench.features.statistics import path_to_statistics, spatial_status

        o = ctx.options
        reference = o["reference"]
        if not isinstance(reference, str) or not reference.strip():
            raise UserError("[suite.image_quality] field 'reference' is empty: give the reference statistics or "
                            "images, e.g. --set image_quality.reference=PATH/VIRTUAL_imagenet256_labeled.npz")
        labels = _class_labels(generator, o, ctx.seed)
        n = len(labels) if labels is not None else int(o["n_samples"])
        extractors = [build_extractor(name, mode=o["extractor_mode"], device=ctx.device,
                                      trust_unknown=_trust(name, o["trust_unknown"])) for name in _extractor_names(o)]
        ref_kw = dict(center_crop=o["center_crop"], grey=o["grey"])
        refs = [path_to_statistics(reference, ex, keep_features=True, feature_cap=o["feature_cap"], **ref_kw)
                for ex in extractors]  # every reference read (and checked) before any sampling
        drawn_all = _draw_samples(generator, extractors, ctx, labels, n,
                                  [spatial_status(ex) is None for ex in extractors])
        for ex, ref, drawn in zip(extractors, refs, drawn_all):
            for metric in self._reference_metrics(generator, ctx, ex, ref, drawn, labels, n):
                yield _named_for(metric, ex)

    def _reference_metrics(self, generator: Generator, ctx: SuiteContext, ex, ref, drawn: dict[str, Any], labels,
                           n: int) -> Iterable[Metric]:
        """One encoder's metrics of the drawn samples against the reference (named as for Inception)."""
        from genbench.features.build import extractor_identity
        from genbench.features.fid import statistics_origin, statistics_to_metrics
        from genbench.features.statistics import Statistics, logits_status, path_to_statistics

        o = ctx.options
        reference = o["reference"]
        ref_kw = dict(center_crop=o["center_crop"], grey=o["grey"])
        identity = extractor_identity(ex)
        mu, sigma = image_metrics.features_to_statistics(drawn["features"])
        mu_s = sigma_s = None
        if "spatial" in drawn:  # only its statistics are needed (50,000 x 2023 float64 is 0.8 GB)
            mu_s, sigma_s = image_metrics.features_to_statistics(drawn.pop("spatial"))
        samples = Statistics(mu=mu, sigma=sigma, n=n, source=f"samples of {getattr(generator, 'name', '?')}",
                             kind="samples", identity=identity, mu_s=mu_s, sigma_s=sigma_s,
                             features=drawn["features"])
        wanted = ["fid"] + (["is"] if logits_status(ex) is None else [])
        if ref.features is not None:
            wanted += ["kid", "pr", "prdc"] + (["cmmd"] if ex.describe().get("embeddings") == "L2-normalised" else [])
        wanted += ["vendi"] if o["vendi"] else []
        res = statistics_to_metrics(samples, ref, ex, wanted, bootstrap=int(o["fid_bootstrap"] or 0),
                                    is_splits=int(o["is_splits"]), is_rule=str(o["is_rule"]),
                                    is_order=str(o["is_order"]), kid_subsets=int(o["kid_subsets"]),
                                    kid_subset_size=int(o["kid_subset_size"]), pr_k=int(o["pr_k"]),
                                    prdc_k=int(o["prdc_k"]), feature_cap=o["feature_cap"], seed=ctx.seed)
        for w in res["warnings"]:
            warnings.warn(w, stacklevel=2)
        task = Path(reference).name or reference
        convention = {
            **ex.describe(),
            "quantisation": drawn["quantisation"],
            "reference": reference,
            "reference_statistics": statistics_origin(ref),
            "n_reference": ref.n,
            "n_samples": n,
            "sqrtm": res["sqrtm"],
            "nfe_per_sample": drawn["nfe_per_sample"],
            "steps": o["steps"],
            "class_conditional": None if labels is None else {
                "num_classes": int(labels.max()) + 1, "samples_per_class": int(o["samples_per_class"]),
                "order": "labels in a random order (a permutation seeded by the cell's seed); sample j "
                         "drawn from stream (cell seed, j) with label j of that order, whatever sample_chunk"},
            "center_crop_reference": o["center_crop"],
            "saved_png": drawn["png_dir"],
            "warnings": res["warnings"],
            "not_computed": _not_computed(res, ref, wanted),
        }
        fid_conv = dict(convention)
        if "fid_ci" in res:
            fid_conv.update(_interval_convention({k.removeprefix("fid_"): v for k, v in res.items()
                                                  if k.startswith("fid_")}))
        yield Metric("fid", res["fid"], unit="FID", higher_is_better=False, n=n, task=task,
                     stderr=res.get("fid_boot_std"), convention=fid_conv)
        if res["sfid"] is not None:
            yield Metric("sfid", res["sfid"], unit="FID", higher_is_better=False, n=n, task=task,
                         convention={**convention, "layer": res["sfid_layer"], "dim": res["sfid_dim"]})
        if "is" in res:
            yield Metric("inception_score", res["is"], unit="IS", higher_is_better=True, n=n, task=task,
                         stderr=res["is_std"] / np.sqrt(res["is_splits"]),
                         convention={**convention, "splits": res["is_splits"], "std_over_splits": res["is_std"],
                                     "rule": res["is_rule"], "order": res["is_order"],
                                     "definition": res["is_convention"]})
        if "kid" in res:
            yield Metric("kid", res["kid"], unit="KID", higher_is_better=False, n=n, task=task,
                         stderr=res["kid_stderr"],
                         convention={**convention, "kid_subsets": res["kid_subsets"],
                                     "kid_subset_size": res["kid_subset_size"], "n_reference": res["kid_n_b"],
                                     "kid_bootstrap": res["kid_bootstrap"], "std_over_subsets": res["kid_std"],
                                     **image_metrics.KID_CONVENTION})
        if "precision" in res:
            pr_conv = {**convention, "k": res["pr_k"], "n_reference": res["pr_n_real"],
                       "definition": "Kynkaanniemi et al. 2019 (ADM)"}
            yield Metric("precision", res["precision"], unit="fraction", higher_is_better=True, n=n, task=task,
                         convention=pr_conv)
            yield Metric("recall", res["recall"], unit="fraction", higher_is_better=True, n=n, task=task,
                         convention=pr_conv)
        yield from _embedding_metric_records(res, convention, n, task)
        if o["train_reference"]:
            train = path_to_statistics(o["train_reference"], ex, spatial=False, **ref_kw)
            floor = image_metrics.statistics_to_fid(train.mu, train.sigma, ref.mu, ref.sigma)
            yield Metric("fid_train_floor", floor, unit="FID", higher_is_better=False, n=train.n, task=task,
                         convention={**convention, "n_samples": train.n, "train_reference": o["train_reference"],
                                     "what": "train split images in place of samples: the floor"})


def _fid_bootstrap(features: np.ndarray, statistics: tuple, reference: tuple, n_boot: int,
                   seed: int) -> tuple[dict[str, Any], float | None]:
    """The convention fields of the bootstrap interval of the FID of (N, D) sample features (their
    ``statistics``) against fixed ``reference`` statistics, and the replicates' standard
    deviation (``features.fid.features_to_fid_interval``); ({}, None) when ``n_boot`` is 0."""
    if n_boot <= 0:
        return {}, None
    from genbench.features.fid import features_to_fid_interval

    interval = features_to_fid_interval(features, reference, n_boot, seed, statistics=statistics)
    return _interval_convention(interval), interval["boot_std"]


def _interval_convention(interval: dict[str, Any]) -> dict[str, Any]:
    """A FID interval's fields as the record's convention holds them (both paths alike)."""
    return {k: interval[k] for k in ("ci", "ci_level", "bootstrap", "bootstrap_method", "bootstrap_seconds")}


def _kid_convention(kid: image_metrics.KIDEstimate) -> dict[str, Any]:
    return {"kid_subsets": kid.subsets, "kid_subset_size": kid.subset_size, "kid_bootstrap": kid.n_boot,
            "std_over_subsets": kid.std_over_subsets, **image_metrics.KID_CONVENTION}


def _extractor_names(o: dict[str, Any]) -> list[str]:
    """``extractors`` (a list, or one comma-separated string) or else ``[extractor]``."""
    names = o.get("extractors")
    if names is None:
        return [o["extractor"]]
    if isinstance(names, str):
        names = [x.strip() for x in names.split(",")]
    if not isinstance(names, (list, tuple)) or not names or not all(isinstance(x, str) and x for x in names):
        raise UserError(f"[suite.image_quality] field 'extractors' = {names!r}: give a list of extractor names, "
                        f"e.g. [\"inception\", \"dinov2:DIR\", \"clip:ViT-L-14-336:FILE:cmmd\"]")
    return list(names)


def _trust(name: str, trust_unknown: bool) -> bool | None:
    """``trust_unknown`` for the extractors with a weights gate (inception, dinov2), None (not
    passed) for the others, so that one suite option serves a list of extractors."""
    import inspect

    if not trust_unknown:
        return None
    try:
        return True if "trust_unknown" in inspect.signature(EXTRACTORS.get(name.partition(":")[0])).parameters else None
    except (TypeError, ValueError):
        return None


def _named_for(metric: Metric, ex) -> Metric:
    """A metric named for its encoder: unchanged for Inception (and a torchscript stand-in);
    ``fid`` -> ``fd_dinov2``, ``fid_train_floor`` -> ``fd_dinov2_train_floor``, ``kid`` ->
    ``kid_dinov2``... for another encoder, so that several encoders' records never collide.
    ``cmmd`` keeps its name (it is defined on CLIP)."""
    from genbench.features.fid import fd_name

    name = fd_name(ex)
    if name == "fid" or metric.metric == "cmmd":
        return metric
    if metric.metric.startswith("fid"):
        metric.metric = name + metric.metric[len("fid"):]
    else:
        metric.metric = f"{metric.metric}{name[len('fd'):]}"
    metric.convention = {**metric.convention, "encoder_metric": name}
    return metric


def _embedding_metric_records(res: dict[str, Any], convention: dict[str, Any], n: int, task: str) -> Iterable[Metric]:
    """density and coverage (Naeem et al.), CMMD and Vendi from ``statistics_to_metrics``' result."""
    if "density" in res:
        conv = {**convention, "k": res["prdc_k"], "n_reference": res["prdc_n_real"], "n_samples": res["prdc_n_fake"],
                "definition": res["prdc_definition"], "precision_naeem": res["prdc_precision"],
                "recall_naeem": res["prdc_recall"]}
        yield Metric("density", res["density"], unit="ratio", higher_is_better=True, n=res["prdc_n_fake"], task=task,
                     convention=conv)
        yield Metric("coverage", res["coverage"], unit="fraction", higher_is_better=True, n=res["prdc_n_fake"],
                     task=task, convention=conv)
    if "cmmd" in res:
        yield Metric("cmmd", res["cmmd"], unit="CMMD (x1000)", higher_is_better=False, n=res["cmmd_n_a"], task=task,
                     convention={**convention, "n_reference": res["cmmd_n_b"], "definition": res["cmmd_convention"]})
    if "vendi" in res:
        yield Metric("vendi", res["vendi"], unit="effective samples", higher_is_better=True, n=res["vendi_n"],
                     task=task, convention={**convention, "definition": res["vendi_convention"]})


def _class_labels(generator: Generator, o: dict[str, Any], seed: int) -> np.ndarray | None:
    """int64 (num_classes * samples_per_class,): each class's label ``samples_per_class`` times,
    in a random order (a permutation seeded by ``seed``), as ADM and DiT draw their labels: a
    sample set drawn class by class would make any order-dependent statistic (the Inception
    Score's parts, a KID subset) see a few classes at a time."""
    per_class = o.get("samples_per_class")
    if per_class is None:
        return None
    classes = o.get("num_classes") or getattr(generator, "num_classes", None)
    if not classes or int(per_class) < 1:
        raise UserError(f"[suite.image_quality] samples_per_class = {per_class} needs num_classes (the generator "
                        f"{getattr(generator, 'name', '?')!r} does not say how many it has): set num_classes")
    total = int(classes) * int(per_class)
    if int(o["n_samples"]) != total:
        raise UserError(f"[suite.image_quality] n_samples = {o['n_samples']} but num_classes x samples_per_class = "
                        f"{classes} x {per_class} = {total}; set n_samples = {total}")
    labels = np.repeat(np.arange(int(classes), dtype=np.int64), int(per_class))
    return labels[np.random.default_rng(np.random.SeedSequence([int(seed), 0x1AB])).permutation(total)]


def _draw_samples(generator: Generator, extractors: list, ctx: SuiteContext, labels, n: int,
                  spatials: list[bool]) -> list[dict[str, Any]]:
    """Sample in chunks, save PNGs, keep only features: per extractor, ``features`` (n, D),
    ``spatial`` (n, Ds) when asked, the quantisation, NFE per sample and where the PNGs went.

    Chunk ``[start, start + size)`` is ``sample(size, seed=cell seed, start=start)``: sample ``j``
    draws from its own stream ``(seed, j)`` and gets label ``labels[j]``, so the sample set is
    the same whatever ``sample_chunk`` (and ``sample(n, seed)`` in one call)."""
    from genbench.features.build import extractor_identity

    o = ctx.options
    chunk = max(1, int(o["sample_chunk"]))
    png_dir = ctx.artifacts / "samples" if o["save_png"] else None
    # per extractor, per chunk: this rank's outputs (under torchrun, of its range of each chunk)
    parts: list[list[dict[str, np.ndarray] | None]] = [[] for _ in extractors]
    declared: set[str] = set()
    nfe = 0.0
    label_lines = ["file,label"]
    for k, start in enumerate(ctx.progress(range(0, n, chunk), desc="image_quality", unit="chunk")):
        size = min(chunk, n - start)
        condition = None if labels is None else labels[start: start + size]

        def draw_and_measure() -> tuple[Any, int, int, list]:
            """This rank's part of the chunk and its outputs under every extractor."""
            s, i, j = ranks.draw_rank_part(generator, size, seed=ctx.seed, start=start,
                                           batch_size=int(o["batch_size"]), condition=condition, steps=o["steps"])
            if s is None:
                return s, i, j, [None] * len(extractors)
            s.validate(j - i, "image")
            images = s.images
            if images.shape[-1] == 1:  # grey samples read as the grey reference is, or a run-file fix
                if o["grey"] != "convert":
                    raise UserError(f"{generator.name}: its samples are greyscale {tuple(images.shape)}; the "
                                    "extractors need RGB. Set grey = \"convert\" in [suite.image_quality] (or "
                                    "--set image_quality.grey=convert) to replicate the channel, as the "
                                    "reference tools do for greyscale images")
                images = np.repeat(images, 3, axis=-1)

            def measure(ex, spatial: bool) -> dict[str, np.ndarray]:
                return ex.outputs(images, spatial=spatial) if hasattr(ex, "outputs") \
                    else {"features": np.asarray(ex.features(images), dtype=np.float64)}

            # each extractor's outputs of these images kept as a part of the cell (a rerun after
            # a kill reads them back), keyed by the extractor's identity and the images' bytes,
            # hashed once for all extractors (the key is the same as hashing the array itself)
            images_key = fingerprint(images) if ctx.parts is not None else None
            return s, i, j, [ctx.kept("features", {"extractor": extractor_identity(ex), "spatial": spatial,
                                                   "images": images_key}, (start + i, start + j),
                                      lambda ex=ex, spatial=spatial: measure(ex, spatial))
                             for ex, spatial in zip(extractors, spatials)]

        s, a, b, outputs = ranks.checked(draw_and_measure)  # a rank's error fails the cell on every rank
        if s is not None:
            nfe += s.nfe_per_sample * (b - a)
            rule = s.info.get("quantisation") if isinstance(s.info, dict) else None
            if rule is not None:
                declared.add(str(rule))
        if k == 0 or png_dir is not None:  # rank 0 alone writes: it gets the images it writes
            images = ranks.images_on_rank0(None if s is None else s.images, a, None if png_dir else 32)
            if images is not None and k == 0:
                h = images.shape[1]
                images_to_grid_png(images[:32], ctx.artifacts / "samples.png", columns=8, scale=max(1, 32 // h))
            if images is not None and png_dir is not None:
                label_lines += _save_pngs(images, png_dir, start, condition)
        for own, out in zip(parts, outputs):
            own.append(out)
    if png_dir is not None and labels is not None and ranks.is_writer():
        (png_dir / "labels.csv").write_text("\n".join(label_lines) + "\n")
    # every rank's parts, in image order: chunk by chunk, rank by rank (one process: its own)
    by_rank = ranks.parts_in_rank_order((parts, nfe, declared))
    if len(by_rank) > 1:
        ranks.COUNTS["features split"] += 1
        parts = [[r[0][e][k] for k in range(len(own)) for r in by_rank if r[0][e][k] is not None]
                 for e, own in enumerate(parts)]
        nfe = sum(r[1] for r in by_rank)
        declared = set().union(*(r[2] for r in by_rank))
    configured = o.get("quantisation")
    if configured and declared and declared != {str(configured)}:
        raise UserError(f"[suite.image_quality] quantisation = {configured!r}, but the adapter "
                        f"{getattr(generator, 'name', '?')!r} reports {', '.join(sorted(declared))}; "
                        f"make them agree (genbench.features.quantise.QUANTISATION_RULES)")
    if declared:
        quantisation = ", ".join(sorted(declared)) + " (reported by the adapter)"
    elif configured:
        quantisation = f"{configured} (as configured; the adapter does not report its rule)"
    else:
        quantisation = "not reported by the adapter"
    common = dict(quantisation=quantisation, nfe_per_sample=nfe / n, png_dir=str(png_dir) if png_dir else None)
    return [{**{key: np.concatenate([p[key] for p in own]) for key in own[0]}, **common} for own in parts]


def _save_pngs(images: np.ndarray, folder: Path, start: int, labels) -> list[str]:
    """uint8 (B, H, W, C) -> ``folder/{index:06d}.png`` (lossless); the labels.csv lines."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, img in enumerate(images):
        name = f"{start + i:06d}.png"
        Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img).save(folder / name)
        if labels is not None:
            lines.append(f"{name},{int(labels[i])}")
    return lines


def _not_computed(res: dict[str, Any], ref, wanted: list[str]) -> dict[str, str]:
    """Why a metric of the suite is missing from this cell."""
    out = {}
    if res.get("sfid") is None:
        out["sfid"] = res["sfid_note"]
    if "is" not in wanted:
        out["inception_score"] = "the extractor has no classifier logits"
    if ref.features is None:
        reason = f"{ref.source} holds statistics but no images (arr_0), which they need"
        out["kid"] = out["precision"] = out["recall"] = reason
    return out
