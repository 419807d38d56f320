"""hf-causal-lm on a tiny GPT-2 and a byte-level BPE tokenizer built offline in a tmp dir.

The rolling log-likelihood is checked against an independent token-by-token brute force of
lm-evaluation-harness's ``loglikelihood_rolling`` definition (one forward pass per token, with
exactly the context the disjoint-window rule gives that token).
"""
from __future__ import annotations

import math
import re
import shutil

import numpy as np
import pytest
import torch
from scipy import stats

from genbench.errors import UserError
from genbench.interfaces import LikelihoodKind
from genbench.metrics import text as text_metrics
from genbench.registry import ADAPTERS, build_adapter

from genbench.adapters.hf import HFCausalLM, rolling_windows  # noqa: E402  (registers hf-causal-lm)

EOT = "<|endoftext|>"
POSITIONS = 64

TEXT = (
    "The river rises in the hills above the old town and runs down through the valley to the sea. "
    "In spring the water is high and fast, and the mills along its banks turn from dawn to dusk. "
    "In summer it grows slow and clear, and children wade across the shallows near the bridge. "
    "The fishermen know every pool and every stone, and they say the river has a voice of its own. "
    "When the autumn rains come the fields are flooded and the road to the market is closed for days. "
    "Winter brings ice to the edges, and the town waits for the thaw, as it has waited for centuries. "
    "Nobody remembers who built the first bridge, but the stones still carry carts and cattle today. "
    "Travellers stop at the inn by the ford, drink a cup of cider, and ask about the road to the coast."
)
SHORT = "The river runs down to the sea."
LONG = " ".join(TEXT.split()[:60])


