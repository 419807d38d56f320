"""``hf-causal-lm``: any Hugging Face causal language model behind the common interface.

``hf-causal-lm:PATH`` loads ``AutoModelForCausalLM`` and ``AutoTokenizer`` from ``PATH``, a
local checkpoint directory (as written by ``save_pretrained``) or a hub name (only where the
hub or its cache is reachable).

Likelihood (:meth:`HFCausalLM.log_likelihood`) is lm-evaluation-harness's
``loglikelihood_rolling``, token for token:

* each document is tokenized on its own, with no special tokens added by the tokenizer;
* ``L`` = the model's maximum length (``config.n_positions``, ``max_position_embeddings`` or
  ``n_ctx``, in that order, else the tokenizer's ``model_max_length``, else 2048), or the
  ``max_length`` option;
* the document's tokens ``t[0..n)`` are cut into disjoint prediction windows
  (``get_rolling_token_windows(..., context_len=1)`` + ``make_disjoint_window``): the first
  reads ``[P] + t[:m-1]`` and predicts ``t[:m]`` (``m = min(L, n)``, ``P`` the prefix token
  = the tokenizer's BOS id, else its EOS id); each later window predicts the next (up to)
  ``L`` tokens ``t[s:e]`` reading ``t[e-L-1:e-1]``, i.e. conditioned on as many preceding
  tokens as fit in ``L`` positions;
* the document's log-likelihood is the sum over all its tokens; ``nll`` = minus that, in nats;
  ``units`` = its token count. log-softmax is taken over the model's full output vocabulary
  in float32 (float64 sums), as lm-eval does for a float32 model.

Windows of all documents in one call are batched together (``batch_size`` per forward pass,
sorted by length, right-padded, with no attention mask (in a causal model no real position
sees the padding after it) and no position ids (the model's default positions 0..T-1 are
every window's). Without a mask or a cache, transformers asks of every forward pass whether
its rows pack several sequences, reading a value back from the device (a stall of the host
per batch on an accelerator); a window is never packed, so :func:`rows_not_packed` answers
for it (the same causal mask, no read-back). So pass many documents per call for
throughput. Documents are tokenized once, in a background thread, chunk by chunk (shortest
documents first, so the device starts early) while the previous chunk is scored; a chunk's
batches go to the device in one copy; batches run across chunks (the longest few windows of
a chunk wait for the next chunk's, so ``W`` windows take ``ceil(W / batch_size)`` forward
passes); per-window sums stay on the device until one read at the end of the call. Results
do not depend on ``batch_size`` beyond float32 rounding (document sums in float64, in window
order).

Sampling (:meth:`HFCausalLM.sample`) draws ``length`` tokens after the prefix token, one forward
pass per token, with the model's key/value cache (``kv_cache=False`` re-reads the whole prefix
each step: the same tokens, slower). Sample ``i`` of a call takes its uniforms from a
generator keyed by ``(seed, i)`` (``sampling.example_generator``, stream ``"sample"``) and
draws by inverse CDF in float64, so samples do not depend on ``batch_size`` (up to float
rounding between batch shapes, which could flip a draw that lands exactly on a CDF boundary).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import pickle
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from genbench.adapters.device import rows_not_packed, to_device
from genbench.adapters.raster import cache_argument
from genbench.adapters.sampling import BrokenLogits, examples_to_uniforms, logits_to_ids
from genbench.errors import UserError
from genbench.interfaces import Generator, LikelihoodKind, LogLikelihood, Samples
from genbench.registry import ADAPTERS

NAME = "hf-causal-lm"
DEFINITION = "lm-eval loglikelihood_rolling"
#: lm-eval's fallback when neither the config nor the tokenizer states a maximum length
DEFAULT_MAX_LENGTH = 2048
#: config attributes holding the number of positions, in the order lm-eval reads them
POSITION_ATTRS = ("n_positions", "max_position_embeddings", "n_ctx")
DTYPES = {
    "float32": torch.float32, "fp32": torch.float32,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "auto": "auto",
}
#: characters of text in the first chunk tokenized at once, and in the largest (chunks double)
TOKENIZE_CHUNK_CHARS = (1 << 12, 1 << 20)
#: config keys that say nothing about the model itself (left out of its hash)
_VOLATILE_CONFIG_KEYS = ("_name_or_path", "transformers_version", "torch_dtype", "dtype", "_commit_hash",
                         "_attn_implementation_autoset", "_attn_implementation")


# --------------------------------------------------------------------------------------
# Rolling windows
# --------------------------------------------------------------------------------------
def rolling_windows(tokens: Sequence[int], prefix_token: int, max_length: int) -> list[tuple[list[int], int]]:
    """Disjoint prediction windows of one document -> ``[(sequence, n_targets)]``.

    ``sequence`` holds the model input followed by the window's last target (so input =
    ``sequence[:-1]``, targets = ``sequence[1:]``); only the last ``n_targets`` targets are
    scored. Every token of the document is scored exactly once: the same windows as
    lm-eval's ``get_rolling_token_windows(tokens, prefix_token, max_length, context_len=1)``
    followed by ``make_disjoint_window`` (and its left truncation to ``max_length`` inputs).
    """
    if max_length < 1:
        raise ValueError("max_length must be >= 1")
    tokens = list(tokens)
    n = len(tokens)
    if n == 0:
        return []
    first = min(max_length, n)
    windows = [([prefix_token] + tokens[:first], first)]
    end = first
    while end < n:
        k = min(max_length, n - end)
        end += k
        # inputs: the max_length tokens before the last target (end - max_length - 1 >= 0 here)
        windows.append((tokens[end - max_length - 1: end], k))
    return windows


@dataclass
class PackedWindows:
    """The rolling windows of many documents, as slices of one flat token array.

    ``flat`` (T,) int64 holds each document's tokens after one prefix token; window ``w``
    reads the inputs ``flat[start[w]: start[w] + length[w]]``, predicts the next token at
    each of them, and scores the last ``scored[w]`` predictions; ``owner[w]`` is its
    document. Windows are in document order, then window order (the order of the sums).
    """

    flat: np.ndarray
    start: np.ndarray
    length: np.ndarray
    scored: np.ndarray
    owner: np.ndarray

    def __len__(self) -> int:
        return len(self.start)


def documents_to_windows(token_lists: Sequence[Sequence[int]], prefix_token: int, max_length: int) -> PackedWindows:
    """Token ids of each document -> the windows of :func:`rolling_windows` for all of them,
    without a Python loop per window or per token."""
    if max_length < 1:
        raise ValueError("max_length must be >= 1")
    sizes = np.array([len(t) for t in token_lists], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes + 1)])  # document d sits at flat[offsets[d] + 1:]
    flat = np.full(int(offsets[-1]), prefix_token, dtype=np.int64)
    if sizes.sum():
        body = np.concatenate([np.asarray(t, dtype=np.int64) for t in token_lists if len(t)])
        flat[np.repeat(offsets[:-1] + 1, sizes) + _ranges(sizes)] = body
    # window j of a document of n tokens predicts t[jL: min((j + 1)L, n)]; ceil(n / L) windows
    count = -(-sizes // max_length)
    owner = np.repeat(np.arange(len(sizes), dtype=np.int64), count)
    j = _ranges(count)
    end = np.minimum((j + 1) * max_length, sizes[owner])
    # the first window reads [P] + t[:end - 1] (from the prefix token); a later one t[end - L - 1: end - 1]
    start = offsets[owner] + np.where(j == 0, 0, end - max_length)
    length = np.where(j == 0, end, max_length)
    return PackedWindows(flat=flat, start=start, length=length, scored=end - j * max_length, owner=owner)


def _ranges(sizes: np.ndarray) -> np.ndarray:
    """0..n-1 for each n of sizes, concatenated."""
    ends = np.cumsum(sizes)
    return np.arange(int(ends[-1]) if len(ends) else 0) - np.repeat(ends - sizes, sizes)


def windows_to_nll(forward: Callable[..., torch.Tensor], windows: PackedWindows, *, batch_size: int,
                   device: torch.device, pad_token: int,
                   token_nll: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """NLL (nats, float64 (W,)) of each window's scored targets, and whether a NaN was among them.

    ``forward(ids (B, T)) -> logits (B, T, V)`` must be causal. Windows are
    sorted by length and batched ``batch_size`` at a time, right-padded with ``pad_token``
    (a causal model's real positions never see the padding after them, so no attention mask
    is needed). ``token_nll(logits, targets) -> (B, T)`` defaults to float32 cross-entropy
    over the whole vocabulary. See :class:`WindowStream`.
    """
    stream = WindowStream(forward, batch_size=batch_size, device=device, pad_token=pad_token, token_nll=token_nll)
    stream.add(windows)
    return stream.read()


class WindowStream:
    """The windows of many :class:`PackedWindows` (chunks, added one after another) scored as
    one stream of batches: ``ceil(W / batch_size)`` forward passes for ``W`` windows however
    they were chunked.

    :meth:`add` sorts its windows together with those carried from earlier chunks by length
    (so padding stays small), launches full batches of all but the longest few (fewer than
    ``batch_size``) and carries those into the next chunk, whose windows are mostly as long or
    longer (documents come shortest first); :meth:`read` launches the last partial batch and
    reads every result back in one transfer. The batches of a launch are laid out on the host
    and go to ``device`` in one copy (pinned, non-blocking); nothing is read back per batch, so
    the host runs ahead (building the next batches, tokenizing the next documents) while the
    device computes. A window's NLL does not depend on its batch beyond float32
    rounding. ``forward``, ``pad_token``, ``token_nll``: see :func:`windows_to_nll`.
    """

    def __init__(self, forward: Callable[..., torch.Tensor], *, batch_size: int, device: torch.device,
                 pad_token: int, token_nll: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None):
        self.forward, self.batch_size, self.device, self.pad_token = forward, int(batch_size), device, pad_token
        self.token_nll = token_nll or _token_nll
        self.added = 0  # windows added so far: the next window's index
        self._carry = _no_windows()  # windows not launched yet (with their own tokens)
        self._carry_index = np.zeros(0, np.int64)  # their indices in the stream
        self._launched: list[np.ndarray] = []  # stream indices of the launched windows, in batch order
        self._sums: list[torch.Tensor] = []  # per batch: NLL of each window (device, float64)

    def add(self, windows: PackedWindows) -> None:
        """Queue a chunk's windows (they follow those added before) and launch every full batch."""
        index = np.arange(self.added, self.added + len(windows))
        self.added += len(windows)
        pool, pool_index = _concat(self._carry, windows), np.concatenate([self._carry_index, index])
        order = np.lexsort((pool_index, -pool.length))  # longest first, ties in stream order
        # the longest few wait: later chunks hold longer documents, hence windows to pad them with
        wait = len(order) % self.batch_size
        self._launch(pool, pool_index, order[wait:])
        self._carry, self._carry_index = _take(pool, order[:wait]), pool_index[order[:wait]]

    def read(self) -> tuple[np.ndarray, np.ndarray]:
        """Launch what is left, then (NLL float64 (W,), has NaN bool (W,)) of all windows added,
        in the order they were added; read back in one transfer."""
        carry, carry_index = self._carry, self._carry_index
        self._carry, self._carry_index = _no_windows(), carry_index[:0]
        self._launch(carry, carry_index, np.arange(len(carry)))  # already sorted
        out = np.zeros(self.added)
        if self._sums:
            out[np.concatenate(self._launched)] = torch.cat(self._sums).cpu().numpy()
        return out, np.isnan(out)

    @torch.inference_mode()
    def _launch(self, windows: PackedWindows, index: np.ndarray, order: np.ndarray) -> None:
        """Forward passes over windows[order] in batches of batch_size (order: longest first).

        Every batch's inputs, targets and scored positions are built on the host in one pass,
        laid out batch after batch (a batch is a (B, T) block, T its longest window), and go to
        the device in one copy; per batch only the forward pass, the NLL and its masked sum run."""
        if not len(order):
            return
        self._launched.append(index[order])
        n, bs, last = len(order), self.batch_size, len(windows.flat) - 1
        rows = np.minimum(bs, n - np.arange(0, n, bs))  # windows per batch
        widths = windows.length[order[::bs]]  # positions per batch: its longest window's
        win = np.repeat(order, np.repeat(widths, rows))  # the window of each laid-out position
        col = _ranges(np.repeat(widths, rows))
        pos = windows.start[win] + col
        valid = col < windows.length[win]
        laid = np.stack([np.where(valid, windows.flat[np.minimum(pos, last)], self.pad_token),  # inputs
                         np.where(valid, windows.flat[np.minimum(pos + 1, last)], 0),  # targets
                         valid & (col >= (windows.length - windows.scored)[win])])  # scored
        laid = to_device(torch.from_numpy(laid), self.device)
        scored = laid[2].bool()
        ends = np.cumsum(rows * widths)
        for b, w, end in zip(rows.tolist(), widths.tolist(), ends.tolist()):
            lo = end - b * w
            ids, tgt, keep = laid[0, lo: end].view(b, w), laid[1, lo: end].view(b, w), scored[lo: end].view(b, w)
            nll = self.token_nll(self.forward(ids), tgt)
            # float64 sums; NaN iff a scored NLL is NaN (NLLs are >= 0, +inf or NaN)
            self._sums.append(torch.where(keep, nll, 0.0).sum(dim=1, dtype=torch.float64))


