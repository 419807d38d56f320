"""Quality against compute: a Pareto front only where the intervals allow it."""
import numpy as np
import pandas as pd

from genbench.reports.plots import front_within_intervals, pareto_front, tradeoff_to_png


def test_pareto_front_keeps_only_undominated_points():
    cost = np.array([1, 2, 3, 4, 2])
    fid = np.array([10, 5, 6, 1, 5])
    # (3, 6) is beaten by (2, 5); the duplicate (2, 5) points do not dominate each other
    assert pareto_front(cost, fid).tolist() == [True, True, False, True, True]


def _points(rows):
    return pd.DataFrame([{"adapter": f"diffusion[steps={s}]", "model": "diffusion", "paradigm": "diffusion",
                          "setting": f"steps={s}", "nfe_per_sample": s, "fid": f, "fid_low": lo, "fid_high": hi,
                          "text": f"{f} [{lo}, {hi}]"} for s, f, lo, hi in rows])


def test_front_steps_within_noise_are_not_drawn():
    # 25 -> 50 steps is a clear gain; 50 -> 100 (12.4 vs 11.9) is within the intervals
    pts = _points([(10, 40.0, 35.0, 45.0), (25, 20.0, 17.0, 23.0), (50, 12.4, 9.0, 16.0), (100, 11.9, 8.5, 15.0)])
    front, notes = front_within_intervals(pts, "nfe_per_sample")
    assert front["nfe_per_sample"].tolist() == [10, 25, 50]
    assert len(notes) == 1 and "steps=100" in notes[0] and "within noise of diffusion[steps=50]" in notes[0]


def test_tradeoff_png_has_error_bars_and_says_when_the_front_is_noise():
    pts = _points([(50, 12.4, 1.0, 25.0), (100, 11.0, 0.5, 24.0)])
    png, notes = tradeoff_to_png(pts)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(notes) == 1
    assert tradeoff_to_png(pts.drop(columns="nfe_per_sample"))[0] is None  # no cost axis: no plot