def _tokenizer(bos_eos: bool = True, add_bos: bool = False):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator([TEXT] * 3, trainers.BpeTrainer(
        vocab_size=300, special_tokens=[EOT], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    if add_bos:  # a tokenizer that adds BOS by default (as Llama's does)
        tok.post_processor = processors.TemplateProcessing(single=f"{EOT} $A", special_tokens=[(EOT, 0)])
    special = {"bos_token": EOT, "eos_token": EOT} if bos_eos else {}
    return PreTrainedTokenizerFast(tokenizer_object=tok, **special)



@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """A tiny GPT-2 (untied embeddings, large init so that context matters) + tokenizer."""
    from transformers import GPT2Config, GPT2LMHeadModel

    d = tmp_path_factory.mktemp("tiny-gpt2")
    tok = _tokenizer()
    torch.manual_seed(0)
    cfg = GPT2Config(n_layer=2, n_embd=32, n_head=2, n_positions=POSITIONS, vocab_size=len(tok),
                     bos_token_id=0, eos_token_id=0, initializer_range=0.3, tie_word_embeddings=False)
    GPT2LMHeadModel(cfg).save_pretrained(d)
    tok.save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def lm(ckpt):
    return HFCausalLM(str(ckpt), batch_size=4)


@pytest.fixture(scope="module")
def reference(ckpt):
    """The same checkpoint loaded on its own, straight through transformers."""
    from transformers import AutoTokenizer, GPT2LMHeadModel

    return GPT2LMHeadModel.from_pretrained(ckpt).eval(), AutoTokenizer.from_pretrained(ckpt)


def _variant(ckpt, tmp_path, name, tokenizer):
    """The checkpoint's weights with another tokenizer, in a new directory."""
    d = tmp_path / name
    d.mkdir()
    for f in ("config.json", "model.safetensors"):
        shutil.copy(ckpt / f, d / f)
    tokenizer.save_pretrained(d)
    return d


@torch.no_grad()
def brute_force_nll(model, tokens: list[int], prefix: int, L: int) -> tuple[float, int]:
    """-sum log p(token) with one forward pass per token, the context given by the rule:
    tokens of the first window see [prefix] + everything before them; a later window that
    predicts tokens[s:e] reads tokens[e-L-1 : e-1], so token t sees tokens[e-L-1 : t].
    Returns (nll, number of windows)."""
    total, start, windows = 0.0, 0, 0
    while start < len(tokens):
        end = min(start + L, len(tokens))
        for t in range(start, end):
            ctx = [prefix] + tokens[:t] if windows == 0 else tokens[end - L - 1: t]
            assert 1 <= len(ctx) <= L
            logits = model(torch.tensor([ctx])).logits[0, -1].double()
            total -= float(torch.log_softmax(logits, -1)[tokens[t]])
        start, windows = end, windows + 1
    return total, windows


def _encode(tokenizer, text):
    return tokenizer(text, add_special_tokens=False)["input_ids"]


# --- the definition ---------------------------------------------------------------------
def test_rolling_windows_follow_lm_eval():
    # lm-eval's documented example: 34 tokens, max_seq_len 10, context_len 1
    windows = rolling_windows(list(range(34)), -100, 10)
    as_pairs = [(seq[:-1], seq[1:][-k:]) for seq, k in windows]
    assert as_pairs == [
        ([-100] + list(range(9)), list(range(10))),
        (list(range(9, 19)), list(range(10, 20))),
        (list(range(19, 29)), list(range(20, 30))),
        (list(range(23, 33)), list(range(30, 34))),
    ]
    assert rolling_windows([], 0, 4) == []
    assert rolling_windows([7], 0, 4) == [([0, 7], 1)]
    # every token is scored exactly once, inputs never exceed the window
    for n in (1, 9, 10, 11, 20, 21, 57):
        ws = rolling_windows(list(range(n)), -1, 10)
        assert sum(k for _, k in ws) == n and all(len(s) - 1 <= 10 for s, _ in ws)


def test_packed_windows_are_the_rolling_windows():
    """All documents' windows as slices of one flat array: the same inputs, targets and scored
    counts as rolling_windows document by document, in document then window order."""
    from genbench.adapters.hf import documents_to_windows

    rng = np.random.default_rng(0)
    for L in (1, 3, 10):
        docs = [list(rng.integers(0, 50, n)) for n in (1, 9, 10, 11, 20, 21, 57, 0, 2)]
        packed = documents_to_windows(docs, -1, L)
        expected = [(d, seq, k) for d, doc in enumerate(docs) for seq, k in rolling_windows(doc, -1, L)]
        assert len(packed) == len(expected)
        for w, (d, seq, k) in enumerate(expected):
            a, n = packed.start[w], packed.length[w]
            assert packed.owner[w] == d and packed.scored[w] == k and n == len(seq) - 1
            assert packed.flat[a: a + n + 1].tolist() == seq


def test_suite_scores_document_groups_as_brute_force(ckpt, reference, tmp_path):
    """The likelihood suite, documents passed in groups: per-document sums equal the
    token-by-token brute force, whatever the group size."""
    import json

    from genbench.suite import SuiteContext
    from genbench.suites.likelihood import Likelihood

    model, tok = reference
    words = TEXT.split()
    docs = [" ".join(words[i: i + 3 + i % 30]) for i in range(0, len(words) - 3, 16)]
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs), encoding="utf-8")
    brute = sum(brute_force_nll(model, _encode(tok, d), 0, 16)[0] for d in docs)
    n_tokens = sum(len(_encode(tok, d)) for d in docs)
    lm16 = HFCausalLM(str(ckpt), batch_size=5, max_length=16)
    suite = Likelihood()
    for group in (1, 4, 1000):
        ctx = SuiteContext(seed=0, options={**suite.options, "dataset": str(path), "batch_size": group},
                           artifacts=tmp_path)
        got = {m.metric: m.value for m in suite.run(lm16, ctx)}
        assert got["token_perplexity"] == pytest.approx(math.exp(brute / n_tokens), rel=1e-5), group


def test_rolling_log_likelihood_equals_brute_force(lm, reference):
    model, tok = reference
    docs = [SHORT, LONG]
    ll = lm.log_likelihood(docs).validate()
    assert ll.kind is LikelihoodKind.EXACT and ll.unit == "token" and lm.likelihood_kind is LikelihoodKind.EXACT
    expected_windows = 0
    for i, doc in enumerate(docs):
        ids = _encode(tok, doc)
        nll, w = brute_force_nll(model, ids, tok.bos_token_id, POSITIONS)
        expected_windows += w
        assert ll.units[i] == len(ids)
        assert ll.nll[i] == pytest.approx(nll, rel=1e-5)
    assert len(_encode(tok, SHORT)) < POSITIONS < len(_encode(tok, LONG))  # one fits, one needs 2+ windows
    assert ll.info == {"max_length": POSITIONS, "windows": expected_windows, "prefix_token": tok.bos_token_id,
                       "definition": "lm-eval loglikelihood_rolling"}


