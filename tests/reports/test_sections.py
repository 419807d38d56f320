"""The report's image-quality section over several encoders, its tokenizer sections, unavailable
records shown with their reason, and two extractors of one cell kept apart."""
import base64
import html
import json
import re

import pandas as pd
import pytest

from genbench.reports.build import write_report
from genbench.reports.render import tex_escape
from genbench.store import load
from tests.reports.browser import find_chromium, open_page
from tests.reports.runs import ENCODER_MODELS, ENCODERS, make_encoder_run, make_tokenizer_runs


def _all_formats(tmp_path, dirs):
    out = tmp_path / "out" / "report.html"
    write_report([str(d) for d in dirs], out, formats=["html", "md", "latex", "csv"])
    return {"html": out.read_text(), "md": out.with_suffix(".md").read_text(),
            "latex": out.with_suffix(".tex").read_text(), "csv": pd.read_csv(out.with_suffix(".csv")), "path": out}


def _section(md: str, start: str, end: str = "\n## ") -> str:
    """The text after ``start`` up to the next ``end`` (a level-2 heading by default)."""
    return md.split(start, 1)[1].split(end, 1)[0]


def _subsection(md: str, start: str) -> str:
    return re.split(r"\n##+ ", md.split(start, 1)[1], maxsplit=1)[0]


def _same_texts_everywhere(out, texts):
    for text in texts:
        assert html.escape(text) in out["html"], text
        assert text in out["md"], text
        assert tex_escape(text) in out["latex"], text


