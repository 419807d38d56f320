"""Records -> measured cells: one row per (run, adapter, suite, task, metric, convention), seeds
aggregated, each with its 95% interval and the convention it was measured under.

A *convention* is the set of fields that decide whether two numbers may be compared
(:data:`COMPARABLE`): two cells share a table column or a plot panel only when these agree.
Reads only the results store's DataFrame (``genbench.store.load``).
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pandas as pd

from genbench.reports.numbers import cell_to_text, is_missing

#: convention fields that decide comparability (extractor and weights, resize, N, reference, unit, kind...)
COMPARABLE = ("kind", "unit", "extractor", "extractor_mode", "weights_sha256", "resize", "reference", "n_reference",
              "n_samples", "scorer", "scorer_sha256", "aggregate", "of", "dataset", "split", "max_bytes_per_document",
              "bytes", "device", "threads", "batch_size", "data_range", "range", "definition", "model", "layer",
              "k", "image_shape", "win_size", "lpips_weights_sha256")
#: values of ``kind`` that describe the model (a tokenizer's), not how its numbers were measured:
#: a VQ and a VAE tokenizer's PSNR share a column
MODEL_KINDS = ("discrete", "continuous")
#: metrics with no sampling noise: counts, and the same fixed data scored by a fixed rule
EXACT_METRICS = {"nfe_per_sample", "baseline_uniform_bits_per_dim", "baseline_unigram_bits_per_dim",
                 "baseline_uniform_bits_per_byte", "baseline_unigram_bits_per_byte", "codebook_usage",
                 "code_perplexity", "tokens_per_image", "bits_per_image", "latent_channels",
                 "latent_dims_per_image", "gflops_per_sample"}
#: metrics that are reference points, not scores: never ranked
NOT_RANKED_PREFIXES = ("baseline_", "reference_", "fid_train_floor")
#: timing metrics whose spread over repeats is recorded as min_s / max_s (seconds per batch)
TIMED = {"samples_per_s": "inverse", "units_per_s": "inverse", "latency_s": "direct"}
PARADIGM_ORDER = {"autoregressive": 0, "masked": 1, "diffusion": 2, "tokenizer": 3}
PARADIGM_COLORS = {"autoregressive": "#1f77b4", "masked": "#ff7f0e", "diffusion": "#2ca02c",
                   "tokenizer": "#9467bd"}
UNKNOWN_COLOR = "#7f7f7f"
#: record fields a report needs; a run whose records lack one is named under "What is missing"
NEEDED_FIELDS = {"paradigm": "rows cannot be grouped by paradigm", "stderr": "no uncertainty was recorded",
                 "convention": "the convention is unknown (kept in its own column)",
                 "n": "the sample count is unknown", "unit": "the unit is unknown", "seed": "the seed is unknown"}


#: Student's t 97.5% quantiles for 1..30 degrees of freedom (a 95% interval of a mean of few seeds)
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t_975(df: int) -> float:
    """Student's t quantile at 0.975 (1.96 in the large-sample limit)."""
    return _T975[df - 1] if df <= len(_T975) else 1.96 + 2.5 / df


def paradigm_color(paradigm: Any) -> str:
    return PARADIGM_COLORS.get(str(paradigm), UNKNOWN_COLOR)


def _conv(x: Any) -> dict[str, Any]:
    return x if isinstance(x, dict) else {}


def signature(convention: dict[str, Any], unit: Any, n: Any) -> str:
    """The comparability fields of one record as canonical JSON (the key of a column)."""
    sig = {k: convention[k] for k in COMPARABLE if k in convention and convention[k] is not None
           and not (k == "kind" and convention[k] in MODEL_KINDS)}
    if unit is not None and not is_missing(unit):
        sig["unit"] = unit
    if "n_samples" not in sig and not is_missing(n) and "repeats" not in convention:
        sig["n"] = int(n)
    if not convention:
        sig["convention"] = "not recorded"
    return json.dumps(sig, sort_keys=True, default=str)


#: genbench's run ids: ``NAME-YYYYmmdd-HHMMSS-HASH6`` (``-shardKofN`` for a shard store)
RUN_ID = re.compile(r"(?P<name>.+)-\d{8}-\d{6}-[0-9a-f]{6}(?:-shard\d+of\d+)?")


def run_name(run_id: str) -> str:
    """The run's name in a genbench run id (``dit-xl2-256`` of ``dit-xl2-256-20261130-054113-1f17bf``);
    for another id, what precedes its first hyphen."""
    match = RUN_ID.fullmatch(run_id)
    return match["name"] if match else run_id.split("-")[0]


def run_labels(frame: pd.DataFrame) -> dict[str, str]:
    """run_id -> a short label: the run's name (``quickstart``) when no other run shares it."""
    names: dict[str, str] = {}
    for run_id in frame["run_id"].dropna().unique():
        names[str(run_id)] = run_name(str(run_id))
    counts = pd.Series(list(names.values())).value_counts()
    return {rid: (name if counts[name] == 1 else rid) for rid, name in names.items()}