def test_document_of_many_windows_and_edge_lengths(ckpt, reference):
    """max_length 8: a long document spans many windows; lengths L-1, L, L+1 and 1 token."""
    model, tok = reference
    L = 8
    small = HFCausalLM(str(ckpt), max_length=L, batch_size=5)
    ids = _encode(tok, TEXT)
    words = TEXT.split()
    docs = [" ".join(words[:70])]
    # documents of exactly L-1, L and L+1 tokens, and of one token
    for n in (L - 1, L, L + 1, 1):
        docs.append(tok.decode(ids[:n]))
        assert len(_encode(tok, docs[-1])) == n
    ll = small.log_likelihood(docs)
    total_windows = 0
    for i, doc in enumerate(docs):
        d_ids = _encode(tok, doc)
        nll, w = brute_force_nll(model, d_ids, tok.bos_token_id, L)
        total_windows += w
        assert ll.nll[i] == pytest.approx(nll, rel=1e-5)
        assert w == math.ceil(len(d_ids) / L)
    assert math.ceil(len(_encode(tok, docs[0])) / L) >= 8
    assert ll.info["windows"] == total_windows and ll.info["max_length"] == L


def test_no_special_tokens_added(ckpt, lm, tmp_path):
    """A tokenizer that adds BOS by default gives the same numbers: documents are tokenized
    with add_special_tokens=False and conditioned on the prefix token once."""
    adds_bos = HFCausalLM(str(_variant(ckpt, tmp_path, "adds-bos", _tokenizer(add_bos=True))))
    assert adds_bos.tokenizer(SHORT)["input_ids"][0] == 0  # it does add BOS by default
    a, b = lm.log_likelihood([SHORT, LONG]), adds_bos.log_likelihood([SHORT, LONG])
    np.testing.assert_array_equal(a.units, b.units)
    np.testing.assert_allclose(a.nll, b.nll, rtol=1e-6)


def test_text_metrics_follow_lm_eval_definitions(lm):
    docs = [SHORT, LONG, "Travellers stop at the inn by the ford.\nThey ask about the road to the coast."]
    ll = lm.log_likelihood(docs)
    loglik = -ll.nll  # lm-eval's per-document loglikelihood_rolling results
    # lm-eval wikitext process_results: words = len(re.split(r"\s+", page)), bytes = len(page.encode())
    words = sum(len(re.split(r"\s+", d)) for d in docs)
    n_bytes = sum(len(d.encode("utf-8")) for d in docs)
    lm_eval = {  # weighted_perplexity and bits_per_byte aggregations
        "word_perplexity": math.exp(-loglik.sum() / words),
        "byte_perplexity": math.exp(-loglik.sum() / n_bytes),
        "bits_per_byte": -loglik.sum() / n_bytes / math.log(2),
        "token_perplexity": math.exp(-loglik.sum() / ll.units.sum()),
    }
    ours = text_metrics.nll_to_text_metrics(float(ll.nll.sum()), n_bytes=text_metrics.texts_to_byte_count(docs),
                                           n_words=text_metrics.texts_to_word_count(docs),
                                           n_tokens=int(ll.units.sum()))
    for name, value in lm_eval.items():
        assert ours[name] == pytest.approx(value, rel=1e-5), name


def test_word_count_matches_lm_eval_with_edge_whitespace():
    docs = [" = Title = \n body text \n"]
    assert text_metrics.texts_to_word_count(docs) == sum(len(re.split(r"\s+", d)) for d in docs)


def test_batch_size_does_not_change_numbers(ckpt, lm):
    docs = [SHORT, LONG, TEXT, "A ford.", LONG[:200]]
    values = [HFCausalLM(str(ckpt), batch_size=b, max_length=16).log_likelihood(docs).nll for b in (1, 3, 64)]
    for v in values[1:]:
        np.testing.assert_allclose(v, values[0], rtol=1e-6)
    # documents scored together or one at a time: the same numbers
    alone = np.concatenate([lm.log_likelihood([d]).nll for d in docs])
    np.testing.assert_allclose(lm.log_likelihood(docs).nll, alone, rtol=1e-6)


