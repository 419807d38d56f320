"""A report document written as HTML (one self-contained file), Markdown, LaTeX (booktabs) or CSV.

HTML embeds every image as a ``data:`` URI and holds no external reference (no script, font or
link), so the file opens from anywhere. Markdown writes its figures into a ``<stem>_files/``
folder beside it; LaTeX holds the tables alone. CSV holds one row per model x metric.
"""
from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path

from genbench.reports.document import Bullets, Excerpt, Figure, Heading, Para, Table

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:80rem;margin:1.5rem auto;padding:0 1rem;
line-height:1.45;color:#222}
h1{margin-bottom:.2rem}h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2.2rem}
table{border-collapse:collapse;margin:.6rem 0 .3rem;font-size:.88rem}
caption{caption-side:top;text-align:left;font-weight:600;padding:.3rem 0}
th,td{border-bottom:1px solid #e3e3e3;padding:.28rem .55rem;text-align:right;vertical-align:top}
th{background:#f4f4f4;border-bottom:2px solid #bbb}
td.t,th.t{text-align:left}
tr.group td{font-weight:600;text-transform:capitalize;text-align:left;padding:.3rem .55rem .15rem;
border-bottom:2px solid currentColor;background:#fff}
.wide{overflow-x:auto}
td.best{font-weight:700;background:#fff7d6}
td.best::after{content:" ★";color:#b8860b}
td.bound{font-style:italic;color:#5a4a00}
td .sub{display:block;font-size:.78rem;color:#555}
.notes{font-size:.8rem;color:#444;margin:.1rem 0 1rem;padding-left:1.2rem}
.note{font-size:.85rem;color:#444}.warning{color:#8a4b00}
td:not(.t),td:first-child{white-space:nowrap}
figure{margin:1rem 0}figure.px{display:inline-block;width:31%;margin:.5rem 1% .5rem 0;vertical-align:top}
figcaption{font-size:.85rem;color:#333;margin-bottom:.3rem}
img{max-width:100%}img.px{image-rendering:pixelated}
blockquote.sample{white-space:pre-wrap;font-family:Georgia,serif;font-size:.9rem;background:#fafafa;
border-left:3px solid #ccc;margin:.3rem 0;padding:.3rem .7rem}
nav a{margin-right:.8rem;font-size:.9rem}
"""


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


# --- HTML --------------------------------------------------------------------------------------
def _html_table(t: Table) -> str:
    e = html.escape
    out = ['<div class="wide"><table>', f"<caption>{e(t.caption)}</caption>", "<thead><tr>"]
    out += [f'<th class="{"t" if t.is_text(i) else ""}">{e(h)}</th>' for i, h in enumerate(t.header)]
    out.append("</tr></thead><tbody>")
    for row in t.rows:
        if row.group:
            out.append(f'<tr class="group"><td colspan="{len(t.header)}" style="color:{row.color}">'
                       f"{e(row.group)}</td></tr>")
            continue
        style = f' style="box-shadow:inset 4px 0 0 {row.color}"' if row.color else ""
        cells = []
        for i, c in enumerate(row.cells):
            cls = " ".join(x for x in ("t" if t.is_text(i) else "", "best" if c.best else "",
                                       "bound" if c.bound else "") if x)
            title = f' title="{e(c.title)}"' if c.title else ""
            sub = f'<span class="sub">{e(c.sub)}</span>' if c.sub else ""
            first = style if i == 0 else ""
            cells.append(f'<td class="{cls}"{title}{first}>{e(c.text)}{sub}</td>')
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table></div>")
    if t.notes:
        out.append('<ul class="notes">' + "".join(f"<li>{e(n)}</li>" for n in t.notes) + "</ul>")
    return "\n".join(out)


def document_to_html(doc) -> str:
    e = html.escape
    body = [f"<h1>{e(doc.title)}</h1>"]
    nav = [b for b in doc.blocks if isinstance(b, Heading) and b.level == 2]
    if nav:
        body.append("<nav>" + "".join(f'<a href="#{e(h.anchor or _slug(h.text))}">{e(h.text)}</a>' for h in nav)
                    + "</nav>")
    for b in doc.blocks:
        if isinstance(b, Heading):
            body.append(f'<h{b.level} id="{e(b.anchor or _slug(b.text))}">{e(b.text)}</h{b.level}>')
        elif isinstance(b, Para):
            body.append(f'<p class="{b.style}">{e(b.text)}</p>' if b.style else f"<p>{e(b.text)}</p>")
        elif isinstance(b, Bullets):
            cls = f' class="{b.style}"' if b.style else ""
            body.append(f"<ul{cls}>" + "".join(f"<li>{e(i)}</li>" for i in b.items) + "</ul>")
        elif isinstance(b, Table):
            body.append(_html_table(b))
        elif isinstance(b, Figure):
            uri = "data:image/png;base64," + base64.b64encode(b.png).decode("ascii")
            cls = ' class="px"' if b.pixelated else ""
            fig_cls = cls if not b.wide else ""
            body.append(f"<figure{fig_cls}><figcaption>{e(b.caption)}</figcaption><img{cls} alt=\"{e(b.alt)}\" "
                        f'src="{uri}"></figure>')
        elif isinstance(b, Excerpt):
            body.append(f'<figure><figcaption>{e(b.caption)}</figcaption>'
                        + "".join(f'<blockquote class="sample">{e(t)}</blockquote>' for t in b.texts) + "</figure>")
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
            f"<title>{e(doc.title)}</title><style>{STYLE}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def report_to_html(report, path: Path) -> Path:
    path.write_text(document_to_html(report.document), encoding="utf-8")
    return path


# --- Markdown ----------------------------------------------------------------------------------
def _marked(cell, escape, *, bound: str, best: str, sub: str) -> str:
    """A cell's text escaped for a format, wrapped by that format's bound, best and sub-line patterns."""
    text = escape(cell.text)
    if cell.bound:
        text = bound.format(text)
    if cell.best:
        text = best.format(text)
    return text + (sub.format(escape(cell.sub)) if cell.sub else "")


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(t: Table) -> list[str]:
    lines = [f"**{t.caption}**", "", "| " + " | ".join(_md_escape(h) for h in t.header) + " |",
             "|" + "|".join(":---" if t.is_text(i) else "---:" for i in range(len(t.header))) + "|"]
    for row in t.rows:
        if row.group:
            lines.append("| " + " | ".join([f"*{row.group}*"] + [""] * (len(t.header) - 1)) + " |")
            continue
        cells = [_marked(c, _md_escape, bound="*{}*", best="**{}** ★", sub=" ({})") for c in row.cells]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines += [f"- {n}" for n in t.notes]
    return lines + [""]


def report_to_markdown(report, path: Path) -> Path:
    doc = report.document
    files = path.parent / f"{path.stem}_files"
    lines = [f"# {doc.title}", ""]
    for b in doc.blocks:
        if isinstance(b, Heading):
            lines += ["#" * b.level + " " + b.text, ""]
        elif isinstance(b, Para):
            lines += [("> " if b.style == "warning" else "") + b.text, ""]
        elif isinstance(b, Bullets):
            lines += [f"- {i}" for i in b.items] + [""]
        elif isinstance(b, Table):
            lines += _md_table(b)
        elif isinstance(b, Figure):
            files.mkdir(parents=True, exist_ok=True)
            name = _slug(b.name) + ".png"
            (files / name).write_bytes(b.png)
            lines += [f"*{b.caption}*", "", f"![{b.alt}]({files.name}/{name})", ""]
        elif isinstance(b, Excerpt):
            lines += [f"*{b.caption}*", ""]
            for t in b.texts:
                lines += ["> " + line if line else ">" for line in t.splitlines()] + [""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


# --- LaTeX -------------------------------------------------------------------------------------
_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
        "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "≤": r"$\leq$", "±": r"$\pm$",
        "—": "--", "†": r"$^\dagger$", "★": r"$\star$", "Δ": r"$\Delta$", "↓": r"$\downarrow$",
        "↑": r"$\uparrow$", "…": r"\ldots{}", "⚠": "(!)", "–": "--",
        # OT1 text fonts print > and < as other glyphs; the rest are safe with any inputenc
        ">": r"$>$", "<": r"$<$", "‡": r"$^\ddagger$", "×": r"$\times$", "·": r"$\cdot$", "²": r"$^2$"}


def tex_escape(text: str) -> str:
    return "".join(_TEX.get(ch, ch) for ch in str(text))


#: a LaTeX text column whose longest cell exceeds LONG_TEXT characters wraps at this width
LONG_TEXT, LONG_TEXT_WIDTH = 60, "7cm"


def _tex_table(t: Table) -> list[str]:
    def column_spec(i: int) -> str:
        if not t.is_text(i):
            return "r"
        longest = max((len(r.cells[i].text) for r in t.rows if len(r.cells) > i), default=0)
        return rf"p{{{LONG_TEXT_WIDTH}}}" if longest > LONG_TEXT else "l"  # long text wraps, not shrinks

    spec = "".join(column_spec(i) for i in range(len(t.header)))
    lines = [r"\begin{table}[ht]", r"\centering\small", rf"\caption{{{tex_escape(t.caption)}}}"]
    if t.label:
        lines.append(rf"\label{{{t.label}}}")
    lines += [r"\resizebox{\linewidth}{!}{%", rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
              " & ".join(rf"\textbf{{{tex_escape(h)}}}" for h in t.header) + r" \\", r"\midrule"]
    first_group = True
    for row in t.rows:
        if row.group:
            if not first_group:
                lines.append(r"\midrule")
            first_group = False
            lines.append(rf"\multicolumn{{{len(t.header)}}}{{l}}{{\textit{{{tex_escape(row.group)}}}}} \\")
            continue
        cells = [_marked(c, tex_escape, bound=r"\textit{{{}}}", best=r"\textbf{{{}}}", sub=r" {{\footnotesize({})}}")
                 for c in row.cells]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}}"]
    if t.notes:
        lines.append(r"\par\footnotesize " + r" \\ ".join(tex_escape(n) for n in t.notes))
    return lines + [r"\end{table}", ""]


def report_to_latex(report, path: Path) -> Path:
    """Every table of the report as booktabs LaTeX (needs \\usepackage{booktabs,graphicx})."""
    doc = report.document
    lines = [f"% {doc.title}: tables written by `genbench report --format latex`.",
             r"% Needs \usepackage{booktabs} and \usepackage{graphicx} (for \resizebox).",
             r"% Bold: best of a column, clear of every other row's 95% interval; italic: upper bound (ELBO).", ""]
    section = ""
    for b in doc.blocks:
        if isinstance(b, Heading) and b.level == 2:
            section = b.text
            lines += [f"% --- {section}", ""]
        elif isinstance(b, Table) and section not in ("Provenance",):
            lines += _tex_table(b)
        elif isinstance(b, Bullets) and section == "Conventions":
            lines += ["% " + tex_escape(i) for i in b.items] + [""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


# --- CSV ---------------------------------------------------------------------------------------
CSV_COLUMNS = ["run_id", "run", "model", "adapter", "setting", "paradigm", "modality", "suite", "task", "metric",
               "value", "low", "high", "spread", "stderr", "sd", "seeds", "n", "unit", "higher_is_better", "kind",
               "convention_id", "convention", "details", "formatted"]


def report_to_csv(report, path: Path) -> Path:
    """One row per model x metric: value, 95% interval, how it was obtained, convention (id and
    its fields as JSON), every other recorded detail (bootstrap replicates and seconds, Monte
    Carlo samples, timing spread) and the text the other formats print."""
    from genbench.reports.cells import convention_ids

    cells = report.cells.copy()
    ids = convention_ids(cells)
    cells["convention_id"] = cells["signature"].map(ids)
    # convention: the fields that decide comparability; details: everything the record said
    cells["details"] = cells["convention"].map(lambda c: json.dumps(c, sort_keys=True, default=str))
    cells["convention"] = cells["signature"].map(lambda s: json.dumps(json.loads(s), sort_keys=True))
    cells["formatted"] = cells["text"]
    cells.reindex(columns=CSV_COLUMNS).to_csv(path, index=False)
    return path


RENDERERS = {"html": report_to_html, "md": report_to_markdown, "latex": report_to_latex, "csv": report_to_csv}
