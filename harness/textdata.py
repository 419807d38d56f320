"""Text documents for the likelihood suite: built-in KJV, local files, and paper presets.

A spec is one of:

* ``kjv`` or ``kjv:SPLIT`` — the offline KJV books (see ``genbench.data``);
* a local ``.txt`` file — one document;
* a local ``.jsonl`` / ``.json`` / ``.parquet`` / ``.csv`` file — one document per row, from
  its ``text`` column (``PATH#COLUMN`` picks another column);
* a preset name (below) — the data set as the papers define it, through ``datasets``;
  these need the Hugging Face hub or its local cache.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from genbench.errors import UserError


@dataclass(frozen=True)
class TextPreset:
    path: str
    config: str | None
    split: str
    column: str
    note: str
    last_n: int | None = None  # keep only the last N rows (OpenWebText validation)
    #: name of a function in DETOKENIZERS: the model scores the detokenized text while words
    #: and bytes are counted on the original, as lm-eval's task does
    detokenizer: str | None = None


#: the paper definitions of common likelihood benchmarks
PRESETS: dict[str, TextPreset] = {
    "wikitext-2": TextPreset("EleutherAI/wikitext_document_level", "wikitext-2-raw-v1", "test", "page",
                             "lm-evaluation-harness `wikitext`: whole Wikipedia articles, detokenized for scoring, "
                             "words and bytes counted on the raw page", detokenizer="wikitext"),
    "wikitext-103": TextPreset("EleutherAI/wikitext_document_level", "wikitext-103-raw-v1", "test", "page",
                               "as wikitext-2, the 103M-token version's test split", detokenizer="wikitext"),
    "ptb": TextPreset("ptb_text_only", None, "test", "sentence", "Penn Treebank test sentences (GPT-2 zero-shot)"),
    "lambada": TextPreset("EleutherAI/lambada_openai", "default", "test", "text",
                          "LAMBADA (OpenAI's detokenised version, as GPT-2 and lm-eval use)"),
    "lm1b": TextPreset("lm1b", None, "test", "text", "One Billion Words test split (MDLM's LM1B)"),
    "openwebtext-valid": TextPreset("Skylion007/openwebtext", None, "train", "text",
                                    "MDLM's OpenWebText validation: the last 100,000 documents of train",
                                    last_n=100_000),
}

# lm-evaluation-harness's WikiText detokenizer (tasks/wikitext): the raw pages space out
# punctuation and number separators (" @,@ "); the model reads the text as written. Ordered
# (kind, pattern, replacement) steps: "s" a plain substring, "re" a regular expression.
_WIKITEXT_STEPS: tuple[tuple[str, str, str], ...] = (
    ("s", "s '", "s'"),
    ("re", r"/' [0-9]/", r"/'[0-9]/"),
    ("s", " @-@ ", "-"), ("s", " @,@ ", ","), ("s", " @.@ ", "."),
    ("s", " : ", ": "), ("s", " ; ", "; "), ("s", " . ", ". "), ("s", " ! ", "! "), ("s", " ? ", "? "),
    ("s", " , ", ", "),
    ("re", r"\(\s*([^\)]*?)\s*\)", r"(\1)"),
    ("re", r"\[\s*([^\]]*?)\s*\]", r"[\1]"),
    ("re", r"{\s*([^}]*?)\s*}", r"{\1}"),
    ("re", r"\"\s*([^\"]*?)\s*\"", r'"\1"'),
    ("re", r"'\s*([^']*?)\s*'", r"'\1'"),
    ("s", "= = = =", "===="), ("s", "= = =", "==="), ("s", "= =", "=="),
    ("s", " \u00b0 ", "\u00b0"), ("s", " \n", "\n"), ("s", "\n ", "\n"), ("s", " N ", " 1 "), ("s", " 's", "'s"),
)


def wikitext_detokenize(page: str) -> str:
    """A raw WikiText page -> the text lm-eval's ``wikitext`` task scores."""
    for kind, pattern, replacement in _WIKITEXT_STEPS:
        page = page.replace(pattern, replacement) if kind == "s" else re.sub(pattern, replacement, page)
    return page


DETOKENIZERS = {"wikitext": wikitext_detokenize}


