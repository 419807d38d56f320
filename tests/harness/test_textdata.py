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
