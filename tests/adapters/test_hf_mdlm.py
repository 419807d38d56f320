"""hf-masked-diffusion-lm on a tiny BERT and a word-level tokenizer built offline in a tmp dir.

The ELBO is checked against an independent brute force: for a short document the bound's
expectation over timesteps and masks is a finite sum over the 2^n mask patterns (each pattern's
probability integrated over t in closed form by quadrature), computed here with the model called
straight through transformers; the same forward passes give the model's exact likelihood (a
dynamic programme over the order in which positions are revealed), which the bound must exceed.
"""
from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.integrate import quad

from genbench import runner
from genbench.errors import UserError
from genbench.interfaces import LikelihoodKind
from genbench.registry import ADAPTERS, build_adapter
from genbench.store import load

from genbench.adapters.hf_mdlm import HFMaskedDiffusionLM  # noqa: E402  (registers the adapter)

NAME = "hf-masked-diffusion-lm"
POSITIONS = 16
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
TEXT = (
    "The river rises in the hills above the old town and runs down through the valley to the sea. "
    "In spring the water is high and fast, and the mills along its banks turn from dawn to dusk. "
    "In summer it grows slow and clear, and children wade across the shallows near the bridge. "
    "The fishermen know every pool and every stone, and they say the river has a voice of its own."
)
SIX = "the river runs down to the"                      # 6 tokens: 63 mask patterns
SHORT = "The river runs down to the sea."               # 8 tokens
MID = "In summer the river is slow and clear, and it runs"  # 12 tokens
LONG = " ".join(TEXT.split()[:30])                      # > POSITIONS tokens: 2+ windows


def _tokenizer(mask: bool = True):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator([TEXT, SIX, SHORT, MID], trainers.WordLevelTrainer(special_tokens=SPECIALS,
                                                                               show_progress=False))
    special = {"unk_token": "[UNK]", "pad_token": "[PAD]", "cls_token": "[CLS]", "sep_token": "[SEP]"}
    if mask:
        special["mask_token"] = "[MASK]"
    return PreTrainedTokenizerFast(tokenizer_object=tok, **special)



def _save(d, tok, nan: bool = False):
    """A tiny BERT (untied embeddings, large init so that context matters) + tokenizer in d."""
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=POSITIONS, type_vocab_size=1,
                     initializer_range=0.3, tie_word_embeddings=False)
    model = BertForMaskedLM(cfg)
    if nan:
        with torch.no_grad():
            model.bert.embeddings.LayerNorm.weight.fill_(float("nan"))
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return _save(tmp_path_factory.mktemp("tiny-bert"), _tokenizer())


@pytest.fixture(scope="module")
def lm(ckpt):
    return HFMaskedDiffusionLM(str(ckpt), mc_samples=16, length=8)


@pytest.fixture(scope="module")
def reference(ckpt):
    """The same checkpoint loaded on its own, straight through transformers."""
    from transformers import AutoTokenizer, BertForMaskedLM

    return BertForMaskedLM.from_pretrained(ckpt).eval(), AutoTokenizer.from_pretrained(ckpt)


def _encode(tokenizer, text):
    return tokenizer(text, add_special_tokens=False)["input_ids"]


@torch.no_grad()
def brute_force(model, ids: list[int], mask_id: int, *, pad: int = 0, eps: float = 1e-3) -> tuple[float, float]:
    """(the ELBO's exact expectation, the exact NLL) of one sequence, in nats.

    Mask pattern M (bit i set = position i masked; ``pad`` extra positions always masked):
    f(M) = sum_{i in M} -log p(x_i | x_M), the mask id excluded from the softmax (SUBS). Given t
    each position is masked with probability t, so with t ~ U[eps, 1]
    E[(1/t) f(M_t)] = sum_M f(M) * int_eps^1 t^(|M|-1) (1-t)^(n-|M|) dt / (1 - eps).
    The model's own likelihood reveals positions in a uniformly random order, each drawn from
    p(x_i | revealed so far): p(x) = P(all revealed), P(R) = sum_{i in R} P(R - i) p(x_i | R - i) / (n - |R - i|).
    """
    n, full = len(ids), (1 << len(ids)) - 1
    rows = [[mask_id if m >> i & 1 else x for i, x in enumerate(ids)] + [mask_id] * pad for m in range(full + 1)]
    logits = model(input_ids=torch.tensor(rows)).logits[:, :n].double()
    logits[..., mask_id] = -math.inf
    logp = torch.log_softmax(logits, -1)[:, torch.arange(n), torch.tensor(ids)].numpy()  # (2^n, n)
    bound = 0.0
    for m in range(1, full + 1):
        k = bin(m).count("1")
        c = quad(lambda t: t ** (k - 1) * (1 - t) ** (n - k), eps, 1)[0] / (1 - eps)
        bound -= c * sum(logp[m, i] for i in range(n) if m >> i & 1)
    p = np.zeros(full + 1)
    p[0] = 1.0
    for r in sorted(range(1, full + 1), key=lambda r: bin(r).count("1")):
        for i in range(n):
            if r >> i & 1:
                prev = r & ~(1 << i)
                p[r] += p[prev] * math.exp(logp[full ^ prev, i]) / (n - bin(prev).count("1"))
    return bound, -math.log(p[full])