def test_windows_of_all_chunks_form_one_stream_of_batches(ckpt, monkeypatch):
    """Documents tokenized in many chunks: ceil(windows / batch_size) forward passes in all
    (a chunk's leftover windows wait for the next chunk's), the same numbers as scoring each
    chunk's windows on their own (one partial batch per chunk, the adapter before)."""
    from genbench.adapters import hf

    monkeypatch.setattr(hf, "TOKENIZE_CHUNK_CHARS", (60, 240))  # many chunks from a few documents
    words = TEXT.split()
    docs = [" ".join(words[i: i + 2 + (7 * i) % 40]) for i in range(0, len(words) - 2, 3)]
    lm16 = HFCausalLM(str(ckpt), batch_size=3, max_length=16)
    forward, calls = lm16._forward, []
    lm16._forward = lambda *args: calls.append(args[0].shape) or forward(*args)
    chunks = list(lm16._token_chunks(docs))
    assert len(chunks) >= 4

    ll = lm16.log_likelihood(docs)
    n_windows = ll.info["windows"]
    assert len(calls) == math.ceil(n_windows / 3) and sum(shape[0] for shape in calls) == n_windows
    assert [shape[0] for shape in calls[:-1]] == [3] * (len(calls) - 1)  # only the last batch is partial

    per_chunk, chunk_calls = np.zeros(len(docs)), 0
    for idx, token_lists in chunks:
        windows = hf.documents_to_windows(token_lists, lm16.prefix_token_id, 16)
        nll, _ = hf.windows_to_nll(forward, windows, batch_size=3, device=lm16.device, pad_token=lm16.prefix_token_id)
        per_chunk += np.bincount(idx[windows.owner], weights=nll, minlength=len(docs))
        chunk_calls += math.ceil(len(windows) / 3)
    assert chunk_calls > len(calls)  # the chunks' partial batches are what the stream saves
    np.testing.assert_allclose(ll.nll, per_chunk, rtol=1e-6)


def test_likelihood_forward_takes_ids_only(lm, monkeypatch):
    """The likelihood's forward passes get the ids and use_cache=False, no attention mask and no
    position ids: transformers checks explicit position ids for packed sequences with a value
    read back from the device (a wait per batch on an accelerator), and the default positions
    0..T-1 are each right-padded window's anyway."""
    seen = []
    forward = lm.model.forward
    monkeypatch.setattr(lm.model, "forward", lambda *a, **k: seen.append(sorted(k)) or forward(*a, **k))
    lm.log_likelihood([SHORT, LONG, TEXT])
    assert seen and all(k == ["input_ids", "use_cache"] for k in seen)


def test_likelihood_reads_nothing_back_per_batch(lm):
    """No value is read back from the device while the windows are scored (on an accelerator
    each read holds the host until the device has caught up; counted here on the CPU). Before
    ``rows_not_packed`` transformers' packed-sequence check read one per forward pass; the check
    is back in place afterwards."""
    import transformers.masking_utils as masking

    from genbench.adapters.device import rows_not_packed
    from tests.host_reads import HostReads

    check = masking.find_packed_sequence_indices
    docs = [SHORT, LONG, TEXT] * 8  # 22 forward passes of 4 windows
    lm.log_likelihood(docs[:3])
    with HostReads() as reads:
        ll = lm.log_likelihood(docs)
    assert reads.count == 0, (reads.ops, reads.where)
    assert masking.find_packed_sequence_indices is check
    with rows_not_packed():  # what it answers is what the check says of a window's positions
        assert masking.find_packed_sequence_indices(torch.arange(9)[None].expand(3, 9)) is None
    assert check(torch.arange(9)[None].expand(3, 9)) is None
    np.testing.assert_array_equal(ll.nll[:3], lm.log_likelihood(docs[:3]).nll)