@pytest.fixture(scope="module")
def encoders(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("enc")
    return _all_formats(tmp, [make_encoder_run(tmp / "runs")])


def test_encoders_side_by_side_with_the_ranking_sentence(encoders):
    md = encoders["md"]
    table = _section(md, "**Image quality on reference: the encoders side by side**", "\n**")
    header = table.strip().splitlines()[0]
    labels = [h.strip() for h in header.strip("|").split("|")]
    heads = [re.sub(r" \[C\d+\]$", "", h) for h in labels]
    assert heads[:2] == ["model", "seeds"] and heads[2:] == ["FID", "density (torchscript) ↑", "coverage (torchscript) ↑", "FD_DINOv2",
                         "density (dinov2) ↑", "coverage (dinov2) ↑", "FD_CLIP", "density (clip) ↑",
                         "coverage (clip) ↑", "CMMD"]
    assert all(re.search(r"\[C\d+\]$", h) for h in labels[2:])  # every column names its convention
    rows = [r for r in table.splitlines() if r.startswith("| noisy-digits") or r.startswith("| very-noisy")]
    assert len(rows) == 2 and "**20.0 [18.0, 22.0]** ★" in rows[0] and "420 [400, 440]" in rows[1]
    sentence = ("The ranking of the 2 models agrees across encoders (FID, FD_DINOv2, FD_CLIP, CMMD): noisy-digits > "
                "very-noisy-digits.")
    assert f"- {sentence}" in table
    _same_texts_everywhere(encoders, [sentence])
    # then one table per encoder with all its metrics
    assert "every metric in dinov2 features" in md and "kid_dinov2 (KID)" in md
    # the headline carries each encoder's headline metric
    headline = _section(md, "## Headline")
    assert all(f"{m} [C" in headline for m in ("FID", "FD_DINOv2", "CMMD"))


def test_encoder_columns_never_mix_conventions_and_read_the_same_in_every_format(encoders):
    csv = encoders["csv"]
    assert len(csv) == 2 * (3 * 4 + 1)  # per model: 3 encoders x (FD, KID, density, coverage) + CMMD
    for cid, group in csv.groupby("convention_id"):
        assert group["convention"].nunique() == 1 and group["metric"].nunique() == 1, cid
    extractors = {m: json.loads(c)["extractor"] for m, c in zip(csv["metric"], csv["convention"])}
    assert extractors["fid"] == ENCODERS["torchscript"]["extractor"] and extractors["density_dinov2"] == "dinov2"
    assert extractors["cmmd"].startswith("clip") and json.loads(csv[csv.metric == "density"]["convention"].iloc[0])["k"] == 5
    _same_texts_everywhere(encoders, list(csv["formatted"]))


def test_a_ranking_that_differs_across_encoders_says_so(tmp_path):
    models = {m: dict(v) for m, v in ENCODER_MODELS.items()}
    models["noisy-digits"]["fd_dinov2"] = (500.0, (480.0, 520.0))  # DINOv2 prefers the noisier model
    md = _all_formats(tmp_path, [make_encoder_run(tmp_path / "runs", models=models)])["md"]
    assert ("The ranking of the 2 models differs across encoders (FID: noisy-digits > very-noisy-digits; FD_DINOv2: "
            "very-noisy-digits > noisy-digits; FD_CLIP: noisy-digits > very-noisy-digits; CMMD: noisy-digits > "
            "very-noisy-digits; lowest Kendall tau -1.00, FID vs FD_DINOv2).") in md


def test_two_extractors_of_one_cell_in_one_records_file_stay_apart(tmp_path):
    run = make_encoder_run(tmp_path / "runs")
    records = [json.loads(x) for x in (run / "records.jsonl").read_text().splitlines()]
    # the same cell also measured with Inception, whose Fréchet distance is also named fid
    inception = {"extractor": "inception", "weights_sha256": "e" * 64, "resize": "clean bicubic 299",
                 "reference": "/data/reference", "n_reference": 12, "n_samples": 12}
    extra = [{**r, "value": r["value"] + 1.0, "convention": {**inception, "ci": [r["value"] - 1, r["value"] + 3]}}
             for r in records if r["metric"] == "fid"]
    # and a re-run of the torchscript fid of one model: the later record replaces the earlier
    rerun = [{**r, "value": 21.0} for r in records if r["metric"] == "fid" and r["adapter"] == "noisy-digits"]
    with open(run / "records.jsonl", "a") as f:
        f.write("".join(json.dumps(r) + "\n" for r in extra + rerun))
    # the store keeps both extractors' fid of each model, and the re-run replaces its earlier record
    assert (load(run)["metric"] == "fid").sum() == 4
    out = _all_formats(tmp_path, [run])
    fid = out["csv"][out["csv"].metric == "fid"]
    assert len(fid) == 4 and fid["convention_id"].nunique() == 2
    by = {(a, json.loads(c)["extractor"]): v for a, c, v in zip(fid["adapter"], fid["convention"], fid["value"])}
    assert by[("noisy-digits", "inception")] == 21.0 and by[("noisy-digits", ENCODERS["torchscript"]["extractor"])] == 21.0
    assert by[("very-noisy-digits", "inception")] == 81.0
    table = _section(out["md"], "the encoders side by side**", "\n**")
    assert "FID (torchscript) [C" in table and "FID (inception) [C" in table
    assert "FID [C" in table.split("The ranking")[1]  # ranked as two metrics, never averaged together


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory):
    """Real small runs: vq-digits (discrete) and a tiny diffusers AutoencoderKL (continuous)."""
    tmp = tmp_path_factory.mktemp("tok")
    runs = make_tokenizer_runs(tmp)
    return {**_all_formats(tmp, runs), "runs": runs}


