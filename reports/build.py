"""Write a report from run directories: Markdown tables, sample links and trade-off plots."""
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
    return out


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
