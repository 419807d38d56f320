"""Run directories written the way ``genbench run`` writes them, small enough for unit tests:
manifest, records (image, likelihood, speed, text), a PNG sample grid and a samples.txt."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from genbench.store import RunStore
from genbench.suites.common import SAMPLE_SEPARATOR, images_to_grid_png

DIGITS = {"extractor": "digits-classifier", "weights_sha256": "a" * 64, "resize": "none",
          "reference": "digits test split", "n_reference": 400, "n_samples": 400}
SPEED = {"device": "cpu", "threads": 1, "batch_size": 32, "repeats": 3}
MODELS = {  # adapter -> (paradigm, modality, fid, fid interval, bits, bits stderr, kind, samples/s)
    "ar-digits": ("autoregressive", "image", 46.9, (35.1, 49.7), 1.979, None, "exact", 220.0),
    "masked-digits": ("masked", "image", 76.7, (63.3, 81.1), 1.9026, 0.0044, "upper_bound", 70.0),
    "diffusion-digits": ("diffusion", "image", 12.4, (10.0, 13.2), 1.718, 0.0032, "upper_bound", 46.1),
}


def make_run(root: Path, name: str = "quickstart", *, run_id: str | None = None, models=MODELS, seeds=(0,),
             fid_shift: float = 0.0, extractor: dict | None = None, text: bool = True, failed: bool = False,
             drop: tuple[str, ...] = (), setting: dict | None = None) -> Path:
    """One run directory under ``root/name``; ``drop`` removes those keys from every record."""
    run_id = run_id or f"{name}-20260101-000000-abc123"
    store = RunStore(root / name)
    store.create({"run_id": run_id, "name": name, "status": "finished", "created": "2026-01-01T00:00:00",
                  "provenance": {"git_commit": "0123456789abcdef", "genbench_version": "0.1.0", "python": "3.11",
                                 "device": "cpu", "threads": 1, "cpu": "x86_64", "cpu_count": 2,
                                 "packages": {"torch": "2.4.0", "numpy": "1.26"}}})
    conv = extractor or DIGITS

    def put(rec):
        rec = {"run_id": run_id, "status": "ok", "error": None, "stderr": None, "n": 400, "setting": setting or {},
               **rec}
        for key in drop:
            rec.pop(key, None)
        store.append(rec)

    for seed in seeds:
        for adapter, (paradigm, modality, fid, ci, bits, se, kind, sps) in models.items():
            base = {"adapter": adapter, "adapter_name": adapter.split("[")[0], "paradigm": paradigm,
                    "modality": modality, "seed": seed}
            art = f"artifacts/image_quality__{adapter}__seed{seed}"
            grid = np.random.default_rng(seed).integers(0, 255, size=(16, 8, 8, 1), dtype=np.uint8)
            images_to_grid_png(grid, store.dir / art / "samples.png", columns=8)
            f = fid + fid_shift + seed * 0.5
            put({**base, "suite": "image_quality", "task": "digits", "metric": "fid", "value": f, "unit": "FID",
                 "higher_is_better": False, "stderr": 1.0, "artifacts": art,
                 "convention": {**conv, "ci": [ci[0] + fid_shift, ci[1] + fid_shift], "ci_level": 0.95,
                                "bootstrap": 100}})
            put({**base, "suite": "image_quality", "task": "digits", "metric": "fid_train_floor", "value": 10.76,
                 "unit": "FID", "higher_is_better": False, "artifacts": art, "convention": dict(conv)})
            put({**base, "suite": "likelihood", "task": "digits", "metric": "bits_per_dim", "value": bits,
                 "stderr": se, "unit": "bits/dim", "higher_is_better": False,
                 "convention": {"kind": kind, "unit": "dimension", "dataset": "digits", "split": "test"}})
            put({**base, "suite": "speed", "task": "speed", "metric": "samples_per_s", "value": sps, "n": 3,
                 "unit": "samples/s", "higher_is_better": True,
                 "convention": {**SPEED, "median_s": 32 / sps, "min_s": 0.9 * 32 / sps, "max_s": 1.1 * 32 / sps}})
            put({**base, "suite": "speed", "task": "speed", "metric": "nfe_per_sample", "value": 64.0, "n": None,
                 "unit": "forward passes", "higher_is_better": False, "convention": {"counted_by": "the adapter"}})
        if text:
            art = f"artifacts/text_quality__ar-kjv__seed{seed}"
            (store.dir / art).mkdir(parents=True, exist_ok=True)
            (store.dir / art / "samples.txt").write_text(SAMPLE_SEPARATOR.join(
                ["In the beginning God created the heaven and the earth. " * 8, "```And the earth``` was", "3rd"]))
            base = {"adapter": "ar-kjv", "adapter_name": "ar-kjv", "paradigm": "autoregressive", "modality": "text",
                    "seed": seed}
            put({**base, "suite": "text_quality", "task": "kjv", "metric": "gen_perplexity", "value": 7.911, "n": 16,
                 "unit": "byte perplexity", "higher_is_better": False, "artifacts": art,
                 "convention": {"scorer": "ar-kjv", "n_samples": 16, "aggregate": "corpus"}})
            put({**base, "suite": "likelihood", "task": "kjv:test", "metric": "bits_per_byte", "value": 3.086,
                 "unit": "bits/byte", "higher_is_better": False,
                 "convention": {"kind": "exact", "unit": "byte", "dataset": "kjv:test"}})
    if failed:
        store.append({"run_id": run_id, "suite": "likelihood", "task": "likelihood", "adapter": "broken-model",
                      "seed": 0, "metric": None, "value": None, "status": "failed", "paradigm": "masked",
                      "modality": "image", "error": "RuntimeError: out of memory"})
    return store.dir


#: the encoders of an image_quality run with ``extractors`` (conventions as the suite records them)
ENCODERS = {
    "torchscript": {"extractor": "torchscript:/w/tiny.pt", "weights_sha256": "b" * 64, "resize": "clean bicubic 299"},
    "dinov2": {"extractor": "dinov2", "weights_sha256": "c" * 64, "resize": "pil_bicubic", "encoder_metric": "fd_dinov2"},
    "clip": {"extractor": "clip:ViT-L-14-336", "weights_sha256": "d" * 64, "resize": "bicubic 336",
             "embeddings": "L2-normalised", "encoder_metric": "fd_clip"},
}
#: adapter -> {metric: (value, 95% interval or None)}; the noisier model is worse under every encoder
ENCODER_MODELS = {
    "noisy-digits": {"fid": (20.0, (18.0, 22.0)), "fd_dinov2": (150.0, (140.0, 160.0)),
                     "fd_clip": (9.0, (8.5, 9.5)), "cmmd": (0.40, None)},
    "very-noisy-digits": {"fid": (80.0, (75.0, 85.0)), "fd_dinov2": (420.0, (400.0, 440.0)),
                          "fd_clip": (30.0, (28.0, 32.0)), "cmmd": (1.90, None)},
}


def make_encoder_run(root: Path, name: str = "encoders", *, run_id: str | None = None, models=ENCODER_MODELS,
                     task: str = "reference") -> Path:
    """An image_quality run over three encoders, with the records the suite writes: per encoder its
    Fréchet distance (with a bootstrap interval), KID, density and coverage, and CMMD for CLIP."""
    run_id = run_id or f"{name}-20260101-000000-def456"
    store = RunStore(root / name)
    store.create({"run_id": run_id, "name": name, "status": "finished", "created": "2026-01-01T00:00:00",
                  "provenance": {"device": "cpu", "threads": 1}})
    common = {"reference": "/data/reference", "n_reference": 12, "n_samples": 12}
    for adapter, values in models.items():
        base = {"run_id": run_id, "adapter": adapter, "adapter_name": adapter, "paradigm": "diffusion",
                "modality": "image", "seed": 0, "suite": "image_quality", "task": task, "status": "ok",
                "error": None, "n": 12, "setting": {}}
        for encoder, metric in (("torchscript", "fid"), ("dinov2", "fd_dinov2"), ("clip", "fd_clip")):
            conv = {**ENCODERS[encoder], **common}
            suffix = metric[len("fd"):] if metric != "fid" else ""
            value, ci = values[metric]
            store.append({**base, "metric": metric, "value": value, "unit": "FID", "higher_is_better": False,
                          "stderr": (ci[1] - ci[0]) / 3.92,
                          "convention": {**conv, "ci": list(ci), "ci_level": 0.95, "bootstrap": 50}})
            store.append({**base, "metric": f"kid{suffix}", "value": value / 1000, "stderr": value / 20000,
                          "unit": "KID", "higher_is_better": False, "convention": conv})
            prdc = {**conv, "k": 5, "definition": "Naeem et al. 2020"}
            store.append({**base, "metric": f"density{suffix}", "value": 100 / value, "unit": "ratio",
                          "higher_is_better": True, "convention": prdc})
            store.append({**base, "metric": f"coverage{suffix}", "value": 0.5 - value / 1000, "unit": "fraction",
                          "higher_is_better": True, "convention": prdc})
        value, _ = values["cmmd"]
        store.append({**base, "metric": "cmmd", "value": value, "unit": "CMMD (x1000)", "higher_is_better": False,
                      "convention": {**ENCODERS["clip"], **common, "definition": "MMD, RBF sigma 10, x1000"}})
    return store.dir


def make_tokenizer_runs(root: Path) -> list[Path]:
    """Two real tokenizer runs, small: the zoo's ``vq-digits`` (discrete) on 64 digits, and a tiny
    random diffusers ``AutoencoderKL`` (continuous) on twelve 32x32 RGB PNGs with a torchscript
    extractor for rFID and LlamaGen's SSIM asked for. No LPIPS weights: LPIPS is unavailable."""
    import torch
    from diffusers import AutoencoderKL
    from PIL import Image

    from genbench import runner
    from tests.harness.features.helpers import tiny_torchscript

    torch.manual_seed(0)
    AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                  up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16), layers_per_block=1,
                  latent_channels=4, norm_num_groups=4, sample_size=32).save_pretrained(root / "kl")
    net = tiny_torchscript(root / "net.pt")
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:32, 0:32] / 32.0
    for i in range(12):  # smooth colour waves: something a random autoencoder can partly keep
        f = rng.uniform(1, 3, size=(3, 2))
        img = 127.5 + 120 * np.sin(2 * np.pi * (f[:, 0, None, None] * xx + f[:, 1, None, None] * yy))
        Image.fromarray(np.moveaxis(img, 0, -1).astype(np.uint8)).save(root / "images" / f"{i:02d}.png")
    runs = []
    for name, adapter, options in (
            ("vq", "vq-digits", {"max_images": 64}),
            ("vae", f"diffusers-vae:{root / 'kl'}", {"dataset": str(root / "images"), "extractor": f"torchscript:{net}",
                                                     "ssim_llamagen": True})):
        spec = runner.spec_from_dict({"name": name, "seeds": [0], "suites": ["tokenizer"], "adapters": [adapter],
                                      "suite": {"tokenizer": options}})
        runner.run(spec, root / name, log=lambda *_: None)
        runs.append(root / name)
    return runs
