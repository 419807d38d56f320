"""Small transformer used by the reference models (AR and masked, images and text).

Pre-LayerNorm blocks, learned positions, ``scaled_dot_product_attention``. Causal models
support a key/value cache so that sampling costs one token's work per step.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class TransformerConfig:
    vocab_size: int          # input ids (for masked models this includes the mask id)
    out_size: int            # logits per position
    seq_len: int             # maximum positions
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    causal: bool = True
    time_conditioned: bool = False  # adds an embedding of a scalar t in [0, 1]
    dropout: float = 0.0     # on each residual branch, in training only

    def to_dict(self) -> dict:
        return asdict(self)


class KVCache:
    """Keys/values per layer, each (B, heads, T_so_far, head_dim)."""

    def __init__(self, n_layers: int):
        self.k: list[torch.Tensor | None] = [None] * n_layers
        self.v: list[torch.Tensor | None] = [None] * n_layers

    @property
    def length(self) -> int:
        return 0 if self.k[0] is None else int(self.k[0].shape[2])


class Block(nn.Module):
    def __init__(self, d: int, heads: int, causal: bool, dropout: float = 0.0):
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))
        self.heads = heads
        self.causal = causal

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        if cache is not None:
            if cache.k[layer] is not None:
                k = torch.cat([cache.k[layer], k], dim=2)
                v = torch.cat([cache.v[layer], v], dim=2)
            cache.k[layer], cache.v[layer] = k, v
        # With a cache, new queries attend to every cached key: causal masking is only
        # needed among the new positions, which a single new token does not have.
        is_causal = self.causal and q.shape[2] > 1
        if is_causal and k.shape[2] != q.shape[2]:
            raise ValueError("a cached causal forward takes one new position at a time")
        y = F.scaled_dot_product_attention(q, k, v, is_causal=is_causal)
        x = x + self.drop(self.proj(y.transpose(1, 2).reshape(b, t, d)))
        return x + self.drop(self.mlp(self.ln2(x)))


class Transformer(nn.Module):
    """ids (B, T) int64 [, t (B,) float in [0,1]] -> logits (B, T, out_size)."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.cfg = cfg
        self.tok = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos = nn.Parameter(torch.zeros(cfg.seq_len, cfg.d_model))
        nn.init.normal_(self.pos, std=0.02)
        if cfg.time_conditioned:
            self.time = nn.Sequential(nn.Linear(1, cfg.d_model), nn.SiLU(), nn.Linear(cfg.d_model, cfg.d_model))
        self.blocks = nn.ModuleList(Block(cfg.d_model, cfg.n_heads, cfg.causal, cfg.dropout) for _ in range(cfg.n_layers))
        self.ln = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.out_size)

    def forward(self, ids: torch.Tensor, t: torch.Tensor | None = None, cache: KVCache | None = None) -> torch.Tensor:
        start = cache.length if cache is not None else 0
        if start + ids.shape[1] > self.cfg.seq_len:
            raise ValueError(f"sequence of {start + ids.shape[1]} positions exceeds the model's {self.cfg.seq_len}")
        x = self.tok(ids) + self.pos[start : start + ids.shape[1]]
        if self.cfg.time_conditioned:
            if t is None:
                raise ValueError("this model is time-conditioned: pass t (B,)")
            x = x + self.time(t.float().view(-1, 1))[:, None, :]
        for i, block in enumerate(self.blocks):
            x = block(x, cache, i)
        return self.head(self.ln(x))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
