import json

import pytest

from genbench.errors import UserError
from genbench.textdata import PRESETS, load_documents


def test_txt_is_one_document(tmp_path):
    f = tmp_path / "doc.txt"
    f.write_text("In the beginning.\nAnd the earth.\n", encoding="utf-8")
    label, docs = load_documents(str(f))
    assert label == "doc.txt" and docs == ["In the beginning.\nAnd the earth.\n"]


def test_jsonl_and_parquet_rows_are_documents(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_text("\n".join(json.dumps({"text": t, "id": i}) for i, t in enumerate(["a b", "c d e"])) + "\n")
    assert load_documents(str(f))[1] == ["a b", "c d e"]
    import pandas as pd

    p = tmp_path / "d.parquet"
    pd.DataFrame({"body": ["x y", "z"]}).to_parquet(p)
    assert load_documents(f"{p}#body")[1] == ["x y", "z"]
    with pytest.raises(UserError, match=r"no column 'text' \(columns: \['body'\]\); name the text column"):
        load_documents(str(p))


def test_bad_text_files_are_named(tmp_path):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(UserError, match="latin1.txt: not UTF-8"):
        load_documents(str(bad))
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    with pytest.raises(UserError, match="empty.txt: the file is empty"):
        load_documents(str(empty))
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"text": "ok"}\n{"text": ""}\n')
    with pytest.raises(UserError, match="rows.jsonl: row 1 field 'text' is empty"):
        load_documents(str(rows))
    with pytest.raises(UserError, match="does not exist"):
        load_documents(str(tmp_path / "missing.txt"))


def test_kjv_and_presets():
    label, docs = load_documents("kjv:val", max_documents=2)
    assert label == "kjv:val" and len(docs) == 2
    assert {"wikitext-2", "wikitext-103", "ptb", "lambada", "lm1b", "openwebtext-valid"} <= set(PRESETS)
    assert PRESETS["openwebtext-valid"].last_n == 100_000
    with pytest.raises(UserError, match="unknown dataset 'wikitxt-2'"):
        load_documents("wikitxt-2")


def test_a_preset_offline_says_what_to_do(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(UserError, match="needs EleutherAI/wikitext_document_level"):
        load_documents("wikitext-2")


RAW_PAGE = (' = Robert Boulter = \n Robert Boulter is an English film , television and theatre actor . '
            'He had a guest @-@ starring role in " Herons " ( 2000 ) , seen by 1 @,@ 000 people ; '
            "it 's 5 \u00b0 C \n")


def test_wikitext_detokenizer_undoes_the_raw_spacing():
    from genbench.textdata import documents_to_scored_texts, wikitext_detokenize

    assert wikitext_detokenize(RAW_PAGE) == (
        ' = Robert Boulter =\nRobert Boulter is an English film, television and theatre actor. '
        'He had a guest-starring role in "Herons" (2000), seen by 1,000 people; '
        "it's 5\u00b0C\n")
    assert documents_to_scored_texts("wikitext-2", [RAW_PAGE]) == [wikitext_detokenize(RAW_PAGE)]
    assert documents_to_scored_texts("kjv:test", [RAW_PAGE]) == [RAW_PAGE]


def test_likelihood_scores_detokenized_wikitext_but_counts_the_raw_page(monkeypatch, tmp_path):
    """lm-eval's wikitext: the model reads the detokenized page; words and bytes are those of
    the raw page (its process_results counts doc["page"])."""
    import math
    import re

    import numpy as np

    from genbench import textdata
    from genbench.interfaces import Generator, LikelihoodKind, LogLikelihood
    from genbench.suite import SuiteContext
    from genbench.suites.likelihood import Likelihood

    class OneNatPerChar(Generator):
        name, paradigm, modality, likelihood_unit = "per-char", "autoregressive", "text", "token"
        seen: list[str] = []

        def sample(self, *a, **k):
            raise NotImplementedError

        @property
        def likelihood_kind(self):
            return LikelihoodKind.EXACT

        def log_likelihood(self, batch, *, seed=0, start=0):
            self.seen += list(batch)
            n = np.array([float(len(t)) for t in batch])
            return LogLikelihood(nll=n, units=n, unit="token", kind="exact")

    monkeypatch.setattr(textdata, "_preset_documents", lambda name: [RAW_PAGE])
    suite, gen = Likelihood(), OneNatPerChar()
    ctx = SuiteContext(seed=0, options={**suite.options, "dataset": "wikitext-2"}, artifacts=tmp_path)
    m = {x.metric: x for x in suite.run(gen, ctx)}
    detok = textdata.wikitext_detokenize(RAW_PAGE)
    assert gen.seen == [detok]
    words, n_bytes = len(re.split(r"\s+", RAW_PAGE)), len(RAW_PAGE.encode())
    assert m["word_perplexity"].value == pytest.approx(math.exp(len(detok) / words))
    assert m["bits_per_byte"].value == pytest.approx(len(detok) / n_bytes / math.log(2))
    assert "detokenized" in m["bits_per_byte"].convention["scored_text"]
