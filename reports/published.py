"""Published numbers beside ours: rows of ``results/published.csv`` for a measured cell's data set
and metric, with the protocol differences (N, reference batch, resize) named.

The CSV's protocol is read from its optional columns ``n_samples``, ``reference`` and ``resize``
where a row has them, else from its ``split`` (the reference) and ``convention`` text
("50k samples" -> N = 50,000). A field the source does not state is said to be unstated.
"""
from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from genbench.reports.numbers import is_missing

#: names one reference goes by in papers and in file names
ALIASES = {"admreferencebatch": "virtualimagenet256labeled", "imagenet256": "imagenet256"}


def _norm(text: Any) -> str:
    key = re.sub(r"[^a-z0-9]", "", str(text).lower().replace(".npz", ""))
    return ALIASES.get(key, key)


def load_published(path: str | Path | None = None) -> pd.DataFrame:
    """The published-numbers table (the packaged ``results/published.csv`` by default)."""
    path = path or resources.files("genbench.results") / "published.csv"
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _published_n(row: pd.Series) -> int | None:
    if str(row.get("n_samples", "")).strip():
        return int(float(row["n_samples"]))
    m = re.search(r"(\d+(?:\.\d+)?)\s*k\s+(?:samples|val images|images)", str(row.get("convention", "")), re.I)
    if m:
        return int(float(m.group(1)) * 1000)
    m = re.search(r"(\d[\d,]*)\s+(?:samples|images)", str(row.get("convention", "")), re.I)
    return int(m.group(1).replace(",", "")) if m else None


def _matches(cell: pd.Series, row: pd.Series) -> bool:
    """Same metric and the same data: the cell's task names the published data set or split."""
    if row["metric"] != cell["metric"]:
        return False
    conv = cell["convention"] if isinstance(cell["convention"], dict) else {}
    ours = {_norm(cell["task"]), _norm(conv.get("dataset", "")), _norm(Path(str(conv.get("reference", ""))).name)}
    ours.discard("")
    theirs = {_norm(row.get("dataset", "")), _norm(row.get("split", ""))}
    theirs.discard("")
    return bool(ours & theirs)


def protocol_differences(cell: pd.Series, row: pd.Series) -> list[str]:
    """What differs between how we measured ``cell`` and how the source measured ``row``."""
    conv = cell["convention"] if isinstance(cell["convention"], dict) else {}
    out = []
    ours_n = conv.get("n_samples", cell.get("n"))
    theirs_n = _published_n(row)
    if theirs_n is None:
        out.append("N not stated by the source")
    elif not is_missing(ours_n) and int(ours_n) != theirs_n:
        out.append(f"N: {int(ours_n):,} here, {theirs_n:,} published")
    ref = str(row.get("reference", "")).strip() or str(row.get("split", "")).strip()
    ours_ref = conv.get("reference")
    if ours_ref and ref and _norm(Path(str(ours_ref)).name) != _norm(ref) and _norm(cell["task"]) != _norm(ref):
        out.append(f"reference: {Path(str(ours_ref)).name} here, {ref} published")
    resize = str(row.get("resize", "")).strip()
    ours_resize = conv.get("extractor_mode") or conv.get("resize")
    if resize and ours_resize and str(ours_resize) != resize:
        out.append(f"resize: {ours_resize} here, {resize} published")
    if row.get("unit") and cell.get("unit") and str(row["unit"]) != str(cell["unit"]):
        out.append(f"unit: {cell['unit']} here, {row['unit']} published")
    return out


def cells_to_published(cells: pd.DataFrame, published: pd.DataFrame) -> pd.DataFrame:
    """One row per (measured cell, published row) that share metric and data set: the cell's
    run/adapter/value text, the published model, value, source and the protocol differences."""
    rows = []
    if cells.empty or published.empty:
        return pd.DataFrame(columns=["suite", "task", "metric", "ours", "run", "ours_text", "model", "value",
                                     "unit", "source", "convention", "differences"])
    published = published[published["metric"].isin(set(cells["metric"]))]
    for _, pub in published.iterrows():
        for _, cell in cells[cells["metric"] == pub["metric"]].iterrows():
            if not _matches(cell, pub):
                continue
            rows.append({"suite": cell["suite"], "task": cell["task"], "metric": cell["metric"],
                         "ours": cell["adapter"], "run": cell["run"], "ours_text": cell["text"],
                         "model": pub["model"], "value": pub["value"], "unit": pub.get("unit", ""),
                         "source": pub["source"], "convention": pub.get("convention", ""),
                         "differences": protocol_differences(cell, pub)})
    return pd.DataFrame(rows)
