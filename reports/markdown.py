"""Records -> a Markdown report. Reads only the results store (a DataFrame from ``load``)."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pandas as pd

from genbench.suites.common import SAMPLE_SEPARATOR

PARADIGM_ORDER = {"autoregressive": 0, "masked": 1, "diffusion": 2}
#: convention keys worth showing under a table (others stay in records.jsonl)
SHOWN_CONVENTION = ("kind", "mc_samples", "extractor", "weights_sha256", "resize", "reference", "n_samples",
                    "n_reference", "scorer", "aggregate", "device", "threads", "batch_size", "repeats",
                    "warmup_excluded", "excluded", "dataset", "split", "unit", "data_range", "counter", "what",
                    "definition", "model", "timesteps", "antithetic")


def format_value(value: Any, stderr: Any = None, kind: str | None = None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    v = float(value)
    digits = 4 if abs(v) < 10 else (2 if abs(v) < 1000 else 0)
    text = f"{v:.{digits}f}"
    if stderr is not None and not (isinstance(stderr, float) and math.isnan(stderr)):
        text += f" ± {float(stderr):.{digits}f}"
    if kind == "upper_bound":
        text = "≤ " + text
    return text


def _convention_line(conventions: list[dict[str, Any]]) -> str:
    """The convention fields shared by all rows of a metric, plus those that differ (as 'varies')."""
    keys = [k for k in SHOWN_CONVENTION if any(k in c for c in conventions)]
    parts = []
    for k in keys:
        values = {json.dumps(c.get(k), sort_keys=True, default=str) for c in conventions}
        if len(values) == 1:
            v = conventions[0].get(k)
            if isinstance(v, str) and len(v) == 64 and k.endswith("sha256"):
                v = v[:12] + "…"
            parts.append(f"{k}={v}")
        elif k == "kind":
            parts.append("kind=per row (≤ marks an upper bound)")
    return "; ".join(parts)


def records_to_markdown(frame: pd.DataFrame, *, title: str = "genbench report",
                        link_base: Path | None = None) -> str:
    """One section per (suite, task): adapters as rows (ordered by paradigm), metrics as columns."""
    lines = [f"# {title}", ""]
    if frame.empty:
        return "\n".join(lines + ["No records.", ""])
    runs = sorted(frame["run_id"].dropna().unique())
    lines += [f"Runs: {', '.join(runs)}. Every number is mean ± standard error where one exists; "
              "`≤` marks an upper bound on the NLL (ELBO); conventions are listed under each table.", ""]
    ok = frame[frame["status"] == "ok"]
    for (suite, task), group in ok.groupby(["suite", "task"], sort=True):
        lines += [f"## {suite} — {task}", ""]
        metrics = list(dict.fromkeys(group["metric"]))
        rows = group.assign(_order=group["paradigm"].map(PARADIGM_ORDER).fillna(9))
        adapters = rows.sort_values(["_order", "adapter"])[["adapter", "paradigm", "seed"]].drop_duplicates()
        header = ["adapter", "paradigm", "seed"] + metrics
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        for _, a in adapters.iterrows():
            cells = [f"`{a['adapter']}`", str(a["paradigm"]), str(a["seed"])]
            sel = group[(group["adapter"] == a["adapter"]) & (group["seed"] == a["seed"])]
            for m in metrics:
                r = sel[sel["metric"] == m]
                if r.empty:
                    cells.append("—")
                    continue
                r = r.iloc[-1]
                conv = r["convention"] if isinstance(r["convention"], dict) else {}
                cells.append(format_value(r["value"], r["stderr"], conv.get("kind")))
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        for m in metrics:
            sub = group[group["metric"] == m]
            unit = sub["unit"].iloc[0]
            better = "higher is better" if bool(sub["higher_is_better"].iloc[0]) else "lower is better"
            conv = _convention_line([c if isinstance(c, dict) else {} for c in sub["convention"]])
            lines.append(f"- **{m}** ({unit}, {better}; n={_n(sub)}): {conv}")
        lines.append("")
        artifacts = _artifacts(group, link_base)
        if artifacts:
            lines += ["Samples:", ""] + artifacts + [""]
    failed = frame[frame["status"] == "failed"]
    if len(failed):
        lines += ["## Failed cells", "", "| suite | adapter | seed | error |", "|---|---|---|---|"]
        for _, r in failed.iterrows():
            lines.append(f"| {r['suite']} | `{r['adapter']}` | {r['seed']} | {str(r['error']).replace('|', '/')} |")
        lines.append("")
    return "\n".join(lines)


def _n(sub: pd.DataFrame) -> str:
    ns = sorted({int(x) for x in sub["n"].dropna()})
    return ", ".join(map(str, ns)) if ns else "—"


def _artifacts(group: pd.DataFrame, link_base: Path | None) -> list[str]:
    out = []
    if "artifacts" not in group.columns:
        return out
    for (adapter, seed, run_dir, art), _ in group.groupby(["adapter", "seed", "run_dir", "artifacts"], dropna=True):
        folder = Path(run_dir) / art
        for f in sorted(folder.glob("*.png")) + sorted(folder.glob("*.txt")):
            target = os.path.relpath(f, link_base) if link_base else str(f)
            if f.suffix == ".png":
                out.append(f"- `{adapter}` (seed {seed}): ![{adapter}]({target})")
            else:
                out.append(f"- `{adapter}` (seed {seed}): [{f.name}]({target})")
                out += text_samples_to_excerpt(f)
    return out


def text_samples_to_excerpt(path: Path, *, samples: int = 2, chars: int = 200) -> list[str]:
    """The first samples of a samples.txt, cut to ``chars`` characters, as an indented block
    under its list item (so text models can be read side by side in the report)."""
    try:
        texts = path.read_text(encoding="utf-8", errors="replace").split(SAMPLE_SEPARATOR)[:samples]
    except OSError:
        return []
    lines = ["", "  ```text"]
    for i, t in enumerate(texts):
        cut = t[:chars].replace("`", "'") + ("..." if len(t) > chars else "")
        lines += [f"  {line}" for line in cut.splitlines() or [""]]
        if i < len(texts) - 1:
            lines.append("  -----")
    return lines + ["  ```", ""]
