import math

import numpy as np
import pytest

from genbench.metrics import text


def test_lm_eval_definitions():
    # lm-eval's count_words is len(re.split(r"\s+", doc)): the trailing newline of the first
    # document adds an empty piece, so 3 + 1 words; bytes: 13 + 6
    docs = ["Hello  world\n", "héllo"]
    assert text.texts_to_word_count(docs) == 4
    assert text.texts_to_word_count([" = Title = \n body text \n"]) == 7
    assert text.texts_to_byte_count(docs) == 19
    m = text.nll_to_text_metrics(10.0, n_bytes=19, n_words=4, n_tokens=5)
    assert m["word_perplexity"] == pytest.approx(math.exp(10 / 4))
    assert m["byte_perplexity"] == pytest.approx(math.exp(10 / 19))
    assert m["bits_per_byte"] == pytest.approx(10 / 19 / math.log(2))
    assert m["token_perplexity"] == pytest.approx(math.exp(2))
    # bits per byte and byte perplexity are the same number in two forms
    assert 2 ** m["bits_per_byte"] == pytest.approx(m["byte_perplexity"])


def test_generative_perplexity_aggregations_differ_as_documented():
    nll = np.array([10.0, 40.0])
    units = np.array([10.0, 10.0])
    g = text.sequence_nll_to_generative_perplexity(nll, units)
    assert g["corpus"] == pytest.approx(math.exp(2.5))
    assert g["per_sequence"] == pytest.approx((math.e + math.exp(4)) / 2)


def test_entropy_exposes_repetition():
    assert text.texts_to_unigram_entropy(["aaaa"]) == 0.0
    assert text.texts_to_unigram_entropy(["abab"]) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        text.nll_to_perplexity(1.0, 0)
