"""Text quality: generative perplexity of samples under a scorer LM, with sample entropy.

What is recorded (each also for real reference text cut to the samples' median length, with
the prefix ``reference_``, as the point of comparison):

* ``gen_perplexity``: corpus level, ``exp(sum NLL / sum units)`` (MDLM), in the scorer's own
  unit: per token for an ``hf-causal-lm`` scorer, per byte for the byte-level ``ar-kjv``;
* ``gen_perplexity_per_sequence``: mean of per-sample ``exp(NLL / units)`` (SEDD), same unit;
* ``gen_perplexity_per_byte``: the same NLL over the samples' UTF-8 bytes, whatever the
  scorer's tokenizer: the one figure comparable across scorers with different tokenizers;
* ``entropy``: mean per-sample byte-unigram entropy, the diversity check that Zheng et al.
  (2024) put beside generative perplexity (and later MDLM follow-ups such as DUO report; it
  is not computed by MDLM's or SEDD's code): generative perplexity alone rewards repetition.

First token. MDLM and SEDD score ``x[1:]`` given ``x[0]``: the first token of a sample is
context, not scored. ``first_token = "unscored"`` (default) does the same: the NLL of a text
minus that of its first unit (the scorer's first token, decoded; for a byte-level scorer the
first character), both scored from the scorer's prefix token, and the units (tokens, bytes)
counted without it. For an exact causal scorer that difference is exactly the NLL of the rest
given the first token. ``"scored"`` scores every unit given the scorer's BOS/prefix token.

Samples longer than the scorer's context are scored in lm-eval's rolling windows (each token
once, with as much context as fits); MDLM cuts them into independent 1,024-token chunks.
"""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from genbench.errors import UserError
from genbench.interfaces import Generator, LikelihoodKind
from genbench.metrics import text as text_metrics
from genbench.registry import build_adapter
from genbench.suite import Metric, Suite, SuiteContext
from genbench.suites.common import SAMPLE_SEPARATOR

FIRST_TOKEN_RULES = {
    "unscored": "first token of each text unscored, used as context (MDLM, SEDD)",
    "scored": "every token scored, the first given the scorer's BOS/prefix token",
}
ENTROPY_DEFINITION = ("mean over texts of each text's byte-unigram entropy (bits); the diversity check of "
                      "Zheng et al. 2024 (over tokens there), not computed by MDLM's or SEDD's code")


class TextQuality(Suite):
    name = "text_quality"
    description = "generative perplexity (per scorer unit and per byte, under a scorer LM) and entropy of samples"
    options = {"n_samples": 32, "batch_size": 32, "steps": None, "scorer": "ar-kjv", "reference": "kjv:test",
               "first_token": "unscored"}
    option_choices = {"first_token": tuple(FIRST_TOKEN_RULES)}

    @classmethod
    def check_options(cls, given: dict[str, Any], where: str) -> None:
        """Also: the scorer is a known adapter and the reference text exists, before any cell runs."""
        from genbench.registry import ADAPTERS, split_adapter_spec
        from genbench.runner import check_text_dataset

        super().check_options(given, where)
        scorer = given.get("scorer")
        if scorer is not None and split_adapter_spec(scorer)[0] not in ADAPTERS:
            raise UserError(f"{where} scorer = {scorer!r}: {ADAPTERS.unknown(split_adapter_spec(scorer)[0])}")
        if given.get("reference") is not None:
            check_text_dataset(given["reference"], where, field="reference")

    def applies_to(self, generator: Generator) -> bool:
        return getattr(generator, "modality", None) == "text"

    def run(self, generator: Generator, ctx: SuiteContext) -> Iterable[Metric]:
        o = ctx.options
        rule = o["first_token"]  # one of FIRST_TOKEN_RULES (option_choices)
        n = int(o["n_samples"])
        # bad options and files are found before any sample is drawn
        label, corpus = reference_corpus(o["reference"])
        scorer = build_adapter(o["scorer"], device=ctx.device)
        if rule == "unscored" and scorer.likelihood_kind != LikelihoodKind.EXACT:
            raise UserError(f"[suite.text_quality] scorer {o['scorer']!r} gives a {scorer.likelihood_kind.value} "
                            "likelihood: leaving the first token unscored needs an exact one (a causal LM); set "
                            "first_token = \"scored\" or use an autoregressive scorer")
        samples = generator.sample(n, seed=ctx.seed, batch_size=int(o["batch_size"]), steps=o["steps"])
        samples.validate(n, "text")
        texts = [t for t in samples.texts if t]
        if not texts:
            raise UserError(f"text_quality: all {n} samples of {getattr(generator, 'name', '?')} are empty texts")
        (ctx.artifacts / "samples.txt").write_text(SAMPLE_SEPARATOR.join(samples.texts), encoding="utf-8")
        length = int(np.median([len(t.encode("utf-8")) for t in texts]))
        real = corpus_to_pieces(corpus, label, length, n, ctx.seed)

        conv = {"scorer": o["scorer"], "scorer_sha256": scorer.describe().get("weights_sha256"),
                "n_samples": n, "sample_bytes_median": length, "first_token": FIRST_TOKEN_RULES[rule],
                "nfe_per_sample": samples.nfe_per_sample, "steps": o["steps"], "reference": label}
        for prefix, group in (("", texts), ("reference_", real)):
            scored = texts_to_scored_nll(scorer, group, first_token=rule, seed=ctx.seed)
            what = "samples" if not prefix else f"real text of {label}, pieces of the samples' median length"
            c = {**conv, "of": what, "unit": scored["unit"], "units_scored": float(scored["units"].sum()),
                 "bytes_scored": float(scored["bytes"].sum()), "texts_scored": len(scored["nll"])}
            ppl = text_metrics.sequence_nll_to_generative_perplexity(scored["nll"], scored["units"])
            per_byte = text_metrics.sequence_nll_to_generative_perplexity(scored["nll"], scored["bytes"])
            k = len(scored["nll"])
            yield Metric(f"{prefix}gen_perplexity", ppl["corpus"], unit=f"{scored['unit']} perplexity",
                         higher_is_better=False, n=k, task=label,
                         convention={**c, "aggregate": f"corpus: exp(sum nll / sum {scored['unit']}s) (MDLM)"})
            yield Metric(f"{prefix}gen_perplexity_per_sequence", ppl["per_sequence"],
                         unit=f"{scored['unit']} perplexity", higher_is_better=False, n=k, task=label,
                         convention={**c, "aggregate": "mean of per-sequence exp(mean nll) (SEDD)"})
            yield Metric(f"{prefix}gen_perplexity_per_byte", per_byte["corpus"], unit="byte perplexity",
                         higher_is_better=False, n=k, task=label,
                         convention={**c, "aggregate": "corpus: exp(sum nll / sum UTF-8 bytes of the scored text)"})
            yield Metric(f"{prefix}entropy", text_metrics.texts_to_unigram_entropy(group), unit="bits/byte",
                         higher_is_better=True, n=len(group), task=label,
                         convention={"definition": ENTROPY_DEFINITION, "of": what})


