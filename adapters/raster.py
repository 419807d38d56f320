"""Raster-order sampling and exact scoring of a Hugging Face causal transformer over image tokens
(ImageGPT's colour clusters, a VQ tokenizer's codes).

A sequence is ``prefix + tokens``: the prefix (ImageGPT's start-of-sequence token, LlamaGen's
class token) conditions the first token. Only the first ``vocab`` logits are image tokens; the
rest (class or special tokens) get probability zero, in sampling and in the likelihood alike.
"""
from __future__ import annotations

import inspect
import math
from typing import Any, Callable

import numpy as np
import torch

from genbench.adapters.device import rows_not_packed, to_device
from genbench.adapters.sampling import BrokenLogits, logits_to_ids
from genbench.errors import UserError


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Keep the ``top_k`` largest logits (0 = all) and the smallest set whose probability
    reaches ``top_p`` (1 = all; the most likely token always stays): (B, V) -> (B, V), the rest
    at -inf. LlamaGen's order: temperature first, then this filter."""
    if top_k and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, -math.inf)
    if top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        drop = cum - sorted_logits.softmax(-1) > top_p  # mass before this token already exceeds top_p (LlamaGen)
        logits = logits.masked_fill(drop.scatter(-1, order, drop), -math.inf)
    return logits


def cache_argument(model) -> str:
    """The keyword by which a transformers model's forward takes (and its output returns) the
    key/value cache: transformers 5 renamed ``past_key_values`` to ``cache`` in some models."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


@torch.inference_mode()
def raster_sample(model: Any, prefix: torch.Tensor, u: torch.Tensor, vocab: int, *, temperature: float = 1.0,
                  top_k: int = 0, top_p: float = 1.0, null_prefix: torch.Tensor | None = None,
                  guidance_scale: float = 1.0, kv_cache: bool = True, name: str = "model") -> torch.Tensor:
    """Draw ``u.shape[1]`` tokens per row: prefix (B, P) int64, uniforms u (B, T) float64 -> (B, T) int64.

    Token j of row b is the inverse-CDF draw of ``u[b, j]`` from ``softmax(filter(logits /
    temperature))`` (``temperature = 0``: argmax), so a row does not depend on the others. With
    ``null_prefix`` and ``guidance_scale != 1``, LlamaGen's classifier-free guidance:
    ``logits = null + g (cond - null)``, the two halves in one batch (two evaluations per token).
    One forward pass per token; with ``kv_cache`` each reads only the newest token.
    """
    device = next(model.parameters()).device
    guided = null_prefix is not None and guidance_scale != 1.0
    seq = torch.cat([prefix, null_prefix]) if guided else prefix
    seq = seq.to(device)
    u = to_device(u, device)  # once per batch: the steps read nothing back (sampling.logits_to_ids)
    broken = BrokenLogits()
    b, length = prefix.shape[0], u.shape[1]
    past, out = None, []
    cache_arg = cache_argument(model)
    for pos in range(length):
        if kv_cache:
            res = model(input_ids=seq if past is None else seq[:, -1:], use_cache=True, **{cache_arg: past})
            past = getattr(res, cache_arg)
        else:
            with rows_not_packed():  # one sequence per row: transformers' packing check would read back
                res = model(input_ids=seq, use_cache=False)
        logits = res.logits[:, -1, :vocab].float()
        if guided:
            cond, null = logits[:b], logits[b:]
            logits = null + guidance_scale * (cond - null)
        broken.note(logits, pos)
        if temperature > 0:
            logits = filter_logits(logits / temperature, top_k, top_p)
        nxt = logits_to_ids(logits, u[:, pos], 1.0 if temperature > 0 else 0.0)
        out.append(nxt)
        step = torch.cat([nxt, nxt]) if guided else nxt
        seq = torch.cat([seq, step[:, None]], dim=1)
    found = broken.earliest()
    if found is not None:
        raise UserError(f"{name}: the model produced NaN or no finite logit while sampling (position {found[1]}); "
                        "check the weights or load in float32")
    return torch.stack(out, dim=1).cpu()


def raster_images(adapter: Any, n: int, *, seed: int, start: int, batch_size: int, length: int, vocab: int,
                  image_shape: tuple[int, ...], tokens_to_images: Callable[[torch.Tensor], np.ndarray],
                  prefix: Callable[[int, int], torch.Tensor],
                  null_prefix: Callable[[int], torch.Tensor | None] | None = None,
                  guidance_scale: float = 1.0) -> tuple[np.ndarray, int]:
    """n images uint8 (n, *image_shape) and the number of batches, drawn batch by batch by
    ``raster_sample`` with the adapter's ``model``, ``temperature``, ``top_k``, ``top_p``,
    ``kv_cache``: sample ``start + i`` reads its own uniforms (``examples_to_uniforms``, so the
    images do not depend on batch_size nor on how a run is split into calls); ``prefix(b0, size)``
    conditions the batch of samples b0..b0+size-1 of the call, ``tokens_to_images`` turns its
    (size, length) tokens into images."""
    from genbench.adapters.sampling import examples_to_uniforms

    out = np.empty((n, *image_shape), dtype=np.uint8)
    batches = 0
    for b0, size in adapter.batches(n, batch_size):
        u = examples_to_uniforms(seed, start + b0, size, (length,))
        tokens = raster_sample(adapter.model, prefix(b0, size), u, vocab, temperature=adapter.temperature,
                               top_k=adapter.top_k, top_p=adapter.top_p,
                               null_prefix=None if null_prefix is None else null_prefix(size),
                               guidance_scale=guidance_scale, kv_cache=adapter.kv_cache, name=adapter.label)
        out[b0: b0 + size] = tokens_to_images(tokens)
        batches += 1
    return out, batches


@torch.inference_mode()
def raster_nll(model: Any, prefix: torch.Tensor, tokens: torch.Tensor, vocab: int, *,
               batch_size: int = 32) -> torch.Tensor:
    """Exact NLL of each row's tokens given its prefix: prefix (N, P), tokens (N, T) int64 ->
    (N,) float64 nats, ``-sum_j log softmax(logits[:vocab])[token_j]`` (float32 log-softmax,
    float64 sums)."""
    device = next(model.parameters()).device
    p = prefix.shape[1]
    parts = [torch.zeros(0, dtype=torch.float64, device=device)]  # per batch, on the device until one read
    for s in range(0, len(tokens), batch_size):
        seq = to_device(torch.cat([prefix[s: s + batch_size], tokens[s: s + batch_size]], dim=1), device)
        with rows_not_packed():  # full rows from position 0: transformers' packing check would read back
            logits = model(input_ids=seq[:, :-1], use_cache=False).logits[:, p - 1:, :vocab].float()
        logp = torch.log_softmax(logits, dim=-1).gather(-1, seq[:, p:, None]).squeeze(-1)
        parts.append(-logp.double().sum(1))
    return torch.cat(parts).cpu()


def check_sampling_options(name: str, temperature: Any, top_k: Any, top_p: Any) -> tuple[float, int, float]:
    """(temperature >= 0, top_k >= 0, 0 < top_p <= 1) or a one-line error naming the option."""
    ok_t = isinstance(temperature, (int, float)) and not isinstance(temperature, bool) and 0 <= temperature < math.inf
    if not ok_t:
        raise UserError(f'{name}: option temperature={temperature!r} must be a number >= 0 (0 = argmax)')
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
        raise UserError(f'{name}: option top_k={top_k!r} must be an integer >= 0 (0 = no top-k filter)')
    if not isinstance(top_p, (int, float)) or not 0 < top_p <= 1:
        raise UserError(f'{name}: option top_p={top_p!r} must be in (0, 1] (1 = no nucleus filter)')
    return float(temperature), int(top_k), float(top_p)


__all__ = ["filter_logits", "raster_sample", "raster_nll", "check_sampling_options"]
