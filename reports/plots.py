"""Plots as PNG bytes (embedded in the page): quality against compute with error bars and a Pareto
front drawn only where the intervals allow it, and likelihood bar charts. Reads only cells."""
from __future__ import annotations

import io

import numpy as np
import pandas as pd

from genbench.reports.cells import paradigm_color

#: x axes: column -> axis label
COST_AXES = {
    "nfe_per_sample": "network evaluations per sample",
    "seconds_per_sample": "wall time per sample (s)",
    "gflops_per_sample": "GFLOP per sample",
}
#: one marker per model, in order of appearance, so models of one paradigm (one colour) stay apart
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h", "*", "p")


def pareto_front(cost: np.ndarray, quality: np.ndarray) -> np.ndarray:
    """Mask of points no other point beats on both (lower cost and lower quality value)."""
    cost, quality = np.asarray(cost, float), np.asarray(quality, float)
    mask = np.ones(len(cost), dtype=bool)
    for i in range(len(cost)):
        dominated = (cost <= cost[i]) & (quality <= quality[i]) & ((cost < cost[i]) | (quality < quality[i]))
        mask[i] = not dominated.any()
    return mask


def front_within_intervals(data: pd.DataFrame, cost: str, quality: str = "fid") -> tuple[pd.DataFrame, list[str]]:
    """The Pareto front kept only where each step to a costlier point buys a quality gain clear of
    both intervals (``{quality}_low`` / ``{quality}_high``); the notes name the steps within noise."""
    data = data.dropna(subset=[cost, quality])
    front = data[pareto_front(data[cost].to_numpy(), data[quality].to_numpy())].sort_values(cost)
    kept, notes = [], []
    for idx, row in front.iterrows():
        if not kept:
            kept.append(idx)
            continue
        prev = front.loc[kept[-1]]
        hi, lo = row.get(f"{quality}_high"), prev.get(f"{quality}_low")
        if pd.notna(hi) and pd.notna(lo) and hi < lo:
            kept.append(idx)
        else:
            notes.append(f"{row['adapter']} ({quality} {row['text']}) is within noise of {prev['adapter']} "
                         f"({prev['text']})")
    return front.loc[kept], notes


def _setup():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    _setup().close(fig)
    return buf.getvalue()


def tradeoff_to_png(data: pd.DataFrame, *, quality: str = "fid", quality_label: str = "FID (lower is better)",
                    title: str = "") -> tuple[bytes | None, list[str]]:
    """One panel per cost axis present: quality (with its interval as an error bar) against cost
    (log axis, with the timing range as an error bar), a line per model, the front where clear.
    Returns (PNG bytes or None when no point has a cost, notes on the front)."""
    costs = [c for c in COST_AXES if c in data and data[c].notna().any()]
    if not costs or data[quality].notna().sum() < 1:
        return None, []
    plt = _setup()
    fig, axes = plt.subplots(1, len(costs), figsize=(4.6 * len(costs), 4.2), dpi=110, squeeze=False)
    markers = {m: MARKERS[i % len(MARKERS)] for i, m in enumerate(dict.fromkeys(data["model"]))}
    notes: list[str] = []
    for ax, cost in zip(axes[0], costs):
        d = data.dropna(subset=[cost, quality])
        group_by = ["model", "run"] if "run" in d else ["model"]
        for key, g in d.groupby(group_by, sort=False):
            model = key[0] if isinstance(key, tuple) else key
            g = g.sort_values(cost)
            color = paradigm_color(g["paradigm"].iloc[0])
            yerr = np.vstack([g[quality] - g[f"{quality}_low"], g[f"{quality}_high"] - g[quality]])
            yerr = np.where(np.isfinite(yerr), np.clip(yerr, 0, None), 0)
            xerr = None
            if f"{cost}_low" in g:
                xerr = np.vstack([g[cost] - g[f"{cost}_low"], g[f"{cost}_high"] - g[cost]])
                xerr = np.where(np.isfinite(xerr), np.clip(xerr, 0, None), 0)
            # one line per (model, run): a sweep is a line, a single default setting a lone marker
            ax.errorbar(g[cost], g[quality], yerr=yerr, xerr=xerr, fmt=markers[model] + "-", color=color,
                        ms=6, capsize=3, lw=1.2, alpha=0.9, label=f"{model} ({g['paradigm'].iloc[0]})")
            for x, y, setting in zip(g[cost], g[quality], g["setting"]):
                if setting:
                    ax.annotate(setting, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=7, color=color)
        front, front_notes = front_within_intervals(d, cost, quality)
        if len(front) >= 2:
            ax.plot(front[cost], front[quality], "k--", lw=1, zorder=0)
        ax.scatter(front[cost], front[quality], s=170, facecolors="none", edgecolors="k", zorder=3,
                   label="Pareto front (steps clear of noise)")
        if front_notes:
            ax.set_title("costlier front points: within noise" if len(front) >= 2 else
                         "front beyond the cheapest point: within noise", fontsize=8, color="0.3")
        notes += [n for n in front_notes if n not in notes]
        if (d[cost] > 0).all():
            ax.set_xscale("log")
            from matplotlib.ticker import LogLocator, ScalarFormatter

            ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(ScalarFormatter())
            ax.xaxis.get_major_formatter().set_scientific(False)
        ax.set_xlabel(COST_AXES[cost] + " (log)")
        ax.set_ylabel(quality_label)
        ax.grid(alpha=0.3, which="both")
    handles, labels = axes[0][0].get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    fig.legend(unique.values(), unique.keys(), loc="lower center", ncol=min(4, len(unique)), fontsize=8,
               frameon=False)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return _png(fig), notes


def likelihood_to_png(column: pd.DataFrame, *, ylabel: str, title: str = "") -> bytes:
    """Bars of one likelihood column (one convention) with 95% error bars, coloured by paradigm,
    hatched where the number is an upper bound."""
    plt = _setup()
    data = column.dropna(subset=["value"])
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(data) + 2), 3.6), dpi=110)
    x = np.arange(len(data))
    low = (data["value"] - data["low"]).to_numpy(dtype=float)
    high = (data["high"] - data["value"]).to_numpy(dtype=float)
    yerr = np.where(np.isfinite(np.vstack([low, high])), np.vstack([low, high]), 0)
    colors = [paradigm_color(p) for p in data["paradigm"]]
    bars = ax.bar(x, data["value"], yerr=yerr, capsize=4, color=colors, edgecolor="k", lw=0.6)
    for bar, kind in zip(bars, data["kind"]):
        if kind == "upper_bound":
            bar.set_hatch("//")
    labels = [a if r == data["run"].iloc[0] or data["run"].nunique() == 1 else f"{a}\n({r})"
              for a, r in zip(data["adapter"], data["run"])]
    ax.set_xticks(x, labels, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return _png(fig)
