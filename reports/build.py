"""Write the comparison report from run directories: one self-contained HTML page (images as data
URIs), or the same document as Markdown, LaTeX (booktabs) or CSV (one row per model x metric).

Reads only the results store. Order: headline table, one section per suite (tables, plots,
samples, published numbers beside ours), quality against compute, failed cells, what is missing,
conventions, provenance.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from genbench.errors import UserError
from genbench.reports import cells as C
from genbench.reports.document import Bullets, Cell, Document, Excerpt, Figure, Heading, Para, Row, Table
from genbench.reports.numbers import SPREADS
from genbench.reports.published import cells_to_published, load_published
from genbench.reports import sections as S
from genbench.reports.tables import KIND_LABEL, cells_to_table, column_label, metric_columns
from genbench.store import RunStore
from genbench.suites.common import SAMPLE_SEPARATOR

FORMATS = {"html": ".html", "md": ".md", "latex": ".tex", "csv": ".csv"}
#: headline columns per modality: (suite, metric, short label)
HEADLINE = {
    "image": [("image_quality", "fid", "FID"), ("image_quality", "fid_train_floor", "FID floor"),
              ("image_quality", "fd_dinov2", "FD_DINOv2"), ("image_quality", "cmmd", "CMMD"),
              ("tokenizer", "rfid", "rFID"), ("likelihood", "bits_per_dim", "bits/dim"),
              ("speed", "samples_per_s", "samples/s"), ("speed", "nfe_per_sample", "NFE/sample")],
    "text": [("likelihood", "bits_per_byte", "bits/byte"), ("text_quality", "gen_perplexity", "gen. PPL"),
             ("text_quality", "entropy", "entropy"), ("speed", "units_per_s", "tokens/s"),
             ("speed", "nfe_per_sample", "NFE/sample")],
}
SUITE_TITLES = {"image_quality": "Image quality", "likelihood": "Likelihood", "speed": "Speed",
                "text_quality": "Text quality", "tokenizer": "Tokenizer reconstruction"}


class Report:
    """Everything the renderers need: the document, the cells (for CSV) and where samples live."""

    def __init__(self, document: Document, cells: pd.DataFrame):
        self.document = document
        self.cells = cells


def _columns(cells: pd.DataFrame, specs: list[tuple[str, str, str]], ids: dict[str, str]) -> list[tuple[str, pd.DataFrame]]:
    """(label, cells of that column) for each spec, one column per (task, convention)."""
    out = []
    for suite, metric, label in specs:
        sel = cells[(cells["suite"] == suite) & (cells["metric"] == metric)]
        several = sel["task"].nunique() > 1
        for _, group in sel.groupby(["task", "kind", "signature"], sort=False, dropna=False):
            out.append((column_label(label, group, ids, several), group))
    return out


def _published_block(cells: pd.DataFrame, published: pd.DataFrame) -> list:
    pub = cells_to_published(cells, published)
    if pub.empty:
        return []
    rows = []
    for _, p in pub.iterrows():
        diff = "; ".join(p["differences"]) if p["differences"] else "same protocol"
        rows.append(Row([Cell(p["metric"]), Cell(f"{p['ours']} ({p['run']})"), Cell(p["ours_text"]),
                         Cell(p["model"]), Cell(str(p["value"])), Cell(p["source"]),
                         Cell(("⚠ " + diff) if p["differences"] else diff)]))
    return [Heading(3, "Published numbers beside ours"),
            Table("Rows of results/published.csv for the same metric and data set", 
                  ["metric", "ours", "our value", "published model", "published", "source", "protocol"],
                  rows, ["⚠ names each protocol difference (N, reference batch, resize): such numbers are not "
                         "directly comparable."], text_columns=7)]


def _samples(cells: pd.DataFrame, suite: str) -> list:
    """Sample grids (captions above) and text excerpts of the suite's cells."""
    blocks = []
    seen = set()
    for _, c in cells[cells["suite"] == suite].drop_duplicates(["run_id", "adapter"]).iterrows():
        if not isinstance(c["artifacts"], str) or not isinstance(c["run_dir"], str):
            continue
        folder = Path(c["run_dir"]) / c["artifacts"]
        if folder in seen or not folder.is_dir():
            continue
        seen.add(folder)
        who = f"{c['adapter']} ({c['paradigm']}), run {c['run']}, seed {c['seed_list']}"
        for png in sorted(folder.glob("*.png")):
            blocks.append(Figure(png.read_bytes(), f"{who}: {png.stem.replace('_', ' ')}", f"samples of {c['adapter']}",
                                 name=f"{suite}-{c['run']}-{c['adapter']}-{png.stem}", pixelated=True))
        for txt in sorted(folder.glob("*.txt")):
            blocks.append(Excerpt(f"{who}: first samples of {txt.name}", text_to_excerpts(txt)))
    return blocks


