"""Does the ranking of models hold across image encoders? (Inception FID, FD_DINOv2, CMMD...)

``ranking_agreement(records)`` reads store records (a DataFrame or a list of dicts with
``adapter``, ``metric``, ``value``, ``higher_is_better``; ``status`` other than ok is skipped),
takes each encoder's headline metric (``fid``, ``fd_<encoder>``, ``cmmd``), averages it over seeds
per model and task, orders the models best first under each metric, and compares the orders:
Kendall's tau for every pair of metrics, and ``agree`` when every order is the same. Only models
with a value under every compared metric are ranked. ``sentence`` is the line a report prints
under its table of those metrics.
"""
from __future__ import annotations

import itertools
import re
from typing import Any, Iterable

#: the headline metric of each encoder: Inception FID, the Fréchet distance in another encoder's
#: features (fd_dinov2, fd_clip...), and CMMD; not floors, intervals or other per-encoder metrics
HEADLINE = re.compile(r"^(fid|fd_[a-z0-9_]+?|cmmd)$")
_FLOOR = re.compile(r"_train_floor$")
#: display names (EDM2's spelling for FD_DINOv2)
DISPLAY = {"fid": "FID", "fd_dinov2": "FD_DINOv2", "fd_clip": "FD_CLIP", "cmmd": "CMMD"}


def is_encoder_headline(metric: str) -> bool:
    """``fid``, ``fd_dinov2``, ``cmmd``...: an encoder's headline metric, not a floor."""
    return bool(HEADLINE.match(metric)) and not _FLOOR.search(metric)


def display_name(metric: str) -> str:
    return DISPLAY.get(metric, metric.upper() if metric.startswith("fd_") else metric)


def _rows(records) -> list[dict[str, Any]]:
    if hasattr(records, "to_dict"):  # a pandas DataFrame
        return records.to_dict("records")
    return list(records)


def kendall_tau(order_a: list[str], order_b: list[str]) -> float:
    """Kendall's tau between two orders of the same items (1: same order, -1: reversed)."""
    pos_a = {m: i for i, m in enumerate(order_a)}
    pos_b = {m: i for i, m in enumerate(order_b)}
    pairs = list(itertools.combinations(order_a, 2))
    if not pairs:
        return 1.0
    score = sum(1 if (pos_a[x] - pos_a[y]) * (pos_b[x] - pos_b[y]) > 0 else -1 for x, y in pairs)
    return score / len(pairs)


def ranking_agreement(records, metrics: Iterable[str] | None = None, *, task: str | None = None) -> dict[str, Any]:
    """Orders of models under each headline metric and whether they agree.

    metrics: the metrics to compare (default: every headline metric present, ``HEADLINE``).
    task: only records of this task (default: all; a model's value is its mean over seeds and
        tasks, so give ``task`` when a run has several references).
    Returns ``metrics`` (compared, in order), ``models`` (ranked), ``orders`` {metric: models
    best first}, ``values`` {metric: {model: mean}}, ``tau`` {"a vs b": Kendall tau}, ``agree``
    (bool, or None with fewer than two metrics or two models) and ``sentence``.
    """
    rows = [r for r in _rows(records) if r.get("metric") and r.get("status", "ok") == "ok"
            and r.get("value") is not None and (task is None or r.get("task") == task)]
    present = list(dict.fromkeys(r["metric"] for r in rows if is_encoder_headline(r["metric"])))
    wanted = list(metrics) if metrics is not None else present
    sums: dict[str, dict[str, list[float]]] = {m: {} for m in wanted}
    better_high: dict[str, bool] = {}
    for r in rows:
        if r["metric"] in sums:
            sums[r["metric"]].setdefault(str(r["adapter"]), []).append(float(r["value"]))
            better_high[r["metric"]] = bool(r.get("higher_is_better", False))
    values = {m: {a: sum(v) / len(v) for a, v in per.items()} for m, per in sums.items()}
    compared = [m for m in wanted if values[m]]
    models = sorted(set.intersection(*(set(values[m]) for m in compared))) if compared else []
    orders = {m: sorted(models, key=lambda a, m=m: ((-1 if better_high[m] else 1) * values[m][a], a))
              for m in compared}
    tau = {f"{a} vs {b}": kendall_tau(orders[a], orders[b]) for a, b in itertools.combinations(compared, 2)}
    if len(compared) < 2 or len(models) < 2:
        agree = None
        sentence = (f"Ranking across encoders: not compared ({len(compared)} encoder metric(s) "
                    f"{', '.join(display_name(m) for m in compared) or 'none'}, {len(models)} model(s) with all).")
    else:
        agree = all(orders[m] == orders[compared[0]] for m in compared)
        names = ", ".join(display_name(m) for m in compared)
        if agree:
            sentence = (f"The ranking of the {len(models)} models agrees across encoders ({names}): "
                        f"{' > '.join(orders[compared[0]])}.")
        else:
            parts = "; ".join(f"{display_name(m)}: {' > '.join(orders[m])}" for m in compared)
            worst = min(tau.items(), key=lambda kv: kv[1])
            sentence = (f"The ranking of the {len(models)} models differs across encoders ({parts}; lowest Kendall "
                        f"tau {worst[1]:.2f}, {worst[0]}).")
    return {"metrics": compared, "models": models, "orders": orders, "values": values, "tau": tau, "agree": agree,
            "sentence": sentence}


__all__ = ["ranking_agreement", "kendall_tau", "display_name", "is_encoder_headline", "HEADLINE", "DISPLAY"]
