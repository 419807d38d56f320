"""The report as a reader meets it: opened in headless Chromium, no console error, no request
outside the file, the headline table with every model, one section per suite, every image loaded."""
import pytest

from genbench.reports.build import write_report
from tests.reports.browser import find_chromium, open_page
from tests.reports.runs import make_run

pytestmark = pytest.mark.skipif(find_chromium() is None,
                                reason="chromium not installed: `apt-get install chromium` (the Makefile's test "
                                       "target does it when run as root on Debian)")

PAGE_FACTS = """({
  headline: [...document.querySelectorAll('#headline ~ div table')].slice(0, 2).map(t =>
      [...t.querySelectorAll('tbody tr:not(.group) td:first-child')].map(td => td.textContent)),
  sections: [...document.querySelectorAll('h2')].map(h => h.id),
  images: [...document.images].map(i => ({data: i.src.startsWith('data:image/png;base64,'),
                                          loaded: i.complete && i.naturalWidth > 0})),
})"""


def test_report_opens_in_chromium_without_errors(tmp_path):
    a = make_run(tmp_path / "runs", "quickstart", run_id="quickstart-1", failed=True)
    b = make_run(tmp_path / "runs", "again", run_id="again-1", fid_shift=1.0)
    page = write_report([str(a), str(b)], tmp_path / "moved" / "report.html")
    seen = open_page(page, PAGE_FACTS)
    assert seen["console_errors"] == [] and seen["exceptions"] == []
    assert seen["requests"] == []  # nothing outside the file
    facts = seen["result"]
    image_rows, text_rows = facts["headline"]
    assert sorted(image_rows) == sorted(["ar-digits", "masked-digits", "diffusion-digits"] * 2)
    assert text_rows == ["ar-kjv", "ar-kjv"]
    for suite in ("image_quality", "likelihood", "speed", "text_quality"):
        assert f"suite-{suite}" in facts["sections"]
    assert {"headline", "failed", "missing", "conventions", "provenance"} <= set(facts["sections"])
    assert len(facts["images"]) >= 8
    assert all(i["data"] and i["loaded"] for i in facts["images"])


@pytest.mark.slow
def test_a_real_small_run_reads_in_chromium(tmp_path):
    """The demo's models on every suite that applies, with small sample counts (~15 s)."""
    from genbench import runner

    spec = runner.spec_from_dict({
        "name": "small", "seeds": [0], "suites": ["image_quality", "likelihood", "speed", "text_quality"],
        "adapters": ["ar-digits", "diffusion-digits", "ar-kjv"],
        "suite": {"image_quality": {"n_samples": 50, "fid_bootstrap": 20},
                  "likelihood": {"max_examples": 50, "max_bytes_per_document": 256},
                  "speed": {"batch_size": 4, "repeats": 2, "latency_repeats": 2, "flops": False},
                  "text_quality": {"n_samples": 4}}})
    runner.run(spec, tmp_path / "small", log=lambda _: None)
    page = write_report([str(tmp_path / "small")], tmp_path / "elsewhere" / "report.html")
    seen = open_page(page, PAGE_FACTS)
    assert seen["console_errors"] == [] and seen["exceptions"] == [] and seen["requests"] == []
    image_rows, text_rows = seen["result"]["headline"]
    assert image_rows == ["ar-digits", "diffusion-digits"] and text_rows == ["ar-kjv"]
    assert {"suite-image_quality", "suite-likelihood", "suite-speed", "suite-text_quality"} <= set(
        seen["result"]["sections"])
    assert len(seen["result"]["images"]) >= 4 and all(i["data"] and i["loaded"] for i in seen["result"]["images"])
    import pandas as pd

    cells = pd.read_csv(write_report([str(tmp_path / "small")], tmp_path / "r.csv"))
    fid = cells[cells.metric == "fid"]
    assert (fid["spread"] == "ci").all() and (fid["low"] < fid["high"]).all()  # FID with its bootstrap interval