# --- the bound ----------------------------------------------------------------------------
@pytest.mark.parametrize("timesteps,weight", [("antithetic", "rao-blackwell"), ("iid", "1/t"),
                                              ("systematic", "rao-blackwell")])
def test_elbo_is_unbiased_for_the_exact_bound_which_exceeds_the_exact_nll(ckpt, reference, timesteps, weight):
    model, tok = reference
    ids = _encode(tok, SIX)
    assert len(ids) == 6 and tok.mask_token_id not in ids
    exact, exact_nll = brute_force(model, ids, tok.mask_token_id)
    assert exact > exact_nll + 0.05  # a context-dependent model: a real Jensen gap
    lm = HFMaskedDiffusionLM(str(ckpt), mc_samples=8, timesteps=timesteps, weight=weight)
    # 40 copies of one document in one call: each gets its own noise (independent estimates)
    ll = lm.log_likelihood([SIX] * 40, seed=3).validate()
    assert len(set(ll.nll)) == 40 and np.all(ll.units == 6) and np.all(ll.stderr > 0)
    # the mean of 40 estimates is within 3 standard errors of the exact expectation ...
    assert abs(ll.nll.mean() - exact) < 3 * ll.nll.std(ddof=1) / math.sqrt(40)
    # ... and the reported standard error is about the spread (the stratified one errs large)
    ratio = np.sqrt(np.mean(ll.stderr ** 2)) / ll.nll.std(ddof=1)
    assert 0.6 < ratio < (3.0 if timesteps == "antithetic" else 1.6)
    one = HFMaskedDiffusionLM(str(ckpt), mc_samples=64, timesteps=timesteps, weight=weight)
    est = one.log_likelihood([SIX], seed=0)
    assert abs(est.nll[0] - exact) < 3 * est.stderr[0]


def test_likelihood_reads_nothing_back_per_batch(ckpt):
    """The Monte Carlo passes of many windows read no value back from the device while they run
    (each would hold the host on an accelerator; counted on the CPU: tests/host_reads.py)."""
    from tests.host_reads import HostReads

    lm = HFMaskedDiffusionLM(str(ckpt), mc_samples=4, batch_size=8)
    lm.log_likelihood(["a b c"], seed=0)
    with HostReads() as reads:
        lm.log_likelihood(["The river runs down to the sea.", "In spring the water is high and fast."] * 6, seed=0)
    assert reads.count == 0, (reads.ops, reads.where)


def test_likelihood_record_fields(lm):
    ll = lm.log_likelihood([SHORT], seed=0).validate()
    assert ll.kind is LikelihoodKind.UPPER_BOUND and lm.likelihood_kind is LikelihoodKind.UPPER_BOUND
    assert ll.unit == "token" and ll.mc_samples == 16 and ll.units.tolist() == [8.0]
    info = ll.info
    assert info["timesteps"] == "antithetic" and info["sampling_eps"] == 1e-3 and info["mc_samples"] == 16
    assert info["max_length"] == POSITIONS and info["windows"] == 1 and "SUBS" in info["estimator"]
    assert info["mask_token_id"] == lm.tokenizer.mask_token_id and "own length" in info["short_window"]


