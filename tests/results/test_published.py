from importlib import resources

import pandas as pd


def test_published_numbers_cite_their_source_and_convention():
    path = resources.files("genbench.results") / "published.csv"
    frame = pd.read_csv(path)
    assert {"model", "paradigm", "dataset", "metric", "value", "unit", "convention", "source"} <= set(frame.columns)
    assert frame["source"].notna().all() and frame["convention"].notna().all()
    adm = frame[(frame.model == "ADM-G+U reference batch") & (frame.metric == "fid")]
    assert adm["value"].item() == 3.943
