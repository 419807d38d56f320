"""text_quality: units from the scorer, a per-byte figure from the samples' bytes, the first token
unscored (MDLM/SEDD), a selectable reference; checked on a tiny GPT-2 saved locally against a
direct token-by-token computation with transformers."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from genbench.errors import UserError
from genbench.interfaces import Generator, Samples
from genbench.suite import SuiteContext
from genbench.suites.text_quality import TextQuality
from tests.adapters.test_hf import TEXT
from tests.adapters.test_hf import ckpt  # noqa: F401  (the tiny GPT-2 fixture)

SAMPLES = ["The river runs down to the sea and the mills turn.", "In spring the water is high.",
           "Children wade across the shallows near the bridge.", "The fishermen know every pool."]


class FixedText(Generator):
    name, paradigm, modality = "fixed-text", "autoregressive", "text"

    def sample(self, n, *, seed, batch_size=64, condition=None, steps=None):
        texts = [SAMPLES[i % len(SAMPLES)] for i in range(n)]
        return Samples(tokens=np.zeros((n, 1), dtype=np.int64), texts=texts, nfe=n, nfe_per_sample=1.0)


@pytest.fixture(scope="module")
def gpt2_dir(ckpt):
    return ckpt


@pytest.fixture(scope="module")
def reference_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("ref") / "reference.txt"
    path.write_text(TEXT * 2, encoding="utf-8")
    return path


@torch.no_grad()
def direct_token_nll(d, text: str) -> np.ndarray:
    """-log p(t_i | BOS, t_<i) for every token of text, straight through transformers."""
    from transformers import AutoTokenizer, GPT2LMHeadModel

    tok = AutoTokenizer.from_pretrained(d)
    model = GPT2LMHeadModel.from_pretrained(d).eval()
    ids = tok(text, add_special_tokens=False)["input_ids"]
    x = torch.tensor([[tok.bos_token_id] + ids])
    logp = torch.log_softmax(model(x).logits[0, :-1].double(), -1)
    return -logp[torch.arange(len(ids)), torch.tensor(ids)].numpy()


def _run(tmp_path, **options):
    TextQuality.check_options(options, "[suite.text_quality]")  # as a run checks them, before any cell
    o = {**TextQuality.options, "n_samples": 4, **options}
    return {m.metric: m for m in TextQuality().run(FixedText(), SuiteContext(seed=0, options=o, artifacts=tmp_path))}


def test_hf_scorer_records_per_token_and_per_byte_with_the_first_token_unscored(gpt2_dir, reference_file, tmp_path):
    m = _run(tmp_path, scorer=f"hf-causal-lm:{gpt2_dir}", reference=str(reference_file))
    assert set(m) == {f"{p}{k}" for p in ("", "reference_") for k in
                      ("gen_perplexity", "gen_perplexity_per_sequence", "gen_perplexity_per_byte", "entropy")}
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gpt2_dir)
    per_text = [direct_token_nll(gpt2_dir, t)[1:] for t in SAMPLES]       # the first token is context
    nll = np.array([x.sum() for x in per_text])
    tokens = np.array([len(x) for x in per_text])
    rest_bytes = np.array([len(t.encode()) - len(tok.decode(tok(t, add_special_tokens=False)["input_ids"][:1]).encode())
                           for t in SAMPLES])
    assert m["gen_perplexity"].unit == "token perplexity" and m["gen_perplexity_per_byte"].unit == "byte perplexity"
    assert m["gen_perplexity"].value == pytest.approx(math.exp(nll.sum() / tokens.sum()), rel=1e-5)
    assert m["gen_perplexity_per_sequence"].value == pytest.approx(np.mean(np.exp(nll / tokens)), rel=1e-5)
    assert m["gen_perplexity_per_byte"].value == pytest.approx(math.exp(nll.sum() / rest_bytes.sum()), rel=1e-5)
    conv = m["gen_perplexity"].convention
    assert conv["unit"] == "token" and conv["units_scored"] == tokens.sum() and conv["bytes_scored"] == rest_bytes.sum()
    assert "unscored" in conv["first_token"] and conv["reference"] == "reference.txt"
    assert "Zheng et al. 2024" in m["entropy"].convention["definition"]
    assert "MDLM" not in m["entropy"].convention["definition"].split(";")[0]
    # the reference pieces come from the given file, scored the same way
    assert m["reference_gen_perplexity"].convention["of"].startswith("real text of reference.txt")

    # "scored": every token, the first given BOS
    s = _run(tmp_path, scorer=f"hf-causal-lm:{gpt2_dir}", reference=str(reference_file), first_token="scored")
    full = [direct_token_nll(gpt2_dir, t) for t in SAMPLES]
    all_bytes = sum(len(t.encode()) for t in SAMPLES)
    assert s["gen_perplexity"].value == pytest.approx(
        math.exp(sum(x.sum() for x in full) / sum(len(x) for x in full)), rel=1e-5)
    assert s["gen_perplexity_per_byte"].value == pytest.approx(
        math.exp(sum(x.sum() for x in full) / all_bytes), rel=1e-5)


def test_byte_scorer_counts_bytes_and_errors_name_the_field(tmp_path, reference_file):
    m = _run(tmp_path, reference=str(reference_file))          # the default scorer ar-kjv counts bytes
    assert m["gen_perplexity"].unit == "byte perplexity"
    # per byte of the scorer is per byte of the text: the two agree
    assert m["gen_perplexity"].value == pytest.approx(m["gen_perplexity_per_byte"].value, rel=1e-12)
    assert m["gen_perplexity"].convention["units_scored"] == sum(len(t) - 1 for t in SAMPLES)
    with pytest.raises(UserError, match=r"first_token = 'last'"):
        _run(tmp_path, first_token="last")
    with pytest.raises(UserError, match=r"does not exist"):
        _run(tmp_path, reference=str(tmp_path / "missing.txt"))
    with pytest.raises(UserError, match=r"exact one.*first_token = \"scored\""):
        _run(tmp_path, scorer="masked-kjv")