def test_stderr_shrinks_and_estimates_are_seeded_and_batch_independent(ckpt, lm):
    few = HFMaskedDiffusionLM(str(ckpt), mc_samples=4)
    many = HFMaskedDiffusionLM(str(ckpt), mc_samples=64)
    # 10 copies of a document: 10 independent estimates (a few-sample stderr is itself noisy)
    a_few, a_many = few.log_likelihood([SHORT] * 10, seed=1), many.log_likelihood([SHORT] * 10, seed=1)
    assert np.all(a_few.stderr > 0) and np.all(a_many.stderr > 0)
    assert a_many.stderr.mean() < 0.5 * a_few.stderr.mean() and a_many.nll.std() < 0.5 * a_few.nll.std()
    docs = [SHORT, MID, SIX]
    a = lm.log_likelihood(docs, seed=5)
    np.testing.assert_array_equal(a.nll, lm.log_likelihood(docs, seed=5).nll)     # same seed, same numbers
    assert not np.any(a.nll == lm.log_likelihood(docs, seed=6).nll)
    one_row = HFMaskedDiffusionLM(str(ckpt), mc_samples=16, batch_size=1).log_likelihood(docs, seed=5)
    np.testing.assert_allclose(one_row.nll, a.nll, rtol=1e-6)                       # any batch size
    np.testing.assert_allclose(one_row.stderr, a.stderr, rtol=1e-5)
    # a document's estimate does not depend on the others in the call, nor on its position
    for i, doc in enumerate(docs):
        alone = lm.log_likelihood([doc], seed=5)
        np.testing.assert_allclose(alone.nll[0], a.nll[i], rtol=1e-6)
        np.testing.assert_allclose(alone.stderr[0], a.stderr[i], rtol=1e-5)
    np.testing.assert_allclose(lm.log_likelihood([SIX, SHORT], seed=5).nll, a.nll[[2, 0]], rtol=1e-6)


@pytest.mark.parametrize("short_window", ["own-length", "mask-padded"])
def test_long_document_is_cut_into_disjoint_windows(ckpt, reference, short_window):
    model, tok = reference
    L = 5
    ids = _encode(tok, MID)
    assert len(ids) == 12
    lm = HFMaskedDiffusionLM(str(ckpt), max_length=L, mc_samples=64, short_window=short_window)
    ll = lm.log_likelihood([MID], seed=2).validate()
    assert ll.units.tolist() == [12.0] and ll.info["windows"] == 3
    # windows ids[0:5], ids[5:10], ids[10:12]; the last one either alone or padded with masks to 5
    exact = sum(brute_force(model, ids[s: s + L], tok.mask_token_id,
                            pad=(L - len(ids[s: s + L])) if short_window == "mask-padded" else 0)[0]
                for s in (0, 5, 10))
    assert abs(ll.nll[0] - exact) < 3 * ll.stderr[0]
    # the default window is the model's positions: one window for a short document, more for a long one
    assert HFMaskedDiffusionLM(str(ckpt), mc_samples=2).log_likelihood([SHORT, LONG]).info["windows"] == 1 + 2
    assert len(_encode(tok, LONG)) > POSITIONS


def test_likelihood_grid_in_parts_keeps_windows_and_blocks(ckpt):
    """The (window, sample) grid split anywhere, across blocks of different widths, gives the
    whole call's per-document values (torchrun ranks split it so)."""
    from tests.adapters.test_mdlm import grid_in_parts

    lm = HFMaskedDiffusionLM(str(ckpt), max_length=5, mc_samples=4)
    grid = lm.likelihood_grid([MID, SHORT, MID], seed=2)  # MID: 5 + 5 + 2 tokens (twice), SHORT: 5 + 3
    want = lm.log_likelihood([MID, SHORT, MID], seed=2)
    assert grid.rows == want.info["windows"] and grid.size == 4 * grid.rows
    cuts = sorted({0, 3, 4 * 4 + 1, 4 * 6 + 2, grid.size - 1, grid.size})  # across rows and width blocks
    # BERT's float32 forward on the CPU depends on the batch's shape (~1e-7 relative, as batch_size
    # changes it in one process); the draws, windows and owner sums are the whole call's exactly
    _, ll = grid_in_parts(grid, cuts, rtol=1e-6)
    np.testing.assert_allclose(ll.nll, want.nll, rtol=1e-6)
    np.testing.assert_allclose(ll.stderr, want.stderr, rtol=1e-5)
    assert ll.info == want.info and ll.nll[0] != ll.nll[2]  # a repeated document draws fresh noise


