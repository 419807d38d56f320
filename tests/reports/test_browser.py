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
