"""``time_fid``: FID end to end against the network alone and the preprocessing alone."""
from __future__ import annotations

import pytest

from genbench.features import timing

pytest.importorskip("torch")


def test_time_fid_reports_rates(data):
    r = timing.time_fid(data["a"], data["b"], f"torchscript:{data['net']}", device="cpu", repeats=1,
                        batch_size=8, workers=0)
    assert r["n_images"] == 48 and r["fid"] > 0 and r["resize_on"] == "host" and r["decode"] == "threads"
    for key in ("end_to_end", "network", "preprocess"):
        assert r[f"{key}_images_per_s"] > 0 and r[f"{key}_s"] > 0
    assert r["end_to_end_over_network"] == pytest.approx(r["network_s"] / r["end_to_end_s"])
