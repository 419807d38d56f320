"""The comparison report: one self-contained page, the same numbers in every format, conventions
kept apart, and the edge cases (two runs, a missing column, a failed cell, an empty directory)."""
import html
import json
import re

import pandas as pd
import pytest

from genbench.cli import main
from genbench.errors import UserError
from genbench.reports.build import write_report
from genbench.reports.render import tex_escape
from tests.reports.runs import make_run


def _all_formats(tmp_path, dirs, **kw):
    out = tmp_path / "out" / "report.html"
    write_report([str(d) for d in dirs], out, formats=["html", "md", "latex", "csv"], **kw)
    return {"html": out.read_text(), "md": out.with_suffix(".md").read_text(),
            "latex": out.with_suffix(".tex").read_text(), "csv": pd.read_csv(out.with_suffix(".csv"))}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo-like run (three image paradigms, one text model, two seeds) in every format."""
    tmp = tmp_path_factory.mktemp("demo")
    return _all_formats(tmp, [make_run(tmp / "runs", seeds=(0, 1))])


@pytest.fixture(scope="module")
def one_seed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("one")
    return _all_formats(tmp, [make_run(tmp / "runs")])


def test_same_numbers_in_html_markdown_latex_and_csv(demo):
    out = demo
    csv = out["csv"]
    # one row per model x metric, seeds aggregated: 3 image models x 5 metrics + 2 text metrics
    assert len(csv) == 17 and (csv["seeds"] == 2).all()
    fid = csv[(csv.adapter == "ar-digits") & (csv.metric == "fid")].iloc[0]
    assert fid["value"] == pytest.approx(47.15) and fid["spread"] == "seeds"
    assert fid["formatted"] == "47.15 ± 0.35 (sd, 2 seeds)"  # the sd (0.354) decides the digits
    for text in csv["formatted"]:
        assert html.escape(text) in out["html"], text
        assert text in out["md"], text
        assert tex_escape(text) in out["latex"], text
    assert {"convention_id", "convention", "details", "low", "high", "unit", "kind"} <= set(csv.columns)
    assert json.loads(fid["details"])["bootstrap"] == 100 and "bootstrap" not in json.loads(fid["convention"])
    assert "Causal transformer over the 64 pixels" in out["html"]  # the cards of the models used, embedded
    assert r"\toprule" in out["latex"] and r"\midrule" in out["latex"] and r"\bottomrule" in out["latex"]


def test_page_is_self_contained(demo):
    page = demo["html"]
    srcs = re.findall(r'src="([^"]*)"', page)
    assert len(srcs) >= 4 and all(s.startswith("data:image/png;base64,") for s in srcs)  # 3 grids + plots
    assert all(h.startswith("#") for h in re.findall(r'href="([^"]*)"', page))
    assert "<script" not in page and "<link" not in page and "http://" not in page and "https://" not in page
    # text samples as readable excerpts, not Markdown fences
    assert "In the beginning God created" in page and "<pre" not in page and "&lt;code" not in page


def test_headline_marks_best_only_when_clear_and_bounds_apart(one_seed):
    page = one_seed["md"]
    headline = page.split("## Headline")[1].split("## ")[0]
    # FID: diffusion 12.4 [10.0, 13.2] is clear of 46.9 [35.1, 49.7] and 76.7 [63.3, 81.1]
    assert "**12.4 [10.0, 13.2]** ★" in headline
    # exact and upper-bound bits/dim are different columns; the bound is marked
    assert "bits/dim (exact)" in headline and "bits/dim (≤ bound)" in headline and "≤ 1.7180 ± 0.0032" in headline
    assert "95% intervals from 100 bootstrap replicates" in headline  # how the FID interval was made
    # samples/s: 220 [200, 244] vs 70 [64, 78]: clear; nfe is a count, never ranked
    assert "**220 [200, 244]** ★" in headline and "64 ★" not in headline


def test_within_noise_is_not_marked_better(tmp_path):
    close = {"a": ("diffusion", "image", 12.4, (8.0, 16.0), 1.7, 0.1, "upper_bound", 10.0),
             "b": ("diffusion", "image", 13.0, (9.0, 17.0), 1.8, 0.1, "upper_bound", 10.0)}
    md = _all_formats(tmp_path, [make_run(tmp_path / "runs", models=close, text=False)])["md"]
    assert "★" not in md.split("## Headline")[1].split("## Image quality")[0]
    assert "within each other's 95% intervals" in md


def test_two_runs_of_one_adapter_are_two_rows_and_baseline_shows_the_change(tmp_path):
    a = make_run(tmp_path / "runs", "before", run_id="before-1")
    b = make_run(tmp_path / "runs", "after", run_id="after-1", fid_shift=-2.0)
    out = _all_formats(tmp_path, [a, b], baseline="before")
    csv = out["csv"]
    assert set(csv[csv.adapter == "ar-digits"]["run"]) == {"before", "after"}
    headline = out["md"].split("## Headline")[1].split("## ")[0]
    assert "| run |" in headline.replace(" run ", " run ") or "| run" in headline
    assert headline.count("ar-digits") == 2
    assert "Δ -2.0" in headline  # FID 44.9 against 46.9
    with pytest.raises(UserError, match="--baseline nope"):
        write_report([str(a), str(b)], tmp_path / "x.html", baseline="nope")


def test_a_run_name_with_hyphens_is_its_label_and_a_baseline(tmp_path):
    """genbench's run ids are NAME-DATE-TIME-HASH: a name such as ``dit-xl2-256`` (the README's run
    files) is the whole name, not ``dit``; a name two runs share is refused as a baseline by name."""
    a = make_run(tmp_path / "runs", "dit-xl2-256")  # run id dit-xl2-256-20260101-000000-abc123
    b = make_run(tmp_path / "runs", "ddpm-cifar10", fid_shift=-2.0)
    out = _all_formats(tmp_path, [a, b], baseline="dit-xl2-256")
    assert set(out["csv"]["run"]) == {"dit-xl2-256", "ddpm-cifar10"}
    assert "Δ -2.0" in out["md"].split("## Headline")[1].split("## ")[0]
    twin = make_run(tmp_path / "again", "dit-xl2-256", run_id="dit-xl2-256-20260102-000000-abc123")
    with pytest.raises(UserError, match="2 runs have that name.*give the run id"):
        write_report([str(a), str(twin)], tmp_path / "x.html", baseline="dit-xl2-256")
    write_report([str(a), str(twin)], tmp_path / "y.html", baseline="dit-xl2-256-20260102-000000-abc123")


def test_two_extractors_never_share_a_column_or_plot(tmp_path):
    a = make_run(tmp_path / "runs", "digits", run_id="digits-1", text=False)
    inception = {"extractor": "inception", "extractor_mode": "clean", "resize": "PIL bicubic 299",
                 "reference": "digits test split", "n_reference": 400, "n_samples": 20}
    b = make_run(tmp_path / "runs", "incep", run_id="incep-1", extractor=inception, text=False)
    out = _all_formats(tmp_path, [a, b])
    fid = out["csv"][out["csv"].metric == "fid"]
    assert fid["convention_id"].nunique() == 2
    for cid, group in fid.groupby("convention_id"):
        assert group["convention"].nunique() == 1
        assert group["run"].nunique() == 1  # each column holds one extractor's numbers
    headline = out["md"].split("## Headline")[1].split("## ")[0]
    ids = sorted(fid["convention_id"].unique())
    assert all(f"FID [{i}]" in headline for i in ids)
    assert all(f"FID [{i}] against cost" in out["html"] for i in ids)  # one trade-off figure per convention
    assert "inception" in out["md"].split("## Conventions")[1] and "digits-classifier" in out["md"]


def test_missing_column_failed_cell_and_empty_directory_are_reported(tmp_path):
    a = make_run(tmp_path / "runs", "nostderr", run_id="nostderr-1", drop=("stderr", "paradigm"), failed=True)
    empty = tmp_path / "empty"
    empty.mkdir()
    out = _all_formats(tmp_path, [a, empty])
    md = out["md"]
    assert "## Failed cells" in md and "broken-model" in md and "out of memory" in md
    missing = md.split("## What is missing")[1].split("## ")[0]
    assert "no record has a 'stderr' field" in missing and "no record has a 'paradigm' field" in missing
    assert "unknown" in md  # rows without a paradigm are grouped as unknown
    only_empty = tmp_path / "o" / "r.html"
    write_report([str(empty)], only_empty, formats=["html", "csv"])
    assert "No measured numbers" in only_empty.read_text()


def test_published_numbers_beside_ours_with_protocol_warning(tmp_path):
    inception = {"extractor": "inception", "extractor_mode": "legacy_tensorflow",
                 "reference": "/data/VIRTUAL_imagenet256_labeled.npz", "n_reference": 50000, "n_samples": 20}
    run = make_run(tmp_path / "runs", extractor=inception, text=False,
                   models={"dit-local": ("diffusion", "image", 40.0, (30.0, 50.0), 1.0, 0.1, "upper_bound", 1.0)})
    records = [json.loads(x) for x in (run / "records.jsonl").read_text().splitlines()]
    for r in records:
        if r["suite"] == "image_quality":
            r["task"] = "VIRTUAL_imagenet256_labeled.npz"
    (run / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    md = _all_formats(tmp_path, [run])["md"]
    section = md.split("### Published numbers beside ours")[1]
    assert "DiT-XL/2" in section and "2.27" in section and "DiT paper" in section
    assert "⚠ N: 20 here, 50,000 published" in section


def test_cli_report_formats_and_bad_format(tmp_path, capsys):
    run = make_run(tmp_path / "runs", text=False)
    out = tmp_path / "r" / "report.html"
    assert main(["report", str(run), "--out", str(out), "--format", "csv", "--format", "latex"]) == 0
    assert out.with_suffix(".csv").exists() and out.with_suffix(".tex").exists() and not out.exists()
    # every file written is announced, not only the first
    assert capsys.readouterr().out.splitlines() == [f"report: {out.with_suffix('.csv')}",
                                                    f"report: {out.with_suffix('.tex')}"]
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    assert "no such directory" in capsys.readouterr().err
