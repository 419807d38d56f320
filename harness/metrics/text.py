r"""Text likelihood metrics, with lm-evaluation-harness's definitions.

All take a total negative log-likelihood in nats and a count; the count decides the unit:
``word_perplexity = exp(nll / words)`` with words = ``len(re.split(r"\s+", document))`` (lm-eval's
``count_words``: a leading or trailing whitespace run adds one empty "word", as on every WikiText
page); ``byte_perplexity = exp(nll / utf8_bytes)``; ``bits_per_byte = nll / bytes / ln 2``.
Different tokenizers are only comparable per byte or per word.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from typing import Iterable, Sequence

import numpy as np

LN2 = math.log(2.0)
_WHITESPACE = re.compile(r"\s+")


def texts_to_word_count(texts: Iterable[str]) -> int:
    r"""Words as lm-evaluation-harness's ``count_words`` counts them: ``len(re.split(r"\s+", doc))``
    per document. Unlike ``len(doc.split())`` this counts an empty piece before a leading and
    after a trailing whitespace run; matching it keeps word perplexity comparable with lm-eval."""
    return sum(len(_WHITESPACE.split(t)) for t in texts)


def texts_to_byte_count(texts: Iterable[str]) -> int:
    return sum(len(t.encode("utf-8")) for t in texts)


def nll_to_perplexity(nll_nats: float, count: float) -> float:
    """exp(total NLL / count): perplexity per whatever the count counts."""
    if count <= 0:
        raise ValueError("perplexity needs a positive count of units")
    return math.exp(nll_nats / count)


def nll_to_bits_per_unit(nll_nats: float, count: float) -> float:
    if count <= 0:
        raise ValueError("bits per unit needs a positive count of units")
    return nll_nats / count / LN2


def nll_to_text_metrics(nll_nats: float, *, n_bytes: int, n_words: int, n_tokens: int) -> dict[str, float]:
    """The four likelihood numbers of the text suite from one total NLL (nats)."""
    return {
        "word_perplexity": nll_to_perplexity(nll_nats, n_words),
        "byte_perplexity": nll_to_perplexity(nll_nats, n_bytes),
        "bits_per_byte": nll_to_bits_per_unit(nll_nats, n_bytes),
        "token_perplexity": nll_to_perplexity(nll_nats, n_tokens),
    }


def texts_to_unigram_entropy(texts: Sequence[str]) -> float:
    """Mean over samples of each sample's byte-unigram entropy in bits.

    Generative perplexity alone rewards repetition; a low entropy beside a low perplexity
    exposes it. Zheng et al. (2024) introduced this check (over tokens) and later MDLM
    follow-ups (DUO) report it; MDLM's and SEDD's own code does not compute it.
    """
    values = []
    for t in texts:
        data = t.encode("utf-8")
        if not data:
            continue
        counts = np.array(list(Counter(data).values()), dtype=np.float64)
        p = counts / counts.sum()
        values.append(float(-(p * np.log2(p)).sum()))
    return float(np.mean(values)) if values else float("nan")


def sequence_nll_to_generative_perplexity(nll: np.ndarray, units: np.ndarray) -> dict[str, float]:
    """Generative perplexity both ways the papers aggregate it.

    corpus (MDLM): exp(sum nll / sum units); per_sequence (SEDD): mean of exp(nll_i / units_i).
    """
    nll = np.asarray(nll, dtype=np.float64)
    units = np.asarray(units, dtype=np.float64)
    return {
        "corpus": float(np.exp(nll.sum() / units.sum())),
        "per_sequence": float(np.mean(np.exp(nll / units))),
    }
