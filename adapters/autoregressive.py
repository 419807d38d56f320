"""Autoregressive reference models: causal transformers with an exact likelihood.

* ``ar-digits`` (:class:`ARDigits`): the 64 pixels of an 8x8 digit in raster order, each one
  of the 17 grey levels, predicted one after another from a BOS id. ``log_likelihood`` is the
  exact NLL in nats per image (64 dimensions).
* ``ar-kjv`` (:class:`ARText`): UTF-8 bytes of the King James Bible (256 byte values + BOS
  id 256), context 256 positions. ``log_likelihood`` follows lm-evaluation-harness's
  ``loglikelihood_rolling`` (``get_rolling_token_windows`` with ``context_len=1`` and
  ``make_disjoint_window``): every byte of a document is predicted exactly once; the first
  window is ``[BOS] + bytes[:L-1]`` predicting ``bytes[:L]``; each later window predicts the
  next (up to) ``L`` bytes from an input of the ``L`` bytes before its last target, so a
  full window's first prediction sees one byte of context and a short final window sees the
  bytes before it up to ``L``. See :func:`genbench.adapters.hf.rolling_windows`.

Sampling draws one position per forward pass (``nfe_per_sample`` = the sequence length),
with a key/value cache by default (``kv_cache=False`` recomputes the whole prefix each step:
the same samples, slower). Sample ``i`` takes its randomness from a generator keyed by
``(seed, i)`` (``sampling.example_generator``, stream ``"sample"``), so samples do not depend
on ``batch_size`` (up to floating-point differences between batched matmuls, which can flip a
draw that lands on a CDF boundary).
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from genbench import data
from genbench.adapters import zoo
from genbench.adapters.device import compile_module, to_device
from genbench.adapters.hf import PackedWindows, documents_to_windows, windows_to_nll
from genbench.adapters.nn import KVCache, Transformer, TransformerConfig
from genbench.adapters.sampling import cosine_lr, examples_to_uniforms, logits_to_ids
from genbench.errors import UserError
from genbench.interfaces import Generator, LikelihoodKind, LogLikelihood, Samples
from genbench.registry import ADAPTERS

LN2 = math.log(2.0)


# --------------------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------------------
@torch.no_grad()
def causal_sample(
    model: Transformer,
    n: int,
    length: int,
    bos_id: int,
    *,
    seed: int,
    batch_size: int,
    temperature: float = 1.0,
    kv_cache: bool = True,
    device: torch.device | str = "cpu",
    first: int = 0,
) -> tuple[torch.Tensor, int]:
    """Draw n sequences from BOS -> (ids (n, length) int64 without the BOS, nfe summed over batches).

    first: the index of the first sequence (its random stream), so that samples first..first+n-1
    drawn by one call equal those rows of a call from 0 (``genbench.distributed`` splits by it).

    One forward pass per position. With ``kv_cache`` each pass feeds only the newest id;
    without it each pass reruns the whole prefix (the same distribution, and the same
    samples up to floating-point rounding).
    """
    if length > model.cfg.seq_len:
        raise UserError(f"length {length} exceeds the model's context of {model.cfg.seq_len} positions")
    out = torch.empty(n, length, dtype=torch.int64)
    nfe = 0
    for start in range(0, n, batch_size):
        size = min(batch_size, n - start)
        # (size, length): sample i's own stream, on the device once per batch (the steps read nothing back)
        u = to_device(examples_to_uniforms(seed, first + start, size, (length,)), device)
        x = torch.full((size, 1), bos_id, dtype=torch.int64, device=device)
        cache = KVCache(model.cfg.n_layers) if kv_cache else None
        for pos in range(length):
            inp = x[:, -1:] if cache is not None else x
            logits = model(inp, cache=cache)[:, -1].float()
            nfe += 1
            nxt = logits_to_ids(logits, u[:, pos], temperature)
            x = torch.cat([x, nxt[:, None]], dim=1)
        out[start: start + size] = x[:, 1:].cpu()
    return out, nfe


# --------------------------------------------------------------------------------------
# Rolling windows (lm-evaluation-harness loglikelihood_rolling)
# --------------------------------------------------------------------------------------
def texts_to_windows(texts: Sequence[str], bos_id: int, max_len: int) -> tuple[PackedWindows, np.ndarray]:
    """UTF-8 bytes of each text cut into rolling windows -> (the windows of all texts, bytes per
    text float64 (N,))."""
    raw = [np.frombuffer(t.encode("utf-8"), dtype=np.uint8) for t in texts]
    return documents_to_windows(raw, bos_id, max_len), np.array([len(r) for r in raw], dtype=np.float64)


def logits_to_token_nll(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """-log softmax(logits)[target] in float64: logits (B, T, V), targets (B, T) -> (B, T).
    The reference models' vocabularies are small (17, 256): float64 costs nothing here."""
    return -torch.log_softmax(logits.double(), dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)


