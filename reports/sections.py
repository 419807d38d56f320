"""Suite sections with a layout of their own: image quality measured with several encoders side
by side (with whether they rank the models alike), and one section per tokenizer.

Both read only measured cells (``cells.records_to_cells``); a column still holds one convention.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd

from genbench.reports import cells as C
from genbench.reports.document import Cell, Figure, Heading, Para, Row, Table
from genbench.reports.ranking import display_name, is_encoder_headline, ranking_agreement
from genbench.reports.tables import arrow, cells_to_table, column_label, metric_columns

#: the per-encoder metrics shown beside each encoder's headline metric (Naeem et al.)
BESIDE_HEADLINE = ("density", "coverage")


# --- image quality over several encoders -------------------------------------------------------
def encoder_name(conv: dict[str, Any]) -> str:
    """``inception``, ``torchscript``, ``dinov2``, ``clip``...: the extractor's kind, no path."""
    return C.encoder_of(conv).partition(":")[0] or "extractor not recorded"


def several_encoders(cells: pd.DataFrame) -> bool:
    """True when a task's image-quality cells were measured with more than one extractor."""
    return len({C.encoder_of(c) for c in cells["convention"]} - {""}) > 1


def _suffix(metric: str) -> str | None:
    """The per-encoder suffix of a headline metric: '' for fid, '_dinov2' for fd_dinov2, None for cmmd."""
    if metric == "fid":
        return ""
    if metric.startswith("fd_"):
        return metric[len("fd"):]
    return None


def encoder_columns(cells: pd.DataFrame, ids: dict[str, str]) -> list[tuple[str, pd.DataFrame, str | None]]:
    """(label, cells, ranking key or None) per column: each encoder's headline metric (FID,
    FD_DINOv2, FD_CLIP...; CMMD last), each followed by that encoder's density and coverage; one
    column per (metric, convention)."""
    metrics = list(dict.fromkeys(cells["metric"]))
    headline = [m for m in metrics if is_encoder_headline(m) and m != "cmmd"] + (["cmmd"] if "cmmd" in metrics else [])
    order: list[tuple[str, bool]] = []
    for m in headline:
        order.append((m, True))
        suffix = _suffix(m)
        if suffix is not None:
            order += [(f"{b}{suffix}", False) for b in BESIDE_HEADLINE if f"{b}{suffix}" in metrics]
    order += [(m, False) for m in metrics if m.split("_")[0] in BESIDE_HEADLINE and (m, False) not in order]
    out = []
    for metric, ranked in order:
        groups = list(cells[cells["metric"] == metric].groupby(["kind", "signature"], sort=False, dropna=False))
        for _, group in groups:
            enc = encoder_name(group["convention"].iloc[0])
            if ranked:
                base = display_name(metric) + (f" ({enc})" if len(groups) > 1 else "")
            else:
                base = f"{metric.split('_')[0]} ({enc})"
            label = column_label(f"{base} {arrow(group)}".strip(), group, ids, False)
            key = (display_name(metric) + (f" [{ids[group['signature'].iloc[0]]}]" if len(groups) > 1 else "")
                   if ranked else None)
            out.append((label, group, key))
    return out


def _row_label(cell: pd.Series, several_runs: bool) -> str:
    label = cell["model"] + (f" ({cell['setting']})" if cell["setting"] else "")
    return label + (f" [run {cell['run']}]" if several_runs else "")


def encoders_ranking(columns: list[tuple[str, pd.DataFrame, str | None]], several_runs: bool) -> dict[str, Any]:
    """``ranking.ranking_agreement`` over the table's rows and ranked columns (a metric measured
    under two conventions is two metrics here, never averaged together)."""
    rows, keys = [], []
    for _, group, key in columns:
        if key is None:
            continue
        keys.append(key)
        for _, c in group[group["spread"] != "unavailable"].iterrows():
            rows.append({"adapter": _row_label(c, several_runs), "metric": key, "value": c["value"],
                         "higher_is_better": c["higher_is_better"], "task": c["task"]})
    return ranking_agreement(rows, metrics=keys)


