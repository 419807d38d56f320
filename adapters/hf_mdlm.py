"""``hf-masked-diffusion-lm``: a Hugging Face masked diffusion LM (MDLM, LLaDA, Dream, or any
bidirectional masked LM) behind the common interface.

``hf-masked-diffusion-lm:PATH`` loads ``AutoModelForMaskedLM`` (option ``auto_class``:
``"AutoModel"`` or ``"AutoModelForCausalLM"`` for LLaDA/Dream-style checkpoints whose forward
returns ``.logits`` under bidirectional attention; ``trust_remote_code=True`` only when passed)
and ``AutoTokenizer`` from ``PATH``, a local checkpoint directory or a hub name (where the hub is
reachable). The model must map token ids ``(B, L)`` that may hold the mask id to logits
``(B, L, V)``.

Mask id: option ``mask_token_id``, else the tokenizer's ``mask_token``, else the config's
``mask_token_id`` (LLaDA and Dream keep it there).

Likelihood (:meth:`HFMaskedDiffusionLM.log_likelihood`): the MDLM continuous-time ELBO of
:func:`genbench.adapters.mdlm.sequences_to_elbo` (log-linear schedule, SUBS parameterisation:
the mask id is never predicted and revealed tokens carry over), an upper bound on the NLL:

* each document is tokenized on its own, with no special tokens;
* ``L`` = option ``max_length``, else the smaller of the model's positions (config
  ``n_positions`` / ``max_position_embeddings`` / ``n_ctx`` / ``max_sequence_length`` (LLaDA) /
  ``model_length`` (MDLM)) and the tokenizer's ``model_max_length`` (RoBERTa's 514 positions
  hold 512 tokens), else 2048;
* the tokens are cut into disjoint windows of ``L`` tokens scored independently (no context
  across windows): the document's bound is the sum of its windows' bounds, an upper bound on
  the NLL of the model that generates the windows independently;
* the last, shorter window (``short_window``): ``"own-length"`` (default) feeds it to the model
  at its own length, no padding and no attention mask needed -- the bound of the model's
  distribution over sequences of that length, the same distribution :meth:`sample` draws
  ``length``-token samples from, and compute in proportion to the tokens;
  ``"mask-padded"`` pads it to ``L`` with the mask id, padding never revealed nor scored
  (as masked-kjv does): the bound of the model's marginal of the first tokens of an
  ``L``-token window, for checkpoints trained only on fixed-length packed sequences (MDLM's),
  at the cost of ``L`` positions per forward pass however short the document;
* ``mc_samples`` (default 32) forward passes per window, ``timesteps`` antithetic (default) |
  systematic | iid, ``weight`` rao-blackwell (default) | 1/t, sampling eps 1e-3; a document's
  standard error combines its windows' (independent) ones;
* every window draws its timesteps and masks from a generator keyed by ``(seed, sha256 of the
  document's tokens, occurrence of that document in the call, window index)``: a document's
  estimate does not depend on the other documents of the call, their order, or ``batch_size``
  (masked copies per forward pass; up to float rounding between batch shapes).

``units`` = the document's token count; ``nll`` in nats.

Sampling (:meth:`sample`): MaskGIT/LLaDA-style via :func:`mdlm.masked_sample`: ``length``
tokens (default 64) start masked; each of ``steps`` steps (default ``length``) draws every masked
position from ``softmax(logits / temperature)`` (mask id excluded) and commits the most confident
(``schedule`` cosine | linear says how many; ``choice_temperature`` > 0 adds MaskGIT's annealed
noise to the choice, default 0: LLaDA's low-confidence remasking). One forward pass per step,
``nfe_per_sample = steps``. Texts are decoded with ``skip_special_tokens=True``.

Likelihood forward passes leave the logits on the device: the SUBS NLL of each masked
copy is summed there and read back once per window width (``batch_size`` masked copies per
pass bound the memory); a NaN in a window's bound is traced back to its document with a
checked forward pass (NaN, +inf, or no finite logit at a position is a ``UserError`` naming
the document). Sampling checks every forward pass and moves the logits to the CPU in float32. A model may give the
mask id a logit (BERT, LLaDA) or not (``V <= mask id``): SUBS excludes it either way. Dream's
logits at position i - 1 predict token i (it was adapted from an autoregressive model):
``shift_logits=True`` realigns them. The adapter cannot tell a bidirectional model from a causal
one: a causal model gives a valid but loose bound.
"""
from __future__ import annotations

