import numpy as np
import pandas as pd

from genbench.reports.build import write_report
from genbench.reports.plots import pareto_front, records_to_tradeoff_table
from genbench.store import RunStore


def test_pareto_front_keeps_only_undominated_points():
    cost = np.array([1, 2, 3, 4, 2])
    fid = np.array([10, 5, 6, 1, 5])
    # (3, 6) is beaten by (2, 5); the duplicate (2, 5) points do not dominate each other
    assert pareto_front(cost, fid).tolist() == [True, True, False, True, True]


def _rows(adapter, name, paradigm, steps, fid, sps, nfe):
    base = {"run_id": "r", "seed": 0, "status": "ok", "adapter": adapter, "adapter_name": name,
            "paradigm": paradigm, "setting": {"steps": steps}, "task": "digits", "unit": "u",
            "higher_is_better": False, "convention": {}}
    return [{**base, "suite": "image_quality", "metric": "fid", "value": fid},
            {**base, "suite": "speed", "metric": "samples_per_s", "value": sps},
            {**base, "suite": "speed", "metric": "nfe_per_sample", "value": nfe}]


def test_tradeoff_plots_are_written_and_linked(tmp_path):
    store = RunStore(tmp_path / "run")
    store.create({"run_id": "r"})
    for steps, fid in [(4, 9.0), (8, 5.0), (16, 4.0), (32, 3.9)]:
        for r in _rows(f"masked[steps={steps}]", "masked", "masked", steps, fid, 100 / steps, steps):
            store.append(r)
    for r in _rows("ar", "ar", "autoregressive", None, 3.0, 2.0, 64):
        store.append(r)
    table = records_to_tradeoff_table(pd.read_json(store.records_path, lines=True))
    assert len(table) == 5
    row = table[table.adapter == "masked[steps=8]"].iloc[0]
    assert row.fid == 5.0 and row.seconds_per_sample == 8 / 100 and row.model == "masked"
    report = write_report([str(tmp_path / "run")])
    text = report.read_text()
    assert "plots/fid_vs_nfe_per_sample.png" in text and "plots/fid_vs_seconds_per_sample.png" in text
    png = tmp_path / "run" / "plots" / "fid_vs_nfe_per_sample.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / "run" / "plots" / "fid_vs_gflops_per_sample.png").exists()  # no FLOP records