def _no_windows() -> PackedWindows:
    empty = np.zeros(0, np.int64)
    return PackedWindows(flat=empty, start=empty, length=empty, scored=empty, owner=empty)


def _take(windows: PackedWindows, sel: np.ndarray) -> PackedWindows:
    """windows[sel] with only the tokens they read: each window's inputs and its last target."""
    size = windows.length[sel] + 1
    start = np.cumsum(size) - size
    flat = windows.flat[np.repeat(windows.start[sel], size) + _ranges(size)]
    return PackedWindows(flat=flat, start=start, length=windows.length[sel], scored=windows.scored[sel],
                         owner=windows.owner[sel])


def _concat(a: PackedWindows, b: PackedWindows) -> PackedWindows:
    """The windows of a, then those of b, over one flat token array."""
    if not len(a):
        return b
    return PackedWindows(flat=np.concatenate([a.flat, b.flat]), start=np.concatenate([a.start, b.start + len(a.flat)]),
                         length=np.concatenate([a.length, b.length]), scored=np.concatenate([a.scored, b.scored]),
                         owner=np.concatenate([a.owner, b.owner]))


# --------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------
def _hub_offline() -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES", "TRUE"}:
        return True
    try:
        from huggingface_hub import constants
        return bool(constants.HF_HUB_OFFLINE)
    except Exception:  # pragma: no cover - huggingface_hub always comes with transformers
        return False