def test_one_section_per_tokenizer_with_its_conventions(tokenizers):
    md = tokenizers["md"]
    vq = _subsection(md, "### Tokenizer vq-digits on digits:test")
    vae = _subsection(md, "### Tokenizer diffusers-vae on ")
    for field in ("| kind | discrete |", "| pixel scaling | nearest of the 17 grey levels", "| output quantisation |",
                  "| dataset | digits:test |", "| split | test |", "| resize | none |", "| grey images | error |",
                  "| image shape (H×W×C) | 8×8×1 |", "| images (N) | 64 |", "| codebook | 256 codes |"):
        assert field in vq, field
    for field in ("| kind | continuous |", "| pixel scaling | x / 127.5 - 1 ([-1, 1]) |",
                  "| image shape (H×W×C) | 32×32×3 |", "| latent shape (C×H×W) | 4×16×16 |",
                  "| split | none (the source has no splits) |"):
        assert field in vae, field
    psnr = next(r for r in vq.splitlines() if r.startswith("| PSNR |"))
    assert re.search(r"\| \d+\.\d+ ± \d\.\d+ \| dB \| C\d+ \|", psnr)
    assert "an exact reconstruction counts as 72.21 dB" in psnr and "of 64 images reconstructed exactly" in psnr
    assert re.search(r"\| SSIM \| 0\.\d+ ± ", vq)
    for net in ("AlexNet", "VGG"):
        assert f"| LPIPS ({net}) | unavailable: no local weights | LPIPS |" in vq
    rfid = next(r for r in vq.splitlines() if r.startswith("| rFID |"))
    assert "extractor digits-classifier" in rfid and "reference: the originals of digits:test" in rfid
    assert "N = 64 reconstructions against 64 originals" in rfid and "⚠" in rfid
    assert "| codebook usage |" in vq and "| code perplexity |" in vq and "| tokens per image | 16 |" in vq
    assert "| bits per image | 128 | bits |" in vq and "4·4·log2 256" in vq
    assert "latent" not in vq.split("| metric |")[1] and "codebook usage" not in vae
    # LlamaGen's SSIM: its own labelled row in the section, never a column of the comparison table
    assert "| SSIM (LlamaGen, data_range 2.0) |" in vae
    assert "ssim_llamagen" not in _section(md, "## Tokenizer reconstruction", "\n### ")
    assert r"\begin{tabular}{lrllp{7cm}}" in tokenizers["latex"]  # "how measured" wraps in a paper's table


def test_tokenizer_reconstructions_are_embedded_with_a_caption(tokenizers):
    page = tokenizers["html"]
    figures = re.findall(r"<figure><figcaption>([^<]*)</figcaption><img class=\"px\" alt=\"[^\"]*\" "
                         r"src=\"data:image/png;base64,([^\"]+)\"", page)
    captions = [c for c, _ in figures if "originals (odd rows) each above their reconstructions" in c]
    assert len(captions) == 2
    for caption, data in figures:
        assert base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n"
    png = (tokenizers["runs"][0] / "artifacts" / "tokenizer__vq-digits__seed0" / "reconstructions.png").read_bytes()
    assert base64.b64encode(png).decode() in page


def test_unavailable_records_are_shown_with_their_reason_everywhere(tokenizers):
    out = tokenizers
    csv = out["csv"]
    lpips = csv[csv.metric.str.startswith("lpips")]
    assert len(lpips) == 4 and lpips["value"].isna().all() and (lpips["spread"] == "unavailable").all()
    assert (lpips["formatted"] == "unavailable: no local weights").all()
    _same_texts_everywhere(out, ["unavailable: no local weights"])
    missing = _section(out["md"], "## What is missing")
    assert "lpips_alex (tokenizer, vq-digits, run vq, digits:test): unavailable: no local weights (fix: set " \
           "[suite.tokenizer] lpips_alex to local weights files)" in missing
    assert "carry no value and are left out" not in out["md"]
    # both kinds of tokenizer share the PSNR column of a data set: a VQ's and a VAE's PSNR compare
    psnr = csv[csv.metric == "psnr"]
    assert len(psnr) == 2 and set(json.loads(psnr["convention"].iloc[0])) >= {"dataset", "image_shape", "range"}
    assert "kind" not in json.loads(psnr["convention"].iloc[0])


def test_a_long_reason_goes_to_the_notes(tmp_path):
    run = make_encoder_run(tmp_path / "runs")
    rec = json.loads((run / "records.jsonl").read_text().splitlines()[0])
    reason = "unavailable: inception weights not found; name a local file with extractor = inception:FILE"
    with open(run / "records.jsonl", "a") as f:
        f.write(json.dumps({**rec, "suite": "tokenizer", "metric": "rfid", "value": None, "paradigm": "tokenizer",
                            "adapter": "vq-x", "adapter_name": "vq-x", "convention": {"status": reason}}) + "\n")
    out = _all_formats(tmp_path, [run])
    assert "unavailable ‡" in out["md"] and f"rfid (FID) [C" in out["md"]
    _same_texts_everywhere(out, [reason])