def test_shift_logits_moves_the_logits_one_position_right(ckpt, lm):
    shifted = HFMaskedDiffusionLM(str(ckpt), shift_logits=True)
    ids = torch.tensor([_encode(lm.tokenizer, SHORT)])
    with torch.no_grad():
        a, b = lm.logits(ids), shifted.logits(ids)
    torch.testing.assert_close(b[:, 1:], a[:, :-1])
    torch.testing.assert_close(b[:, 0], a[:, 0])


# --- sampling -----------------------------------------------------------------------------
def test_sampling_is_seeded_batch_independent_and_takes_the_steps(ckpt, lm):
    a = lm.sample(5, seed=3, batch_size=2).validate(5, "text")
    assert a.tokens.shape == (5, 8) and a.tokens.dtype == np.int64
    assert a.nfe_per_sample == 8 and a.nfe == 8 * 3     # steps default to length; 3 batches
    assert not np.any(a.tokens == lm.mask_id)
    assert a.texts == [lm.tokenizer.decode(r.tolist(), skip_special_tokens=True) for r in a.tokens]
    np.testing.assert_array_equal(a.tokens, lm.sample(5, seed=3, batch_size=2).tokens)
    np.testing.assert_array_equal(a.tokens, lm.sample(5, seed=3, batch_size=5).tokens)
    assert not np.array_equal(a.tokens, lm.sample(5, seed=4, batch_size=2).tokens)
    # steps: one forward pass each, counted at the model
    calls = []
    original = lm.model.forward
    lm.model.forward = lambda *args, **kw: calls.append(kw["input_ids"].shape) or original(*args, **kw)
    try:
        s = lm.sample(3, seed=0, batch_size=3, steps=3)
    finally:
        del lm.model.forward
    assert calls == [(3, 8)] * 3 and s.nfe == 3 and s.nfe_per_sample == 3 and s.info["steps"] == 3
    assert HFMaskedDiffusionLM(str(ckpt), length=6, steps=2).sample(1, seed=0).nfe_per_sample == 2
    padded = HFMaskedDiffusionLM(str(ckpt), length=4, short_window="mask-padded").sample(2, seed=0)
    assert padded.tokens.shape == (2, 4) and not np.any(padded.tokens == lm.mask_id)


def test_sampling_draws_follow_the_model(ckpt, reference):
    """One token in one step: its frequencies match the model's distribution given [MASK]
    (the mask id itself excluded)."""
    model, tok = reference
    s = HFMaskedDiffusionLM(str(ckpt), length=1).sample(2000, seed=0, batch_size=1000)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([[tok.mask_token_id]])).logits[0, 0].double()
    logits[tok.mask_token_id] = -math.inf
    p = torch.softmax(logits, -1).numpy()
    counts = np.bincount(s.tokens[:, 0], minlength=len(p))
    expected = 2000 * p
    small = expected < 5
    obs = np.append(counts[~small], counts[small].sum())
    exp = np.append(expected[~small], expected[small].sum())
    assert counts[tok.mask_token_id] == 0 and stats.chisquare(obs, exp).pvalue > 1e-4


def test_sampling_errors(ckpt, lm):
    with pytest.raises(UserError, match="steps must be between 1 and the sequence length 8; got 9"):
        lm.sample(2, seed=0, steps=9)
    with pytest.raises(UserError, match="condition=None"):
        lm.sample(2, seed=0, condition=[1, 2])
    with pytest.raises(UserError, match=f"length=17 needs 17 positions, more than the model's {POSITIONS}"):
        HFMaskedDiffusionLM(str(ckpt), length=17).sample(1, seed=0)


# --- errors -------------------------------------------------------------------------------
def _variant(ckpt, tmp_path, name, tokenizer):
    d = tmp_path / name
    d.mkdir()
    for f in ("config.json", "model.safetensors"):
        shutil.copy(ckpt / f, d / f)
    tokenizer.save_pretrained(d)
    return d


def test_a_checkpoint_without_mask_token_names_the_field_and_the_fix(ckpt, tmp_path, lm):
    d = _variant(ckpt, tmp_path, "no-mask", _tokenizer(mask=False))
    with pytest.raises(UserError, match=rf"{d.resolve()} has no mask token.*tokenizer_config.json.*mask_token.*"
                                        r"pass the option mask_token_id=ID"):
        HFMaskedDiffusionLM(str(d))
    fixed = HFMaskedDiffusionLM(str(d), mask_token_id=lm.mask_id, mc_samples=4)
    assert fixed.describe()["mask_token_source"] == "option mask_token_id"
    np.testing.assert_allclose(fixed.log_likelihood([SHORT]).nll,
                               HFMaskedDiffusionLM(str(ckpt), mc_samples=4).log_likelihood([SHORT]).nll)
    with pytest.raises(UserError, match=r"mask token id 999 \(from option mask_token_id\) is not an id"):
        HFMaskedDiffusionLM(str(ckpt), mask_token_id=999)