def reference_corpus(spec: str) -> tuple[str, bytes]:
    """(label, the UTF-8 bytes of the documents of ``spec`` joined by newlines): ``kjv[:split]``,
    a local .txt/.jsonl/.parquet/.csv file or a preset (``genbench.textdata.load_documents``)."""
    from genbench import textdata

    if not isinstance(spec, str) or not spec.strip():
        raise UserError("[suite.text_quality] reference is empty: give kjv[:split], a local .txt/.jsonl/.parquet/"
                        ".csv file or a preset name (genbench.textdata)")
    label, docs = textdata.load_documents(spec)
    return label, "\n".join(docs).encode("utf-8")


def corpus_to_pieces(corpus: bytes, label: str, length: int, n: int, seed: int) -> list[str]:
    """n pieces of ``length`` bytes at seeded random distinct offsets (a piece cut inside a
    character loses its broken bytes)."""
    if len(corpus) - length < n:
        raise UserError(f"[suite.text_quality] reference {label!r} holds {len(corpus)} bytes: too few for {n} "
                        f"pieces of {length} bytes at distinct offsets; give a longer reference text")
    starts = np.random.default_rng(seed).choice(len(corpus) - length, size=n, replace=False)
    return [corpus[s: s + length].decode("utf-8", errors="ignore") for s in starts]


def _first_units(scorer: Any, texts: list[str], unit: str) -> list[str]:
    """Each text's first unit as the scorer counts them: its first token, decoded (a scorer with
    a Hugging Face ``tokenizer``), or its first character (a byte-level scorer)."""
    tok = getattr(scorer, "tokenizer", None)
    if unit == "byte" and tok is None:
        return [t[0] for t in texts]
    if tok is None:
        raise UserError(f"text_quality: scorer {getattr(scorer, 'name', '?')!r} counts {unit}s but has no tokenizer "
                        "to find each text's first one; set first_token = \"scored\"")
    out = []
    for i, t in enumerate(texts):
        ids = tok(t, add_special_tokens=False)["input_ids"]
        first = tok.decode(ids[:1])
        if not ids or not t.startswith(first) or tok(first, add_special_tokens=False)["input_ids"] != ids[:1]:
            raise UserError(f"text_quality: the first token of text {i} ({t[:20]!r}...) does not decode to a prefix "
                            "that tokenizes back to it, so it cannot be left unscored; set first_token = \"scored\"")
        out.append(first)
    return out


def texts_to_scored_nll(scorer: Any, texts: list[str], *, first_token: str = "unscored",
                        seed: int = 0) -> dict[str, Any]:
    """NLL (nats, (K,)) of each text under the scorer, with ``units`` (its unit, (K,)) and
    ``bytes`` (UTF-8 bytes scored, (K,)); ``"unscored"`` leaves each text's first unit out
    (texts of a single unit then have nothing to score and are dropped: K <= len(texts))."""
    ll = scorer.log_likelihood(texts, seed=seed).validate()
    nll, units = np.asarray(ll.nll, dtype=np.float64), np.asarray(ll.units, dtype=np.float64)
    n_bytes = np.array([len(t.encode("utf-8")) for t in texts], dtype=np.float64)
    if first_token == "unscored":
        firsts = _first_units(scorer, texts, ll.unit)
        head = scorer.log_likelihood(firsts, seed=seed).validate()
        nll, units = nll - np.asarray(head.nll), units - np.asarray(head.units)
        n_bytes = n_bytes - np.array([len(f.encode("utf-8")) for f in firsts])
        keep = units > 0
        nll, units, n_bytes = nll[keep], units[keep], n_bytes[keep]
        if not keep.any():
            raise UserError("text_quality: every text is a single token; nothing is left to score after the first")
    return {"nll": nll, "units": units, "bytes": n_bytes, "unit": ll.unit}
