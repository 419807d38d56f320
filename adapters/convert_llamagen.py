"""Convert a LlamaGen class-conditional GPT checkpoint (``c2i_*.pt``) into genbench's ``token-ar``
layout: ``transformer/`` (a transformers ``LlamaForCausalLM``), ``genbench.json``, and ``vq/``
copied from a diffusers ``VQModel`` folder you give.

    python -m genbench.adapters.convert_llamagen --gpt c2i_L_256.pt --model GPT-L --vq VQ_DIR --out DIR

The conversion is exact (the test compares logits with an independent implementation of
LlamaGen's forward pass):

* vocabulary: the K codes, then the C class tokens and the null class (LlamaGen's label-dropout
  row, label C): ``class_token = K``, ``null_class = C``; ``lm_head`` rows beyond K are zero
  and never read (token-ar reads the first K logits);
* ``wqkv`` is split into q/k/v; q and k rows are permuted from LlamaGen's interleaved rotary
  pairs (2i, 2i+1) to Llama's half-split pairs (i, i + d/2), which leaves q.k unchanged;
* LlamaGen's 2-D rotary positions (and its zero rotation of the class token) are not a Llama
  option: ``genbench.json`` says ``rope_2d`` and token-ar installs
  :class:`genbench.adapters.token_models.Rope2D` in the loaded model;
* w1/w3/w2 are Llama's gate/up/down projections, RMSNorm eps 1e-5, no biases.

LlamaGen's own tokenizer (``vq_ds16_c2i.pt``) is not a diffusers ``VQModel``: ``--vq`` must be a
``VQModel`` folder with the same codebook (K codes, the grid of ``--image-size / 16``), or the
samples decode to noise; this script checks the codebook size only.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path

import torch

import genbench  # noqa: F401  (transformers next to the pinned torchvision)
from genbench.errors import UserError

#: LlamaGen's GPT sizes (autoregressive/models/gpt.py): name -> (layers, heads, dim)
MODELS = {"GPT-B": (12, 12, 768), "GPT-L": (24, 16, 1024), "GPT-XL": (36, 20, 1280), "GPT-XXL": (48, 24, 1536),
          "GPT-XXXL": (48, 40, 2560)}


def interleaved_to_half_split(w: torch.Tensor, heads: int) -> torch.Tensor:
    """Rows of a q or k projection (heads * d, dim): per head, (0, 1, 2, 3, ...) -> (0, 2, ..., 1, 3, ...)."""
    d = w.shape[0] // heads
    w = w.view(heads, d // 2, 2, -1)
    return torch.cat([w[:, :, 0], w[:, :, 1]], dim=1).reshape(heads * d, -1)


def llamagen_to_llama(sd: dict[str, torch.Tensor], heads: int, grid: int, rope_base: float = 10000.0):
    """LlamaGen GPT state dict -> (LlamaConfig, Llama state dict, genbench.json dict)."""
    import transformers

    codes, dim = sd["tok_embeddings.weight"].shape
    table = sd["cls_embedding.embedding_table.weight"]  # (C + 1, dim): the last row is the null class
    classes = table.shape[0] - 1
    layers = 1 + max(int(m.group(1)) for k in sd if (m := re.match(r"layers\.(\d+)\.", k)))
    head_dim = dim // heads
    kv_heads = (sd["layers.0.attention.wqkv.weight"].shape[0] // head_dim - heads) // 2
    hidden = sd["layers.0.feed_forward.w1.weight"].shape[0]
    config = transformers.LlamaConfig(
        vocab_size=codes + classes + 1, hidden_size=dim, intermediate_size=hidden, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=kv_heads, rms_norm_eps=1e-5, hidden_act="silu",
        max_position_embeddings=1 + grid * grid, rope_theta=rope_base, tie_word_embeddings=False,
        attention_bias=False, mlp_bias=False)
    out = {"model.embed_tokens.weight": torch.cat([sd["tok_embeddings.weight"], table]),
           "model.norm.weight": sd["norm.weight"],
           "lm_head.weight": torch.cat([sd["output.weight"], torch.zeros(classes + 1, dim)])}
    for i in range(layers):
        p, q = f"layers.{i}.", f"model.layers.{i}."
        wq, wk, wv = sd[p + "attention.wqkv.weight"].split([dim, kv_heads * head_dim, kv_heads * head_dim])
        out.update({q + "self_attn.q_proj.weight": interleaved_to_half_split(wq, heads),
                    q + "self_attn.k_proj.weight": interleaved_to_half_split(wk, kv_heads),
                    q + "self_attn.v_proj.weight": wv, q + "self_attn.o_proj.weight": sd[p + "attention.wo.weight"],
                    q + "mlp.gate_proj.weight": sd[p + "feed_forward.w1.weight"],
                    q + "mlp.up_proj.weight": sd[p + "feed_forward.w3.weight"],
                    q + "mlp.down_proj.weight": sd[p + "feed_forward.w2.weight"],
                    q + "input_layernorm.weight": sd[p + "attention_norm.weight"],
                    q + "post_attention_layernorm.weight": sd[p + "ffn_norm.weight"]})
    spec = {"grid": [grid, grid], "codebook_size": codes, "num_classes": classes, "class_token": codes,
            "null_class": classes, "rope_2d": {"prefix": 1, "base": rope_base}}
    return config, out, spec


def convert(gpt: str | Path, vq: str | Path, out: str | Path, *, model: str | None = None, heads: int | None = None,
            image_size: int = 256, downsample: int = 16) -> Path:
    """Write the token-ar folder ``out`` from LlamaGen's ``gpt`` checkpoint and a diffusers VQ folder
    (``model`` a LlamaGen size, checked against the weights, or ``heads`` for another size)."""
    import transformers

    if model is not None and model not in MODELS:
        raise UserError(f"--model {model!r}: one of {', '.join(MODELS)}")
    if model is None and not heads:
        raise UserError("give --model (a LlamaGen size) or --heads (attention heads: not stored in the weights)")
    if not (Path(vq) / "config.json").is_file():
        raise UserError(f"--vq {vq}: not a diffusers VQModel folder (no config.json)")
    if not Path(gpt).is_file():
        raise UserError(f"--gpt {gpt}: no such file; give LlamaGen's c2i checkpoint (e.g. c2i_L_256.pt)")
    try:
        ckpt = torch.load(gpt, map_location="cpu", weights_only=True)
    except Exception as e:  # not a torch file, or one that needs pickle (never unpickled here)
        raise UserError(f"--gpt {gpt}: not a torch checkpoint readable with weights_only=True "
                        f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
    for key in ("model", "module", "state_dict"):
        if isinstance(ckpt, dict) and key in ckpt and isinstance(ckpt[key], dict):
            ckpt = ckpt[key]
    layers, heads, dim = MODELS[model] if model else (None, heads, None)
    config, sd, spec = llamagen_to_llama(ckpt, heads, image_size // downsample)
    if model and (config.num_hidden_layers, config.hidden_size) != (layers, dim):
        raise UserError(f"{gpt}: {config.num_hidden_layers} layers of width {config.hidden_size}, but {model} has "
                        f"{layers} of {dim}; pass the right --model")
    codes = json.loads((Path(vq) / "config.json").read_text()).get("num_vq_embeddings")
    if codes != spec["codebook_size"]:
        raise UserError(f"--vq {vq}: {codes} codes, but the GPT predicts {spec['codebook_size']}")
    out = Path(out)
    llama = transformers.LlamaForCausalLM(config)
    llama.load_state_dict(sd, strict=True)
    llama.save_pretrained(out / "transformer")
    shutil.copytree(vq, out / "vq", dirs_exist_ok=True)
    spec["source"] = f"LlamaGen {model or f'{heads} heads'} {Path(gpt).name}, converted by genbench.adapters.convert_llamagen"
    (out / "genbench.json").write_text(json.dumps(spec, indent=1))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gpt", required=True, help="LlamaGen c2i checkpoint (.pt)")
    p.add_argument("--model", choices=sorted(MODELS), help="LlamaGen size (checked against the weights)")
    p.add_argument("--heads", type=int, help="attention heads, for a size not in --model")
    p.add_argument("--vq", required=True, help="a diffusers VQModel folder with the GPT's codebook")
    p.add_argument("--out", required=True)
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--downsample", type=int, default=16)
    args = p.parse_args(argv)
    try:
        print(convert(args.gpt, args.vq, args.out, model=args.model, heads=args.heads,
                      image_size=args.image_size, downsample=args.downsample))
    except UserError as e:
        print(f"convert_llamagen: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