@pytest.mark.parametrize("options,match", [
    ({"mc_samples": 1}, r"mc_samples must be an integer >= 2.*\[adapter.\"hf-masked-diffusion-lm\"\] mc_samples"),
    ({"mc_samples": 2.5}, "mc_samples must be an integer >= 2"),
    ({"timesteps": "stratified"}, "option timesteps='stratified' is not one of antithetic, systematic, iid"),
    ({"weight": "t"}, "option weight='t' is not one of"),
    ({"short_window": "pad"}, "option short_window='pad' is not one of own-length, mask-padded"),
    ({"auto_class": "AutoModelForSeq2SeqLM"}, "option auto_class='AutoModelForSeq2SeqLM' is not one of"),
    ({"batch_size": 0}, r"hf-masked-diffusion-lm: option batch_size=0 must be a positive integer"),
    ({"dtype": "float8"}, "hf-masked-diffusion-lm: option dtype='float8' is not a dtype"),
    ({"max_length": POSITIONS + 1}, f"max_length={POSITIONS + 1} exceeds the {POSITIONS} positions"),
    ({"length": 8, "steps": 9}, "option steps=9 must be an integer between 1 and the sequence length 8"),
    ({"temperature": -1}, "option temperature=-1 must be a finite number >= 0"),
    ({"order": "raster"}, r"option order='raster' is not one of confidence, random; set \[adapter"),
])
def test_bad_options_are_user_errors(ckpt, options, match):
    with pytest.raises(UserError, match=match):
        HFMaskedDiffusionLM(str(ckpt), **options)