def encoder_tables(cells: pd.DataFrame, ids: dict[str, str], several_runs: bool, task: str) -> list:
    """The encoders side by side (one row per model), the ranking sentence, then one table per encoder."""
    columns = encoder_columns(cells, ids)
    blocks: list = []
    if columns:
        table = cells_to_table(f"Image quality on {task}: the encoders side by side", cells,
                               [(label, group) for label, group, _ in columns], ids, several_runs=several_runs,
                               label=f"tab:image_quality-{task}-encoders")
        # the ranking sentence leads the table's notes, so LaTeX carries it too
        table.notes.insert(0, encoders_ranking(columns, cells["run_id"].nunique() > 1)["sentence"])
        blocks.append(table)
    for encoder, ec in cells.groupby(cells["convention"].map(C.encoder_of), sort=False):
        blocks.append(cells_to_table(f"Image quality on {task}: every metric in {encoder or 'unrecorded'} features",
                                     ec, metric_columns(ec, ids), ids, several_runs=several_runs,
                                     label=f"tab:image_quality-{task}-{encoder_name({'extractor': encoder})}"))
    return blocks


# --- one section per tokenizer -----------------------------------------------------------------
#: tokenizer metrics in the order a section lists them, with their labels
TOKENIZER_METRICS = {
    "psnr": "PSNR", "ssim": "SSIM", "ssim_llamagen": "SSIM (LlamaGen, data_range 2.0)",
    "lpips_alex": "LPIPS (AlexNet)", "lpips_vgg": "LPIPS (VGG)", "rfid": "rFID",
    "codebook_usage": "codebook usage", "code_perplexity": "code perplexity", "tokens_per_image": "tokens per image",
    "bits_per_image": "bits per image", "latent_channels": "latent channels",
    "latent_dims_per_image": "latent dimensions per image",
}
#: shown only in a tokenizer's own section, as its own labelled row (never a column beside SSIM)
SECTION_ONLY = ("ssim_llamagen",)


def _shape(xs: Any, sep: str = "×") -> str:
    return sep.join(str(x) for x in xs) if isinstance(xs, (list, tuple)) else "—"


def _hash(x: Any) -> str:
    return f"sha256 {x[:12]}…" if isinstance(x, str) and len(x) == 64 else ""


def _how(metric: str, c: pd.Series) -> str:
    """How a tokenizer number was measured, from its record's convention."""
    conv = c["convention"]
    if c["spread"] == "unavailable":
        return c["reason"]
    n = conv.get("n", c["n"])
    if metric == "psnr":
        perfect = conv.get("perfect_reconstruction_db")
        rule = (f"an exact reconstruction counts as {perfect:.2f} dB (a half-level error on one pixel, "
                f"10 log10(4·255²·H·W·C)), above any imperfect one; " if isinstance(perfect, (int, float)) else "")
        return (f"per image on [0, 1], data range {conv.get('data_range', '?')}, then the mean over {n} images "
                f"± its standard error; {rule}{conv.get('exact_reconstructions', '?')} of {n} images reconstructed "
                f"exactly")
    if metric == "ssim":
        return (f"per image, data range {conv.get('data_range', '?')}, window {conv.get('win_size', '?')}; "
                f"{conv.get('implementation', '')}; mean ± standard error over {n} images")
    if metric == "ssim_llamagen":
        return str(conv.get("note") or "data_range 2.0 on [0, 1] images")
    if metric.startswith("lpips_"):
        return (f"{conv.get('lpips_net', metric[6:])} backbone and heads from local weights "
                f"({_hash(conv.get('lpips_weights_sha256'))}), input {conv.get('lpips_input', '?')}; mean ± se")
    if metric == "rfid":
        warn = conv.get("warnings") or []
        return (f"extractor {conv.get('extractor', '?')} {_hash(conv.get('weights_sha256'))}".strip()
                + f"; reference: {conv.get('reference', '?')}; N = {n} reconstructions against "
                f"{conv.get('n_reference', '?')} originals" + ("; ⚠ " + " ⚠ ".join(warn) if warn else ""))
    if metric == "codebook_usage":
        return f"{conv.get('distinct_codes', '?')} of {conv.get('codebook_size', '?')} codes used over the set"
    if metric == "bits_per_image":
        k = conv.get("codebook_size")
        return f"{_shape(conv.get('code_grid'), '·')}·log2 {k}" if k else str(conv.get("definition", ""))
    if metric == "tokens_per_image":
        return f"code grid {_shape(conv.get('code_grid'))}"
    if metric.startswith("latent_"):
        return f"latent shape {_shape(conv.get('latent_shape'))} (channels × height × width)"
    return str(conv.get("definition", ""))


