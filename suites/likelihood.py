"""Likelihood: bits per dimension (images) or bits per byte (text), exact or bound, one suite.

An autoregressive model's exact NLL and a masked/diffusion model's ELBO (an upper bound on
the NLL) land in the same table; each record says which, with its Monte Carlo standard
error and sample count. Uniform and unigram baselines on the same split are recorded beside
them so a reader can see the model learned something.
"""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterable

import numpy as np

from genbench.errors import UserError
from genbench.interfaces import Generator, LikelihoodKind, LogLikelihood
from genbench.metrics import text as text_metrics
from genbench.suite import Metric, Suite, SuiteContext

LN2 = math.log(2.0)


def truncate_at_whitespace(text: str, max_bytes: int | None) -> str:
    """The longest prefix of at most max_bytes UTF-8 bytes that ends at a whitespace boundary."""
    if max_bytes is None or len(text.encode("utf-8")) <= max_bytes:
        return text
    cut = text.encode("utf-8")[:max_bytes].decode("utf-8", errors="ignore")
    space = max(cut.rfind(" "), cut.rfind("\n"))
    return cut[:space] if space > 0 else cut


def likelihood_convention(ll: LogLikelihood, **extra: Any) -> dict[str, Any]:
    conv = {"kind": ll.kind.value, "unit": ll.unit}
    if ll.mc_samples is not None:
        conv["mc_samples"] = ll.mc_samples
    conv.update({k: v for k, v in ll.info.items() if isinstance(v, (int, float, str, bool)) or v is None})
    conv.update(extra)
    return conv


def unigram_bits(train: np.ndarray, test: np.ndarray, vocab: int) -> float:
    """Bits per symbol of test under add-one-smoothed unigram frequencies of train."""
    counts = np.bincount(train.ravel(), minlength=vocab).astype(np.float64) + 1.0
    logp = np.log2(counts / counts.sum())
    return float(-logp[test.ravel()].mean())


class Likelihood(Suite):
    name = "likelihood"
    description = "NLL per dimension / byte on a held-out split; exact or upper bound, with MC stderr"
    options = {
        "dataset": None,                    # text: kjv[:split], a local file or a preset (genbench.textdata);
                                            # images: digits, fashion-mnist[:split], a folder, .npz, hf:PATH
        "split": "test",
        "max_examples": None,               # images: first N of the split; text: first N documents
        "max_bytes_per_document": None,     # text: truncate each document (at whitespace)
        "batch_size": 1000,                 # examples (images or documents) per log_likelihood call
    }

    def applies_to(self, generator: Generator) -> bool:
        return getattr(generator, "likelihood_kind", LikelihoodKind.UNAVAILABLE) != LikelihoodKind.UNAVAILABLE

    def why_not(self, generator: Generator) -> str:
        return getattr(generator, "likelihood_unavailable_reason", "likelihood_kind is unavailable")

    def run(self, generator: Generator, ctx: SuiteContext) -> Iterable[Metric]:
        if generator.modality == "image":
            yield from self._images(generator, ctx)
        else:
            yield from self._texts(generator, ctx)

    def _images(self, generator: Generator, ctx: SuiteContext) -> Iterable[Metric]:
        from genbench.suites.common import image_source_chunks, stack_images

        o = ctx.options
        source = image_source_chunks(o["dataset"] or "digits", split=o["split"], max_images=o["max_examples"])
        images = np.concatenate([stack_images(c, source.label) for c in source.chunks()])
        task = source.label
        ll = examples_to_likelihood(generator, images, ctx)
        # bits per dimension count in the model's own discretisation of the pixels (its
        # LogLikelihood.info["levels"], else its pixel_levels), and so do the baselines
        levels = int(ll.info.get("levels", getattr(generator, "pixel_levels", 256)))
        disc = f"{levels} levels per pixel (the model's discretisation)"
        conv = likelihood_convention(ll, dataset=task, split=source.split, levels=levels, discretisation=disc)
        # a colour-cluster token or a VQ code is not a dimension: the metric is named by the unit
        per = {"dimension": ("bits_per_dim", "bits/dim")}.get(ll.unit, (f"bits_per_{ll.unit}", f"bits/{ll.unit}"))
        yield Metric(per[0], ll.per_unit() / LN2, unit=per[1], higher_is_better=False,
                     stderr=_div(ll.per_unit_stderr(), LN2), n=len(images), task=task, convention=conv)
        base = {"kind": "exact", "unit": "dimension", "dataset": task, "split": source.split, "levels": levels}
        yield Metric("baseline_uniform_bits_per_dim", math.log2(levels), unit="bits/dim",
                     higher_is_better=False, n=len(images), task=task,
                     convention={**base, "model": f"uniform over {levels} levels"})
        if source.split is None:  # a folder or hf: source has no train split to fit a unigram on
            return
        from genbench import data

        train = data.image_dataset_arrays(task.partition(":")[0], "train")[0]
        to_levels = lambda x: np.rint(x.astype(np.float64) * (levels - 1) / 255.0).astype(np.int64)  # noqa: E731
        yield Metric("baseline_unigram_bits_per_dim", unigram_bits(to_levels(train), to_levels(images), levels),
                     unit="bits/dim", higher_is_better=False, n=len(images), task=task,
                     convention={**base, "model": "pixel-level unigram of the train split, add-one smoothing"})

    def _texts(self, generator: Generator, ctx: SuiteContext) -> Iterable[Metric]:
        from genbench import textdata

        o = ctx.options
        label, docs = textdata.load_documents(o["dataset"] or f"kjv:{o['split']}", max_documents=o["max_examples"])
        docs = [truncate_at_whitespace(t, o["max_bytes_per_document"]) for t in docs]
        docs = [d for d in docs if d]
        if not docs:
            raise UserError(f"likelihood suite: dataset {label!r} has no text")
        yield from documents_to_metrics(generator, ctx, label, docs)