def _looks_like_local_path(path: str) -> bool:
    """A path that cannot be a hub name (``name`` or ``org/name``)."""
    return (path.startswith(("/", "./", "../", "~", "\\")) or path in {".", ".."} or path.count("/") > 1
            or (os.sep != "/" and os.sep in path) or path.endswith("/"))


def _torch_dtype(dtype: Any) -> Any:
    if isinstance(dtype, torch.dtype):
        return dtype
    key = str(dtype).lower().removeprefix("torch.")
    if key not in DTYPES:
        raise UserError(f"{NAME}: option dtype={dtype!r} is not a dtype; use one of "
                        f"{', '.join(sorted(set(k for k in DTYPES if len(k) > 4)))} "
                        f'([adapter."{NAME}"] dtype in the run file)')
    return DTYPES[key]


def _load(path: str, *, dtype: Any, trust_remote_code: bool, name: str = NAME,
          auto_class: str = "AutoModelForCausalLM", load_hint: str = "") -> tuple[Any, Any, str]:
    """(model, tokenizer, resolved path) of a checkpoint loaded with ``transformers.<auto_class>``;
    every failure is a UserError naming the adapter ``name``, the path and the fix.

    ``load_hint`` is added to the message when a local checkpoint's class does not fit
    ``auto_class`` ("Unrecognized configuration class")."""
    import transformers

    local = Path(path).expanduser()
    fix = (f"use {name}:DIR with DIR a local checkpoint directory holding config.json, the weights and the "
           "tokenizer files (as written by model.save_pretrained(DIR) and tokenizer.save_pretrained(DIR))")
    if local.exists():
        if not local.is_dir():
            raise UserError(f"{name}: {local} is a file, not a checkpoint directory; {fix}")
        if not (local / "config.json").is_file():
            raise UserError(f"{name}: {local / 'config.json'} does not exist, so {local} is not a Hugging Face "
                            f"checkpoint; {fix}")
        where, source = str(local.resolve()), f"the checkpoint in {local}"
    elif _looks_like_local_path(path):
        raise UserError(f"{name}: checkpoint directory {path} does not exist; {fix}")
    else:
        where, source = path, f"hub model {path!r}"
    kwargs = {"trust_remote_code": bool(trust_remote_code)}
    try:
        with _quiet_progress_bars():
            tokenizer = transformers.AutoTokenizer.from_pretrained(where, **kwargs)
            model = getattr(transformers, auto_class).from_pretrained(where, dtype=dtype, **kwargs)
    except (OSError, ValueError, KeyError, ImportError, RuntimeError, pickle.UnpicklingError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if local.exists() and any(local.glob("*.bin")) and not any(local.glob("*.safetensors")):
            # torch.load(weights_only=True) refused the pickle: never fall back to running it
            raise UserError(f"{name}: {source} holds only pickled weights (*.bin) that a safe load cannot read "
                            f"({type(e).__name__}); convert them to safetensors where you trust the file "
                            "(model.save_pretrained(DIR, safe_serialization=True)) and load that") from None
        if not isinstance(e, (OSError, ValueError, KeyError, ImportError)):
            raise
        if local.exists():
            hint = load_hint if "Unrecognized configuration class" in first else ""
            raise UserError(f"{name}: could not load {source} with {auto_class}: {first}{hint}; {fix}") from None
        why = ("the Hugging Face hub is offline (HF_HUB_OFFLINE=1) and has no cached copy of it"
               if _hub_offline() else f"loading it from the Hugging Face hub failed: {first}")
        raise UserError(f"{name}: {path!r} does not exist locally and {why}; {fix}, or download it where the hub "
                        f"is reachable (`huggingface-cli download {path} --local-dir DIR`)") from None
    return model, tokenizer, where


@contextlib.contextmanager
def _quiet_progress_bars():
    """No "Loading weights" progress bar on stderr while loading (restored afterwards)."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def checkpoint_description(model: Any, tokenizer: Any, resolved_path: str) -> dict[str, Any]:
    """What identifies a loaded Hugging Face checkpoint in a record (config hashed without the
    keys that do not change the model)."""
    return {
        "path": resolved_path,
        "model_class": type(model).__name__,
        "model_type": getattr(model.config, "model_type", None),
        "config_sha256": _config_sha256(model.config),
        "n_params": int(sum(p.numel() for p in model.parameters())),
        "tokenizer": f"{type(tokenizer).__name__}:{tokenizer.name_or_path}",
        "tokenizer_vocab_size": len(tokenizer),
        "dtype": str(model.dtype).removeprefix("torch."),
    }


def _config_sha256(config: Any) -> str:
    d = {k: v for k, v in config.to_dict().items() if k not in _VOLATILE_CONFIG_KEYS}
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()


# --------------------------------------------------------------------------------------
# The adapter
# --------------------------------------------------------------------------------------
@ADAPTERS.register(NAME)
class HFCausalLM(Generator):
    """A Hugging Face causal LM checkpoint: exact rolling log-likelihood and ancestral sampling.

    Options: ``device``, ``dtype`` (float32 | bfloat16 | float16 | auto), ``batch_size``
    (windows per likelihood forward pass), ``max_length`` (likelihood window; default the
    model's positions), ``trust_remote_code``, ``length`` (tokens per sample), ``temperature``
    (0 = greedy), ``kv_cache``, ``prefix_token_id`` (the token the first token of a document
    and of a sample is conditioned on; default the tokenizer's BOS, else EOS, as lm-eval).
    """

    name = NAME
    paradigm = "autoregressive"
    modality = "text"
    likelihood_unit = "token"

    def __init__(self, path: str | None = None, *, device: str = "cpu", dtype: str = "float32",
                 batch_size: int = 8, max_length: int | None = None, trust_remote_code: bool = False,
                 length: int = 64, temperature: float = 1.0, kv_cache: bool = True,
                 prefix_token_id: int | None = None):
        if path is None or str(path).strip() == "":
            raise UserError(f"{NAME} needs a checkpoint: use {NAME}:PATH (a local checkpoint directory, or a hub "
                            "name where the Hugging Face hub is reachable)")
        self.path = str(path)
        self.dtype = _torch_dtype(dtype)
        try:
            self.device = torch.device(device)
        except RuntimeError:
            raise UserError(f'{NAME}: option device={device!r} is not a torch device; use e.g. "cpu" or "cuda"') \
                from None
        self.batch_size = _positive_int("batch_size", batch_size)
        self.length = _positive_int("length", length)
        self.temperature = float(temperature)
        if not self.temperature >= 0 or math.isinf(self.temperature):
            raise UserError(f'{NAME}: option temperature={temperature!r} must be a finite number >= 0 '
                            '(0 = greedy); set [adapter."hf-causal-lm"] temperature in the run file')
        self.kv_cache = bool(kv_cache)

        self.model, self.tokenizer, self.resolved_path = _load(self.path, dtype=self.dtype,
                                                              trust_remote_code=trust_remote_code)
        self.model.to(self.device).eval()
        self.model_positions = self._model_positions()
        if max_length is None:
            self.max_length = self._default_max_length()
        else:
            self.max_length = _positive_int("max_length", max_length)
            if self.model_positions is not None and self.max_length > self.model_positions:
                raise UserError(f"{NAME}: option max_length={self.max_length} exceeds the {self.model_positions} "
                                f"positions of the model ({self.resolved_path}/config.json); use at most "
                                f"{self.model_positions} or leave max_length unset")
        self.prefix_token_id = self._prefix_token(prefix_token_id)

    # --- set-up helpers ------------------------------------------------------------
    def _model_positions(self) -> int | None:
        for attr in POSITION_ATTRS:
            value = getattr(self.model.config, attr, None)
            if isinstance(value, int) and value > 0:
                return value
        return None

    def _default_max_length(self) -> int:
        if self.model_positions is not None:
            return self.model_positions
        limit = getattr(self.tokenizer, "model_max_length", None)
        if isinstance(limit, int) and 0 < limit < 10**12:
            return limit
        return DEFAULT_MAX_LENGTH

    def _prefix_token(self, override: int | None) -> int:
        vocab = self.model.config.get_text_config().vocab_size if hasattr(self.model.config, "get_text_config") \
            else getattr(self.model.config, "vocab_size", None)
        if override is not None:
            token = int(override)
            source = "option prefix_token_id"
        else:
            token = self.tokenizer.bos_token_id
            if token is None:
                token = self.tokenizer.eos_token_id
            if token is None:
                raise UserError(
                    f"{NAME}: the tokenizer of {self.resolved_path} (tokenizer_config.json / special_tokens_map.json) "
                    "has neither a bos_token nor an eos_token, so the first token of a document has nothing to be "
                    "conditioned on; set bos_token or eos_token in its tokenizer_config.json, or pass the option "
                    f'prefix_token_id=ID ([adapter."{NAME}"] prefix_token_id in the run file)')
            source = "the tokenizer's bos_token/eos_token"
        if token < 0 or (vocab is not None and token >= vocab):
            raise UserError(f"{NAME}: prefix token id {token} (from {source}) is outside the model's vocabulary "
                            f"of {vocab} ids ({self.resolved_path}); pass prefix_token_id=ID with a valid id")
        return token

    # --- interface -----------------------------------------------------------------
    @property
    def likelihood_kind(self) -> LikelihoodKind:
        return LikelihoodKind.EXACT

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name, "paradigm": self.paradigm, "modality": self.modality,
            **checkpoint_description(self.model, self.tokenizer, self.resolved_path),
            "max_length": self.max_length,
            "prefix_token": self.prefix_token_id,
            "sampler": {"length": self.length, "temperature": self.temperature, "kv_cache": self.kv_cache},
        }

    # --- likelihood ----------------------------------------------------------------
    def _documents(self, texts: Any) -> list[str]:
        if isinstance(texts, (str, bytes)):
            raise UserError(f"{NAME}: log_likelihood takes a list of documents, got one "
                            f"{type(texts).__name__}; wrap it in a list")
        try:
            texts = list(texts)
        except TypeError:
            raise UserError(f"{NAME}: log_likelihood takes a list of strings, got {type(texts).__name__}") from None
        docs = []
        for i, t in enumerate(texts):
            if isinstance(t, (bytes, bytearray)):
                try:
                    t = bytes(t).decode("utf-8")
                except UnicodeDecodeError as e:
                    raise UserError(f"{NAME}: document {i} is bytes that are not UTF-8 (byte {e.start}: "
                                    f"{bytes(t)[e.start:e.start + 4]!r}); decode it to str with its encoding "
                                    "first") from None
            elif not isinstance(t, str):
                raise UserError(f"{NAME}: document {i} is a {type(t).__name__}, not a string; log_likelihood "
                                "takes a list of strings")
            try:
                t.encode("utf-8")
            except UnicodeEncodeError as e:
                raise UserError(f"{NAME}: document {i} is not valid Unicode text (character {e.start} is "
                                f"{t[e.start]!r}, a lone surrogate); it cannot be encoded as UTF-8: fix its "
                                "decoding (e.g. read the file with encoding='utf-8')") from None
            if not t:
                raise UserError(f"{NAME}: document {i} is empty; an empty document has no tokens to score "
                                "(drop it before scoring)")
            docs.append(t)
        return docs

    def _tokenize(self, docs: list[str]) -> list[list[int]]:
        """Token ids of each document (no special tokens added)."""
        return HFCausalLM._tokenize_indexed(self, docs, np.arange(len(docs)))  # also serves hf-masked-diffusion-lm

    def _token_chunks(self, docs: list[str]) -> Iterator[tuple[np.ndarray, list[list[int]]]]:
        """(indices of its documents, their token ids) of chunks of the documents, shortest
        documents first.

        A background thread tokenizes the chunks in order (the Rust tokenizer releases the GIL)
        while the caller scores the previous ones; the first chunk is small (the shortest
        documents, ~4 kB of text), so the device starts early, and chunks grow to ~1 MB
        (``TOKENIZE_CHUNK_CHARS``)."""
        order = np.argsort([len(d) for d in docs], kind="stable")
        (budget, most), bounds, lo, size = TOKENIZE_CHUNK_CHARS, [], 0, 0
        for k, i in enumerate(order):
            size += len(docs[i])
            if size >= budget or k == len(order) - 1:
                bounds.append(order[lo: k + 1])
                lo, size, budget = k + 1, 0, min(2 * budget, most)
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokenize")
        try:
            futures = [pool.submit(self._tokenize_indexed, docs, idx) for idx in bounds]
            for idx, future in zip(bounds, futures):
                yield idx, future.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _tokenize_indexed(self, docs: list[str], idx: np.ndarray) -> list[list[int]]:
        """Token ids of docs[i] for i in idx (messages name the document by its index)."""
        ids = self.tokenizer([docs[i] for i in idx], add_special_tokens=False, return_attention_mask=False,
                             verbose=False)["input_ids"]
        for i, x in zip(idx, ids):
            if not x:
                raise UserError(f"{NAME}: document {i} ({docs[i][:20]!r}...) tokenizes to no tokens; drop it before "
                                "scoring")
        return [list(map(int, x)) for x in ids]

    def log_likelihood(self, batch: Any, *, seed: int = 0, start: int = 0) -> LogLikelihood:
        """A list of documents (str) -> exact NLL in nats per document, units = its tokens.

        lm-eval ``loglikelihood_rolling`` (see the module docstring); ``seed`` and ``start``
        are unused (the likelihood is exact). Pass many documents per call: their windows
        are batched together.
        """
        docs = self._documents(batch)
        L = self.max_length
        info = {"max_length": L, "windows": 0, "prefix_token": self.prefix_token_id, "definition": DEFINITION}
        if not docs:
            return LogLikelihood(nll=np.zeros(0), units=np.zeros(0), unit="token", kind=LikelihoodKind.EXACT,
                                 info=info)
        units = np.zeros(len(docs))
        owners = []
        stream = WindowStream(self._forward, batch_size=self.batch_size, device=self.device,
                              pad_token=self.prefix_token_id)
        for idx, token_lists in self._token_chunks(docs):  # scored while the next chunk is tokenized
            units[idx] = [len(t) for t in token_lists]
            windows = documents_to_windows(token_lists, self.prefix_token_id, L)
            owners.append(idx[windows.owner])
            stream.add(windows)  # full batches only: the rest waits for the next chunk's windows
        owner = np.concatenate(owners)  # a document's windows are consecutive, in window order
        info["windows"] = len(owner)
        window_nll, nan = stream.read()
        bad = ~np.isfinite(window_nll)
        if bad.any():
            runs = np.r_[0, np.flatnonzero(np.diff(owner)) + 1]
            window_index = np.arange(len(owner)) - np.repeat(runs, np.diff(np.r_[runs, len(owner)]))
            first = int(np.flatnonzero(bad)[np.lexsort((window_index[bad], owner[bad]))[0]])
            d, w = int(owner[first]), int(window_index[first])
            more = f" (and {int(bad.sum()) - 1} more windows)" if bad.sum() > 1 else ""
            what = "NaN" if nan[first] else "infinite (or -inf for the observed token)"
            raise UserError(f"{NAME}: model produced {what} logits on document {d}, window {w}{more} "
                            f"({self.resolved_path}, dtype {str(self.model.dtype).removeprefix('torch.')}); "
                            "check the weights, or load in float32 (option dtype=\"float32\") if a half-precision "
                            "model overflows")
        # summed in document/window order: the same float64 sums whatever the batching
        nll = np.bincount(owner, weights=window_nll, minlength=len(docs))
        return LogLikelihood(nll=nll, units=units, unit="token", kind=LikelihoodKind.EXACT, info=info)

    def _forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Right-padded ids (B, T) -> logits (B, T, V); no attention mask, no position ids (see
        the module docstring)."""
        with rows_not_packed():
            return self.model(input_ids=ids, use_cache=False).logits

    # --- sampling ------------------------------------------------------------------
    def sample(self, n: int, *, seed: int, batch_size: int = 64, condition: Any = None,
               steps: int | None = None, start: int = 0) -> Samples:
        """n samples of ``length`` tokens after the prefix token: tokens int64 (n, length), texts
        decoded with ``skip_special_tokens=True``; one forward pass per token per batch
        (``nfe_per_sample = length``). start: the index of the first sample (its random stream)."""
        if condition is not None:
            raise UserError(f"{NAME} samples unconditionally (from the prefix token): pass condition=None")
        if steps is not None and int(steps) != self.length:
            raise UserError(f"{NAME} is autoregressive: it takes one step per token (length={self.length}); "
                            f"steps={steps} cannot change that: pass steps=None or change the option length")
        n = int(n)
        if n < 0:
            raise UserError(f"{NAME}: n must be >= 0, got {n}")
        batch_size = _positive_int("batch_size", batch_size)
        if self.model_positions is not None and self.length > self.model_positions:
            raise UserError(f"{NAME}: option length={self.length} needs {self.length} positions, more than the "
                            f"model's {self.model_positions} ({self.resolved_path}/config.json); use at most "
                            f"{self.model_positions}")
        tokens = torch.empty((n, self.length), dtype=torch.int64)
        nfe = 0
        for b0 in range(0, n, batch_size):
            size = min(batch_size, n - b0)
            u = examples_to_uniforms(seed, start + b0, size, (self.length,))  # sample i's own stream
            ids, calls = self._sample_batch(u, start + b0)
            tokens[b0: b0 + size] = ids
            nfe += calls
        rows = tokens.numpy().astype(np.int64)
        texts = [self.tokenizer.decode(row.tolist(), skip_special_tokens=True) for row in rows]
        return Samples(tokens=rows, texts=texts, nfe=nfe, nfe_per_sample=float(self.length),
                       info={"length": self.length, "temperature": self.temperature, "kv_cache": self.kv_cache,
                             "start": f"prefix token {self.prefix_token_id}", "decode": "skip_special_tokens"})

    @torch.inference_mode()
    def _sample_batch(self, u: torch.Tensor, start: int) -> tuple[torch.Tensor, int]:
        size = u.shape[0]
        seq = torch.full((size, 1), self.prefix_token_id, dtype=torch.int64, device=self.device)
        u = to_device(u, self.device)  # once per batch: the steps read nothing back (sampling.logits_to_ids)
        broken = BrokenLogits()
        past = None
        calls = 0
        cache_arg = cache_argument(self.model)
        for pos in range(self.length):
            if self.kv_cache:
                inp = seq if past is None else seq[:, -1:]
                out = self.model(input_ids=inp, use_cache=True, **{cache_arg: past})
                past = getattr(out, cache_arg)
            else:
                with rows_not_packed():  # one sequence per row: transformers' packing check would read back
                    out = self.model(input_ids=seq, use_cache=False)
            calls += 1
            logits = out.logits[:, -1].float()
            broken.note(logits, pos)
            nxt = logits_to_ids(logits, u[:, pos], self.temperature)
            seq = torch.cat([seq, nxt[:, None]], dim=1)
        found = broken.earliest()
        if found is not None:
            raise UserError(f"{NAME}: model produced NaN or infinite logits while sampling (sample {start + found[0]}, "
                            f"position {found[1]}) ({self.resolved_path}); check the weights or use dtype=\"float32\"")
        return seq[:, 1:].cpu(), calls


def _token_nll(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """-log softmax(logits)[target] per position: logits (B, T, V), targets (B, T) -> (B, T) float32.

    Cross-entropy over consecutive chunks of positions (views, no copies; float32 even for a
    half-precision model): on a CPU, chunks that fit in cache make this ~1.5x faster than one
    log-softmax over the whole batch; on an accelerator, few large chunks. Half-precision
    logits on CUDA go through one fused kernel (``logsumexp`` of the float32 values minus the
    target's, compiled by torch.compile) that reads them once instead of writing a float32
    copy and a log-softmax: several times less memory traffic. Where compilation fails, the
    chunks.
    """
    if logits.device.type == "cuda" and logits.dtype != torch.float32:
        fused = _fused_token_nll()
        if fused is not None:
            try:
                return fused(logits, targets)
            except Exception:  # no working compiler here: fall back once and for all
                _FUSED["fn"] = None
    b, t, v = logits.shape
    flat, tflat = logits.reshape(b * t, v), targets.reshape(b * t)
    rows = max(16, (1 << 19) // v) if logits.device.type == "cpu" else max(1, (1 << 27) // v)
    out = torch.empty(b * t, dtype=torch.float32, device=logits.device)
    for s in range(0, b * t, rows):
        out[s: s + rows] = F.cross_entropy(flat[s: s + rows].float(), tflat[s: s + rows], reduction="none")
    return out.view(b, t)


_FUSED: dict[str, Any] = {}


def _fused_token_nll() -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None:
    """The compiled fused -log softmax(logits)[target] (float32 math), or None without a compiler."""
    if "fn" not in _FUSED:
        def token_nll(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            x = logits.float()
            return torch.logsumexp(x, dim=-1) - x.gather(-1, targets.unsqueeze(-1)).squeeze(-1)

        try:
            _FUSED["fn"] = torch.compile(token_nll, dynamic=True)
        except Exception:
            _FUSED["fn"] = None
    return _FUSED["fn"]


def _positive_int(name: str, value: Any) -> int:
    try:
        v = int(value)
    except (TypeError, ValueError):
        v = None
    if v is None or v < 1 or v != value:
        raise UserError(f'{NAME}: option {name}={value!r} must be a positive integer '
                        f'([adapter."{NAME}"] {name} in the run file)')
    return v


__all__ = ["HFCausalLM", "rolling_windows", "DEFINITION"]
