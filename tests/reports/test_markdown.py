"""The Markdown report: tables with conventions, text-sample excerpts, cards of the models used."""
from genbench.reports.build import write_report
from genbench.reports.markdown import format_value
from genbench.suites.common import SAMPLE_SEPARATOR
from genbench.store import RunStore


def test_bounds_and_errors_are_marked():
    assert format_value(1.23456, 0.01, "upper_bound") == "≤ 1.2346 ± 0.0100"
    assert format_value(1.5, None, "exact") == "1.5000"
    assert format_value(None) == "—"


def test_report_shows_text_excerpts_and_links_the_cards_of_models_and_extractors(tmp_path):
    store = RunStore(tmp_path / "run")
    store.create({"run_id": "r"})
    art = store.dir / "artifacts" / "text_quality__ar-kjv__seed0"
    art.mkdir(parents=True)
    (art / "samples.txt").write_text(SAMPLE_SEPARATOR.join(["In the beginning " * 20, "second", "third"]))
    base = {"run_id": "r", "seed": 0, "status": "ok", "paradigm": "autoregressive", "unit": "u",
            "higher_is_better": False, "value": 1.0, "stderr": None, "n": 4}
    store.append({**base, "suite": "text_quality", "task": "kjv", "adapter": "ar-kjv", "adapter_name": "ar-kjv",
                  "metric": "gen_perplexity", "convention": {"scorer": "ar-kjv"},
                  "artifacts": str(art.relative_to(store.dir))})
    store.append({**base, "suite": "image_quality", "task": "digits", "adapter": "my-model", "adapter_name": "my-model",
                  "metric": "fid", "convention": {"extractor": "digits-classifier"}})
    text = write_report([str(store.dir)]).read_text()
    assert "In the beginning In the beginning" in text and "second" in text and "third" not in text
    assert "..." in text  # the long first sample is cut
    assert "cards/ar-kjv.md" in text and "cards/digits-classifier.md" in text and "cards/my-model.md" not in text
    page = (store.dir / "report.html").read_text()
    assert page.startswith("<!doctype html>") and "<table>" in page and "<td>" in page
    assert 'href="' in page and "In the beginning" in page