def _settings(first: dict[str, Any], tk: pd.DataFrame) -> list[Row]:
    """Rows (field, value) of the conventions every number of one tokenizer shares."""
    tok = first.get("tokenizer") if isinstance(first.get("tokenizer"), dict) else {}
    latent = next((c.get("latent_shape") for c in tk["convention"] if c.get("latent_shape")), None)
    fields = [
        ("kind", first.get("kind") or tok.get("kind")),
        ("pixel scaling", first.get("pixel_scaling") or tok.get("pixel_scaling")),
        ("output quantisation", first.get("output_quantisation") or tok.get("output_quantisation")),
        ("dataset", first.get("dataset")), ("split", first.get("split") or "none (the source has no splits)"),
        ("resize", first.get("resize")), ("grey images", first.get("grey")),
        ("image shape (H×W×C)", _shape(first.get("image_shape"))),
        ("images (N)", first.get("n")),
        ("exact reconstructions", first.get("exact_reconstructions")),
        ("codebook", f"{tok['codebook_size']} codes" if tok.get("codebook_size") else None),
        ("latent shape (C×H×W)", _shape(latent) if latent else None),
        ("weights", _hash(tok.get("weights_sha256")) or None),
        ("seeds", ",".join(sorted(set(",".join(tk["seed_list"]).split(",")) - {""}, key=int)) or None),
    ]
    return [Row([Cell(k), Cell(str(v))]) for k, v in fields if v not in (None, "", "—")]


def _reconstructions(c: pd.Series, who: str) -> list:
    if not isinstance(c["artifacts"], str) or not isinstance(c["run_dir"], str):
        return []
    png = Path(c["run_dir"]) / c["artifacts"] / "reconstructions.png"
    if not png.is_file():
        return [Para(f"{who}: no reconstructions.png among the cell's artifacts", "warning")]
    return [Figure(png.read_bytes(), f"{who}: originals (odd rows) each above their reconstructions (even rows), "
                                     f"the first images of the set", f"originals and reconstructions of {c['model']}",
                   name=f"tokenizer-{c['run']}-{c['adapter']}-{c['task']}-reconstructions", pixelated=True, wide=True)]


def tokenizer_sections(cells: pd.DataFrame, ids: dict[str, str], several_runs: bool) -> list:
    """One section per (run, tokenizer, data set): its conventions, every number with its
    uncertainty, convention id and how it was measured, and the reconstructions figure."""
    blocks: list = []
    for (_, _, task), tk in cells.groupby(["run_id", "adapter", "task"], sort=False):
        c0 = tk.iloc[0]
        who = f"{c0['model']} on {task}" + (f", run {c0['run']}" if several_runs else "")
        known = [m for m in TOKENIZER_METRICS if m in set(tk["metric"])]
        order = known + [m for m in dict.fromkeys(tk["metric"]) if m not in known]
        first = (tk[tk["metric"] == "psnr"] if "psnr" in known else tk)["convention"].iloc[0]
        rows = []
        for metric in order:
            for _, c in tk[tk["metric"] == metric].iterrows():
                rows.append(Row([Cell(TOKENIZER_METRICS.get(metric, metric)), Cell(c["text"], title=c["reason"] if isinstance(c["reason"], str) else ""),
                                 Cell(str(c["unit"] or "")), Cell(ids[c["signature"]]), Cell(_how(metric, c))]))
        blocks += [Heading(3, f"Tokenizer {who}", _anchor(c0, task)),
                   Table(f"{who}: conventions shared by every number below", ["field", "value"],
                         _settings(first, tk), text_columns=2),
                   Table(f"{who}: reconstruction metrics", ["metric", "value", "unit", "convention", "how measured"],
                         rows, ["PSNR and SSIM on [0, 1] images with data range 1.0; ± one standard error of the mean "
                                "over images.", "SSIM with LlamaGen's data_range 2.0 on [0, 1] images, where "
                                "recorded, is its own row: it reads higher and is not comparable with SSIM."],
                         label=f"tab:tokenizer-{c0['adapter']}-{task}", text_columns=5, number_columns=(1,))]
        blocks += _reconstructions(c0, who)
    return blocks


def _anchor(c: pd.Series, task: str) -> str:
    return "tokenizer-" + re.sub(r"[^a-z0-9]+", "-", f"{c['run']}-{c['adapter']}-{task}".lower()).strip("-")


def comparison_cells(cells: pd.DataFrame) -> pd.DataFrame:
    """A suite's cells for the table across tokenizers (LlamaGen's SSIM only in each section)."""
    return cells[~cells["metric"].isin(SECTION_ONLY)]
