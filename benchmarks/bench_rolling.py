"""hf-causal-lm rolling perplexity throughput against a plain batched forward pass.

Builds offline a GPT-2 (4 layers, 256 wide, 4 heads, 256 positions) with a byte-level BPE
tokenizer (8,192 ids) trained on the KJV train split, saves both to a tmp dir, and scores
~50k tokens of KJV test text cut into documents of varying length.

* ``log_likelihood``: the adapter's whole call, texts in, NLLs out (tokenization, rolling
  windows, batching, padding, log-softmax over the vocabulary, per-document sums, checks);
* ``plain forward``: ``model(input_ids).logits`` over the same windows in the same batches,
  tensors built beforehand, nothing else.

Prints tokens/s of each (median of repeats, one warm-up each, measurements interleaved) and
their ratio (target >= 0.9). The model is random: speed does not depend on the weights.
Run: .venv/bin/python benchmarks/bench_rolling.py [--tokens 50000] [--repeats 3] [--threads 1]
"""
from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

import genbench  # noqa: F401  (makes torchvision importable before transformers)
import torch

from genbench import data
from genbench.adapters.hf import HFCausalLM, rolling_windows

BATCH = 16


def build_checkpoint(directory: str, vocab: int = 8192) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    train = "\n".join(data.kjv_texts("train"))[:1_000_000]
    tok.train_from_iterator([train], trainers.BpeTrainer(
        vocab_size=vocab, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>")
    torch.manual_seed(0)
    cfg = GPT2Config(n_layer=4, n_embd=256, n_head=4, n_positions=256, vocab_size=len(fast),
                     bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id)
    GPT2LMHeadModel(cfg).save_pretrained(directory)
    fast.save_pretrained(directory)


def documents(tokenizer, n_tokens: int) -> list[str]:
    """KJV test text cut at whitespace into documents of 200-8,000 characters, up to n_tokens."""
    text = "\n".join(data.kjv_texts("test"))
    rng = np.random.default_rng(0)
    docs, total, start = [], 0, 0
    while total < n_tokens and start < len(text):
        end = text.find(" ", start + int(rng.integers(200, 8000)))
        end = len(text) if end < 0 else end
        doc = text[start:end].strip()
        start = end + 1
        if doc:
            docs.append(doc)
            total += len(tokenizer(doc, add_special_tokens=False, verbose=False)["input_ids"])
    return docs


def plain_batches(lm: HFCausalLM, docs: list[str]) -> list[torch.Tensor]:
    """The adapter's windows as right-padded input tensors, in the adapter's batches."""
    seqs = []
    for doc in docs:
        ids = lm.tokenizer(doc, add_special_tokens=False, verbose=False)["input_ids"]
        seqs += [seq[:-1] for seq, _ in rolling_windows(ids, lm.prefix_token_id, lm.max_length)]
    seqs.sort(key=len, reverse=True)
    batches = []
    for s in range(0, len(seqs), lm.batch_size):
        group = seqs[s: s + lm.batch_size]
        x = torch.full((len(group), len(group[0])), lm.prefix_token_id, dtype=torch.int64)
        for r, seq in enumerate(group):
            x[r, : len(seq)] = torch.as_tensor(seq)
        batches.append(x)
    return batches


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=50_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1: stable on a shared CPU)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        build_checkpoint(tmp)
        lm = HFCausalLM(tmp, batch_size=BATCH)
    docs = documents(lm.tokenizer, args.tokens)
    batches = plain_batches(lm, docs)

    @torch.inference_mode()
    def plain() -> None:
        for x in batches:
            lm.model(input_ids=x).logits

    def adapter() -> None:
        lm.log_likelihood(docs)

    ll = lm.log_likelihood(docs)  # warm-up, and the token count
    n_tokens = int(ll.units.sum())
    assert ll.info["windows"] == sum(len(b) for b in batches)
    plain()
    times: dict[str, list[float]] = {"log_likelihood": [], "plain forward": []}
    for _ in range(args.repeats):  # interleaved, so that load changes hit both alike
        for name, fn in (("log_likelihood", adapter), ("plain forward", plain)):
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)

    rate = {k: n_tokens / float(np.median(v)) for k, v in times.items()}
    print(f"hf-causal-lm rolling log-likelihood, GPT-2 4x256, 256 positions, vocab {len(lm.tokenizer)}, "
          f"batch {BATCH}, CPU, {args.threads} thread(s)")
    print(f"  {len(docs)} documents, {n_tokens} tokens, {ll.info['windows']} windows; "
          f"median of {args.repeats} after 1 warm-up")
    for k, v in times.items():
        print(f"  {k:15s}: {rate[k]:9.0f} tokens/s  (times {', '.join(f'{t:.2f}' for t in v)} s)")
    print(f"  throughput ratio log_likelihood / plain forward: "
          f"{rate['log_likelihood'] / rate['plain forward']:.3f} (target >= 0.9)")
    print(f"  token perplexity of the random model: {np.exp(ll.per_unit()):.1f} (vocab {len(lm.tokenizer)})")


if __name__ == "__main__":
    main()
