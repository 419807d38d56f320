"""Ranking agreement across encoders, from store records."""
import pytest

from genbench.reports.ranking import kendall_tau, ranking_agreement


def _rec(adapter, metric, value, higher=False, seed=0, status="ok"):
    return {"adapter": adapter, "metric": metric, "value": value, "higher_is_better": higher, "seed": seed,
            "status": status, "task": "ref"}


def test_orders_means_over_seeds_and_skips_other_metrics():
    recs = [_rec("ar", "fid", 3.0), _rec("ar", "fid", 5.0, seed=1), _rec("mdm", "fid", 3.5),
            _rec("ar", "fd_dinov2", 90.0), _rec("mdm", "fd_dinov2", 120.0),
            _rec("ar", "fid_train_floor", 0.1), _rec("mdm", "kid_dinov2", 0.2), _rec("ar", "density", 1.0, True),
            _rec("dm", "fid", None, status="failed")]
    r = ranking_agreement(recs)
    assert r["metrics"] == ["fid", "fd_dinov2"] and r["models"] == ["ar", "mdm"]
    assert r["values"]["fid"]["ar"] == pytest.approx(4.0)
    assert r["orders"] == {"fid": ["mdm", "ar"], "fd_dinov2": ["ar", "mdm"]}
    assert r["agree"] is False and r["tau"] == {"fid vs fd_dinov2": -1.0}
    assert r["sentence"] == ("The ranking of the 2 models differs across encoders (FID: mdm > ar; FD_DINOv2: "
                             "ar > mdm; lowest Kendall tau -1.00, fid vs fd_dinov2).")


def test_agreement_and_too_little_to_compare():
    recs = [_rec(m, metric, v) for metric, vals in {"fid": (1, 2, 3), "cmmd": (0.1, 0.5, 0.9)}.items()
            for m, v in zip("abc", vals)]
    r = ranking_agreement(recs)
    assert r["agree"] is True and r["sentence"] == "The ranking of the 3 models agrees across encoders (FID, CMMD): a > b > c."
    one = ranking_agreement([x for x in recs if x["metric"] == "fid"])
    assert one["agree"] is None and "not compared" in one["sentence"]
    assert ranking_agreement(recs, metrics=["cmmd"])["metrics"] == ["cmmd"]


def test_kendall_tau():
    assert kendall_tau(list("abcd"), list("abcd")) == 1.0
    assert kendall_tau(list("abcd"), list("dcba")) == -1.0
    assert kendall_tau(list("abc"), list("bac")) == pytest.approx(1 / 3)
