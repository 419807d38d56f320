"""Feature extraction split across torchrun ranks (``genbench.features.ranks``): the float64
merge of ``FeatureAccumulator`` parts equals one pass (1e-12 relative; kept rows exactly), a
source split by image index ranges gives one process's statistics, and a two-rank torchrun run
of image_quality (digits path and reference-by-path protocol) records what one process does."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from genbench import distributed
from genbench.errors import UserError
from genbench.features import ranks
from genbench.features.accumulate import FeatureAccumulator
from genbench.features.loaders import ArrayImage
from genbench.features.sources import ImageSource
from genbench.features.statistics import source_to_accumulators
from genbench.store import deterministic_fields
from tests.harness import test_shard

REDUCE = ranks.reduce_accumulators
#: statistics merged from parts vs one pass: float64 rounding of another summation order
REL = 1e-12


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


def _feed(acc: FeatureAccumulator, rows: np.ndarray, batch: int = 7) -> FeatureAccumulator:
    for i in range(0, len(rows), batch):
        acc.add(rows[i: i + batch])
    return acc


def test_merged_parts_equal_one_pass():
    rng = np.random.default_rng(0)
    # far from the origin, correlated, and the parts' first batches differ: each part has its own shift
    rows = 1e3 + rng.normal(size=(300, 6)) @ rng.normal(size=(6, 6)) + np.linspace(0, 50, 300)[:, None]
    cuts = [0, 0, 83, 84, 211, 300]  # an empty part, a one-row part, uneven parts
    pieces = [rows[a:b] for a, b in zip(cuts, cuts[1:])]

    one = _feed(FeatureAccumulator(keep=0), rows)
    merged = FeatureAccumulator.merged([_feed(FeatureAccumulator(keep=0), p).part() for p in pieces], keep=0)
    assert merged.n == 300
    (mu, sigma), (mu1, sigma1) = merged.statistics(), one.statistics()
    assert _rel(mu, mu1) <= REL and _rel(sigma, sigma1) <= REL
    assert _rel(sigma, np.cov(rows, rowvar=False)) <= REL and _rel(mu, rows.mean(0)) <= REL

    # every row kept: the rows themselves, in order, so the two-pass statistics bit for bit
    kept = FeatureAccumulator.merged([_feed(FeatureAccumulator(keep=None), p).part() for p in pieces], keep=None)
    np.testing.assert_array_equal(kept.rows(), rows)
    one_kept = _feed(FeatureAccumulator(keep=None), rows)
    assert all(np.array_equal(x, y) for x, y in zip(kept.statistics(), one_kept.statistics()))

    # one part (one process): its own statistics exactly
    alone = FeatureAccumulator.merged([one.part()], keep=0)
    assert all(np.array_equal(x, y) for x, y in zip(alone.statistics(), one.statistics()))
    with pytest.raises(UserError, match="reservoir of 5 rows"):
        FeatureAccumulator.merged([one.part()], keep=5)


class _Flatten:
    """A feature extractor without a pipeline: (B, 2, 2, 3) uint8 -> (B, 12) float64 pixels."""

    name = "flatten"

    def features(self, images, *, batch_size=64):
        return np.asarray(images, dtype=np.float64).reshape(len(images), -1) * 1.5 + 7.0


def _two_ranks(monkeypatch, src: ImageSource, keep) -> dict:
    """``source_to_accumulators`` as ranks 0 and 1 of two, one after the other, then the
    merge each rank would make from the two ranks' parts."""
    made = []
    monkeypatch.setattr(ranks, "world_size", lambda: 2)
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    monkeypatch.setattr(ranks, "reduce_accumulators", lambda acc, keep, lengths: made.append((acc, lengths)) or acc)
    monkeypatch.setattr(ranks, "checked", lambda compute: compute())  # no other rank to hear from
    for r in (0, 1):
        monkeypatch.setattr(distributed, "rank", lambda r=r: r)
        source_to_accumulators(_Flatten(), src, 4, False, keep=keep)
    monkeypatch.setattr(ranks, "gather_in_rank_order",
                        lambda obj: [{k: a.part() for k, a in acc.items()} for acc, _ in made])
    assert made[0][1] == made[1][1] == [5, 1, 6]  # both ranks saw the chunks' sizes
    assert [acc["features"].n for acc, _ in made] == [2 + 0 + 3, 3 + 1 + 3]  # rank_range of each chunk
    return REDUCE(made[0][0], keep, made[0][1])


def test_a_source_split_by_image_ranges_gives_one_process_statistics(monkeypatch):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (12, 2, 2, 3), dtype=np.uint8)
    chunks = [images[:5], images[5:6], images[6:]]  # the one-image chunk leaves rank 0 nothing of it
    src = ImageSource("toy", "images_npz", lambda: "h", {},
                      lambda: iter([[ArrayImage(im) for im in c] for c in chunks]))
    one = {keep: source_to_accumulators(_Flatten(), src, 4, False, keep=keep)["features"] for keep in (0, None)}

    kept = _two_ranks(monkeypatch, src, None)["features"]
    np.testing.assert_array_equal(kept.rows(), one[None].rows())  # chunk by chunk, rank by rank
    assert all(np.array_equal(x, y) for x, y in zip(kept.statistics(), one[None].statistics()))
    summed = _two_ranks(monkeypatch, src, 0)["features"]
    assert summed.n == 12 and summed.rows() is None
    for x, y in zip(summed.statistics(), one[0].statistics()):
        assert _rel(x, y) <= REL
    assert ranks.COUNTS["statistics reduced"] >= 2


