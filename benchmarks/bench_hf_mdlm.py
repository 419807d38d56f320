"""Antithetic vs i.i.d. timesteps for hf-masked-diffusion-lm's ELBO, at equal compute.

The measurement of ``bench_antithetic.py`` (masked-digits), through the HF adapter's whole
``log_likelihood`` call (loading, tokenizer, windows, ELBO). Two checkpoints, built offline in a
tmp dir:

* ``--model masked-kjv`` (default): the shipped masked-kjv reference model (a byte-level masked
  diffusion model trained on the KJV train books, 3.40 val bits/byte) saved as a Hugging Face
  remote-code checkpoint (``auto_map`` -> a ``PreTrainedModel`` around genbench's Transformer, as
  MDLM's and LLaDA's checkpoints ship their code) with a byte-level tokenizer (id = byte value,
  ``[MASK]`` = 256, an id the model has no logit for), loaded with ``trust_remote_code=True``,
  ``max_length=256``, ``short_window="mask-padded"`` (how it was trained). Also prints the
  masked-kjv adapter's own ELBO of the same passages: the two must agree within their errors.
* ``--model bert``: ``BertForMaskedLM`` (2 layers, 128 wide, 64 positions, byte-level BPE of
  1,024 ids) trained ``--train-steps`` MDLM steps on the KJV train split. In a CPU budget of a
  few hundred steps it learns the token frequencies only (a BERT's loss sits on the unigram
  plateau for its first ~1k steps), so its ELBO integrand hardly varies with t: a lower bound on
  what stratification buys a real model.

Each of ``--examples`` KJV test passages (one window each) is scored ``--repeats`` times with
different seeds, ``--mc-samples`` forward passes per estimate, once per (weight, timesteps)
setting. The spread of the repeated estimates is each estimator's true standard error; prints
the ratio std(antithetic) / std(iid) at equal forward passes (target <= 0.6) and the reported
stderr's calibration.

    .venv/bin/python benchmarks/bench_hf_mdlm.py [--model masked-kjv|bert --examples 6 --repeats 16
                                                  --mc-samples 16 --train-steps 400 --threads 1]
"""
from __future__ import annotations

import argparse
import importlib.util
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import genbench  # noqa: F401  (makes torchvision importable before transformers)
import torch

from genbench import data
from genbench.adapters import mdlm
from genbench.adapters.hf_mdlm import HFMaskedDiffusionLM

from elbo_variance import print_estimator_table  # benchmarks/: shared with bench_antithetic

BERT_POSITIONS = 64
SETTINGS = [("1/t", "iid"), ("1/t", "antithetic"), ("rao-blackwell", "iid"), ("rao-blackwell", "antithetic")]

MODELING = '''"""genbench's masked diffusion Transformer as a Hugging Face remote-code masked LM."""
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import MaskedLMOutput

from genbench.adapters.nn import Transformer, TransformerConfig


class GenbenchMaskedConfig(PretrainedConfig):
    model_type = "genbench-masked"

    def __init__(self, transformer=None, **kwargs):
        self.transformer = dict(transformer or {})
        self.max_position_embeddings = self.transformer.get("seq_len")
        super().__init__(**kwargs)


class GenbenchMaskedLM(PreTrainedModel):
    config_class = GenbenchMaskedConfig
    base_model_prefix = "net"

    def __init__(self, config):
        super().__init__(config)
        self.net = Transformer(TransformerConfig(**config.transformer))
        self.post_init()

    def _init_weights(self, module):
        pass  # loaded weights only

    def get_input_embeddings(self):
        return self.net.tok

    def forward(self, input_ids, **kwargs):
        return MaskedLMOutput(logits=self.net(input_ids))
'''


def _byte_to_char() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map (what ByteLevel pre-tokenizers use)."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = [b for b in range(256) if b not in keep]
    return {**{b: chr(b) for b in keep}, **{b: chr(256 + i) for i, b in enumerate(extra)}}


def build_masked_kjv(directory: str) -> None:
    """masked-kjv's weights as a remote-code checkpoint + a byte tokenizer (id = byte value)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    # the code lives in a file of its own (save_pretrained copies it next to the weights)
    source = Path(tempfile.mkdtemp()) / "modeling_genbench_masked.py"
    source.write_text(MODELING)
    spec = importlib.util.spec_from_file_location("modeling_genbench_masked", source)
    module = importlib.util.module_from_spec(spec)
    sys.modules["modeling_genbench_masked"] = module
    spec.loader.exec_module(module)
    module.GenbenchMaskedConfig.register_for_auto_class()
    module.GenbenchMaskedLM.register_for_auto_class("AutoModelForMaskedLM")  # save_pretrained writes auto_map
    ref = mdlm.MaskedText()
    model = module.GenbenchMaskedLM(module.GenbenchMaskedConfig(transformer=ref.config.to_dict()))
    model.net.load_state_dict(ref.model.state_dict())
    model.save_pretrained(directory)
    tok = Tokenizer(models.BPE(vocab={c: b for b, c in _byte_to_char().items()}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, mask_token="[MASK]")
    assert fast.mask_token_id == ref.mask_id == 256
    fast.save_pretrained(directory)


class _Logits(torch.nn.Module):
    """An HF masked LM as ``ids (B, L) -> logits (B, L, V)``, the form mdlm's trainer calls."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=ids).logits