import contextlib
import hashlib
import inspect
from typing import Any, Iterator

import numpy as np
import torch

from genbench.adapters import hf, mdlm
from genbench.adapters.mdlm import (SAMPLING_EPS, check_elbo_options, check_masked_sampler_options,
                                    masked_sample, unmask_counts)
from genbench.adapters.device import to_device
from genbench.adapters.sampling import broken_positions
from genbench.errors import UserError
from genbench.interfaces import Generator, LikelihoodKind, LogLikelihood, Samples
from genbench.registry import ADAPTERS

NAME = "hf-masked-diffusion-lm"
#: the transformers auto classes a checkpoint may be loaded with (option auto_class)
AUTO_CLASSES = ("AutoModelForMaskedLM", "AutoModel", "AutoModelForCausalLM")
#: config attributes holding the number of positions: hf-causal-lm's, then LLaDA's and MDLM's
POSITION_ATTRS = hf.POSITION_ATTRS + ("max_sequence_length", "model_length")
SHORT_WINDOWS = {
    "own-length": "the last, shorter window is fed at its own length (no padding)",
    "mask-padded": "the last, shorter window is padded with the mask id to max_length; padding never revealed "
                   "nor scored",
}


@contextlib.contextmanager
def _as_this_adapter(option: str | None = None) -> Iterator[None]:
    """Re-raise a UserError of a shared helper (hf-causal-lm's checks, mdlm's) under this
    adapter's name, so the message names the adapter (and run-file option) it came from."""
    try:
        yield
    except UserError as e:
        msg = str(e).replace(hf.NAME, NAME)
        if not msg.startswith(NAME):
            msg = f"{NAME}: {msg}"
        if option and "run file" not in msg:
            msg += f' ([adapter."{NAME}"] {option} in the run file)'
        raise UserError(msg) from None


def _document_key(tokens: list[int]) -> int:
    """A 64-bit key of a document's token ids (its windows' RNG streams derive from it)."""
    digest = hashlib.sha256(np.asarray(tokens, dtype=np.int64).tobytes()).digest()
    return int.from_bytes(digest[:8], "little")