def text_to_excerpts(path: Path, *, samples: int = 3, chars: int = 320) -> list[str]:
    """The first ``samples`` samples of a samples.txt, each cut at ``chars`` characters (at a space)."""
    try:
        texts = path.read_text(encoding="utf-8", errors="replace").split(SAMPLE_SEPARATOR)[:samples]
    except OSError:
        return []
    out = []
    for t in texts:
        t = t.strip()
        if len(t) > chars:
            cut = t[:chars].rsplit(" ", 1)[0]
            t = (cut if len(cut) > chars // 2 else t[:chars]) + " …"
        out.append(t or "(empty sample)")
    return out


def _likelihood_figures(cells: pd.DataFrame, ids: dict[str, str]) -> list:
    from genbench.reports.plots import likelihood_to_png

    blocks = []
    main = cells[(cells["suite"] == "likelihood") & cells["metric"].isin(["bits_per_dim", "bits_per_byte"])]
    for (task, metric, kind, sig), col in main.groupby(["task", "metric", "kind", "signature"], sort=False,
                                                      dropna=False):
        label = f"{metric} on {task}, {KIND_LABEL.get(kind, kind or 'kind not recorded')} [{ids[sig]}]"
        blocks.append(Figure(likelihood_to_png(col, ylabel=str(col["unit"].iloc[0]) + " (lower is better)",
                                               title=label),
                             f"{label}: bars are 95% intervals; hatched bars are upper bounds (ELBO)",
                             f"bar chart of {metric}", name=f"likelihood-{task}-{metric}-{ids[sig]}"))
    return blocks


def _tradeoff(cells: pd.DataFrame, ids: dict[str, str]) -> list:
    """Quality against compute, one figure per FID convention (never two conventions on one plot)."""
    from genbench.reports.plots import tradeoff_to_png

    fid = cells[(cells["suite"] == "image_quality") & (cells["metric"] == "fid")]
    speed = cells[cells["suite"] == "speed"].set_index(["run_id", "adapter", "metric"])
    blocks: list = []
    for sig, group in fid.groupby("signature", sort=False):
        pts = group[["run_id", "run", "adapter", "model", "setting", "paradigm", "value", "low", "high", "text"]].rename(
            columns={"value": "fid", "low": "fid_low", "high": "fid_high"}).reset_index(drop=True)
        for metric in ("nfe_per_sample", "gflops_per_sample", "samples_per_s"):
            pts[metric] = [speed["value"].get((r, a, metric)) for r, a in zip(pts["run_id"], pts["adapter"])]
        lows = [speed["low"].get((r, a, "samples_per_s")) for r, a in zip(pts["run_id"], pts["adapter"])]
        highs = [speed["high"].get((r, a, "samples_per_s")) for r, a in zip(pts["run_id"], pts["adapter"])]
        pts["seconds_per_sample"] = 1.0 / pd.to_numeric(pts["samples_per_s"])
        pts["seconds_per_sample_low"] = 1.0 / pd.to_numeric(pd.Series(highs, dtype=float))
        pts["seconds_per_sample_high"] = 1.0 / pd.to_numeric(pd.Series(lows, dtype=float))
        pts = pts[pts[["nfe_per_sample", "seconds_per_sample", "gflops_per_sample"]].notna().any(axis=1)]
        if len(pts) < 2:
            continue
        title = f"FID [{ids[sig]}] against cost"
        png, notes = tradeoff_to_png(pts, title=title)
        if png is None:
            continue
        blocks.append(Figure(png, f"{title}: error bars are 95% intervals (FID) and the range over timed repeats "
                                  f"(time); circled points are the Pareto front where each step is clear of noise",
                             "FID against compute", name=f"tradeoff-{ids[sig]}"))
        if notes:
            blocks.append(Bullets([f"Within noise, not drawn as a step of the front: {n}." for n in notes], "note"))
    if blocks:
        return [Heading(2, "Quality against compute", "tradeoff"),
                Para("One figure per FID convention: FIDs measured under different conventions never share a plot.")
                ] + blocks
    return []


def _suite_sections(cells: pd.DataFrame, ids: dict[str, str], several_runs: bool, published: pd.DataFrame) -> list:
    blocks: list = []
    for suite in sorted(cells["suite"].unique()):
        sc = cells[cells["suite"] == suite]
        blocks.append(Heading(2, SUITE_TITLES.get(suite, suite), f"suite-{suite}"))
        for task in sorted(sc["task"].unique()):
            tc = sc[sc["task"] == task]
            title = f"{SUITE_TITLES.get(suite, suite)} on {task}"
            if suite == "image_quality" and S.several_encoders(tc):
                blocks += S.encoder_tables(tc, ids, several_runs, task)
                continue
            if suite == "tokenizer":
                tc, title = S.comparison_cells(tc), f"Tokenizers compared on {task}"
            blocks.append(cells_to_table(title, tc, metric_columns(tc, ids), ids, several_runs=several_runs,
                                         label=f"tab:{suite}-{task}"))
        measured = sc[sc["spread"] != "unavailable"]
        if suite == "likelihood":
            blocks += _likelihood_figures(measured, ids)
        blocks += _published_block(measured, published)
        if suite == "tokenizer":  # reconstructions sit in each tokenizer's section
            blocks += S.tokenizer_sections(sc, ids, several_runs)
            continue
        samples = _samples(sc, suite)
        if samples:
            blocks += [Heading(3, "Samples")] + samples
    return blocks


def _failed(frame: pd.DataFrame) -> list:
    failed = frame[frame["status"] == "failed"] if len(frame) else frame
    if failed.empty:
        return []
    labels = C.run_labels(frame)
    rows = [Row([Cell(str(r["suite"])), Cell(str(r["adapter"])), Cell(labels.get(str(r["run_id"]), str(r["run_id"]))),
                 Cell(str(r["seed"])), Cell(str(r["error"]))]) for _, r in failed.iterrows()]
    return [Heading(2, "Failed cells", "failed"),
            Table("Cells that raised: their metrics are missing from the tables above (shown as —)",
                  ["suite", "adapter", "run", "seed", "error"], rows, text_columns=5)]


def _missing(frame: pd.DataFrame, cells: pd.DataFrame, run_dirs: list[str], manifests: dict[str, dict]) -> list[str]:
    lines = C.missing_fields(run_dirs)
    for run_dir, m in manifests.items():
        if m and m.get("status") not in (None, "finished"):
            lines.append(f"run {m.get('run_id')} ({Path(run_dir).name}) did not finish (status {m.get('status')!r}): "
                         "cells after the interruption are missing; `genbench run --resume` finishes it")
        if not m:
            lines.append(f"{Path(run_dir).name}: no manifest.json, so its provenance is unknown")
    if len(cells):
        bare = cells[cells["spread"] == "none"]  # unavailable cells are listed one by one below
        if len(bare):
            lines.append("no uncertainty recorded (marked †) for: " + ", ".join(
                f"{m} ({s})" for m, s in dict.fromkeys(zip(bare["metric"], bare["suite"]))))
    if len(cells):
        for _, c in cells[cells["spread"] == "unavailable"].iterrows():
            lines.append(f"{c['metric']} ({c['suite']}, {c['model']}, run {c['run']}, {c['task']}): {c['reason']}")
    return lines


def _conventions(cells: pd.DataFrame, ids: dict[str, str]) -> list:
    rows = []
    for sig, cid in ids.items():
        metrics = ", ".join(dict.fromkeys(f"{m} ({s})" for m, s in
                                          cells[cells["signature"] == sig][["metric", "suite"]].itertuples(index=False)))
        rows.append(Row([Cell(cid), Cell(metrics), Cell(C.signature_to_text(sig))]))
    return [Heading(2, "Conventions", "conventions"),
            Para("Every column and plot holds numbers of one convention only: the fields below (extractor and "
                 "weights, resize, N, reference, unit, exact or bound...) are equal within it. Other fields of each "
                 "number (bootstrap replicates, Monte Carlo samples, timing spread) are in the CSV output."),
            Table("Each convention, spelled out once", ["id", "metrics", "fields"], rows, text_columns=3),
            Para("How each number's uncertainty was obtained:"), Bullets(list(SPREADS.values()))]


def _provenance(manifests: dict[str, dict], frame: pd.DataFrame) -> list:
    rows = []
    for run_dir, m in manifests.items():
        prov = m.get("provenance", {}) if m else {}
        seeds = sorted({int(s) for s in frame[frame["run_dir"] == run_dir]["seed"].dropna()}) if len(frame) else []
        packages = prov.get("packages") or {}
        rows.append(Row([Cell(str(m.get("run_id", Path(run_dir).name)) if m else Path(run_dir).name),
                         Cell(str(m.get("created", "—")) if m else "—"),
                         Cell(str(prov.get("git_commit") or "—")[:20]),
                         Cell(str(prov.get("genbench_version", "—"))),
                         Cell(f"{prov.get('device', '—')} ({prov.get('gpu') or prov.get('cpu') or '?'}, "
                              f"{prov.get('cpu_count', '?')} CPUs)"),
                         Cell(str(prov.get("threads", "—"))),
                         Cell(",".join(map(str, seeds)) or "—"),
                         Cell(f"python {prov.get('python', '?')}; " + ", ".join(
                             f"{k} {v}" for k, v in packages.items() if v))]))
    return [Heading(2, "Provenance", "provenance"),
            Table("Where the numbers came from", ["run id", "created", "commit", "genbench", "device", "threads",
                                                  "seeds", "versions"], rows, text_columns=8)]


def _model_cards(frame: pd.DataFrame) -> list:
    """The reference models, extractors and scorers in the records, from their cards (embedded, so
    the page needs no file beside it): what each is, its size, training and validation."""
    from genbench.adapters.zoo import CARDS_DIR

    if frame.empty:
        return []
    names = set(frame["adapter_name"].dropna()) if "adapter_name" in frame else set()
    names |= {str(a).split("[")[0] for a in frame["adapter"].dropna()}
    for conv in frame["convention"]:
        if isinstance(conv, dict):
            names.update(v for k, v in conv.items() if k in ("extractor", "scorer") and isinstance(v, str))
    rows = []
    for name in sorted(names):
        card = CARDS_DIR / f"{name}.md"
        if not card.exists():
            continue
        head = card.read_text(encoding="utf-8").split("\n## ")[0].splitlines()
        what = next((line for line in head[1:] if line.strip() and not line.startswith(("#", "-"))), "")
        fields = dict(line[2:].split(": ", 1) for line in head if line.startswith("- ") and ": " in line)
        rows.append(Row([Cell(name), Cell(what), Cell(fields.get("parameters", "—")),
                         Cell(fields.get("training", "—")), Cell(fields.get("validation", "—"))]))
    if not rows:
        return []
    return [Table("Reference models, extractors and scorers used (from adapters/cards/)",
                  ["name", "what", "parameters", "training", "validation"], rows, text_columns=5)]


def records_to_report(run_dirs: list[str], frame: pd.DataFrame, *, baseline: str | None = None,
                      published: pd.DataFrame | None = None, title: str = "genbench report") -> Report:
    """The whole report as a document plus its cells."""
    cells = C.records_to_cells(frame)
    ids = C.convention_ids(cells)
    manifests = {d: RunStore(Path(d)).manifest() or {} for d in run_dirs}
    doc = Document(title)
    runs = list(dict.fromkeys(frame["run_id"].dropna().astype(str))) if len(frame) else []
    if baseline is not None:
        match = [r for r in runs if baseline in (r, C.run_name(r))]
        if len(match) > 1:
            raise UserError(f"--baseline {baseline}: {len(match)} runs have that name ({', '.join(match)}); "
                            "give the run id of one")
        if not match:
            raise UserError(f"--baseline {baseline}: no such run among {', '.join(runs) or 'none'}; "
                            "give a run id or run name from the report's directories")
        baseline = match[0]
    several_runs = len(runs) > 1
    doc.add(Para(f"Runs: {', '.join(runs) or 'none'}. Every number carries its uncertainty: "
                 "[low, high] a 95% interval (FID: bootstrap over samples, reference fixed), ± se a standard error, "
                 "(sd, k seeds) mean ± standard deviation over seeds, † none recorded. "
                 "★ marks the best of a column only when its interval is clear of every other row's; "
                 "≤ marks an upper bound (ELBO) on the negative log-likelihood, exact likelihoods have no mark. "
                 "[Cn] names the column's convention."))
    if cells.empty:
        doc.add(Heading(2, "Headline", "headline"),
                Para("No measured numbers: " + ("the directories hold no records." if frame.empty
                                                else "every cell failed or carries no value."), "warning"))
    else:
        doc.add(Heading(2, "Headline", "headline"))
        for modality in [m for m in ("image", "text") if m in set(cells["modality"])] + \
                        sorted(set(cells["modality"]) - {"image", "text"}):
            mc = cells[cells["modality"] == modality]
            columns = _columns(mc, HEADLINE.get(modality, []), ids)
            doc.add(cells_to_table(f"Headline: {modality} models", mc, columns, ids, several_runs=several_runs,
                           baseline=baseline, label=f"tab:headline-{modality}"))
        if baseline is not None:
            doc.add(Para(f"Δ: change against the baseline run {baseline}, with the 95% half-width of the difference.",
                         "note"))
        doc.add(*_suite_sections(cells, ids, several_runs, published if published is not None else load_published()))
        doc.add(*_tradeoff(cells[cells["spread"] != "unavailable"], ids))
    doc.add(*_failed(frame))
    missing = _missing(frame, cells, run_dirs, manifests)
    doc.add(Heading(2, "What is missing", "missing"),
            Bullets(missing + ["— in a table: not measured (the suite does not apply to the model, the cell failed, "
                               "or the run did not include it)."], "warning" if missing else ""))
    if not cells.empty:
        doc.add(*_conventions(cells, ids))
    doc.add(*_provenance(manifests, frame))
    doc.add(*_model_cards(frame))
    return Report(doc, cells)


def _run_dirs(dirs: list[str]) -> list[str]:
    from genbench.store import _run_dirs as store_run_dirs

    out = []
    for d in dirs:
        path = Path(d)
        if not path.exists():
            raise UserError(f"{d}: no such directory; pass run directories written by `genbench run`")
        if path.is_dir() and not any(path.iterdir()):
            continue  # an empty directory: reported as holding no records
        out += [str(p) for p in store_run_dirs(path)]
    return out


def write_report(dirs: list[str], out: Path | None = None, *, formats: list[str] | None = None,
                 baseline: str | None = None) -> Path:
    """``write_report_files``, returning the first file written (``out`` itself, or its stem's)."""
    return write_report_files(dirs, out, formats=formats, baseline=baseline)[0]


def write_report_files(dirs: list[str], out: Path | None = None, *, formats: list[str] | None = None,
                       baseline: str | None = None) -> list[Path]:
    """Read the store only; write the report in each of ``formats`` (default: from ``out``'s suffix,
    ``.md`` also writing the HTML page beside it). Returns every file written, in ``formats`` order."""
    from genbench.reports import render

    out = Path(out) if out else Path(dirs[0]) / "report.html"
    if formats is None:
        by_suffix = {v: k for k, v in FORMATS.items()}
        fmt = by_suffix.get(out.suffix, "html")
        formats = [fmt] + (["html"] if fmt == "md" else [])
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise UserError(f"--format {bad[0]}: choose from {', '.join(FORMATS)}")
    run_dirs = _run_dirs(dirs)
    frame = C.records_frame(run_dirs) if run_dirs else pd.DataFrame(columns=["run_id", "status", "run_dir", "seed"])
    if frame.empty:
        frame = pd.DataFrame(columns=["run_id", "status", "run_dir", "seed"])
    report = records_to_report(run_dirs, frame, baseline=baseline)
    out.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        path = out if out.suffix == FORMATS[fmt] else out.with_suffix(FORMATS[fmt])
        render.RENDERERS[fmt](report, path)
        written.append(path)
    return written