def test_window_stream_does_not_depend_on_the_chunking(ckpt, lm):
    """WindowStream: windows added in chunks of any size (empty ones too) get the NLLs of
    one add, in the order they were added; a stream with nothing added reads nothing."""
    from genbench.adapters import hf

    token_lists = [_encode(lm.tokenizer, d) for d in (SHORT, LONG, TEXT, "A ford.", LONG[:200], TEXT[:300])]
    windows = hf.documents_to_windows(token_lists, lm.prefix_token_id, 16)

    def stream_nll(cuts: list[int]) -> tuple[np.ndarray, np.ndarray]:
        stream = hf.WindowStream(lm._forward, batch_size=4, device=lm.device, pad_token=lm.prefix_token_id)
        for lo, hi in zip(cuts[:-1], cuts[1:]):
            sel = np.arange(lo, hi)
            stream.add(hf._take(windows, sel))
        return stream.read()

    whole, nan = stream_nll([0, len(windows)])
    assert len(whole) == len(windows) > 12 and not nan.any() and (whole > 0).all()
    for cuts in ([0, 1, 2, 3, len(windows)], [0, 0, 5, 5, 11, len(windows)], list(range(len(windows) + 1))):
        np.testing.assert_allclose(stream_nll(cuts)[0], whole, rtol=1e-6)
    empty = hf.WindowStream(lm._forward, batch_size=4, device=lm.device, pad_token=0)
    assert [len(x) for x in empty.read()] == [0, 0]


