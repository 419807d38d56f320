"""The likelihood suite: records unchanged by how examples are grouped into calls, Monte Carlo
draws keyed by (seed, example index), and exact records equal to those computed before the
suite batched across documents."""
from __future__ import annotations

import json

import numpy as np
import pytest

from genbench import data
from genbench.registry import build_adapter
from genbench.store import deterministic_fields
from genbench.suite import SuiteContext
from genbench.suites.likelihood import Likelihood, examples_to_likelihood

# The records of the shipped exact models as the suite gave them when it scored one document
# (or 100 images) per call (genbench main at d31bb3a, CPU). Different CPU kernels may move
# the last digits, hence the tolerance.
BEFORE = {
    ("ar-digits", "bits_per_dim"): 1.9786438845989451,       # all 400 test images
    ("ar-kjv", "bits_per_byte"): 3.0211485132035985,          # kjv:test, 3 documents of <= 3000 bytes
    ("ar-kjv", "byte_perplexity"): 8.11813602280194,
    ("ar-kjv", "word_perplexity"): 64320.45108840768,
}


def _records(name, tmp_path, seed=0, adapter_options=None, **options):
    suite = Likelihood()
    ctx = SuiteContext(seed=seed, options={**suite.options, **options}, artifacts=tmp_path)
    return {m.metric: m for m in suite.run(build_adapter(name, **(adapter_options or {})), ctx)}


@pytest.mark.parametrize("name, options", [("ar-digits", {}),
                                           ("ar-kjv", {"max_examples": 3, "max_bytes_per_document": 3000})])
def test_exact_records_are_those_of_before(name, options, tmp_path):
    for batch_size in (1, 1000):
        got = _records(name, tmp_path, batch_size=batch_size, **options)
        for (model, metric), value in BEFORE.items():
            if model == name:
                assert got[metric].value == pytest.approx(value, rel=1e-6), (metric, batch_size)


@pytest.fixture(scope="module")
def short_documents(tmp_path_factory):
    """40 KJV passages of 150-450 bytes (some span two 256-byte windows) in a JSONL file."""
    text = "\n".join(data.kjv_texts("test"))
    rng = np.random.default_rng(0)
    docs, start = [], 0
    for _ in range(40):
        end = text.find(" ", start + int(rng.integers(150, 450)))
        docs.append(text[start:end].strip())
        start = end + 1
    path = tmp_path_factory.mktemp("docs") / "docs.jsonl"
    path.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs), encoding="utf-8")
    return path


# small Monte Carlo settings: the property does not depend on them, the run time does
MC = {"masked-digits": {"mc_samples": 4}, "diffusion-digits": {"mc_samples": 16, "replicates": 2},
      "masked-kjv": {"mc_samples": 2}}


@pytest.mark.parametrize("name, metric", [("masked-digits", "bits_per_dim"), ("diffusion-digits", "bits_per_dim"),
                                          ("masked-kjv", "bits_per_byte")])
def test_monte_carlo_records_do_not_depend_on_the_grouping(name, metric, short_documents, tmp_path):
    options = {"max_examples": 40}
    if name == "masked-kjv":
        options["dataset"] = str(short_documents)
    got = {bs: _records(name, tmp_path, adapter_options=MC[name], batch_size=bs, **options)[metric]
           for bs in (5, 16, 32)}
    # each example's draws come from its own generator; only the batch shapes of the forward
    # passes differ, which may move float32 results in the last bits
    assert got[5].value == pytest.approx(got[16].value, rel=1e-6) == pytest.approx(got[32].value, rel=1e-6)
    assert got[5].stderr == pytest.approx(got[32].stderr, rel=1e-5)
    # and so does the convention: what the adapter reports of a call (a mean of its terms, a
    # count of windows) is merged over the calls, not taken from the first call alone
    same = {bs: deterministic_fields({"convention": got[bs].convention})["convention"] for bs in got}
    for bs in (16, 32):
        assert same[bs].keys() == same[5].keys()
        for key, value in same[5].items():
            assert same[bs][key] == (pytest.approx(value, rel=1e-6) if isinstance(value, float) else value), (key, bs)
    # a second seed: another estimate, within the Monte Carlo error of the first
    other = _records(name, tmp_path, seed=1, adapter_options=MC[name], batch_size=16, **options)[metric]
    assert other.value != got[16].value
    assert abs(other.value - got[16].value) < 5 * np.hypot(other.stderr, got[16].stderr)


@pytest.mark.parametrize("name", ["masked-digits", "diffusion-digits"])
def test_seeds_share_no_draws(name, tmp_path):
    """The same image six times, one per call: each copy gets its own draws, and seed 1 does
    not reuse seed 0's draws of another copy (keying on seed + call start did exactly that)."""
    image = data.digits_arrays("test")[0][:1]
    images = np.repeat(image, 6, axis=0)
    generator = build_adapter(name, **MC[name])
    suite = Likelihood()
    nll = {}
    for seed in (0, 1):
        ctx = SuiteContext(seed=seed, options={**suite.options, "batch_size": 1}, artifacts=tmp_path)
        nll[seed] = examples_to_likelihood(generator, images, ctx).nll
    assert len(set(nll[0].tolist())) == 6 and len(set(nll[1].tolist())) == 6
    assert not set(nll[0].tolist()) & set(nll[1].tolist())
    # and grouping the copies differently gives the same per-copy values
    ctx = SuiteContext(seed=0, options={**suite.options, "batch_size": 4}, artifacts=tmp_path)
    np.testing.assert_allclose(examples_to_likelihood(generator, images, ctx).nll, nll[0], rtol=1e-6)


def test_batch_size_must_be_positive(tmp_path):
    from genbench.errors import UserError

    with pytest.raises(UserError, match="batch_size=0 must be >= 1"):
        _records("ar-digits", tmp_path, batch_size=0, max_examples=2)