def build_bert(directory: str, *, steps: int, vocab: int = 1024, seed: int = 0) -> None:
    """Byte-level BPE tokenizer + BertForMaskedLM trained ``steps`` MDLM steps, saved to directory."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import BertConfig, BertForMaskedLM, PreTrainedTokenizerFast

    train = "\n".join(data.kjv_texts("train"))
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator([train[:1_000_000]], trainers.BpeTrainer(
        vocab_size=vocab, special_tokens=["[PAD]", "[MASK]"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", mask_token="[MASK]")
    corpus = torch.tensor(fast(train, add_special_tokens=False)["input_ids"], dtype=torch.int64)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=len(fast), hidden_size=128, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=512, max_position_embeddings=BERT_POSITIONS, type_vocab_size=1,
                     hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model = BertForMaskedLM(cfg)
    offsets = torch.arange(BERT_POSITIONS)

    def batch(step: int) -> torch.Tensor:
        starts = torch.randint(0, len(corpus) - BERT_POSITIONS, (32,), generator=gen)
        return corpus[starts[:, None] + offsets]

    # the reference models' trainer: AdamW, warm-up + cosine decay, clipping, MDLM loss
    mdlm._train(_Logits(model), batch, fast.mask_token_id, steps=steps, lr=2e-3, gen=gen,
                log_every=max(1, steps // 4))
    model.save_pretrained(directory)
    fast.save_pretrained(directory)


def passages(n: int, max_bytes: int) -> list[str]:
    """The first n passages of the KJV test split, cut at whitespace to at most max_bytes bytes."""
    from genbench.suites.likelihood import truncate_at_whitespace

    text, out = "\n".join(data.kjv_texts("test")), []
    while len(out) < n:
        doc = truncate_at_whitespace(text, max_bytes)
        out.append(doc.strip())
        text = text[len(doc):].lstrip()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=("masked-kjv", "bert"), default="masked-kjv")
    p.add_argument("--examples", type=int, default=6)
    p.add_argument("--repeats", type=int, default=16)
    p.add_argument("--mc-samples", type=int, default=16, help="forward passes per window and estimate")
    p.add_argument("--train-steps", type=int, default=400, help="--model bert only")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        if a.model == "masked-kjv":
            build_masked_kjv(d)
            options = {"trust_remote_code": True, "max_length": 256, "short_window": "mask-padded"}
            docs = passages(a.examples, 256)   # one 256-byte window each
            label = "masked-kjv weights as a remote-code HF checkpoint, byte tokenizer, 256-token windows"
        else:
            build_bert(d, steps=a.train_steps)
            options = {}
            docs = passages(a.examples, 160)   # about 55 BPE tokens: one 64-token window each
            label = (f"BertForMaskedLM 2x128, {BERT_POSITIONS} positions, BPE 1024 ids, trained {a.train_steps} "
                     "MDLM steps on KJV train")
        built = time.perf_counter() - t0
        rows = {}
        for weight, timesteps in SETTINGS:
            lm = HFMaskedDiffusionLM(d, mc_samples=a.mc_samples, timesteps=timesteps, weight=weight,
                                     batch_size=256, **options)
            with torch.inference_mode():
                lls = [lm.log_likelihood(docs, seed=10_000 + r) for r in range(a.repeats)]
            est, se = np.array([x.nll for x in lls]), np.array([x.stderr for x in lls])
            rows[weight, timesteps] = (est.std(axis=0, ddof=1), se, est.mean(axis=0))
        tokens = lls[0].units
    print(f"hf-masked-diffusion-lm ELBO: {label} (built in {built:.0f} s); {a.examples} KJV test passages "
          f"({tokens.mean():.0f} tokens each, one window), {a.mc_samples} forward passes per estimate, "
          f"{a.repeats} repeats per estimator ({time.perf_counter() - t0 - built:.0f} s)")
    default = rows["rao-blackwell", "antithetic"]
    print(f"ELBO {default[2].sum() / tokens.sum() / math.log(2):.3f} bits/token, mean over repeats")
    if a.model == "masked-kjv":
        ref = mdlm.MaskedText(mc_samples=64).log_likelihood(docs, seed=0)
        z = (ref.nll - default[2]) / np.sqrt(ref.stderr ** 2 + default[0] ** 2 / a.repeats)
        print(f"masked-kjv adapter's own ELBO of the same passages: {ref.nll.sum() / ref.units.sum() / math.log(2):.3f}"
              f" bits/byte (64 timesteps); per-passage difference / its standard error: max |z| = {np.abs(z).max():.2f}")
    print_estimator_table(rows, reported_by="the adapter", per="passage", mc_samples=a.mc_samples)

if __name__ == "__main__":
    main()