# --- errors -----------------------------------------------------------------------------
def test_construction_errors(ckpt, tmp_path):
    with pytest.raises(UserError, match="hf-causal-lm needs a checkpoint: use hf-causal-lm:PATH"):
        HFCausalLM()
    with pytest.raises(UserError, match="needs a checkpoint"):
        build_adapter("hf-causal-lm")
    with pytest.raises(UserError, match=r"directory .*nope does not exist"):
        HFCausalLM(str(tmp_path / "nope"))
    with pytest.raises(UserError, match=r"does not exist locally and the Hugging Face hub is offline"):
        HFCausalLM("genbench-test-org/no-such-model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"config.json does not exist"):
        HFCausalLM(str(tmp_path / "empty"))
    with pytest.raises(UserError, match=r"is a file"):
        HFCausalLM(str(ckpt / "config.json"))
    with pytest.raises(UserError, match=r"dtype='float33'"):
        HFCausalLM(str(ckpt), dtype="float33")
    with pytest.raises(UserError, match=r"max_length=65 exceeds the 64 positions"):
        HFCausalLM(str(ckpt), max_length=65)
    with pytest.raises(UserError, match=r"batch_size=0 must be a positive integer"):
        HFCausalLM(str(ckpt), batch_size=0)


def test_tokenizer_without_bos_or_eos(ckpt, tmp_path):
    d = _variant(ckpt, tmp_path, "no-bos", _tokenizer(bos_eos=False))
    with pytest.raises(UserError, match=r"neither a bos_token nor an eos_token.*prefix_token_id"):
        HFCausalLM(str(d))
    assert HFCausalLM(str(d), prefix_token_id=0).log_likelihood([SHORT]).info["prefix_token"] == 0


def test_input_errors(lm):
    with pytest.raises(UserError, match="document 2 is empty"):
        lm.log_likelihood([SHORT, LONG, "", SHORT])
    with pytest.raises(UserError, match="document 1 is a NoneType, not a string"):
        lm.log_likelihood([SHORT, None])
    with pytest.raises(UserError, match="got one str; wrap it in a list"):
        lm.log_likelihood(SHORT)
    with pytest.raises(UserError, match=r"document 1 is bytes that are not UTF-8 \(byte 3"):
        lm.log_likelihood([SHORT, b"abc\xff\xfe"])
    with pytest.raises(UserError, match="document 0 is not valid Unicode"):
        lm.log_likelihood(["abc\ud800"])
    # UTF-8 bytes are accepted as the text they encode
    np.testing.assert_allclose(lm.log_likelihood([SHORT.encode()]).nll, lm.log_likelihood([SHORT]).nll)


def test_nan_logits_name_document_and_window(ckpt):
    L = 8
    broken = HFCausalLM(str(ckpt), max_length=L, batch_size=3)
    tok = broken.tokenizer
    doc = "The river runs down to the sea ~ and the sea is wide and deep and cold."
    ids = _encode(tok, doc)
    bad_id = _encode(tok, "~")[0]
    pos = ids.index(bad_id)
    window = 0 if pos < L else 1 + (pos - L) // L
    assert window >= 1 and bad_id not in _encode(tok, SHORT + LONG)
    with torch.no_grad():
        broken.model.transformer.wte.weight[bad_id] = float("nan")
    assert np.isfinite(broken.log_likelihood([SHORT]).nll).all()  # other documents are unaffected
    with pytest.raises(UserError, match=rf"model produced NaN logits on document 1, window {window}\b"):
        broken.log_likelihood([SHORT, doc, LONG])


# --- sampling ---------------------------------------------------------------------------
def test_sampling_seeded_cached_equals_uncached(ckpt, lm):
    length = 12
    cached = HFCausalLM(str(ckpt), length=length)
    uncached = HFCausalLM(str(ckpt), length=length, kv_cache=False)
    a = cached.sample(5, seed=3, batch_size=2)
    assert a.tokens.shape == (5, length) and a.tokens.dtype == np.int64
    assert a.nfe == length * 3 and a.nfe_per_sample == length  # 3 batches of one pass per token
    a.validate(5, "text")
    assert a.texts == [cached.tokenizer.decode(r.tolist(), skip_special_tokens=True) for r in a.tokens]
    np.testing.assert_array_equal(a.tokens, cached.sample(5, seed=3, batch_size=2).tokens)
    b = uncached.sample(5, seed=3, batch_size=2)
    np.testing.assert_array_equal(a.tokens, b.tokens)
    assert b.nfe == a.nfe
    # per-sample seeds: the batch size does not change the samples
    c = cached.sample(5, seed=3, batch_size=5)
    np.testing.assert_array_equal(a.tokens, c.tokens)
    assert c.nfe == length
    assert not np.array_equal(a.tokens, cached.sample(5, seed=4, batch_size=2).tokens)
    # greedy: every sample is the same argmax path, cached or not
    g = HFCausalLM(str(ckpt), length=length, temperature=0).sample(2, seed=0, batch_size=2).tokens
    g2 = HFCausalLM(str(ckpt), length=length, temperature=0, kv_cache=False).sample(2, seed=9, batch_size=1).tokens
    np.testing.assert_array_equal(g, g2)
    assert (g[0] == g[1]).all()


def test_sampling_draws_follow_the_model(ckpt, reference):
    """The first sampled token's frequencies match the model's next-token distribution."""
    model, tok = reference
    one = HFCausalLM(str(ckpt), length=1)
    s = one.sample(2000, seed=0, batch_size=1000)
    with torch.no_grad():
        p = torch.softmax(model(torch.tensor([[tok.bos_token_id]])).logits[0, -1].double(), -1).numpy()
    counts = np.bincount(s.tokens[:, 0], minlength=len(p))
    # chi-square goodness of fit, the tokens of expected count < 5 pooled into one cell
    expected = 2000 * p
    small = expected < 5
    obs = np.append(counts[~small], counts[small].sum())
    exp = np.append(expected[~small], expected[small].sum())
    assert stats.chisquare(obs, exp).pvalue > 1e-4


def test_sampling_errors(ckpt, lm):
    with pytest.raises(UserError, match="steps=5 cannot change that"):
        lm.sample(2, seed=0, steps=5)
    with pytest.raises(UserError, match="condition=None"):
        lm.sample(2, seed=0, condition=[1, 2])
    with pytest.raises(UserError, match="length=65 needs 65 positions"):
        HFCausalLM(str(ckpt), length=65).sample(1, seed=0)
    with pytest.raises(UserError, match="temperature"):
        HFCausalLM(str(ckpt), temperature=-1)


def test_registry_and_describe(ckpt, lm):
    assert ADAPTERS.get("hf-causal-lm") is HFCausalLM
    built = build_adapter(f"hf-causal-lm:{ckpt}", batch_size=2)
    assert isinstance(built, HFCausalLM) and built.batch_size == 2
    d = lm.describe()
    assert d["name"] == "hf-causal-lm" and d["paradigm"] == "autoregressive" and d["modality"] == "text"
    assert d["path"] == str(ckpt.resolve()) and d["model_class"] == "GPT2LMHeadModel"
    assert d["max_length"] == POSITIONS and d["dtype"] == "float32" and d["prefix_token"] == 0
    assert d["n_params"] > 0 and len(d["config_sha256"]) == 64 and d["tokenizer"]
    assert d["config_sha256"] == built.describe()["config_sha256"]