def documents_to_metrics(generator: Generator, ctx: SuiteContext, label: str, docs: list[str]) -> Iterable[Metric]:
    """The text records of documents loaded from data set ``label``: everything the suite does
    after loading (the scoring path ``bench_rolling --overhead`` times)."""
    from genbench import textdata

    o = ctx.options
    # words and bytes are counted on `docs`; the model may read a detokenized form (WikiText)
    scored = textdata.documents_to_scored_texts(label, docs)
    # the counts and the baseline are host work: done in a thread while the model scores
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="likelihood-counts") as pool:
        counted = pool.submit(_counts_and_baseline, label, docs)
        ll = examples_to_likelihood(generator, scored, ctx)
        n_bytes, n_words, unigram = counted.result()
    if ll.unit == "byte":
        n_tokens = n_bytes
    else:
        n_tokens = int(ll.units.sum())
    total = float(ll.nll.sum())
    values = text_metrics.nll_to_text_metrics(total, n_bytes=n_bytes, n_words=n_words, n_tokens=n_tokens)
    se_total = None if ll.stderr is None else float(np.sqrt(np.sum(ll.stderr ** 2)))
    detok = textdata.PRESETS[label].detokenizer if label in textdata.PRESETS else None
    conv = likelihood_convention(ll, dataset=label, documents=len(docs),
                                 scored_text=f"{detok} detokenized; words and bytes of the raw text"
                                 if detok else "as loaded",
                                 bytes=n_bytes, words=n_words,
                                 max_bytes_per_document=o["max_bytes_per_document"],
                                 definition="lm-evaluation-harness wikitext-style: documents scored separately")
    counts = {"word_perplexity": n_words, "byte_perplexity": n_bytes, "token_perplexity": n_tokens}
    for name, value in values.items():
        if name == "bits_per_byte":
            se = _div(se_total, n_bytes * LN2)
            unit = "bits/byte"
        else:
            # delta method: d exp(x/c) = exp(x/c) dx / c
            se = None if se_total is None else value * se_total / counts[name]
            unit = name.replace("_perplexity", " perplexity")
        yield Metric(name, value, unit=unit, higher_is_better=False, stderr=se, n=len(docs), task=label,
                     convention=conv)
    if unigram is None:
        return
    base = {"kind": "exact", "unit": "byte", "dataset": label}
    yield Metric("baseline_uniform_bits_per_byte", 8.0, unit="bits/byte", higher_is_better=False,
                 n=len(docs), task=label, convention={**base, "model": "uniform over 256 byte values"})
    yield Metric("baseline_unigram_bits_per_byte", unigram,
                 unit="bits/byte", higher_is_better=False, n=len(docs), task=label,
                 convention={**base, "model": "byte unigram of the train split, add-one smoothing"})


def _counts_and_baseline(label: str, docs: list[str]) -> tuple[int, int, float | None]:
    """(UTF-8 bytes, lm-eval words, byte-unigram bits/byte of the KJV train split or None) of
    the documents."""
    from genbench import data

    unigram = None
    if label.startswith("kjv"):
        test_bytes = np.frombuffer("".join(docs).encode(), dtype=np.uint8)
        unigram = unigram_bits(data.kjv_bytes("train"), test_bytes, 256)
    return text_metrics.texts_to_byte_count(docs), text_metrics.texts_to_word_count(docs), unigram


def examples_to_likelihood(generator: Generator, examples: Any, ctx: SuiteContext) -> LogLikelihood:
    """All examples (a uint8 image array or a list of documents) -> one LogLikelihood.

    The examples go to the adapter in calls of ``batch_size``, each told where it starts
    (``start``), with the run's seed: the adapter batches windows across the documents of a
    call, and its Monte Carlo draws are keyed by (seed, example index), so the result does
    not depend on ``batch_size``."""
    bs = int(ctx.options["batch_size"])
    if bs < 1:
        raise UserError(f"likelihood suite: option batch_size={bs} must be >= 1 (--set likelihood.batch_size=N)")
    parts = []
    for s in ctx.progress(range(0, len(examples), bs), desc="likelihood", unit="call"):
        part = generator.log_likelihood(examples[s: s + bs], seed=ctx.seed, start=s).validate()
        if len(part.nll) != len(examples[s: s + bs]):
            raise UserError(f"{generator.name}: log_likelihood returned {len(part.nll)} values for "
                            f"{len(examples[s: s + bs])} examples")
        parts.append(part)
    return LogLikelihood.concat(parts)


def _div(x: float | None, d: float) -> float | None:
    return None if x is None else x / d