@pytest.mark.skipif(find_chromium() is None, reason="chromium not installed: `apt-get install chromium`")
def test_encoders_and_tokenizers_read_in_chromium(tokenizers, tmp_path):
    page = write_report([str(make_encoder_run(tmp_path / "runs"))] + [str(r) for r in tokenizers["runs"]],
                        tmp_path / "moved" / "report.html")
    seen = open_page(page, """({
      tables: [...document.querySelectorAll('caption')].map(c => c.textContent),
      images: [...document.images].map(i => ({data: i.src.startsWith('data:image/png;base64,'),
                                              loaded: i.complete && i.naturalWidth > 0})),
      sections: [...document.querySelectorAll('h3')].map(h => h.id)})""")
    assert seen["console_errors"] == [] and seen["exceptions"] == [] and seen["requests"] == []
    facts = seen["result"]
    assert "Image quality on reference: the encoders side by side" in facts["tables"]
    assert sum("reconstruction metrics" in t for t in facts["tables"]) == 2
    assert len([s for s in facts["sections"] if s.startswith("tokenizer-")]) == 2
    assert len(facts["images"]) >= 2 and all(i["data"] and i["loaded"] for i in facts["images"])


@pytest.mark.slow
def test_a_real_run_over_three_encoders_reports_them_side_by_side(tmp_path, monkeypatch):
    """issue 16's run: image_quality with a torchscript stand-in for Inception, a tiny DINOv2 and a
    tiny CLIP in CMMD's variant, two models, then `genbench report` (~12 s)."""
    pytest.importorskip("transformers")
    from genbench import runner
    from genbench.cli import main
    from genbench.features.cache import CACHE_ENV
    from tests.harness.features.helpers import digit_images, tiny_clip, tiny_dinov2, tiny_torchscript, write_pngs
    from tests.suites.test_image_quality_encoders import NoisyDigits, VeryNoisyDigits

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    cfg, weights = tiny_clip(tmp_path)
    options = {"reference": str(write_pngs(tmp_path / "reference", digit_images(100, 12))), "n_samples": 12,
               "batch_size": 6, "sample_chunk": 6, "trust_unknown": True, "kid_subset_size": 1000,
               "extractors": [f"torchscript:{tiny_torchscript(tmp_path / 'tiny.pt')}",
                              f"dinov2:{tiny_dinov2(tmp_path / 'dinov2')}", f"clip:{cfg}:{weights}:cmmd"]}
    spec = runner.RunSpec(suites=["image_quality"], adapters=[NoisyDigits.name, VeryNoisyDigits.name],
                          suite_options={"image_quality": options})
    runner.run(spec, tmp_path / "run", log=lambda *a: None)
    out = tmp_path / "report" / "report.md"
    assert main(["report", str(tmp_path / "run"), "--out", str(out), "--format", "md", "--format", "csv"]) == 0
    md = out.read_text()
    table = _section(md, "the encoders side by side**", "\n**")
    assert all(f"{m} [C" in table for m in ("FID", "FD_DINOv2", "FD_CLIP", "CMMD"))
    assert "density (dinov2) ↑ [C" in table and "coverage (torchscript) ↑ [C" in table
    assert ("The ranking of the 2 models agrees across encoders (FID, FD_DINOv2, FD_CLIP, CMMD): noisy-digits > "
            "very-noisy-digits.") in table
    csv = pd.read_csv(out.with_suffix(".csv"))
    fid = csv[csv.metric.isin(["fid", "fd_dinov2", "fd_clip"])]
    assert len(fid) == 6 and (fid["spread"] == "ci").all()  # each encoder's FD with its bootstrap interval