def _natural_key(text: str) -> tuple:
    """``steps=4`` before ``steps=16``: numbers in a setting compare as numbers."""
    return tuple((0, float(t), "") if re.fullmatch(r"-?\d+(?:\.\d+)?", t) else (1, 0.0, t)
                 for t in re.split(r"(-?\d+(?:\.\d+)?)", text) if t)


def _setting_text(setting: Any) -> str:
    if isinstance(setting, dict) and setting:
        return ", ".join(f"{k}={v}" for k, v in setting.items())
    return ""


def _single_interval(rec: pd.Series, conv: dict[str, Any]) -> tuple[str, float | None, float | None]:
    """(spread, low, high) of one seed's number: its recorded interval, 1.96 se, the timing range,
    exact, or none."""
    value = float(rec["value"])
    ci = conv.get("ci")
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and not any(is_missing(c) for c in ci):
        return "ci", float(ci[0]), float(ci[1])
    if not is_missing(rec.get("stderr")):
        se = float(rec["stderr"])
        return "stderr", value - 1.96 * se, value + 1.96 * se
    metric = str(rec["metric"])
    if metric in TIMED and all(isinstance(conv.get(k), (int, float)) for k in ("min_s", "max_s")):
        lo_s, hi_s, med = float(conv["min_s"]), float(conv["max_s"]), float(conv.get("median_s") or 0)
        if TIMED[metric] == "inverse" and lo_s > 0 and med > 0:
            # value = work / median time; the same work over the fastest and slowest repeat
            return "range", value * med / hi_s, value * med / lo_s
        if TIMED[metric] == "direct":
            return "range", lo_s, hi_s
    if metric in EXACT_METRICS or metric.startswith("baseline_") or conv.get("kind") == "exact":
        # an exact likelihood is a deterministic score of a fixed test split: no Monte Carlo noise
        return "exact", value, value
    return "none", None, None


def records_to_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, adapter, suite, task, metric, convention) of the ok records.

    Columns: run_id, run, model, adapter, setting, paradigm, modality, suite, task, metric, value,
    low, high (95% interval, or the timing range), spread (see ``numbers.SPREADS``), stderr, sd,
    seeds (count), seed_list, n, unit, higher_is_better, kind, convention (dict), signature, text.
    """
    columns = ["run_id", "run", "model", "adapter", "setting", "paradigm", "modality", "suite", "task", "metric",
               "value", "low", "high", "spread", "stderr", "sd", "seeds", "seed_list", "n", "unit",
               "higher_is_better", "kind", "convention", "signature", "text", "reason", "artifacts", "run_dir"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    # an ok record without a value (LPIPS without local weights...) stays: a cell saying why
    ok = frame[(frame["status"] == "ok") & frame["metric"].notna()].copy()
    if ok.empty:
        return pd.DataFrame(columns=columns)
    labels = run_labels(frame)
    for col in ("adapter_name", "setting", "artifacts", "run_dir"):
        if col not in ok.columns:
            ok[col] = None
    ok["_conv"] = ok["convention"].map(_conv)
    ok["_sig"] = [signature(c, u, n) for c, u, n in zip(ok["_conv"], ok["unit"], ok["n"])]
    rows = []
    keys = ["run_id", "adapter", "suite", "task", "metric", "_sig"]
    for key, g in ok.groupby(keys, sort=False, dropna=False):
        valued = g[g["value"].notna()]
        reason = None
        if valued.empty:  # no seed has a number: the cell says why, from the record
            g, reason = g.iloc[-1:], unavailable_reason(g.iloc[-1]["_conv"])
        else:
            g = valued
        first = g.iloc[0]
        conv = first["_conv"]
        values = g["value"].astype(float).to_numpy()
        seeds = [int(s) for s in g["seed"] if not is_missing(s)]
        if reason is not None:
            value, sd, spread, low, high, stderr = math.nan, None, "unavailable", None, None, None
        elif len(g) > 1:
            mean, sd = float(values.mean()), float(values.std(ddof=1))
            half = t_975(len(g) - 1) * sd / math.sqrt(len(g))
            spread, low, high, stderr = "seeds", mean - half, mean + half, None
            value = mean
        else:
            value, sd = float(values[0]), None
            spread, low, high = _single_interval(first, conv)
            stderr = None if is_missing(first.get("stderr")) else float(first["stderr"])
        model = first["adapter_name"] if isinstance(first["adapter_name"], str) else str(first["adapter"]).split("[")[0]
        kind = None if conv.get("kind") in MODEL_KINDS else conv.get("kind")
        rows.append({
            "run_id": str(key[0]), "run": labels.get(str(key[0]), str(key[0])), "model": model,
            "adapter": str(first["adapter"]), "setting": _setting_text(first["setting"]),
            "paradigm": first["paradigm"] if isinstance(first["paradigm"], str) else (
                "tokenizer" if first["suite"] == "tokenizer" else "unknown"),
            "modality": first["modality"] if isinstance(first["modality"], str) else "unknown",
            "suite": str(first["suite"]), "task": str(first["task"]), "metric": str(first["metric"]),
            "value": value, "low": low, "high": high, "spread": spread, "stderr": stderr, "sd": sd,
            "seeds": len(g), "seed_list": ",".join(map(str, sorted(seeds))),
            "n": None if is_missing(first["n"]) else int(first["n"]),
            "unit": None if is_missing(first["unit"]) else str(first["unit"]),
            "higher_is_better": bool(first["higher_is_better"]) if not is_missing(first["higher_is_better"]) else None,
            "kind": kind, "convention": conv, "signature": first["_sig"],
            "text": unavailable_text(reason) if reason else cell_to_text(
                value, spread=spread, low=low, high=high, stderr=stderr, sd=sd, seeds=len(g), kind=kind),
            "reason": reason,
            "artifacts": first["artifacts"] if isinstance(first["artifacts"], str) else None,
            "run_dir": first["run_dir"] if isinstance(first["run_dir"], str) else None,
        })
    cells = pd.DataFrame(rows, columns=columns)
    cells["_order"] = cells["paradigm"].map(PARADIGM_ORDER).fillna(9)
    cells["_setting"] = cells["setting"].map(_natural_key)
    cells = cells.sort_values(["_order", "model", "run", "_setting"], kind="stable").drop(columns=["_order", "_setting"])
    return cells.reset_index(drop=True)


#: an unavailable cell's text in a table; a longer reason goes to the table's notes
SHORT_REASON = 40


def unavailable_reason(conv: dict[str, Any]) -> str:
    """Why an ok record has no value: its ``status`` (``unavailable: no local weights``) and ``fix``."""
    status = str(conv.get("status") or "unavailable: no value recorded")
    return status + (f" (fix: {conv['fix']})" if conv.get("fix") else "")


def unavailable_text(reason: str) -> str:
    """The table text of an unavailable cell: the status when short, else ``unavailable ‡`` (see the notes)."""
    status = reason.split(" (fix: ")[0]
    return status if len(status) <= SHORT_REASON else "unavailable ‡"


def encoder_of(conv: dict[str, Any]) -> str:
    """The feature extractor a record's number was measured with (``inception``, ``dinov2``...), or ''."""
    return str(conv.get("extractor") or "")