def windows_to_target_nll(model: Callable[[torch.Tensor], torch.Tensor], windows: PackedWindows, *,
                          batch_size: int, device: torch.device | str = "cpu") -> np.ndarray:
    """NLL (nats, float64 (W,)) of each window's scored targets under a causal model
    (``model(ids (B, T)) -> logits (B, T, V)``), windows of all texts batched together."""
    nll, _ = windows_to_nll(model, windows, batch_size=batch_size, device=torch.device(device),
                            pad_token=0, token_nll=logits_to_token_nll)
    return nll


# --------------------------------------------------------------------------------------
# Reference models
# --------------------------------------------------------------------------------------
class _ARModel(Generator):
    """Loading, options and sampling shared by the two reference models."""

    paradigm = "autoregressive"

    def __init__(self, path: str | None = None, *, device: str = "cpu", kv_cache: bool = True,
                 temperature: float = 1.0, eval_batch_size: int = 64, compile: str | None = None):
        self.model, self.meta = zoo.load_transformer(self.name, path, device)
        self.compile = compile_module(self.model, compile, self.name)
        self.config = self.model.cfg
        self.bos_id = int(self.meta["config"]["bos_id"])
        self.device = torch.device(device)
        self.kv_cache = bool(kv_cache)
        self.temperature = float(temperature)
        self.eval_batch_size = int(eval_batch_size)
        if self.temperature < 0:
            raise UserError(f"{self.name}: temperature must be >= 0, got {temperature}")
        if self.eval_batch_size < 1:
            raise UserError(f"{self.name}: eval_batch_size must be >= 1, got {eval_batch_size}")

    @property
    def likelihood_kind(self) -> LikelihoodKind:
        return LikelihoodKind.EXACT

    def logits(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (B, T) int64 -> logits (B, T, V) float32 on the CPU (V excludes BOS)."""
        return self.model(ids.to(self.device)).float().cpu()

    def sampler_options(self) -> dict[str, Any]:
        return {"kv_cache": self.kv_cache, "temperature": self.temperature}

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "paradigm": self.paradigm, "modality": self.modality,
                "weights_sha256": self.meta["sha256"], "sampler": self.sampler_options(),
                **({"compile": self.compile} if self.compile else {})}

    def _check_sample_args(self, n: int, batch_size: int, condition: Any, steps: int | None, length: int) -> None:
        if condition is not None:
            raise UserError(f"{self.name} is unconditional: pass condition=None")
        if n < 0 or batch_size < 1:
            raise UserError(f"{self.name}: need n >= 0 and batch_size >= 1, got n={n}, batch_size={batch_size}")
        if steps is not None and int(steps) != length:
            raise UserError(f"{self.name} is autoregressive: it takes one step per position ({length}); "
                            f"steps={steps} cannot change that (pass steps=None)")

    def _sample_ids(self, n: int, length: int, seed: int, batch_size: int,
                    start: int = 0) -> tuple[torch.Tensor, int]:
        with torch.inference_mode():
            return causal_sample(self.model, n, length, self.bos_id, seed=seed, batch_size=batch_size,
                                 temperature=self.temperature, kv_cache=self.kv_cache, device=self.device,
                                 first=start)


@ADAPTERS.register("ar-digits")
class ARDigits(_ARModel):
    """Causal pixel transformer over 8x8 digits: 64 pixels in raster order, 17 grey levels.

    Options: ``kv_cache`` (default True), ``temperature`` (default 1.0; 0 is greedy),
    ``eval_batch_size`` (images per likelihood forward pass), ``compile`` (a torch.compile
    mode, ``adapters.device.COMPILE_MODES``; "reduce-overhead" adds CUDA graphs; unset: eager).
    """

    name = "ar-digits"
    modality = "image"
    pixel_levels = data.DIGITS_LEVELS
    likelihood_unit = "dimension"

    def sample(self, n: int, *, seed: int, batch_size: int = 64, condition: Any = None,
               steps: int | None = None, start: int = 0) -> Samples:
        """n images uint8 (n, 8, 8, 1) on the 17-level grid; 64 forward passes per sample.
        start: the index of the first sample (samples start..start+n-1 of the seed)."""
        length = self.config.seq_len
        self._check_sample_args(n, batch_size, condition, steps, length)
        ids, nfe = self._sample_ids(n, length, seed, batch_size, start)
        images = data.levels_to_image(ids.numpy().reshape(n, 8, 8, 1))
        return Samples(images=images, nfe=nfe, nfe_per_sample=float(length),
                       info={**self.sampler_options(), "order": "raster"})

    def log_likelihood(self, batch: Any, *, seed: int = 0, start: int = 0) -> LogLikelihood:
        """uint8 images (N, 8, 8, 1) -> exact NLL in nats per image over its 64 pixels.

        Pixels are mapped to the nearest of the 17 grey levels first (``image_to_levels``);
        ``seed`` and ``start`` are unused (the likelihood is exact).
        """
        if not isinstance(batch, np.ndarray) or batch.dtype != np.uint8 or batch.ndim != 4 \
                or batch.shape[1:] != (8, 8, 1) or len(batch) == 0:
            raise UserError(
                f"{self.name}: log_likelihood takes a non-empty uint8 array (N, 8, 8, 1); got "
                f"{type(batch).__name__} {getattr(batch, 'dtype', '')} {getattr(batch, 'shape', '')}")
        levels = to_device(torch.from_numpy(data.image_to_levels(batch).reshape(len(batch), 64)), self.device)
        with torch.inference_mode():  # sums stay on the device until one read at the end
            parts = [_sequence_nll(self.model, levels[s: s + self.eval_batch_size], self.bos_id)
                     for s in range(0, len(levels), self.eval_batch_size)]
            nll = torch.cat(parts).cpu().numpy()
        return LogLikelihood(nll=nll, units=np.full(len(batch), 64.0), unit="dimension", kind=LikelihoodKind.EXACT,
                             info={"order": "raster", "levels": data.DIGITS_LEVELS})


@ADAPTERS.register("ar-kjv")
class ARText(_ARModel):
    """Byte-level causal transformer trained on the King James Bible (context 256 positions).

    Options: ``length`` of samples in bytes (default 256, at most 256), ``kv_cache``,
    ``temperature``, ``context`` (window of ``log_likelihood``, default the model's 256),
    ``eval_batch_size`` (windows per forward pass), ``compile`` (as ar-digits).
    """

    name = "ar-kjv"
    modality = "text"
    likelihood_unit = "byte"

    def __init__(self, path: str | None = None, *, device: str = "cpu", length: int = 256,
                 context: int | None = None, eval_batch_size: int = 32, **options: Any):
        super().__init__(path, device=device, eval_batch_size=eval_batch_size, **options)
        window = self.config.seq_len
        if not 1 <= int(length) <= window:
            raise UserError(f"{self.name}: length must be between 1 and {window} bytes, got {length}")
        self.length = int(length)
        self.context = window if context is None else int(context)
        if not 1 <= self.context <= window:
            raise UserError(f"{self.name}: context must be between 1 and {window}, got {context}")

    def sampler_options(self) -> dict[str, Any]:
        return {**super().sampler_options(), "length": self.length}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "likelihood": {"context": self.context, "windows": "rolling, disjoint"}}

    def sample(self, n: int, *, seed: int, batch_size: int = 64, condition: Any = None,
               steps: int | None = None, start: int = 0) -> Samples:
        """n texts of ``length`` bytes from BOS: tokens int64 (n, length), texts decoded with
        UTF-8 errors="replace"; start: the index of the first sample (its random stream)."""
        self._check_sample_args(n, batch_size, condition, steps, self.length)
        ids, nfe = self._sample_ids(n, self.length, seed, batch_size, start)
        tokens = ids.numpy().astype(np.int64)
        texts = [bytes(row.astype(np.uint8).tolist()).decode("utf-8", errors="replace") for row in tokens]
        return Samples(tokens=tokens, texts=texts, nfe=nfe, nfe_per_sample=float(self.length),
                       info={**self.sampler_options(), "start": "BOS"})

    def log_likelihood(self, batch: Any, *, seed: int = 0, start: int = 0) -> LogLikelihood:
        """List of documents (str) -> exact NLL in nats per document over its UTF-8 bytes.

        Each document is scored on its own with disjoint rolling windows (lm-evaluation-harness
        ``loglikelihood_rolling``), its first byte conditioned on BOS; ``seed`` and ``start`` are
        unused. The windows of all documents of a call are batched together.
        """
        if isinstance(batch, str) or not isinstance(batch, (list, tuple)) or len(batch) == 0:
            raise UserError(f"{self.name}: log_likelihood takes a non-empty list of strings")
        for d, doc in enumerate(batch):
            if not isinstance(doc, str) or not doc:
                raise UserError(f"{self.name}: document {d} is {'empty' if doc == '' else type(doc).__name__}; "
                                "every document must be a non-empty string")
        return self.score_texts(batch)

    def score_texts(self, texts: Sequence[str]) -> LogLikelihood:
        """Any strings (e.g. other models' samples) -> exact NLL in nats per text, as
        ``log_likelihood``; an empty string scores 0 nats over 0 bytes."""
        if isinstance(texts, str):
            raise UserError(f"{self.name}: score_texts takes a list of strings, not one string")
        for d, text in enumerate(texts):
            if not isinstance(text, str):
                raise UserError(f"{self.name}: text {d} is a {type(text).__name__}, not a string")
        windows, units = texts_to_windows(texts, self.bos_id, self.context)
        per_window = windows_to_target_nll(self.model, windows, batch_size=self.eval_batch_size, device=self.device)
        nll = np.bincount(windows.owner, weights=per_window, minlength=len(texts))
        return LogLikelihood(nll=nll, units=units, unit="byte", kind=LikelihoodKind.EXACT,
                             info={"windows": "lm-eval loglikelihood_rolling: disjoint, context_len=1",
                                   "context": self.context, "first_byte": "conditioned on BOS",
                                   "n_windows": len(windows)})


def sequences_to_nll(logits_fn: Callable[[torch.Tensor], torch.Tensor], ids: torch.Tensor, bos_id: int) -> np.ndarray:
    """Exact NLL of whole sequences: ids (B, L) -> nats (B,) float64, the first id given BOS."""
    return _sequence_nll(logits_fn, ids, bos_id).cpu().numpy()


def _sequence_nll(logits_fn: Callable[[torch.Tensor], torch.Tensor], ids: torch.Tensor, bos_id: int) -> torch.Tensor:
    """As ``sequences_to_nll``, left on the ids' device (no synchronisation)."""
    inp = torch.cat([torch.full((len(ids), 1), bos_id, dtype=torch.int64, device=ids.device), ids[:, :-1]], dim=1)
    return logits_to_token_nll(logits_fn(inp), ids).sum(dim=1)


# --------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------
def _train(model: Transformer, batches: Callable[[int], tuple[torch.Tensor, torch.Tensor]], *, steps: int,
           lr: float, weight_decay: float, evaluate: Callable[[], float] | None = None, eval_every: int = 0,
           log_every: int = 0) -> tuple[float, int, float]:
    """Next-id cross-entropy with AdamW and a cosine schedule.

    With ``evaluate`` (a validation NLL, lower is better) every ``eval_every`` steps, the
    best state seen is kept (early stopping on the validation split). Returns (seconds,
    best step, best validation value or nan).
    """
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=weight_decay)
    t0 = time.perf_counter()
    best = (math.inf, steps, None)
    for step in range(steps):
        model.train()
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, steps, lr, warmup=max(1, steps // 50), floor=0.1)
        inp, tgt = batches(step)
        logits = model(inp)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        last = step == steps - 1
        if log_every and (step % log_every == 0 or last):
            print(f"step {step} loss {loss.item():.4f} ({time.perf_counter() - t0:.0f} s)", flush=True)
        if evaluate is not None and ((step + 1) % eval_every == 0 or last):
            model.eval()
            value = evaluate()
            if log_every:
                print(f"  step {step + 1} val {value:.4f}", flush=True)
            if value < best[0]:
                best = (value, step + 1, {k: v.detach().clone() for k, v in model.state_dict().items()})
    if best[2] is not None:
        model.load_state_dict(best[2])
    model.eval()
    return time.perf_counter() - t0, best[1], best[0]


# The same width, depth, batch and steps as masked-digits, so the two paradigms are compared at
# matched training compute; dropout because 1,197 images overfit a causal model within 500 steps.
DIGITS_TRAIN = {"steps": 1000, "batch_size": 64, "lr": 2e-3, "weight_decay": 0.1, "eval_every": 100}
DIGITS_ARCH = {"d_model": 96, "n_layers": 3, "n_heads": 4, "dropout": 0.2}


def train_ar_digits(seed: int = 0, out_dir: Path = zoo.WEIGHTS_DIR, *, log_every: int = 0,
                    **overrides: Any) -> None:
    """Train ar-digits on the train split; the checkpoint with the best val bits/dim is kept."""
    hp = zoo.with_overrides(DIGITS_TRAIN, overrides)
    arch = zoo.with_overrides(DIGITS_ARCH, overrides)
    gen = zoo.seed_everything(seed)
    bos = data.DIGITS_LEVELS
    levels = torch.from_numpy(data.image_to_levels(data.digits_arrays("train")[0]).reshape(-1, 64))
    val = torch.from_numpy(data.image_to_levels(data.digits_arrays("val")[0]).reshape(-1, 64))
    cfg = TransformerConfig(vocab_size=bos + 1, out_size=data.DIGITS_LEVELS, seq_len=64, causal=True, **arch)
    model = Transformer(cfg)
    perm: list[torch.Tensor] = []

    def batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not perm or len(perm[0]) < hp["batch_size"]:
            perm[:] = [torch.randperm(len(levels), generator=gen)]
        idx, perm[0] = perm[0][: hp["batch_size"]], perm[0][hp["batch_size"]:]
        x = levels[idx]
        return torch.cat([torch.full((len(x), 1), bos), x[:, :-1]], dim=1), x

    def val_bits_per_dim() -> float:
        with torch.inference_mode():
            return float(sequences_to_nll(model, val, bos).sum() / val.numel() / LN2)

    seconds, best_step, bpd = _train(model, batch, steps=hp["steps"], lr=hp["lr"], weight_decay=hp["weight_decay"],
                                     evaluate=val_bits_per_dim, eval_every=hp["eval_every"], log_every=log_every)
    card = {
        "paradigm": "autoregressive", "modality": "image",
        "summary": "Causal transformer over the 64 pixels of 8x8 digits in raster order (17 grey levels "
                   "plus a BOS id), trained by next-pixel cross-entropy; exact likelihood.",
        "train_steps": hp["steps"], "selected_step": best_step, "seed": seed, "train_seconds": round(seconds, 1),
        "val_metric": {"name": "val bits/dim (exact NLL), checkpoint selected on it", "value": bpd,
                       "unit": "bits/dim"},
        "baseline": {"uniform_bits_per_dim": math.log2(data.DIGITS_LEVELS)},
        "data": "digits train split (1,197 images); validation on the 200-image val split",
        "hyperparameters": hp,
    }
    config = {"transformer": cfg.to_dict(), "bos_id": bos, "levels": data.DIGITS_LEVELS, "order": "raster"}
    zoo.save_model("ar-digits", model, config=config, card=card, out_dir=out_dir)


# The same width, depth, batch and steps as masked-kjv: matched training compute.
KJV_TRAIN = {"steps": 650, "batch_size": 16, "lr": 4e-3, "weight_decay": 0.01, "bos_fraction": 0.5}
KJV_ARCH = {"d_model": 128, "n_layers": 3, "n_heads": 4}
#: validation bytes: the first KJV_VAL_BYTES of each val book, scored as log_likelihood does
KJV_VAL_BYTES = 16 * 1024


def train_ar_kjv(seed: int = 0, out_dir: Path = zoo.WEIGHTS_DIR, *, log_every: int = 0,
                 **overrides: Any) -> None:
    """Train ar-kjv on random 256-byte crops of the train books; val bits/byte with rolling windows.

    A ``bos_fraction`` of the rows start with BOS followed by 255 bytes (what the first
    window of a document and sampling see); the others are 256 raw bytes (what later
    rolling windows see, whose first prediction has one byte of context).
    """
    hp = zoo.with_overrides(KJV_TRAIN, overrides)
    arch = zoo.with_overrides(KJV_ARCH, overrides)
    gen = zoo.seed_everything(seed)
    window, bos = 256, 256
    # Books joined by a newline so crops may straddle a boundary, like packed training text.
    corpus = torch.from_numpy(data.kjv_bytes("train").astype(np.int64))
    cfg = TransformerConfig(vocab_size=bos + 1, out_size=256, seq_len=window, causal=True, **arch)
    model = Transformer(cfg)
    offsets = torch.arange(window + 1)

    def batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        b = hp["batch_size"]
        starts = torch.randint(0, len(corpus) - window - 1, (b,), generator=gen)
        crop = corpus[starts[:, None] + offsets]                        # (b, 257)
        inp, tgt = crop[:, :-1].clone(), crop[:, 1:].clone()
        with_bos = torch.rand(b, generator=gen) < hp["bos_fraction"]
        # a BOS row: BOS then crop[:255], predicting crop[:256]
        inp[with_bos] = torch.cat([torch.full((int(with_bos.sum()), 1), bos), crop[with_bos, :window - 1]], dim=1)
        tgt[with_bos] = crop[with_bos, :window]
        return inp, tgt

    seconds, _, _ = _train(model, batch, steps=hp["steps"], lr=hp["lr"], weight_decay=hp["weight_decay"],
                           log_every=log_every)
    docs = [d.encode("utf-8")[:KJV_VAL_BYTES].decode("utf-8", errors="ignore") for d in data.kjv_texts("val")]
    bpb = kjv_model_to_bits_per_byte(model, docs, bos, window)
    card = {
        "paradigm": "autoregressive", "modality": "text",
        "summary": "Byte-level causal transformer (256 byte values + BOS, context 256) trained by next-byte "
                   "cross-entropy on the King James Bible; exact likelihood with lm-eval rolling windows.",
        "train_steps": hp["steps"], "seed": seed, "train_seconds": round(seconds, 1),
        "val_metric": {"name": f"val bits/byte (exact), first {KJV_VAL_BYTES // 1024} KB of each of the 7 val "
                               "books, lm-eval rolling windows of 256", "value": bpb, "unit": "bits/byte"},
        "baseline": {"uniform_bits_per_byte": 8.0},
        "data": "KJV train books (53, 3.29 MB) joined by newlines; random 256-byte crops",
        "hyperparameters": hp,
    }
    config = {"transformer": cfg.to_dict(), "bos_id": bos, "window_bytes": window}
    zoo.save_model("ar-kjv", model, config=config, card=card, out_dir=out_dir)


def kjv_model_to_bits_per_byte(model: Transformer, docs: Sequence[str], bos: int, context: int,
                               batch_size: int = 32) -> float:
    """Bits per UTF-8 byte of documents under a byte model, with ARText's rolling windows."""
    windows, units = texts_to_windows(docs, bos, context)
    model.eval()
    nll = windows_to_target_nll(model, windows, batch_size=batch_size, device=next(model.parameters()).device)
    return float(nll.sum() / units.sum() / LN2)
