"""Quality against compute: one line per model, the Pareto front marked. Reads only records."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

#: x axes: column -> axis label
COST_AXES = {
    "nfe_per_sample": "network function evaluations per sample",
    "seconds_per_sample": "wall time per sample (s, at the speed suite's batch size)",
    "gflops_per_sample": "GFLOP per sample (torch flop counter)",
}
PARADIGM_COLORS = {"autoregressive": "tab:blue", "masked": "tab:orange", "diffusion": "tab:green"}


def records_to_tradeoff_table(frame: pd.DataFrame, quality: str = "fid") -> pd.DataFrame:
    """One row per (adapter variant, seed): its quality metric and its costs."""
    ok = frame[frame["status"] == "ok"]

    def pick(metric: str, suite: str | None = None) -> pd.Series:
        sel = ok[ok["metric"] == metric]
        if suite:
            sel = sel[sel["suite"] == suite]
        return sel.groupby(["adapter", "seed"])["value"].last()

    table = pd.DataFrame({
        quality: pick(quality),
        "nfe_per_sample": pick("nfe_per_sample", "speed"),
        "samples_per_s": pick("samples_per_s", "speed"),
        "gflops_per_sample": pick("gflops_per_sample", "speed"),
    }).dropna(subset=[quality])
    table["seconds_per_sample"] = 1.0 / table["samples_per_s"]
    meta = ok.groupby(["adapter", "seed"])[["paradigm"]].last()
    names = ok.groupby(["adapter", "seed"])["adapter_name"].last() if "adapter_name" in ok else None
    table = table.join(meta)
    table["model"] = names if names is not None else table.index.get_level_values("adapter")
    table["model"] = table["model"].fillna(pd.Series(table.index.get_level_values("adapter"), index=table.index))
    return table.reset_index()


def pareto_front(cost: np.ndarray, quality: np.ndarray) -> np.ndarray:
    """Mask of points no other point beats on both (lower cost and lower quality value)."""
    cost, quality = np.asarray(cost, float), np.asarray(quality, float)
    mask = np.ones(len(cost), dtype=bool)
    for i in range(len(cost)):
        dominated = (cost <= cost[i]) & (quality <= quality[i]) & ((cost < cost[i]) | (quality < quality[i]))
        mask[i] = not dominated.any()
    return mask


def tradeoff_to_png(table: pd.DataFrame, cost: str, path: Path, *, quality: str = "fid",
                    quality_label: str = "FID (lower is better)") -> Path | None:
    """Scatter + lines of quality against one cost axis; None when no row has that cost."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = table.dropna(subset=[cost, quality])
    if data.empty:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    for model, g in data.groupby("model"):
        g = g.sort_values(cost)
        color = PARADIGM_COLORS.get(str(g["paradigm"].iloc[0]), "tab:gray")
        ax.plot(g[cost], g[quality], "o-", color=color, label=f"{model} ({g['paradigm'].iloc[0]})", alpha=0.85)
        for x, y, label in zip(g[cost], g[quality], g["adapter"]):
            # the swept setting, e.g. "steps=8", so each point can be read off the plot
            setting = label[label.find("[") + 1: -1] if label.endswith("]") and "[" in label else ""
            if setting:
                ax.annotate(setting, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=6, color=color)
    front = data[pareto_front(data[cost].to_numpy(), data[quality].to_numpy())].sort_values(cost)
    ax.plot(front[cost], front[quality], "k--", lw=1, zorder=0)
    ax.scatter(front[cost], front[quality], s=140, facecolors="none", edgecolors="k", label="Pareto front")
    ax.set_xscale("log")
    ax.set_xlabel(COST_AXES.get(cost, cost))
    ax.set_ylabel(quality_label)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
