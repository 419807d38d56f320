"""Measured cells -> report tables: one row per (run, adapter) grouped by paradigm, one column
per (metric, convention), the best of a column marked only when clear of every other row's
interval, unavailable cells with their reason, and each table's notes."""
from __future__ import annotations

import pandas as pd

from genbench.reports import cells as C
from genbench.reports.document import Cell, Row, Table
from genbench.reports.numbers import SPREADS, delta_to_text, is_missing

KIND_LABEL = {"exact": "exact", "upper_bound": "≤ bound"}


def row_key(cell: pd.Series) -> tuple[str, str]:
    return (cell["run_id"], cell["adapter"])


def column_label(base: str, group: pd.DataFrame, ids: dict[str, str], several_tasks: bool) -> str:
    kind = group["kind"].iloc[0]
    label = base
    if several_tasks:
        label += f" ({group['task'].iloc[0]})"
    if kind in KIND_LABEL:
        label += f" ({KIND_LABEL[kind]})"
    return f"{label} [{ids[group['signature'].iloc[0]]}]"


def baseline_delta(cell: pd.Series, column: pd.DataFrame, baseline: str | None) -> str:
    if baseline is None or cell["run_id"] == baseline:
        return ""
    ref = column[(column["run_id"] == baseline) & (column["adapter"] == cell["adapter"])]
    if ref.empty:
        return ""
    ref = ref.iloc[0]
    halves = [(c["high"] - c["low"]) / 2 for c in (cell, ref) if not is_missing(c["low"]) and not is_missing(c["high"])]
    half = (sum(h * h for h in halves) ** 0.5) if len(halves) == 2 else None
    return delta_to_text(cell["value"] - ref["value"], half)


def cells_to_table(caption: str, cells: pd.DataFrame, columns: list[tuple[str, pd.DataFrame]], ids: dict[str, str], *,
           several_runs: bool, baseline: str | None = None, label: str = "") -> Table:
    """Rows: one per (run, adapter), grouped by paradigm; columns as given; best marked only when
    clear of the others' intervals."""
    with_setting = bool((cells["setting"] != "").any())
    header = ["model"] + (["setting"] if with_setting else []) + (["run"] if several_runs else []) + ["seeds"] \
        + [c[0] for c in columns]
    best = {}
    unmarked: dict[str, list[str]] = {"within noise": [], "no interval": []}
    for name, col in columns:
        idx, why = C.best_index(col)
        if idx is not None:
            best[name] = row_key(col.loc[idx])
        elif why in unmarked:
            unmarked[why].append(name)
    notes = [f"{text}: {'; '.join(unmarked[why])}" for why, text in (
        ("within noise", "No row marked best, the leading values are within each other's 95% intervals"),
        ("no interval", "No row marked best, some rows have no recorded interval")) if unmarked[why]]
    keys = cells.drop_duplicates(["run_id", "adapter"])
    rows: list[Row] = []
    for paradigm, group in keys.groupby("paradigm", sort=False):
        color = C.paradigm_color(paradigm)
        rows.append(Row([], paradigm=paradigm, color=color, group=paradigm))
        for _, k in group.iterrows():
            seeds = cells[(cells["run_id"] == k["run_id"]) & (cells["adapter"] == k["adapter"])]["seed_list"]
            seed_text = ",".join(sorted({s for ss in seeds for s in str(ss).split(",") if s}, key=int)) or "—"
            row = [Cell(k["model"])] + ([Cell(k["setting"] or "—")] if with_setting else []) \
                + ([Cell(k["run"])] if several_runs else [])
            row.append(Cell(seed_text))
            for name, col in columns:
                hit = col[(col["run_id"] == k["run_id"]) & (col["adapter"] == k["adapter"])]
                if hit.empty:
                    row.append(Cell("—", title="not measured"))
                    continue
                c = hit.iloc[0]
                if c["spread"] == "unavailable":
                    row.append(Cell(c["text"], title=c["reason"]))
                    if c["text"] != c["reason"]:
                        notes.append(f"{name}, {k['model']}: {c['reason']}")
                    continue
                row.append(Cell(c["text"], best=best.get(name) == row_key(c), bound=c["kind"] == "upper_bound",
                                title=f"{SPREADS.get(c['spread'], '')}; n={c['n']}",
                                sub=baseline_delta(c, col, baseline)))
            rows.append(Row(row, paradigm=paradigm, color=color))
    for name, col in columns:
        notes += bootstrap_note(name, col)
    used = dict.fromkeys(ids[col["signature"].iloc[0]] for _, col in columns)
    if used:
        notes.append("Conventions: " + ", ".join(f"{i}" for i in used) + " (spelled out under Conventions).")
    return Table(caption, header, rows, notes, label=label, text_columns=len(header) - len(columns))


def bootstrap_note(name: str, column: pd.DataFrame) -> list[str]:
    """How a column's bootstrap intervals were made and what they cost, from the conventions."""
    convs = [c for c, spread in zip(column["convention"], column["spread"])
             if spread == "ci" and isinstance(c, dict) and c.get("bootstrap")]
    if not convs:
        return []
    reps = sorted({int(c["bootstrap"]) for c in convs})
    secs = [float(c["bootstrap_seconds"]) for c in convs if isinstance(c.get("bootstrap_seconds"), (int, float))]
    method = convs[0].get("bootstrap_method") or convs[0].get("fid_bootstrap_method") or "samples resampled"
    cost = f"; cost {min(secs):.2g}-{max(secs):.2g} s per cell" if secs else ""
    return [f"{name}: 95% intervals from {'/'.join(map(str, reps))} bootstrap replicates ({method}){cost}"]


def arrow(column: pd.DataFrame) -> str:
    """↓ lower is better, ↑ higher is better, '' unknown."""
    hib = column["higher_is_better"].iloc[0]
    return "↓" if hib is False else ("↑" if hib else "")


def metric_columns(cells: pd.DataFrame, ids: dict[str, str]) -> list[tuple[str, pd.DataFrame]]:
    """(label, cells) per (metric, kind, convention) of one task, in the records' order:
    ``fid (FID) ↓ [C1]``."""
    columns = []
    for metric in dict.fromkeys(cells["metric"]):
        mc = cells[cells["metric"] == metric]
        for _, group in mc.groupby(["kind", "signature"], sort=False, dropna=False):
            unit = group["unit"].iloc[0]
            columns.append((column_label(f"{metric} ({unit}) {arrow(group)}".strip(), group, ids, False), group))
    return columns
