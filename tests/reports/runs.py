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
