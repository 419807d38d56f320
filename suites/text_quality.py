"""Text quality: generative perplexity of samples under a scorer LM, with sample entropy.

Generative perplexity alone rewards repetition, so the byte-unigram entropy of the samples
stands beside it, and the same two numbers for real held-out text of the same length give
the reference point.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from genbench.interfaces import Generator
from genbench.metrics import text as text_metrics
from genbench.registry import build_adapter
from genbench.suite import Metric, Suite, SuiteContext
from genbench.suites.common import SAMPLE_SEPARATOR


class TextQuality(Suite):
    name = "text_quality"
    description = "generative perplexity (per byte, under a scorer LM) and entropy of samples"
    options = {"n_samples": 32, "batch_size": 32, "steps": None, "scorer": "ar-kjv", "split": "test"}

    def applies_to(self, generator: Generator) -> bool:
        return getattr(generator, "modality", None) == "text"

    def run(self, generator: Generator, ctx: SuiteContext) -> Iterable[Metric]:
        from genbench import data

        o = ctx.options
        n = int(o["n_samples"])
        samples = generator.sample(n, seed=ctx.seed, batch_size=int(o["batch_size"]), steps=o["steps"])
        samples.validate(n, "text")
        texts = [t for t in samples.texts if t]
        (ctx.artifacts / "samples.txt").write_text(SAMPLE_SEPARATOR.join(samples.texts), encoding="utf-8")
        scorer = build_adapter(o["scorer"], device=ctx.device)
        length = int(np.median([len(t.encode("utf-8")) for t in texts]))

        # real held-out text cut into pieces of the samples' length: the reference point
        corpus = data.kjv_bytes(o["split"]).tobytes()
        starts = np.random.default_rng(ctx.seed).choice(len(corpus) - length, size=n, replace=False)
        real = [corpus[s: s + length].decode("utf-8", errors="ignore") for s in starts]

        conv = {"scorer": o["scorer"], "scorer_sha256": scorer.describe().get("weights_sha256"),
                "unit": "byte", "n_samples": n, "sample_bytes_median": length,
                "nfe_per_sample": samples.nfe_per_sample, "steps": o["steps"]}
        for label, group in (("", texts), ("reference_", real)):
            ll = scorer.log_likelihood(group, seed=ctx.seed).validate()
            ppl = text_metrics.sequence_nll_to_generative_perplexity(ll.nll, ll.units)
            what = "samples" if not label else f"real {o['split']} text of the same length"
            yield Metric(f"{label}gen_perplexity", ppl["corpus"], unit="byte perplexity", higher_is_better=False,
                         n=len(group), task="kjv",
                         convention={**conv, "aggregate": "corpus: exp(sum nll / sum bytes) (MDLM)", "of": what})
            yield Metric(f"{label}gen_perplexity_per_sequence", ppl["per_sequence"], unit="byte perplexity",
                         higher_is_better=False, n=len(group), task="kjv",
                         convention={**conv, "aggregate": "mean of per-sequence exp(mean nll) (SEDD)", "of": what})
            yield Metric(f"{label}entropy", text_metrics.texts_to_unigram_entropy(group), unit="bits/byte",
                         higher_is_better=True, n=len(group), task="kjv",
                         convention={"definition": "mean per-sample byte-unigram entropy", "of": what})