def records_frame(run_dirs: list[str]) -> pd.DataFrame:
    """``store.load``'s latest records (two extractors' numbers of one cell and metric name stay apart)."""
    from genbench.store import load

    return load(*run_dirs)


def convention_ids(cells: pd.DataFrame) -> dict[str, str]:
    """signature -> ``C1``, ``C2``... in order of first appearance: by suite and task as the
    sections come, then in the records' order (FID before KID, Inception before DINOv2)."""
    ids: dict[str, str] = {}
    for sig in cells.sort_values(["suite", "task"], kind="stable")["signature"]:
        ids.setdefault(sig, f"C{len(ids) + 1}")
    return ids


def signature_to_text(sig: str) -> str:
    """``extractor=digits-classifier; n_samples=400; ...`` (hashes cut to 12 characters)."""
    parts = []
    for k, v in json.loads(sig).items():
        if isinstance(v, str) and len(v) == 64 and k.endswith("sha256"):
            v = v[:12] + "…"
        parts.append(f"{k}={v}")
    return "; ".join(parts) or "no convention fields"


def intervals_separate(best: tuple[float | None, float | None], other: tuple[float | None, float | None],
                       lower_is_better: bool) -> bool:
    """True when ``best``'s interval lies strictly on the better side of ``other``'s."""
    if None in best or None in other or any(isinstance(x, float) and math.isnan(x) for x in (*best, *other)):
        return False
    return best[1] < other[0] if lower_is_better else best[0] > other[1]


def best_index(column: pd.DataFrame) -> tuple[Any, str]:
    """(index of the row to mark best or None, why): marked only when its interval is clear of
    every other row's interval in the same column."""
    data = column.dropna(subset=["value"])
    if len(data) < 2:
        return None, "one row"
    hib = data["higher_is_better"].iloc[0]
    if hib is None or str(data["metric"].iloc[0]).startswith(NOT_RANKED_PREFIXES) or \
            data["metric"].iloc[0] in ("nfe_per_sample", "gflops_per_sample"):
        return None, "not ranked"
    idx = data["value"].idxmax() if hib else data["value"].idxmin()
    best = (data.at[idx, "low"], data.at[idx, "high"])
    if data[["low", "high"]].isna().any(axis=None):
        return None, "no interval"
    for j in data.index:
        if j != idx and not intervals_separate(best, (data.at[j, "low"], data.at[j, "high"]), not hib):
            return None, "within noise"
    return idx, "clear"


def missing_fields(run_dirs: list[str]) -> list[str]:
    """One line per run whose records lack a field the report needs, naming what follows."""
    from genbench.store import RECORDS, read_records

    out = []
    for run_dir in run_dirs:
        seen: set[str] = set()
        count = 0
        for rec in read_records(Path(run_dir) / RECORDS):
            if rec.get("status") == "ok":
                seen.update(k for k, v in rec.items() if v is not None or k == "stderr")
                count += 1
        for field, consequence in NEEDED_FIELDS.items():
            if count and field not in seen:
                out.append(f"{Path(run_dir).name}/{RECORDS}: no record has a '{field}' field, so {consequence}")
    return out