def test_outside_torchrun_every_helper_is_the_one_process_path():
    f = np.arange(6.0).reshape(3, 2)
    assert ranks.rows_in_rank_order(lambda: f) is f and ranks.parts_in_rank_order(f) == [f]
    assert ranks.rank_range_to_features(lambda a, b: f[a:b], 3).tolist() == f.tolist()
    assert ranks.images_on_rank0(f, 0, 2).tolist() == f[:2].tolist()
    acc = {"features": FeatureAccumulator(0)}
    assert ranks.reduce_accumulators(acc, 0) is acc and not ranks.splits_accumulation(0)
    assert ranks.all_ranks(True) and ranks.is_writer()
    assert ranks.nfe_per_sample_of_parts([(64, 5)]) == 64 and isinstance(ranks.nfe_per_sample_of_parts([(64, 5)]), int)
    assert ranks.nfe_per_sample_of_parts([(2.0, 1), (4.0, 3)]) == 3.5


# --- one torchrun run (two ranks, gloo) against one process ----------------------------------
SCRIPT = Path(__file__).with_name("ranks_run.py")
ONE_THREAD = {**test_shard.ONE_THREAD, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
              "PYTHONPATH": os.pathsep.join([str(SCRIPT.parents[2]), os.environ.get("PYTHONPATH", "")])}


def _records(out: Path) -> list[dict]:
    """Deterministic fields, the run's own folder (in ``saved_png``) written as OUT."""
    text = (out / "records.jsonl").read_text().replace(json.dumps(str(out))[1:-1], "OUT")
    return [deterministic_fields(json.loads(line)) for line in text.splitlines()]


@pytest.mark.slow
def test_torchrun_two_ranks_split_features_and_equal_one_process(tmp_path):
    from tests.harness.features.helpers import digit_images, tiny_torchscript, write_pngs

    reference = write_pngs(tmp_path / "reference", digit_images(100, 24))
    train = write_pngs(tmp_path / "train", digit_images(300, 20, shift=9))
    net = tiny_torchscript(tmp_path / "tiny.pt", trusted=False)
    runfile = tmp_path / "run.toml"
    runfile.write_text(f"""name = "ranks-features"
seeds = [0]
suites = ["image_quality", "image_quality_reference"]
adapters = ["fake-rgb-digits"]
[suite.image_quality]
n_samples = 9
fid_bootstrap = 20
[suite.image_quality_reference]
reference = "{reference}"
train_reference = "{train}"
extractor = "torchscript:{net}"
extractor_mode = "clean"
trust_unknown = true
n_samples = 11
sample_chunk = 4
batch_size = 4
save_png = true
fid_bootstrap = 20
kid_subset_size = 1000
""")
    outs = {}
    for nproc in (1, 2):
        out = tmp_path / f"run{nproc}"
        env = {**ONE_THREAD, "GENBENCH_STATS_CACHE": str(tmp_path / f"cache{nproc}")}
        launch = [] if nproc == 1 else ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
        # two ranks also run an adapter whose sampling raises on rank 1 only, after the others
        failing = [] if nproc == 1 else ["--adapter", "fake-rgb-digits", "--adapter", "fake-rgb-digits-fails-on-rank-1"]
        proc = subprocess.run([sys.executable, *launch, str(SCRIPT), "run", str(runfile), *failing, "--out", str(out)],
                              capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
        assert proc.returncode == (0 if nproc == 1 else 1), proc.stderr[-3000:]
        outs[nproc] = (out, proc.stdout)
    (one, _), (two, stdout) = outs[1], outs[2]
    # the digits path: samples, reference and train features (3); the reference path: its 3 chunks
    # drawn by range, their features gathered (1), the reference's rows and the train folder's sums
    # (2); the failing adapter's two cells each drew once (rank 1 raising) and measured no sample
    summary = re.search(r"torchrun: 2 ranks; sample split (\d+), sample whole 0, likelihood split 0, "
                        r"likelihood split by \(example, sample\) 0, likelihood whole 0; "
                        r"features split (\d+), statistics reduced (\d+)", stdout)
    assert summary, stdout
    assert (int(summary[1]), int(summary[2])) == (4 + 2, 4) and int(summary[3]) >= 2, summary[0]
    # both of the failing adapter's cells failed on every rank, naming rank 1, and the run finished
    failed = [r for r in _records(two) if r["adapter"] == "fake-rgb-digits-fails-on-rank-1"]
    assert [(r["suite"], r["status"]) for r in failed] == [("image_quality", "failed"),
                                                           ("image_quality_reference", "failed")], failed
    assert {r["error"] for r in failed} == {"RankFailed: rank 1: ValueError: sampling broke on rank 1 only"}
    want, got = _records(one), [r for r in _records(two) if r["adapter"] == "fake-rgb-digits"]
    assert len(got) == len(want) > 10 and {r["suite"] for r in got} == {"image_quality", "image_quality_reference"}
    assert {r["metric"] for r in got} >= {"fid", "fid_train_floor", "kid", "precision", "density"}
    for g, w in zip(got, want):
        assert test_shard._close(g, w), (g, w)  # numbers to 1e-12 relative, everything else exactly
    # rank 0 wrote every PNG, the same bytes as one process
    pngs = {n: sorted((o / "artifacts").rglob("samples/*.png")) for n, (o, _) in outs.items()}
    assert len(pngs[2]) == 11 and [p.read_bytes() for p in pngs[2]] == [p.read_bytes() for p in pngs[1]]
    # the reference's and the train folder's statistics cached (by rank 0) under one process's keys
    cached = {n: sorted(p.name for p in (tmp_path / f"cache{n}").glob("*.npz")) for n in (1, 2)}
    assert len(cached[2]) == 2 and cached[2] == cached[1]