def documents_to_scored_texts(spec: str, documents: list[str]) -> list[str]:
    """The texts a model scores for documents of ``spec``: detokenized for presets that say so
    (their words and bytes are still counted on ``documents``), else the documents themselves."""
    preset = PRESETS.get(spec)
    if preset is None or preset.detokenizer is None:
        return list(documents)
    return [DETOKENIZERS[preset.detokenizer](d) for d in documents]


TABLE_SUFFIXES = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}


def load_documents(spec: str, *, max_documents: int | None = None) -> tuple[str, list[str]]:
    """(a label for records, the documents) of a data spec; errors name the file and the fix."""
    if spec == "kjv" or spec.startswith("kjv:"):
        from genbench import data

        split = spec.partition(":")[2] or "test"
        return f"kjv:{split}", _limit(data.kjv_texts(split), max_documents)
    path_part, _, column = spec.partition("#")
    path = Path(path_part)
    if path.suffix == ".txt" or path.suffix in TABLE_SUFFIXES:
        if not path.exists():
            raise UserError(f"dataset file {path} does not exist; pass an existing .txt/.jsonl/.parquet file or a "
                            f"preset ({', '.join(sorted(PRESETS))})")
        if path.suffix == ".txt":
            return path.name, [_read_text(path)]
        return path.name, _limit(_table_documents(path, column or "text"), max_documents)
    if spec in PRESETS:
        return spec, _limit(_preset_documents(spec), max_documents)
    raise UserError(f"unknown dataset {spec!r}; use kjv[:split], a local .txt/.jsonl/.parquet/.csv file, "
                    f"or a preset: {', '.join(sorted(PRESETS))}")


def _limit(docs: list[str], n: int | None) -> list[str]:
    return docs[:n] if n else docs


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text (byte {e.start}: {raw[e.start:e.start + 4]!r}); "
                        "convert it with e.g. `iconv -t UTF-8`") from None
    if not text.strip():
        raise UserError(f"{path}: the file is empty; a likelihood needs at least one character")
    return text


def _table_documents(path: Path, column: str) -> list[str]:
    import datasets

    if path.suffix != ".parquet" and not path.read_bytes().strip():
        raise UserError(f"{path}: the file is empty; a likelihood needs at least one document")
    bad = _first_bad_json_line(path)  # datasets would say only "An error occurred while generating the dataset"
    if bad is not None:
        raise UserError(f"{path}: {bad}; fix or remove that line (one JSON object per line)")
    try:
        ds = datasets.load_dataset(TABLE_SUFFIXES[path.suffix], data_files=str(path), split="train")
    except Exception as e:  # pyarrow / json errors: say which file
        raise UserError(f"{path}: cannot be read as {path.suffix} ({type(e).__name__}: {e})") from None
    if column not in ds.column_names:
        raise UserError(f"{path}: no column {column!r} (columns: {ds.column_names}); "
                        f"name the text column as {path}#COLUMN")
    docs = ds[column]
    for i, d in enumerate(docs):
        if not isinstance(d, str):
            raise UserError(f"{path}: row {i} field {column!r} is {type(d).__name__}, not text")
        if not d.strip():
            raise UserError(f"{path}: row {i} field {column!r} is empty; remove empty rows")
    return list(docs)


def _first_bad_json_line(path: Path) -> str | None:
    """``line N is not a JSON object`` for the first line of a .jsonl file that is not, else None."""
    import json

    if path.suffix != ".jsonl":
        return None
    with open(path, "rb") as f:
        for i, line in enumerate(f, 1):
            try:
                if line.strip() and not isinstance(json.loads(line), dict):
                    return f"line {i} is not a JSON object"
            except ValueError:
                return f"line {i} is not JSON"
    return None


def _preset_documents(name: str) -> list[str]:
    import datasets

    p = PRESETS[name]
    try:
        ds = datasets.load_dataset(p.path, p.config, split=p.split)
    except Exception as e:
        raise UserError(f"dataset preset {name!r} needs {p.path} from the Hugging Face hub or its local cache "
                        f"({type(e).__name__}); download it where the hub is reachable, or pass a local file") from None
    if p.last_n:
        ds = ds.select(range(max(0, len(ds) - p.last_n), len(ds)))
    return [d for d in ds[p.column] if d.strip()]