@ADAPTERS.register(NAME)
class HFMaskedDiffusionLM(Generator):
    """A Hugging Face masked diffusion LM: MDLM ELBO (an NLL upper bound) and masked sampling.

    Options: ``device``, ``dtype`` (float32 | bfloat16 | float16 | auto), ``auto_class``
    (AutoModelForMaskedLM | AutoModel | AutoModelForCausalLM), ``trust_remote_code``,
    ``mask_token_id``, ``shift_logits`` (Dream: logits at i predict token i+1); likelihood:
    ``max_length`` (window), ``short_window`` (own-length | mask-padded), ``mc_samples``,
    ``timesteps``, ``weight``, ``batch_size`` (masked copies per forward pass); sampler:
    ``length``, ``steps`` (default length), ``schedule``, ``temperature`` (0 = argmax),
    ``choice_temperature``, ``order`` (confidence | random: which masked positions a step
    commits).
    """

    name = NAME
    paradigm = "masked"
    modality = "text"
    likelihood_unit = "token"

    def __init__(self, path: str | None = None, *, device: str = "cpu", dtype: str = "float32",
                 auto_class: str = "AutoModelForMaskedLM", trust_remote_code: bool = False,
                 mask_token_id: int | None = None, shift_logits: bool = False,
                 max_length: int | None = None, short_window: str = "own-length", batch_size: int = 32,
                 mc_samples: int = 32, timesteps: str = "antithetic", weight: str = "rao-blackwell",
                 length: int = 64, steps: int | None = None, schedule: str = "cosine",
                 temperature: float = 1.0, choice_temperature: float = 0.0, order: str = "confidence"):
        if path is None or str(path).strip() == "":
            raise UserError(f"{NAME} needs a checkpoint: use {NAME}:PATH (a local checkpoint directory, or a hub "
                            "name where the Hugging Face hub is reachable)")
        self.path = str(path)
        # --- options, all checked before the (slow) load --------------------------------
        with _as_this_adapter("dtype"):
            self.dtype = hf._torch_dtype(dtype)
        try:
            self.device = torch.device(device)
        except RuntimeError:
            raise UserError(f'{NAME}: option device={device!r} is not a torch device; use e.g. "cpu" or "cuda"') \
                from None
        if auto_class not in AUTO_CLASSES:
            raise UserError(f"{NAME}: option auto_class={auto_class!r} is not one of {', '.join(AUTO_CLASSES)} "
                            f'([adapter."{NAME}"] auto_class in the run file)')
        self.auto_class = auto_class
        self.shift_logits = bool(shift_logits)
        with _as_this_adapter("batch_size"):
            self.batch_size = hf._positive_int("batch_size", batch_size)
        with _as_this_adapter("mc_samples"):
            self.mc_samples, _ = check_elbo_options(mc_samples, timesteps, weight, name=NAME)
        if short_window not in SHORT_WINDOWS:
            raise UserError(f"{NAME}: option short_window={short_window!r} is not one of {', '.join(SHORT_WINDOWS)} "
                            f'([adapter."{NAME}"] short_window in the run file)')
        self.timesteps, self.weight, self.short_window = timesteps, weight, short_window
        with _as_this_adapter("length"):
            self.length = hf._positive_int("length", length)
        sampler = check_masked_sampler_options(NAME, self.length, steps=self.length if steps is None else steps,
                                               schedule=schedule, order=order, temperature=temperature,
                                               choice_temperature=choice_temperature)
        self.steps, self.schedule, self.order = sampler.steps, sampler.schedule, sampler.order
        self.temperature, self.choice_temperature = sampler.temperature, sampler.choice_temperature

        # --- the checkpoint -----------------------------------------------------------
        self.model, self.tokenizer, self.resolved_path = hf._load(
            self.path, dtype=self.dtype, trust_remote_code=trust_remote_code, name=NAME, auto_class=auto_class,
            load_hint="; if it is a masked model of another head, pass auto_class=\"AutoModel\" or "
                      "\"AutoModelForCausalLM\" (and trust_remote_code=true for custom code you trust)")
        self.model.to(self.device).eval()
        self.vocab_size = self._vocab_size()
        self.mask_id, self.mask_source = self._mask_token(mask_token_id)
        self.model_positions = self._model_positions()
        if max_length is None:
            self.max_length = self._default_max_length()
        else:
            with _as_this_adapter("max_length"):
                self.max_length = hf._positive_int("max_length", max_length)
            if self.model_positions is not None and self.max_length > self.model_positions:
                raise UserError(f"{NAME}: option max_length={self.max_length} exceeds the {self.model_positions} "
                                f"positions of the model ({self.resolved_path}/config.json); use at most "
                                f"{self.model_positions} or leave max_length unset")
        forward = inspect.signature(self.model.forward).parameters
        # a cache is of no use to a bidirectional model re-reading the whole sequence every pass
        self._forward_kwargs = {"use_cache": False} if "use_cache" in forward else {}

    # --- set-up helpers ------------------------------------------------------------
    def _vocab_size(self) -> int | None:
        try:
            emb = self.model.get_input_embeddings()
        except (AttributeError, NotImplementedError):  # custom (remote) code need not say
            emb = None
        if hasattr(emb, "num_embeddings"):
            return int(emb.num_embeddings)
        config = self.model.config
        config = config.get_text_config() if hasattr(config, "get_text_config") else config
        return getattr(config, "vocab_size", None)

    def _mask_token(self, override: int | None) -> tuple[int, str]:
        if override is not None:
            token, source = override, "option mask_token_id"
        elif self.tokenizer.mask_token_id is not None:
            token, source = self.tokenizer.mask_token_id, f"the tokenizer's mask_token {self.tokenizer.mask_token!r}"
        elif isinstance(getattr(self.model.config, "mask_token_id", None), int):
            token, source = self.model.config.mask_token_id, "config.json mask_token_id"
        else:
            raise UserError(
                f"{NAME}: the checkpoint {self.resolved_path} has no mask token: its tokenizer "
                "(tokenizer_config.json / special_tokens_map.json field mask_token) sets none and config.json has "
                "no mask_token_id, so positions cannot be masked; set mask_token in its tokenizer_config.json, or "
                f'pass the option mask_token_id=ID ([adapter."{NAME}"] mask_token_id in the run file; '
                "LLaDA's is 126336)")
        if isinstance(token, bool) or not isinstance(token, (int, np.integer)) or token < 0 \
                or (self.vocab_size is not None and token >= self.vocab_size):
            raise UserError(f"{NAME}: mask token id {token!r} (from {source}) is not an id of the model's "
                            f"vocabulary of {self.vocab_size} ({self.resolved_path}); pass mask_token_id=ID with "
                            f"0 <= ID < {self.vocab_size}")
        return int(token), source

    def _model_positions(self) -> int | None:
        for attr in POSITION_ATTRS:
            value = getattr(self.model.config, attr, None)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
        return None

    def _default_max_length(self) -> int:
        limit = getattr(self.tokenizer, "model_max_length", None)
        limit = limit if isinstance(limit, int) and 0 < limit < 10**12 else None
        known = [v for v in (self.model_positions, limit) if v is not None]
        return min(known) if known else hf.DEFAULT_MAX_LENGTH

    # --- the model -----------------------------------------------------------------
    def logits(self, ids: torch.Tensor, *, where: str = "") -> torch.Tensor:
        """ids (B, L) int64, may hold the mask id -> logits (B, L, V) float32 on the CPU.

        Checked once per forward pass: NaN, +inf or no finite logit at a position is a
        UserError (-inf alone is allowed: some models rule ids out that way)."""
        logits = self._device_logits(ids).float()
        if not bool(torch.isfinite(logits).all()) and bool(broken_positions(logits).any()):
            raise self._broken_logits_error(bool(torch.isnan(logits).any()), where)
        return logits.cpu()

    def _broken_logits_error(self, nan: bool, where: str) -> UserError:
        """The one message for NaN (``nan``) or infinite logits, ``where`` they came."""
        return UserError(f"{NAME}: model produced {'NaN' if nan else 'infinite'} logits{' ' + where if where else ''} "
                         f"({self.resolved_path}, dtype {str(self.model.dtype).removeprefix('torch.')}); "
                         "check the weights, or load in float32 (option dtype=\"float32\") if a "
                         "half-precision model overflows")

    def _device_logits(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (B, L) -> logits (B, L, V) in the model's dtype, left on its device, unchecked
        (nothing here waits for the device: the likelihood checks its sums once at the end)."""
        out = self.model(input_ids=to_device(ids, self.device), **self._forward_kwargs)
        logits = getattr(out, "logits", None)
        if logits is None:
            raise UserError(f"{NAME}: {type(self.model).__name__} (loaded with auto_class={self.auto_class}) returns "
                            f"no logits ({type(out).__name__}); use an auto class with a language-model head, "
                            "e.g. auto_class=\"AutoModelForMaskedLM\"")
        if logits.ndim != 3 or tuple(logits.shape[:2]) != tuple(ids.shape):
            raise UserError(f"{NAME}: {type(self.model).__name__} returned logits of shape {tuple(logits.shape)} for "
                            f"ids of shape {tuple(ids.shape)}; a masked LM must give one distribution per position")
        if self.shift_logits:  # Dream's convention: the logits at i - 1 predict token i
            logits = torch.cat([logits[:, :1], logits[:, :-1]], dim=1)
        return logits

    # --- interface -----------------------------------------------------------------
    @property
    def likelihood_kind(self) -> LikelihoodKind:
        return LikelihoodKind.UPPER_BOUND

    def likelihood_info(self) -> dict[str, Any]:
        # the reference models' description of the estimator (it reads only timesteps and weight)
        info = mdlm._MaskedModel.likelihood_info(self)  # type: ignore[arg-type]
        return {**info, "mc_samples": self.mc_samples, "mask_token_id": self.mask_id,
                "max_length": self.max_length,
                "windows_rule": "disjoint windows of max_length tokens, scored independently (no context across "
                                "windows)",
                "short_window": SHORT_WINDOWS[self.short_window], "tokenization": "no special tokens added"}

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name, "paradigm": self.paradigm, "modality": self.modality,
            **hf.checkpoint_description(self.model, self.tokenizer, self.resolved_path),
            "auto_class": self.auto_class,
            "mask_token_id": self.mask_id, "mask_token_source": self.mask_source,
            "max_length": self.max_length,
            "shift_logits": self.shift_logits,
            "likelihood": {"mc_samples": self.mc_samples, "timesteps": self.timesteps, "weight": self.weight,
                           "sampling_eps": SAMPLING_EPS, "short_window": self.short_window},
            "sampler": {"length": self.length, "steps": self.steps, "schedule": self.schedule,
                        "temperature": self.temperature, "choice_temperature": self.choice_temperature,
                        "order": self.order},
        }

    # --- likelihood ----------------------------------------------------------------
    def log_likelihood(self, batch: Any, *, seed: int = 0, start: int = 0) -> LogLikelihood:
        """A list of documents (str) -> ELBO in nats per document (an NLL upper bound), its
        Monte Carlo standard error, units = its token count (see the module docstring).

        Draws are keyed by the document's content (and ``seed``), not its position, so
        ``start`` is unused: the estimate of a document does not depend on the call."""
        return self.likelihood_grid(batch, seed=seed, start=start).whole()

    def likelihood_grid(self, batch: Any, *, seed: int = 0, start: int = 0) -> mdlm.ElboGrid:
        """``log_likelihood``'s (window, Monte Carlo sample) grid, computed in parts (``mdlm.ElboGrid``):
        windows of one input width form a block (scored together), widest first."""
        with _as_this_adapter():  # hf-causal-lm's checks of the documents and their tokens
            docs = hf.HFCausalLM._documents(self, batch)  # type: ignore[arg-type]
            token_lists = hf.HFCausalLM._tokenize(self, docs) if docs else []  # type: ignore[arg-type]
        L = self.max_length
        windows: list[tuple[int, int, list[int], tuple[int, ...]]] = []  # (doc, window, ids, RNG key)
        seen: dict[int, int] = {}
        for d, toks in enumerate(token_lists):
            if self.mask_id in toks:
                pos = toks.index(self.mask_id)
                raise UserError(f"{NAME}: document {d} holds the mask token itself (token {pos} is id {self.mask_id}, "
                                f"{self.tokenizer.convert_ids_to_tokens(self.mask_id)!r}, from its text); a masked "
                                "model cannot score it: remove that text from the document")
            key = _document_key(toks)
            occurrence = seen[key] = seen.get(key, -1) + 1  # a repeated document gets fresh noise
            for w, start in enumerate(range(0, len(toks), L)):
                windows.append((d, w, toks[start: start + L], (key, occurrence, w)))
        info = {**self.likelihood_info(), "windows": len(windows)}
        units = np.array([len(t) for t in token_lists], dtype=np.float64)
        owner = np.array([d for d, _, _, _ in windows], dtype=np.int64)
        blocks, order = self._window_blocks(windows)
        first_rows = np.cumsum([0] + [len(ids) for ids, _, _ in blocks])  # each block's first grid row

        def finish(nll_b: np.ndarray, se_b: np.ndarray) -> LogLikelihood:
            nll_w, se_w = np.zeros(len(windows)), np.zeros(len(windows))
            nll_w[order], se_w[order] = nll_b, se_b
            if np.isnan(nll_b).any():  # NaN or +inf logits: find and name them with the checked forward
                r = int(np.argmax(np.isnan(nll_b)))
                block = int(np.searchsorted(first_rows, r, side="right")) - 1
                rows, d = blocks[block][0], windows[order[r]][0]
                where = f"on document {d} (windows of {rows.shape[1]} positions)"
                self.logits(rows[r - first_rows[block]: r - first_rows[block] + 1], where=where)
                raise UserError(f"{NAME}: model produced NaN logits {where} for some masked inputs "
                                f"({self.resolved_path}, dtype {str(self.model.dtype).removeprefix('torch.')}); "
                                "check the weights, or load in float32 (option dtype=\"float32\") if a "
                                "half-precision model overflows")
            bad = ~np.isfinite(nll_w)
            if bad.any():
                d, w = windows[int(np.argmax(bad))][:2]
                raise UserError(f"{NAME}: the model gives probability 0 (a logit of -inf) to a token of document {d}, "
                                f"window {w} ({self.resolved_path}); its NLL bound is infinite: check the weights and "
                                "that the tokenizer belongs to this model")
            nll = np.bincount(owner, weights=nll_w, minlength=len(docs))
            se = np.sqrt(np.bincount(owner, weights=se_w ** 2, minlength=len(docs)))  # windows are independent
            return LogLikelihood(nll=nll, units=units, unit="token", kind=LikelihoodKind.UPPER_BOUND, stderr=se,
                                 mc_samples=self.mc_samples, info=info)

        return mdlm.sequences_to_elbo_grid(self._device_logits, blocks, self.mask_id, finish,
                                           mc_samples=self.mc_samples, seed=seed, timesteps=self.timesteps,
                                           weight=self.weight, batch_size=self.batch_size)

    def _window_blocks(self, windows: list[tuple[int, int, list[int], tuple[int, ...]]]
                       ) -> tuple[list[mdlm.ElboBlock], np.ndarray]:
        """Windows of one input width as one block of rows (ids, lengths, RNG keys), widest
        first, and each grid row's window index (W,)."""
        L = self.max_length
        width = [L if self.short_window == "mask-padded" else len(ids) for _, _, ids, _ in windows]
        blocks, order = [], []
        for n in sorted(set(width), reverse=True):
            idx = [i for i, w in enumerate(width) if w == n]
            rows = torch.full((len(idx), n), self.mask_id, dtype=torch.int64)
            for r, i in enumerate(idx):
                ids = windows[i][2]
                rows[r, : len(ids)] = torch.as_tensor(ids, dtype=torch.int64)
            blocks.append((rows, [len(windows[i][2]) for i in idx], [windows[i][3] for i in idx]))
            order += idx
        return blocks, np.asarray(order, dtype=np.int64)

    # --- sampling ------------------------------------------------------------------
    def sample(self, n: int, *, seed: int, batch_size: int = 64, condition: Any = None,
               steps: int | None = None, start: int = 0) -> Samples:
        """n samples of ``length`` tokens: tokens int64 (n, length), texts decoded with
        ``skip_special_tokens=True``; one forward pass per step per batch (``nfe_per_sample = steps``).
        start: the index of the first sample (its random stream)."""
        if condition is not None:
            raise UserError(f"{NAME} samples unconditionally (from a fully masked sequence): pass condition=None")
        n = int(n)
        if n < 0:
            raise UserError(f"{NAME}: n must be >= 0, got {n}")
        with _as_this_adapter("batch_size"):
            batch_size = hf._positive_int("batch_size", batch_size)
        s = self.steps if steps is None else steps
        with _as_this_adapter("steps"):
            s = hf._positive_int("steps", s)
            unmask_counts(self.length, s, self.schedule)
        width = max(self.length, self.max_length) if self.short_window == "mask-padded" else self.length
        if self.model_positions is not None and width > self.model_positions:
            raise UserError(f"{NAME}: option length={self.length} needs {self.length} positions, more than the "
                            f"model's {self.model_positions} ({self.resolved_path}/config.json); use at most "
                            f"{self.model_positions}")

        flags: list[torch.Tensor] = []  # per step: (NaN anywhere, a broken position anywhere), on the device

        def logits_fn(ids: torch.Tensor) -> torch.Tensor:
            # left on the device and checked when sampling is done: a check per step would read
            # a value back every step (the logits() check, for the same conditions)
            if ids.shape[1] != width:
                # mask-padded: a shorter sample is the first tokens of a window whose rest stays
                # masked, the same convention as a short window in log_likelihood
                pad = torch.full((len(ids), width - ids.shape[1]), self.mask_id, dtype=torch.int64, device=ids.device)
                ids = torch.cat([ids, pad], dim=1)
            logits = self._device_logits(ids).float()[:, : self.length]
            flags.append(torch.stack([torch.isnan(logits).any(), broken_positions(logits).any()]))
            return logits

        with torch.inference_mode(), _as_this_adapter():
            ids, nfe = masked_sample(logits_fn, n, self.length, self.mask_id, steps=s, seed=seed,
                                     schedule=self.schedule, temperature=self.temperature,
                                     choice_temperature=self.choice_temperature, batch_size=batch_size,
                                     order=self.order, first=start)
        nan, broken = torch.stack(flags).any(0).tolist() if flags else (False, False)
        if broken:
            raise self._broken_logits_error(nan, "while sampling")
        tokens = ids.numpy().astype(np.int64)
        texts = [self.tokenizer.decode(row.tolist(), skip_special_tokens=True) for row in tokens]
        return Samples(tokens=tokens, texts=texts, nfe=nfe, nfe_per_sample=float(s),
                       info={"length": self.length, "steps": s, "schedule": self.schedule,
                             "temperature": self.temperature, "choice_temperature": self.choice_temperature,
                             "order": self.order, "decode": "skip_special_tokens"})


__all__ = ["HFMaskedDiffusionLM", "AUTO_CLASSES", "SHORT_WINDOWS"]
