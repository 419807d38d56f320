"""Absorbing-state masked diffusion (MDLM-style): the shared math and two reference models.

Shared, model-agnostic math (any bidirectional model ``logits_fn(ids (B, L)) -> (B, L, V)``
whose input may contain a mask id):

* ``subs_log_probs`` -- the SUBS parameterisation: the mask id is never predicted,
  unmasked positions carry over.
* ``sequences_to_elbo`` -- the MDLM continuous-time ELBO with the log-linear schedule
  (``alpha_t = 1 - t``: each position is masked independently with probability ``t``), an
  upper bound on each sequence's NLL::

      nll(x) <= E_{t ~ U[eps, 1]} [ (1/t) * sum_{i masked in x_t} -log p(x_i | x_t) ]

  Sampling ``t`` on ``[eps, 1]`` (eps = 1e-3, as MDLM) drops the integral over ``[0, eps)``
  and rescales the rest by ``1/(1 - eps)``. Near t = 0 the integrand is the NLL of tokens
  given almost all others, normally its smallest value, so this errs upwards (the bound
  stays a bound); either way the change is at most ``eps`` times the integrand's range.
* ``sequences_to_elbo_grid`` -- the same estimate as an ``ElboGrid``: the (rows x K) forward
  passes computable in contiguous flat ranges (torchrun ranks split a call by (example, sample)),
  combined by ``elbo_terms_to_estimate`` whether computed whole or in parts.
* ``masked_sample`` -- MaskGIT/LLaDA-style sampling: start fully masked, and at each of
  ``steps`` steps draw a token for every masked position, then commit the most confident
  ones; a cosine or linear schedule says how many. One forward pass per step.

The Monte Carlo estimate (K = ``mc_samples`` forward passes per sequence), two choices:

Weight (``weight``). ``"1/t"`` is MDLM's literal estimator. ``"rao-blackwell"`` (default)
replaces ``1/t`` by its conditional expectation given how many positions ``m`` of ``n`` are
masked, ``E[1/t | m] = (n+1)/m * (1 - I_eps(m, n-m+1)) / (1 - I_eps(m+1, n-m+1))`` (I the
regularised incomplete beta). The model only sees ``x_t``, so the expectation is the same
bound (Rao-Blackwell: never more variance); it removes the heavy tail of ``1/t`` at small
t, where one masked position is weighted up to 1/eps = 1000. (It is also the LLaDA form
``E_m[(n/m) sum ...]`` up to the eps truncation.)

Timesteps (``timesteps``):

* ``"antithetic"`` (default) -- MDLM's ``_sample_t``: stratum ``i`` of ``K`` gets
  ``u = (i + U_i) / K`` with its own uniform jitter ``U_i``. The standard error uses the
  collapsed-strata estimator (Cochran, *Sampling Techniques*, 5A.12): neighbouring strata
  are paired and ``var = sum_pairs (y_a - y_b)^2 / K^2``. Its expectation is the true
  variance plus the squared differences of neighbouring strata means (never too small on
  average), but it has only about K/2 degrees of freedom, so the standard error of one
  sequence is itself noisy and often too small: on masked-digits (K = 32, 40 test images,
  80 seeds) +-1 standard error covered 65% of the spread over seeds and +-2 covered 90%
  (normal: 68%, 95%); summed over the 40 images the errors average out (+-2 covered 94%).
  For an interval on one sequence use a t quantile with K/2 degrees of freedom.
* ``"systematic"`` -- Dream/LLaDA's ``u_i = (u0 + i/K) mod 1`` with one ``u0``. One
  systematic sample has no unbiased variance estimate, so ``K`` is split into
  ``replicates`` independent systematic samples (each its own ``u0``) and the standard
  error is the spread of their means.
* ``"iid"`` -- independent uniforms; standard error = sample std / sqrt(K).

Then ``t = eps + (1 - eps) u``. ``benchmarks/bench_antithetic.py`` measures what each
choice buys at equal compute.

Every sequence draws its timesteps and masks from its own generator,
``sampling.example_generator(seed, row_key, stream="likelihood")``, so an estimate does not
depend on which other rows share its batch, nor on how the suite groups examples into calls.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from genbench import data
from genbench.adapters import zoo
from genbench.adapters.sampling import cosine_lr, example_generator
from genbench.adapters.nn import Transformer, TransformerConfig
from genbench.adapters.device import compile_module, to_device
from genbench.errors import UserError
from genbench.interfaces import Generator, LikelihoodKind, LogLikelihood, Samples
from genbench.registry import ADAPTERS

LogitsFn = Callable[[torch.Tensor], torch.Tensor]

TIMESTEPS = ("antithetic", "systematic", "iid")
WEIGHTS = ("rao-blackwell", "1/t")
SCHEDULES = ("cosine", "linear")
#: which masked positions a sampling step commits: the most confident (MaskGIT, LLaDA) or
#: uniformly random ones (MDLM's ancestral sampler: with one position per step it draws
#: exactly from the model's conditionals, in a random order)
ORDERS = ("confidence", "random")
SAMPLING_EPS = 1e-3


# --------------------------------------------------------------------------------------
# SUBS parameterisation
# --------------------------------------------------------------------------------------
def subs_log_probs(logits: torch.Tensor, xt: torch.Tensor, mask_id: int) -> torch.Tensor:
    """logits (B, L, V), noisy ids xt (B, L) -> log-probabilities (B, L, V) float32.

    The mask id (when it is one of the V outputs) gets probability 0; a position that is
    not masked in ``xt`` puts all its mass on its observed id (the reverse process never
    changes a revealed token).
    """
    logp = logits.float()
    vocab = logp.shape[-1]
    if mask_id < vocab:
        logp = logp.clone()
        logp[..., mask_id] = -math.inf
    logp = torch.log_softmax(logp, dim=-1)
    revealed = xt != mask_id
    # no `if revealed.any()`: that would read a value back from the device at every step
    carry = torch.full_like(logp, -math.inf)
    carry.scatter_(-1, xt.clamp(max=vocab - 1).unsqueeze(-1), 0.0)
    return torch.where(revealed.unsqueeze(-1), carry, logp)


# --------------------------------------------------------------------------------------
# ELBO
# --------------------------------------------------------------------------------------
def draw_timesteps(gen: torch.Generator, k: int, mode: str, *, eps: float = SAMPLING_EPS,
                   replicates: int = 1) -> torch.Tensor:
    """K timesteps in [eps, 1] (float64), in stratum order for the stratified modes."""
    if mode == "antithetic":
        u = (torch.arange(k, dtype=torch.float64) + torch.rand(k, generator=gen, dtype=torch.float64)) / k
    elif mode == "systematic":
        g = k // replicates
        u0 = torch.rand(replicates, 1, generator=gen, dtype=torch.float64)
        u = ((u0 + torch.arange(g, dtype=torch.float64) / g) % 1.0).reshape(-1)
    elif mode == "iid":
        u = torch.rand(k, generator=gen, dtype=torch.float64)
    else:
        raise UserError(f"timesteps must be one of {TIMESTEPS}, got {mode!r}")
    return eps + (1.0 - eps) * u


def mask_count_weights(masked: torch.Tensor, lengths: torch.Tensor, eps: float = SAMPLING_EPS) -> torch.Tensor:
    """E[1/t | m of n positions masked], t ~ U[eps, 1]: float64, same shape as ``masked``.

    masked: number of masked positions m (any int tensor); lengths: n, broadcastable. Given
    m, t has density proportional to t^m (1-t)^(n-m) on [eps, 1], so
    ``E[1/t | m] = (n+1)/m * (1 - I_eps(m, n-m+1)) / (1 - I_eps(m+1, n-m+1))`` with I the
    regularised incomplete beta (0 when m = 0: nothing is scored then).
    """
    from scipy.special import betainc

    m = masked.double().numpy()
    n = np.broadcast_to(torch.as_tensor(lengths).double().numpy(), m.shape)
    out = np.zeros(m.shape)
    ok = m > 0
    mm, nn = m[ok], n[ok]
    out[ok] = (nn + 1) / mm * (1 - betainc(mm, nn - mm + 1, eps)) / (1 - betainc(mm + 1, nn - mm + 1, eps))
    return torch.from_numpy(out)


def elbo_terms_to_estimate(terms: torch.Tensor, mode: str, replicates: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Per-timestep estimates (B, K) in stratum order -> (nll (B,), stderr (B,)) float64.

    See the module docstring for the standard error each mode uses.
    """
    terms = terms.double()
    b, k = terms.shape
    nll = terms.mean(dim=1)
    if mode == "antithetic":
        # Collapse strata in neighbouring pairs (a trailing three when K is odd); a group of
        # g strata estimates the sum of its variances by g/(g-1) * sum of squared deviations.
        var = torch.zeros(b, dtype=torch.float64)
        groups = [(s, s + 2) for s in range(0, k - 3 if k % 2 else k, 2)] + ([(k - 3, k)] if k % 2 else [])
        for lo, hi in groups:
            y = terms[:, lo:hi]
            g = hi - lo
            var += g / (g - 1) * ((y - y.mean(dim=1, keepdim=True)) ** 2).sum(dim=1)
        stderr = var.sqrt() / k
    elif mode == "systematic":
        means = terms.view(b, replicates, k // replicates).mean(dim=2)
        stderr = means.std(dim=1, unbiased=True) / math.sqrt(replicates)
    else:
        stderr = terms.std(dim=1, unbiased=True) / math.sqrt(k)
    return nll.numpy(), stderr.numpy()


@torch.no_grad()
def sequences_to_elbo_terms(
    logits_fn: LogitsFn,
    ids: torch.Tensor,
    mask_id: int,
    *,
    mc_samples: int,
    seed: int,
    timesteps: str = "antithetic",
    eps: float = SAMPLING_EPS,
    replicates: int = 1,
    weight: str = "rao-blackwell",
    lengths: Sequence[int] | None = None,
    row_keys: Sequence[Sequence[int]] | None = None,
    batch_size: int = 256,
    samples: tuple[int, int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-timestep ELBO terms: ids (B, L) int64 -> (terms (B, K) nats, t (B, K)).

    ``terms[b, k] = w * sum_{scored i masked at t} -log p(x_i | x_t)`` with ``w = 1/t``
    (``weight="1/t"``) or ``w = E[1/t | number masked]`` (``"rao-blackwell"``). Positions at or
    beyond ``lengths[b]`` are padding: always masked, never scored (the bound is then on the
    first ``lengths[b]`` ids, the rest left unknown). ``row_keys[b]`` keys row b's RNG
    (default ``(b,)``); ``batch_size`` is rows per forward pass (B*K rows in all).

    samples: a range ``[s0, s1)`` of the row-major flat index ``b * K + k`` of the (B, K) grid:
    only those forward passes are run and ``(terms (s1 - s0,), t (s1 - s0,))`` come back flat.
    A row touched by the range still draws all its K timesteps and masks from its keyed
    generator, so the part equals the same slice of the whole (torchrun ranks split a call so).
    """
    ids = torch.as_tensor(ids, dtype=torch.int64)
    if ids.ndim != 2:
        raise ValueError(f"ids must be (B, L), got {tuple(ids.shape)}")
    b, length = ids.shape
    k = int(mc_samples)
    s0, s1 = (0, b * k) if samples is None else (int(samples[0]), int(samples[1]))
    if not 0 <= s0 <= s1 <= b * k:
        raise ValueError(f"samples must be a range within [0, {b * k}] (B={b} x K={k}), got {samples}")
    lengths_t = torch.full((b,), length) if lengths is None else torch.as_tensor(lengths, dtype=torch.int64)
    keys = [(i,) for i in range(b)] if row_keys is None else [tuple(r) for r in row_keys]
    w = torch.empty(s1 - s0, dtype=torch.float64)
    t_out = torch.empty(s1 - s0, dtype=torch.float64)
    sums: torch.Tensor | None = None   # (s1 - s0,) float64 on the logits' device, read back once
    # A few sequences at a time, so memory stays at about batch_size rows of masks; the
    # masks are drawn on the CPU (keyed generators) while the device works on the last chunk.
    per_group = max(1, batch_size // k)
    for g0 in range(s0 // k, -(-s1 // k), per_group):
        rows = range(g0, min(-(-s1 // k), g0 + per_group))
        t = torch.empty(len(rows), k, dtype=torch.float64)
        us = torch.empty(len(rows), k, length, dtype=torch.float64)
        for i in rows:
            gen = example_generator(seed, keys[i], stream="likelihood")
            t[i - g0] = draw_timesteps(gen, k, timesteps, eps=eps, replicates=replicates)
            us[i - g0] = torch.rand(k, length, generator=gen, dtype=torch.float64)
        # this group's (example, sample) pairs inside [s0, s1), and where they go in the output
        lo, hi = max(s0, g0 * k) - g0 * k, min(s1, (g0 + len(rows)) * k) - g0 * k
        at = g0 * k + lo - s0
        x = ids[g0: g0 + len(rows)]
        scored = torch.arange(length)[None, :] < lengths_t[g0: g0 + len(rows), None]   # (g, L)
        masked = (us < t[:, :, None]) & scored[:, None]                                # (g, K, L)
        xt = torch.where(masked | ~scored[:, None], mask_id, x[:, None]).reshape(-1, length)[lo:hi]
        # padding may hold any id (the mask id included): never gathered as a target
        flat_x = torch.where(scored, x, 0).repeat_interleave(k, 0)[lo:hi]
        flat_m = masked.reshape(-1, length)[lo:hi]
        for s in range(0, len(xt), batch_size):
            x_chunk = xt[s: s + batch_size]
            logits = logits_fn(x_chunk)
            if sums is None:
                sums = torch.empty(s1 - s0, dtype=torch.float64, device=logits.device)
            dev = logits.device
            sums[at + s: at + s + len(x_chunk)] = masked_targets_to_nll(
                logits, to_device(flat_x[s: s + batch_size], dev), to_device(flat_m[s: s + batch_size], dev), mask_id)
        if weight == "rao-blackwell":
            w[at: at + hi - lo] = mask_count_weights(masked.sum(dim=2), lengths_t[g0: g0 + len(rows), None],
                                                     eps).reshape(-1)[lo:hi]
        else:
            w[at: at + hi - lo] = (1.0 / t).reshape(-1)[lo:hi]
        t_out[at: at + hi - lo] = t.reshape(-1)[lo:hi]
    sums_cpu = sums.cpu() if sums is not None else torch.zeros(0, dtype=torch.float64)
    if samples is None:
        return sums_cpu.view(b, k) * w.view(b, k), t_out.view(b, k)
    return sums_cpu * w, t_out


def masked_targets_to_nll(logits: torch.Tensor, targets: torch.Tensor, masked: torch.Tensor,
                          mask_id: int) -> torch.Tensor:
    """SUBS NLL summed over the masked positions: logits (B, L, V), targets and masked (B, L)
    -> (B,) float64 nats, on the logits' device (no synchronisation).

    At a masked position SUBS is the softmax with the mask id excluded (what
    ``subs_log_probs`` gives there); revealed positions carry over and are never summed."""
    logp = logits.float()
    if mask_id < logp.shape[-1]:
        logp = logp.clone() if logp.data_ptr() == logits.data_ptr() else logp
        logp[..., mask_id] = -math.inf
    tok = -torch.log_softmax(logp, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return torch.where(masked, tok, 0.0).double().sum(dim=1)


def sequences_to_elbo(
    logits_fn: LogitsFn,
    ids: torch.Tensor,
    mask_id: int,
    *,
    mc_samples: int,
    seed: int,
    timesteps: str = "antithetic",
    eps: float = SAMPLING_EPS,
    replicates: int | None = None,
    weight: str = "rao-blackwell",
    lengths: Sequence[int] | None = None,
    row_keys: Sequence[Sequence[int]] | None = None,
    batch_size: int = 256,
) -> tuple[np.ndarray, np.ndarray]:
    """MDLM ELBO of each sequence: ids (B, L) -> (nll (B,) nats, stderr (B,) nats).

    ``mc_samples`` forward passes per sequence; ``replicates`` only for ``"systematic"``
    (default: the largest divisor of K up to 8 that leaves at least 2 points per replicate).
    """
    k, r = check_elbo_options(mc_samples, timesteps, weight, replicates)
    terms, _ = sequences_to_elbo_terms(logits_fn, ids, mask_id, mc_samples=k, seed=seed, timesteps=timesteps,
                                       eps=eps, replicates=r, weight=weight, lengths=lengths, row_keys=row_keys,
                                       batch_size=batch_size)
    return elbo_terms_to_estimate(terms, timesteps, r)


def check_elbo_options(mc_samples: Any, timesteps: str, weight: str, replicates: int | None = None, *,
                       name: str | None = None) -> tuple[int, int]:
    """-> (K, systematic replicates: 1 unless ``timesteps == "systematic"``); a bad option is a
    one-line UserError. The one check of the ELBO's options for every masked adapter: with
    ``name`` (an adapter's), the message names it and its run-file option."""
    k = check_mc_samples(mc_samples)
    for option, value, allowed in (("timesteps", timesteps, TIMESTEPS), ("weight", weight, WEIGHTS)):
        if value not in allowed:
            if name is None:
                raise UserError(f"{option} must be one of {allowed}, got {value!r}")
            raise UserError(f"{name}: option {option}={value!r} is not one of {', '.join(allowed)} "
                            f'([adapter."{name}"] {option} in the run file)')
    r = 1
    if timesteps == "systematic":
        r = replicates or max([d for d in range(2, 9) if k % d == 0 and k // d >= 2] or [k])
        if r < 2 or k % r:
            raise UserError(f"systematic timesteps need replicates >= 2 dividing mc_samples={k}; got {r}")
    return k, r


#: one block of rows of an ELBO grid: ids (n, L) int64, lengths (n,) (None: all L), row keys (n,)
ElboBlock = tuple[torch.Tensor, Sequence[int] | None, Sequence[Sequence[int]]]


@dataclass
class ElboGrid:
    """One ``log_likelihood`` call's Monte Carlo forward passes: the row-major (R, K) grid of
    (row, sample index) ELBO terms, R the sequences (or windows) scored, K = ``mc_samples``.

    ``terms(s0, s1)`` runs only the forward passes of the flat range ``[s0, s1)`` of the grid
    (index ``row * K + k``) and returns their terms, (s1 - s0,) float64 nats: every row draws
    all its K timesteps and masks from its own keyed generator, so parts concatenated equal the
    whole. ``to_likelihood(terms (R, K))`` makes the call's LogLikelihood through
    ``elbo_terms_to_estimate``. An adapter's ``log_likelihood`` is ``likelihood_grid(...).whole()``;
    torchrun ranks each compute a contiguous flat range and gather them (``genbench.distributed``),
    so one process and N ranks share the combine step exactly.
    """

    rows: int
    mc_samples: int
    terms: Callable[[int, int], np.ndarray]
    to_likelihood: Callable[[np.ndarray], LogLikelihood]

    @property
    def size(self) -> int:
        return self.rows * self.mc_samples

    def whole(self) -> LogLikelihood:
        return self.to_likelihood(self.terms(0, self.size).reshape(self.rows, self.mc_samples))


def sequences_to_elbo_grid(
    logits_fn: LogitsFn,
    blocks: Sequence[ElboBlock],
    mask_id: int,
    finish: Callable[[np.ndarray, np.ndarray], LogLikelihood],
    *,
    mc_samples: int,
    seed: int,
    timesteps: str = "antithetic",
    weight: str = "rao-blackwell",
    replicates: int | None = None,
    batch_size: int = 256,
) -> ElboGrid:
    """The ELBO grid of rows given as blocks (each of one input width; the grid's rows are the
    blocks' rows in order), ``finish(nll (R,), stderr (R,))`` turning the rows' estimates into
    the call's LogLikelihood (a document's windows summed, say)."""
    k, r = check_elbo_options(mc_samples, timesteps, weight, replicates)
    counts = [len(ids) for ids, _, _ in blocks]
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(int) * k

    def terms(s0: int, s1: int) -> np.ndarray:
        parts = [np.zeros(0)]
        with torch.inference_mode():  # the sums stay on the device until one read per block
            for (ids, lengths, keys), o0, o1 in zip(blocks, offsets[:-1], offsets[1:]):
                lo, hi = max(s0, o0) - o0, min(s1, o1) - o0
                if hi > lo:
                    part, _ = sequences_to_elbo_terms(logits_fn, ids, mask_id, mc_samples=k, seed=seed,
                                                      timesteps=timesteps, replicates=r, weight=weight,
                                                      lengths=lengths, row_keys=keys, batch_size=batch_size,
                                                      samples=(lo, hi))
                    parts.append(part.numpy())
        return np.concatenate(parts)

    def to_likelihood(grid: np.ndarray) -> LogLikelihood:
        nll, se = elbo_terms_to_estimate(torch.as_tensor(grid, dtype=torch.float64).reshape(-1, k), timesteps, r)
        return finish(nll, se)

    return ElboGrid(rows=int(sum(counts)), mc_samples=k, terms=terms, to_likelihood=to_likelihood)


def check_mc_samples(mc_samples: Any) -> int:
    if not isinstance(mc_samples, (int, np.integer)) or mc_samples < 2:
        raise UserError(f"mc_samples must be an integer >= 2 (a standard error needs two); got {mc_samples!r}")
    return int(mc_samples)


# --------------------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------------------
def unmask_counts(length: int, steps: int, schedule: str = "cosine") -> list[int]:
    """How many positions each of ``steps`` steps commits (each >= 1, summing to length).

    cosine (MaskGIT): ``masked after step s = L cos(pi/2 * s/S)``; linear: ``L (1 - s/S)``.
    """
    if schedule not in SCHEDULES:
        raise UserError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    if not 1 <= steps <= length:
        raise UserError(f"steps must be between 1 and the sequence length {length}; got {steps}")
    remaining = [length]
    for s in range(1, steps + 1):
        frac = math.cos(math.pi / 2 * s / steps) if schedule == "cosine" else 1.0 - s / steps
        m = math.floor(length * frac + 1e-9)
        # every step commits at least one and leaves at least one per later step
        m = max(min(m, remaining[-1] - 1), steps - s)
        remaining.append(m)
    return [a - b for a, b in zip(remaining[:-1], remaining[1:])]


@dataclass(frozen=True)
class MaskedSamplerOptions:
    """The masked sampler's settings, checked (``check_masked_sampler_options``)."""

    steps: int
    schedule: str
    order: str
    temperature: float
    choice_temperature: float


def check_masked_sampler_options(name: str, length: int, *, steps: Any, schedule: Any, order: Any,
                                 temperature: Any, choice_temperature: Any,
                                 run_file: bool = True) -> MaskedSamplerOptions:
    """The one check of ``masked_sample``'s options for every masked adapter: ``steps`` an
    integer in 1..length, ``schedule`` and ``order`` known, temperatures finite numbers >= 0
    (temperature 0 is argmax). A bad value is a one-line ``UserError`` naming ``name`` and, with
    ``run_file``, the adapter's run-file option."""
    def bad(option: str, value: Any, what: str) -> UserError:
        where = f'; set [adapter."{name}"] {option} in the run file' if run_file else ""
        return UserError(f"{name}: option {option}={value!r} {what}{where}")

    for option, value, allowed in (("schedule", schedule, SCHEDULES), ("order", order, ORDERS)):
        if value not in allowed:
            raise bad(option, value, f"is not one of {', '.join(allowed)}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not 1 <= steps <= length:
        raise bad("steps", steps, f"must be an integer between 1 and the sequence length {length}")
    temps = {}
    for option, value in (("temperature", temperature), ("choice_temperature", choice_temperature)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not 0 <= value < math.inf:
            raise bad(option, value, "must be a finite number >= 0 (temperature 0 is argmax)")
        temps[option] = float(value)
    return MaskedSamplerOptions(int(steps), schedule, order, temps["temperature"], temps["choice_temperature"])


@torch.no_grad()
def masked_sample(
    logits_fn: LogitsFn,
    n: int,
    length: int,
    mask_id: int,
    *,
    steps: int,
    seed: int,
    schedule: str = "cosine",
    temperature: float = 1.0,
    choice_temperature: float = 0.0,
    batch_size: int = 64,
    order: str = "confidence",
    with_rows: bool = False,
    first: int = 0,
) -> tuple[torch.Tensor, int]:
    """Draw n sequences -> (ids (n, length) int64, nfe summed over batches).

    ``with_rows``: call ``logits_fn(ids, rows)`` with ``rows`` (b,) the sample indices of the
    batch, so that a conditional model can look up each sample's condition (class token).

    Each step: draw a token at every masked position from ``softmax(logits / temperature)``
    (Gumbel-max; ``temperature=0`` is argmax), score it by its log-probability under the
    model (LLaDA's low-confidence remasking) plus, when ``choice_temperature`` > 0,
    MaskGIT's Gumbel noise scaled by ``choice_temperature * (1 - step/steps)``, and commit
    the highest scores. Without that noise the most predictable positions (blank
    background, spaces) are always committed first and samples collapse onto a few modes.
    ``order="random"`` commits uniformly random masked positions instead (MDLM's ancestral
    sampler; ``choice_temperature`` is then unused). Sample i's
    noise comes from ``sampling.example_generator(seed, first + i, stream="sample")``, so samples do not
    depend on ``batch_size`` nor on how a run is split into calls (up to floating-point differences
    between batched matmuls); ``rows`` count from 0 within the call.

    The steps run where ``logits_fn`` leaves its logits (the ids follow them after the first
    step); the noise, drawn on the CPU, is copied there without waiting, and the ids come back
    once per batch: no step reads anything back from an accelerator.
    """
    check_masked_sampler_options("masked_sample", length, steps=steps, schedule=schedule, order=order,
                                 temperature=temperature, choice_temperature=choice_temperature, run_file=False)
    counts = unmask_counts(length, steps, schedule)
    out = torch.empty(n, length, dtype=torch.int64)
    nfe = 0
    for start in range(0, n, batch_size):
        size = min(batch_size, n - start)
        # first: the index of this call's first sample, so a call for samples first..first+n-1 draws
        # the rows a call from 0 would (genbench.distributed splits sampling by it)
        gens = [example_generator(seed, first + start + i, stream="sample") for i in range(size)]
        x = torch.full((size, length), mask_id, dtype=torch.int64)
        rows = torch.arange(start, start + size)
        for step, count in enumerate(counts):
            logits = logits_fn(x, rows) if with_rows else logits_fn(x)
            x = to_device(x, logits.device)  # after the first step a no-op: the ids stay with the logits
            logp = subs_log_probs(logits, x, mask_id)   # (b, L, V), mask id at -inf
            nfe += 1
            # one draw of noise per sample and step: vocabulary columns for the tokens, one
            # more for the choice of positions; drawn on the CPU (each sample's keyed
            # generator) and sent to the logits' device without waiting for it
            u = to_device(torch.stack([torch.rand(logp.shape[1], logp.shape[2] + 1, generator=g) for g in gens]),
                          logp.device)
            gumbel = -torch.log((-torch.log(u.clamp_min(1e-20))).clamp_min(1e-20))
            if temperature > 0:
                cand = (logp / temperature + gumbel[..., :-1]).argmax(-1)
            else:
                cand = logp.argmax(-1)
            conf = logp.gather(-1, cand.unsqueeze(-1)).squeeze(-1)
            if order == "random":  # the top-k of i.i.d. Gumbel noise: a uniform random subset
                conf = gumbel[..., -1]
            elif choice_temperature > 0:
                # MaskGIT: Gumbel noise on the log-confidence, annealed to 0 over the steps, so
                # early choices are not all the most predictable (and most alike) positions
                conf = conf + choice_temperature * (1 - step / len(counts)) * gumbel[..., -1]
            conf = torch.where(x == mask_id, conf, -math.inf)
            pick = conf.topk(count, dim=1).indices
            x.scatter_(1, pick, cand.gather(1, pick))
        out[start: start + size] = x.cpu()
    return out, nfe


# --------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------
def masked_diffusion_loss(model: Transformer, x: torch.Tensor, mask_id: int, gen: torch.Generator,
                          eps: float = SAMPLING_EPS, t_max: float = 1.0) -> torch.Tensor:
    """MDLM training loss of a batch x (B, L): the ELBO in nats per position, one antithetic
    timestep per row (strata across the batch), Rao-Blackwellised weights (an unbiased
    gradient of the same bound with less variance than 1/t). ``t_max < 1`` keeps only the
    part of the bound with at most that masking rate (a curriculum, not the bound)."""
    b, length = x.shape
    t = eps + (t_max - eps) * (torch.arange(b) + torch.rand(b, generator=gen)) / b
    masked = torch.rand(b, length, generator=gen) < t[:, None]
    xt = torch.where(masked, torch.full_like(x, mask_id), x)
    logits = model(xt)
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x.reshape(-1), reduction="none").view(b, length)
    w = mask_count_weights(masked.sum(dim=1), torch.tensor(length), eps).float()
    return ((ce * masked).sum(dim=1) * w).mean() / length


def sinusoid_layout(shape: tuple[int, ...], d_model: int, n_heads: int) -> list[tuple[int, float]]:
    """(axis, angular frequency) of each (sin, cos) pair of dimensions, in dimension order.

    Frequencies are dealt round-robin to the heads (each head's contiguous share of
    ``d_model`` gets a spread of wavelengths, from 2 positions to 4x the axis length, on
    every axis), so the dot product of two codes within one head depends on their offset
    only and peaks at offset 0.
    """
    per_axis = d_model // (2 * len(shape))
    if per_axis % n_heads:
        raise ValueError(f"d_model {d_model} must be a multiple of 2 * {len(shape)} axes * {n_heads} heads")
    freqs = [2 * math.pi / torch.logspace(math.log10(2.0), math.log10(4.0 * n), per_axis) for n in shape]
    pairs = [(a, float(freqs[a][j])) for j in range(per_axis) for a in range(len(shape))]
    per_head = [pairs[p] for h in range(n_heads) for p in range(len(pairs)) if (p // len(shape)) % n_heads == h]
    return per_head


def positions_to_sinusoids(shape: tuple[int, ...], d_model: int, n_heads: int) -> torch.Tensor:
    """Sinusoidal codes (prod(shape), d_model) of a 1-D or 2-D grid of positions, row-major."""
    axes = [a.reshape(-1) for a in torch.meshgrid(*[torch.arange(n, dtype=torch.float32) for n in shape],
                                                  indexing="ij")]
    cols = []
    for axis, f in sinusoid_layout(shape, d_model, n_heads):
        cols += [torch.sin(axes[axis] * f), torch.cos(axes[axis] * f)]
    return torch.stack(cols, dim=1)


def init_local_attention(model: Transformer, shape: tuple[int, ...], head_offsets: Sequence[tuple[int, ...]],
                         *, position_scale: float = 2.0, qk_scale: float = 1.5) -> None:
    """Initialise a bidirectional model to attend to fixed neighbours from the first step.

    A masked position's own input is the mask id, so everything it learns comes through
    attention; from the default init (learned positions ~ N(0, 0.02), random q/k) a model
    needs many hundred steps to discover that the neighbours matter, more than a CPU
    budget allows. Here the learned positions start as sinusoids (``position_scale`` times
    unit amplitude) and each head's key map starts as the rotation that turns the code of
    position ``j`` into that of ``j + offset``, so head h first attends mostly to the
    position ``i + head_offsets[h]`` (e.g. left/right/up/down). All of it is then trained.
    """
    cfg = model.cfg
    layout = sinusoid_layout(shape, cfg.d_model, cfg.n_heads)
    per_head = len(layout) // cfg.n_heads
    rot = torch.zeros(cfg.d_model, cfg.d_model)
    for p, (axis, f) in enumerate(layout):
        angle = f * head_offsets[p // per_head][axis]
        c, s = math.cos(angle), math.sin(angle)
        # (sin f(j+o), cos f(j+o)) = R (sin fj, cos fj)
        rot[2 * p: 2 * p + 2, 2 * p: 2 * p + 2] = torch.tensor([[c, s], [-s, c]])
    d = cfg.d_model
    with torch.no_grad():
        model.pos.copy_(position_scale * positions_to_sinusoids(shape, d, cfg.n_heads))
        for block in model.blocks:
            block.qkv.weight[:d] = qk_scale * torch.eye(d)
            # q_i . k_j = (R pos_i) . pos_j = pos_{i+offset} . pos_j: largest at j = i + offset
            block.qkv.weight[d: 2 * d] = qk_scale * rot.T
            block.qkv.bias[: 2 * d] = 0.0


# --------------------------------------------------------------------------------------
# Reference models
# --------------------------------------------------------------------------------------
class _MaskedModel(Generator):
    """Shared loading, options and likelihood plumbing of the two reference models."""

    paradigm = "masked"
    default_steps = 16

    def __init__(self, path: str | None = None, *, device: str = "cpu", steps: int | None = None,
                 schedule: str = "cosine", temperature: float = 1.0, choice_temperature: float = 4.5,
                 order: str = "confidence",
                 mc_samples: int = 32,
                 timesteps: str = "antithetic", weight: str = "rao-blackwell", eval_batch_size: int = 256,
                 compile: str | None = None):
        self.model, self.meta = zoo.load_transformer(self.name, path, device)
        self.compile = compile_module(self.model, compile, self.name)
        self.config = self.model.cfg
        self.mask_id = int(self.meta["config"]["mask_id"])
        self.device = torch.device(device)
        sampler = check_masked_sampler_options(
            self.name, self.config.seq_len, steps=self.default_steps if steps is None else steps, schedule=schedule,
            order=order, temperature=temperature, choice_temperature=choice_temperature)
        self.steps, self.schedule, self.order = sampler.steps, sampler.schedule, sampler.order
        self.temperature, self.choice_temperature = sampler.temperature, sampler.choice_temperature
        self.mc_samples, _ = check_elbo_options(mc_samples, timesteps, weight, name=self.name)
        self.timesteps = timesteps
        self.weight = weight
        self.eval_batch_size = int(eval_batch_size)

    def logits(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (B, L) with mask id -> logits (B, L, V) over real ids (the mask id is not an output)."""
        return self._device_logits(ids).cpu()

    def _device_logits(self, ids: torch.Tensor) -> torch.Tensor:
        """``logits`` left on the model's device (the sampler and the ELBO work there)."""
        return self.model(to_device(ids, self.device)).float()

    @property
    def likelihood_kind(self) -> LikelihoodKind:
        return LikelihoodKind.UPPER_BOUND

    def likelihood_info(self) -> dict[str, Any]:
        return {
            "estimator": "MDLM continuous-time ELBO, log-linear schedule (mask prob t), SUBS",
            "weight": {"rao-blackwell": "E[1/t | number masked] (Rao-Blackwellised 1/t)", "1/t": "1/t"}[self.weight],
            "timesteps": self.timesteps,
            "sampling_eps": SAMPLING_EPS,
            "stderr": {"antithetic": "collapsed strata (neighbouring pairs): about K/2 degrees of freedom, "
                                     "unbiased or larger in variance but noisy per sequence (+-2 covered 90% "
                                     "per image, 94% of a 40-image sum, on masked-digits at K = 32)",
                       "systematic": "spread of independent systematic replicates",
                       "iid": "sample std / sqrt(K)"}[self.timesteps],
        }

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name, "paradigm": self.paradigm, "modality": self.modality,
            "weights_sha256": self.meta["sha256"],
            "sampler": {"steps": self.steps, "schedule": self.schedule, "temperature": self.temperature,
                        "choice_temperature": self.choice_temperature, "order": self.order},
            "likelihood": {"mc_samples": self.mc_samples, "timesteps": self.timesteps, "weight": self.weight,
                           "sampling_eps": SAMPLING_EPS},
            **({"compile": self.compile} if self.compile else {}),
        }

    def _steps(self, steps: int | None, length: int) -> int:
        s = self.steps if steps is None else int(steps)
        unmask_counts(length, s, self.schedule)
        return s

    def _elbo_grid(self, block: ElboBlock, seed: int,
                   finish: Callable[[np.ndarray, np.ndarray], LogLikelihood]) -> ElboGrid:
        return sequences_to_elbo_grid(self._device_logits, [block], self.mask_id, finish, mc_samples=self.mc_samples,
                                      seed=seed, timesteps=self.timesteps, weight=self.weight,
                                      batch_size=self.eval_batch_size)


@ADAPTERS.register("masked-digits")
class MaskedDigits(_MaskedModel):
    """Masked diffusion over the 64 pixels of an 8x8 digit (17 grey levels + a mask id).

    Options: ``steps`` (default 16, at most 64), ``schedule`` cosine|linear, ``temperature``
    (default 1), ``choice_temperature`` (default 4.5, MaskGIT's), ``order`` confidence|random
    (which positions a step commits), ``mc_samples`` (default 32),
    ``timesteps`` antithetic|systematic|iid and ``weight`` rao-blackwell|1/t for the ELBO,
    ``compile`` (a torch.compile mode, ``adapters.device.COMPILE_MODES``; "reduce-overhead" adds
    CUDA graphs; unset: eager).
    """

    name = "masked-digits"
    modality = "image"
    pixel_levels = data.DIGITS_LEVELS
    likelihood_unit = "dimension"
    default_steps = 16

    def sample(self, n: int, *, seed: int, batch_size: int = 64, condition: Any = None,
               steps: int | None = None, start: int = 0) -> Samples:
        """n images uint8 (n, 8, 8, 1); start: the index of the first sample (its random stream)."""
        if condition is not None:
            raise UserError(f"{self.name} is unconditional: pass condition=None")
        if n < 0 or batch_size < 1:
            raise UserError(f"{self.name}: need n >= 0 and batch_size >= 1")
        s = self._steps(steps, self.config.seq_len)
        with torch.inference_mode():
            ids, nfe = masked_sample(self._device_logits, n, self.config.seq_len, self.mask_id, steps=s, seed=seed,
                                     schedule=self.schedule, temperature=self.temperature,
                                     choice_temperature=self.choice_temperature, batch_size=batch_size,
                                     order=self.order, first=start)
        images = data.levels_to_image(ids.numpy().reshape(n, 8, 8, 1))
        return Samples(images=images, nfe=nfe, nfe_per_sample=float(s),
                       info={"steps": s, "schedule": self.schedule, "temperature": self.temperature, "order": self.order,
                             "choice_temperature": self.choice_temperature})

    def log_likelihood(self, batch: Any, *, seed: int = 0, start: int = 0) -> LogLikelihood:
        """uint8 images (N, 8, 8, 1) -> ELBO in nats per image over 64 dimensions; image ``i``
        draws from ``example_generator(seed, start + i, stream="likelihood")``."""
        return self.likelihood_grid(batch, seed=seed, start=start).whole()

    def likelihood_grid(self, batch: Any, *, seed: int = 0, start: int = 0) -> ElboGrid:
        """``log_likelihood``'s (image, Monte Carlo sample) grid, computed in parts (``ElboGrid``)."""
        if not isinstance(batch, np.ndarray) or batch.dtype != np.uint8 or batch.ndim != 4 \
                or batch.shape[1:] != (8, 8, 1) or len(batch) == 0:
            raise UserError(
                f"{self.name}: log_likelihood takes a non-empty uint8 array (N, 8, 8, 1); got "
                f"{type(batch).__name__} {getattr(batch, 'dtype', '')} {getattr(batch, 'shape', '')}")
        levels = torch.from_numpy(data.image_to_levels(batch).reshape(len(batch), 64))

        def finish(nll: np.ndarray, se: np.ndarray) -> LogLikelihood:
            return LogLikelihood(nll=nll, units=np.full(len(batch), 64.0), unit="dimension",
                                 kind=LikelihoodKind.UPPER_BOUND, stderr=se, mc_samples=self.mc_samples,
                                 info=self.likelihood_info())

        return self._elbo_grid((levels, None, [(start + i,) for i in range(len(batch))]), seed, finish)


@ADAPTERS.register("masked-kjv")
class MaskedText(_MaskedModel):
    """Byte-level masked diffusion over 256-byte windows (256 byte values + a mask id).

    Options: ``steps`` (default 64), ``length`` of samples in bytes (default 256, at most
    256), and the rest as ``MaskedDigits``.
    Likelihood: each document's UTF-8 bytes are cut into disjoint 256-byte windows scored
    independently (no context across windows); a final shorter window is padded with the
    mask id to 256 and the padding is never unmasked nor scored, i.e. it is bounded as the
    model's marginal of the first bytes of a window.
    """

    name = "masked-kjv"
    modality = "text"
    likelihood_unit = "byte"
    default_steps = 64

    def __init__(self, path: str | None = None, *, device: str = "cpu", length: int = 256,
                 eval_batch_size: int = 64, **options):
        super().__init__(path, device=device, eval_batch_size=eval_batch_size, **options)
        if not 1 <= int(length) <= self.config.seq_len:
            raise UserError(f"{self.name}: length must be between 1 and {self.config.seq_len}, got {length}")
        self.length = int(length)
        unmask_counts(self.length, self.steps, self.schedule)

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d["sampler"]["length"] = self.length
        d["likelihood"]["window"] = self.config.seq_len
        return d

    def sample(self, n: int, *, seed: int, batch_size: int = 64, condition: Any = None,
               steps: int | None = None, start: int = 0) -> Samples:
        """n texts of ``length`` bytes; start: the index of the first sample (its random stream)."""
        if condition is not None:
            raise UserError(f"{self.name} is unconditional: pass condition=None")
        if n < 0 or batch_size < 1:
            raise UserError(f"{self.name}: need n >= 0 and batch_size >= 1")
        s = self._steps(steps, self.length)
        window = self.config.seq_len

        def logits_of_prefix(ids: torch.Tensor) -> torch.Tensor:
            # A shorter sample is the first bytes of a window whose rest stays masked, the
            # same convention as a short window in log_likelihood (and what training saw).
            pad = torch.full((len(ids), window - ids.shape[1]), self.mask_id, dtype=torch.int64, device=ids.device)
            return self._device_logits(torch.cat([ids, pad], dim=1))[:, : ids.shape[1]]

        with torch.inference_mode():
            ids, nfe = masked_sample(logits_of_prefix, n, self.length, self.mask_id, steps=s, seed=seed,
                                     schedule=self.schedule, temperature=self.temperature,
                                     choice_temperature=self.choice_temperature, batch_size=batch_size,
                                     order=self.order, first=start)
        tokens = ids.numpy().astype(np.int64)
        texts = [bytes(row.astype(np.uint8).tolist()).decode("utf-8", errors="replace") for row in tokens]
        return Samples(tokens=tokens, texts=texts, nfe=nfe, nfe_per_sample=float(s),
                       info={"steps": s, "schedule": self.schedule, "temperature": self.temperature, "order": self.order,
                             "choice_temperature": self.choice_temperature,
                             "length_bytes": self.length})

    def log_likelihood(self, batch: Any, *, seed: int = 0, start: int = 0) -> LogLikelihood:
        """List of documents (str) -> ELBO in nats per document over its UTF-8 bytes; window
        ``c`` of document ``d`` draws from ``example_generator(seed, (start + d, c),
        stream="likelihood")``. Windows of all documents of the call share forward passes."""
        return self.likelihood_grid(batch, seed=seed, start=start).whole()

    def likelihood_grid(self, batch: Any, *, seed: int = 0, start: int = 0) -> ElboGrid:
        """``log_likelihood``'s (window, Monte Carlo sample) grid, computed in parts (``ElboGrid``)."""
        if isinstance(batch, str) or not isinstance(batch, (list, tuple)) or len(batch) == 0:
            raise UserError(f"{self.name}: log_likelihood takes a non-empty list of strings")
        window = self.config.seq_len
        rows, lengths, keys, owner = [], [], [], []
        units = np.zeros(len(batch))
        for d, doc in enumerate(batch):
            if not isinstance(doc, str) or not doc:
                raise UserError(f"{self.name}: document {d} is {'empty' if doc == '' else type(doc).__name__}; "
                                "every document must be a non-empty string")
            raw = np.frombuffer(doc.encode("utf-8"), dtype=np.uint8).astype(np.int64)
            units[d] = len(raw)
            for c, offset in enumerate(range(0, len(raw), window)):
                chunk = raw[offset: offset + window]
                row = np.full(window, self.mask_id, dtype=np.int64)
                row[: len(chunk)] = chunk
                rows.append(row)
                lengths.append(len(chunk))
                keys.append((start + d, c))
                owner.append(d)
        owner_a = np.asarray(owner)
        info = {**self.likelihood_info(), "window_bytes": window, "windows": "disjoint, no context across windows",
                "short_window": "padded with the mask id, padding never unmasked nor scored", "chunks": len(rows)}

        def finish(nll_c: np.ndarray, se_c: np.ndarray) -> LogLikelihood:
            nll = np.bincount(owner_a, weights=nll_c, minlength=len(batch))
            se = np.sqrt(np.bincount(owner_a, weights=se_c ** 2, minlength=len(batch)))  # chunks are independent
            return LogLikelihood(nll=nll, units=units, unit="byte", kind=LikelihoodKind.UPPER_BOUND, stderr=se,
                                 mc_samples=self.mc_samples, info=info)

        return self._elbo_grid((torch.from_numpy(np.stack(rows)), lengths, keys), seed, finish)


# --------------------------------------------------------------------------------------
# Trainers
# --------------------------------------------------------------------------------------
def _train(model: Transformer, batches: Callable[[int], torch.Tensor], mask_id: int, *, steps: int, lr: float,
           gen: torch.Generator, weight_decay: float = 0.01, t_curriculum: float = 0.0,
           log_every: int = 0) -> float:
    """AdamW with warm-up and cosine decay. ``t_curriculum`` > 0: over that fraction of the
    steps the largest masking rate trained on ramps from 0.5 to 1, so that the model first
    learns from the well-conditioned low-t part of the bound, where local context pays."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=weight_decay)
    model.train()
    t0 = time.perf_counter()
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, steps, lr, warmup=max(1, steps // 50))
        t_max = 1.0 if t_curriculum <= 0 else min(1.0, 0.5 + 0.5 * step / (t_curriculum * steps))
        loss = masked_diffusion_loss(model, batches(step), mask_id, gen, t_max=t_max)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if log_every and (step % log_every == 0 or step == steps - 1):
            print(f"step {step} loss {loss.item():.4f} ({time.perf_counter() - t0:.0f} s)", flush=True)
    model.eval()
    return time.perf_counter() - t0


DIGITS_TRAIN = {"steps": 1000, "batch_size": 64, "lr": 3e-3, "weight_decay": 0.05, "t_curriculum": 0.0}
DIGITS_ARCH = {"d_model": 96, "n_layers": 3, "n_heads": 4}


def train_masked_digits(seed: int = 0, out_dir: Path = zoo.WEIGHTS_DIR, *, log_every: int = 0,
                        **overrides: Any) -> None:
    """Train masked-digits on the train split; validation ELBO bits/dim on val."""
    hp = zoo.with_overrides(DIGITS_TRAIN, overrides)
    arch = zoo.with_overrides(DIGITS_ARCH, overrides)
    gen = zoo.seed_everything(seed)
    levels = torch.from_numpy(data.image_to_levels(data.digits_arrays("train")[0]).reshape(-1, 64))
    mask_id = data.DIGITS_LEVELS
    cfg = TransformerConfig(vocab_size=mask_id + 1, out_size=data.DIGITS_LEVELS, seq_len=64, causal=False, **arch)
    model = Transformer(cfg)
    init_local_attention(model, (8, 8), [(0, 1), (0, -1), (1, 0), (-1, 0)][: cfg.n_heads] * (cfg.n_heads // 4 or 1))
    perm: list[torch.Tensor] = []

    def batch(step: int) -> torch.Tensor:
        if not perm or len(perm[0]) < hp["batch_size"]:
            perm[:] = [torch.randperm(len(levels), generator=gen)]
        idx, perm[0] = perm[0][: hp["batch_size"]], perm[0][hp["batch_size"]:]
        return levels[idx]

    seconds = _train(model, batch, mask_id, steps=hp["steps"], lr=hp["lr"], gen=gen,
                     weight_decay=hp["weight_decay"], t_curriculum=hp["t_curriculum"], log_every=log_every)
    val = torch.from_numpy(data.image_to_levels(data.digits_arrays("val")[0]).reshape(-1, 64))
    with torch.inference_mode():
        nll, se = sequences_to_elbo(model, val, mask_id, mc_samples=64, seed=seed)
    bpd = float(nll.sum() / val.numel() / math.log(2))
    bpd_se = float(np.sqrt((se ** 2).sum()) / val.numel() / math.log(2))
    card = {
        "paradigm": "masked", "modality": "image",
        "summary": "Bidirectional transformer trained as an absorbing-state masked diffusion model (MDLM "
                   "ELBO, log-linear schedule) over the 64 pixels of 8x8 digits at 17 grey levels.",
        "train_steps": hp["steps"], "seed": seed, "train_seconds": round(seconds, 1),
        "val_metric": {"name": "val ELBO bits/dim (upper bound), 64 antithetic timesteps", "value": bpd,
                       "unit": "bits/dim", "stderr": bpd_se},
        "data": "digits train split (1,197 images); validation on the 200-image val split",
        "hyperparameters": hp,
    }
    config = {"transformer": cfg.to_dict(), "mask_id": mask_id, "levels": data.DIGITS_LEVELS}
    zoo.save_model("masked-digits", model, config=config, card=card, out_dir=out_dir)


KJV_TRAIN = {"steps": 650, "batch_size": 16, "lr": 4e-3, "weight_decay": 0.01, "t_curriculum": 0.6,
             "val_bytes_per_book": 8192}
KJV_ARCH = {"d_model": 128, "n_layers": 3, "n_heads": 4}


def train_masked_kjv(seed: int = 0, out_dir: Path = zoo.WEIGHTS_DIR, *, log_every: int = 0,
                     **overrides: Any) -> None:
    """Train masked-kjv on random 256-byte windows of the train books; val ELBO bits/byte."""
    hp = zoo.with_overrides(KJV_TRAIN, overrides)
    arch = zoo.with_overrides(KJV_ARCH, overrides)
    gen = zoo.seed_everything(seed)
    window, mask_id = 256, 256
    # Books joined by a newline so windows may straddle a boundary, like packed training text.
    corpus = torch.from_numpy(data.kjv_bytes("train").astype(np.int64))
    cfg = TransformerConfig(vocab_size=mask_id + 1, out_size=256, seq_len=window, causal=False, **arch)
    model = Transformer(cfg)
    init_local_attention(model, (window,), [(1,), (-1,), (2,), (-2,)] * (cfg.n_heads // 4 or 1))
    offsets = torch.arange(window)

    def batch(step: int) -> torch.Tensor:
        starts = torch.randint(0, len(corpus) - window, (hp["batch_size"],), generator=gen)
        return corpus[starts[:, None] + offsets]

    seconds = _train(model, batch, mask_id, steps=hp["steps"], lr=hp["lr"], gen=gen,
                     weight_decay=hp["weight_decay"], t_curriculum=hp["t_curriculum"], log_every=log_every)
    # Validation: the first bytes of each val book, scored exactly as log_likelihood does.
    docs = [d.encode("utf-8")[: hp["val_bytes_per_book"]] for d in data.kjv_texts("val")]
    rows, lengths, keys = [], [], []
    for d, raw in enumerate(docs):
        arr = np.frombuffer(raw, dtype=np.uint8).astype(np.int64)
        for c, s in enumerate(range(0, len(arr), window)):
            row = np.full(window, mask_id, dtype=np.int64)
            chunk = arr[s: s + window]
            row[: len(chunk)] = chunk
            rows.append(row)
            lengths.append(len(chunk))
            keys.append((d, c))
    with torch.inference_mode():
        nll, se = sequences_to_elbo(model, torch.from_numpy(np.stack(rows)), mask_id, mc_samples=16, seed=seed,
                                    lengths=lengths, row_keys=keys, batch_size=64)
    n_bytes = sum(len(d) for d in docs)
    bpb = float(nll.sum() / n_bytes / math.log(2))
    bpb_se = float(np.sqrt((se ** 2).sum()) / n_bytes / math.log(2))
    card = {
        "paradigm": "masked", "modality": "text",
        "summary": "Byte-level bidirectional transformer trained as an absorbing-state masked diffusion model "
                   "(MDLM ELBO, log-linear schedule) on 256-byte windows of the King James Bible.",
        "train_steps": hp["steps"], "seed": seed, "train_seconds": round(seconds, 1),
        "val_metric": {"name": f"val ELBO bits/byte (upper bound), first {hp['val_bytes_per_book']} bytes of "
                               "each of the 7 val books, 16 antithetic timesteps per 256-byte window", "value": bpb,
                       "unit": "bits/byte", "stderr": bpb_se},
        "data": "KJV train books (53, 3.29 MB) joined by newlines; random 256-byte windows",
        "hyperparameters": hp,
    }
    config = {"transformer": cfg.to_dict(), "mask_id": mask_id, "window_bytes": window}
    zoo.save_model("masked-kjv", model, config=config, card=card, out_dir=out_dir)
