"""Write a report from run directories: Markdown tables, sample links and trade-off plots, and the
same report as HTML (``report.html`` beside ``report.md``)."""
from __future__ import annotations

from pathlib import Path

from genbench.reports.markdown import records_to_markdown
from genbench.reports.plots import COST_AXES, records_to_tradeoff_table, tradeoff_to_png
from genbench.store import load


def write_report(dirs: list[str], out: Path | None = None) -> Path:
    """Read the store only; write ``out`` (default DIR/report.md) and plots beside it."""
    frame = load(*dirs)
    out = Path(out) if out else Path(dirs[0]) / "report.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    text = records_to_markdown(frame, link_base=out.parent.resolve())
    table = records_to_tradeoff_table(frame) if len(frame) else None
    if table is not None and len(table) >= 2:
        plots = []
        for cost in COST_AXES:
            png = tradeoff_to_png(table, cost, out.parent / "plots" / f"fid_vs_{cost}.png")
            if png is not None:
                plots.append(f"![FID against {cost}](plots/{png.name})")
        if plots:
            text += "\n## Quality against compute\n\nFID of each sampler setting against its cost; one line per " \
                    "model, coloured by paradigm; circled points are the Pareto front.\n\n" + "\n\n".join(plots) + "\n"
    text += models_section(frame, out.parent.resolve())
    out.write_text(text, encoding="utf-8")
    markdown_to_html(text, out.with_suffix(".html"))
    return out


HTML_STYLE = """body{font-family:system-ui,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem;line-height:1.45}
table{border-collapse:collapse;margin:1rem 0}th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:right}
th:first-child,td:first-child,th:nth-child(2),td:nth-child(2){text-align:left}
img{max-width:100%;image-rendering:pixelated}pre{background:#f6f6f6;padding:.5rem;overflow-x:auto}
code{font-size:90%}li{margin:.2rem 0}"""


def markdown_to_html(text: str, path: Path) -> Path:
    """The Markdown report as one self-contained HTML page beside it (images stay linked)."""
    import html

    import markdown

    body = markdown.markdown(text, extensions=["tables", "fenced_code", "sane_lists"])
    title = html.escape(text.splitlines()[0].lstrip("# ") if text else "genbench report")
    path.write_text(f"<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title>"
                    f"<style>{HTML_STYLE}</style></head><body>\n{body}\n</body></html>\n", encoding="utf-8")
    return path


def models_section(frame, base: Path) -> str:
    """Links to the cards of the reference models that appear in the records."""
    import os

    from genbench.adapters.zoo import CARDS_DIR

    if frame.empty:
        return ""
    names = set(frame["adapter_name"].dropna() if "adapter_name" in frame else frame["adapter"])
    # feature extractors (the digits classifier) and scorers (text_quality) have cards too
    for conv in frame.get("convention", []):
        if isinstance(conv, dict):
            names.update(v for k, v in conv.items() if k in ("extractor", "scorer") and isinstance(v, str))
    cards = [(n, CARDS_DIR / f"{n}.md") for n in sorted(names) if (CARDS_DIR / f"{n}.md").exists()]
    if not cards:
        return ""
    lines = ["", "## Model cards", ""]
    lines += [f"- [`{n}`]({os.path.relpath(card, base)})" for n, card in cards]
    return "\n".join(lines) + "\n"