def test_loading_errors(ckpt, tmp_path):
    with pytest.raises(UserError, match="needs a checkpoint"):
        HFMaskedDiffusionLM()
    with pytest.raises(UserError, match="checkpoint directory ./missing does not exist"):
        HFMaskedDiffusionLM("./missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="config.json does not exist"):
        HFMaskedDiffusionLM(str(tmp_path / "empty"))
    # a head-less model loads, and its first forward pass says what is wrong
    bare = HFMaskedDiffusionLM(str(ckpt), auto_class="AutoModel", mc_samples=2)
    with pytest.raises(UserError, match=r"BertModel \(loaded with auto_class=AutoModel\) returns no logits"):
        bare.log_likelihood([SHORT])


def test_input_errors(lm):
    with pytest.raises(UserError, match="hf-masked-diffusion-lm: document 2 is empty"):
        lm.log_likelihood([SHORT, MID, "", SHORT])
    with pytest.raises(UserError, match="document 1 is a NoneType, not a string"):
        lm.log_likelihood([SHORT, None])
    with pytest.raises(UserError, match="got one str; wrap it in a list"):
        lm.log_likelihood(SHORT)
    with pytest.raises(UserError, match=r"document 1 is bytes that are not UTF-8 \(byte 3"):
        lm.log_likelihood([SHORT, b"abc\xff\xfe"])
    with pytest.raises(UserError, match=r"document 1 holds the mask token itself \(token 2 is id 4, '\[MASK\]'"):
        lm.log_likelihood([SHORT, "the river [MASK] down"])
    np.testing.assert_array_equal(lm.log_likelihood([SHORT.encode()]).nll, lm.log_likelihood([SHORT]).nll)
    assert len(lm.log_likelihood([]).nll) == 0


def test_nan_logits_name_the_document(ckpt):
    broken = HFMaskedDiffusionLM(str(ckpt), mc_samples=8, length=8)
    tok = broken.tokenizer
    doc = "the water is high and fast near the old bridge"
    bad = _encode(tok, "bridge")[0]
    assert bad in _encode(tok, doc) and all(bad not in _encode(tok, d) for d in (SHORT, LONG))
    assert len(_encode(tok, doc)) not in {len(_encode(tok, SHORT)), POSITIONS, len(_encode(tok, LONG)) % POSITIONS}
    with torch.no_grad():
        broken.model.bert.embeddings.word_embeddings.weight[bad] = float("nan")
    assert np.isfinite(broken.log_likelihood([SHORT, LONG]).nll).all()  # other documents are unaffected
    with pytest.raises(UserError, match=r"model produced NaN logits on document 1 \(windows of 10 positions\) "
                                        r".*dtype float32.*check the weights"):
        broken.log_likelihood([SHORT, doc, LONG])
    with torch.no_grad():
        broken.model.bert.embeddings.word_embeddings.weight[broken.mask_id] = float("nan")
    with pytest.raises(UserError, match="NaN logits while sampling"):
        broken.sample(1, seed=0)


def test_registry_and_describe(ckpt, lm):
    assert ADAPTERS.get(NAME) is HFMaskedDiffusionLM
    built = build_adapter(f"{NAME}:{ckpt}", batch_size=2)
    assert isinstance(built, HFMaskedDiffusionLM) and built.batch_size == 2
    d = lm.describe()
    assert d["name"] == NAME and d["paradigm"] == "masked" and d["modality"] == "text"
    assert d["path"] == str(ckpt.resolve()) and d["model_class"] == "BertForMaskedLM" and d["model_type"] == "bert"
    assert d["mask_token_id"] == 4 and d["max_length"] == POSITIONS and d["dtype"] == "float32"
    assert d["likelihood"] == {"mc_samples": 16, "timesteps": "antithetic", "weight": "rao-blackwell",
                               "sampling_eps": 1e-3, "short_window": "own-length"}
    assert d["sampler"]["length"] == 8 and d["sampler"]["steps"] == 8
    assert d["n_params"] > 0 and len(d["config_sha256"]) == 64 and d["config_sha256"] == built.describe()["config_sha256"]
    json.dumps(d)


# --- through the runner -----------------------------------------------------------------------
def test_runner_records_the_bound_and_a_nan_model_fails_alone(ckpt, tmp_path):
    nan_dir = _save(tmp_path / "nan-bert", _tokenizer(), nan=True)
    text = tmp_path / "river.txt"
    text.write_text(TEXT, encoding="utf-8")
    spec = runner.RunSpec(suites=["likelihood"], adapters=[f"{NAME}:{nan_dir}", f"{NAME}:{ckpt}"], seeds=[0],
                          suite_options={"likelihood": {"dataset": str(text)}},
                          adapter_options={NAME: {"mc_samples": 4}}, name="hfm")
    results = runner.run(spec, tmp_path / "run", log=lambda m: None)
    assert [r.status for r in results] == ["failed", "ok"]
    frame = load(tmp_path / "run")
    failed = frame[frame.status == "failed"].iloc[0]
    assert failed["adapter"] == f"{NAME}:{nan_dir}" and "NaN logits" in failed["error"]
    ok = frame[frame.status == "ok"]
    assert set(ok.metric) >= {"word_perplexity", "byte_perplexity", "bits_per_byte", "token_perplexity"}
    for _, row in ok.iterrows():
        assert row["paradigm"] == "masked" and row["convention"]["kind"] == "upper_bound"
        assert row["convention"]["mc_samples"] == 4 and row["stderr"] > 0 and math.isfinite(row["value"])
    records = [json.loads(line) for line in (tmp_path / "run" / "records.jsonl").read_text().splitlines()]
    assert {r["metric"] for r in records if r.get("status") == "ok"} == set(ok.metric)


def test_windows_are_keyed_by_document_not_position():
    from genbench.adapters.hf_mdlm import _document_key

    assert _document_key([1, 2, 3]) == _document_key([1, 2, 3]) != _document_key([1, 2, 4])
    assert 0 <= _document_key(list(range(100))) < 2 ** 64


def test_brute_force_helper_on_a_context_free_model():
    """Sanity of the test's own oracle: a model that ignores context has bound == NLL (up to eps)."""
    class Fixed(torch.nn.Module):
        def forward(self, input_ids):
            out = torch.zeros(*input_ids.shape, 5)
            out[..., 0], out[..., 1] = 1.0, -0.5
            return type("Out", (), {"logits": out})()

    ids = [0, 1, 2, 0]
    bound, nll = brute_force(Fixed(), ids, mask_id=4, eps=1e-9)
    logp = torch.log_softmax(torch.tensor([1.0, -0.5, 0.0, 0.0]).double(), -1).numpy()
    assert nll == pytest.approx(-sum(logp[i] for i in ids), rel=1e-9)
    assert bound == pytest.approx(nll, rel=1e-6)
