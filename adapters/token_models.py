"""``token-ar:DIR`` and ``token-masked:DIR``: LlamaGen- and MaskGIT-shaped image generators from
standard parts, a VQ tokenizer and a transformer over its codes.

``DIR`` holds

* ``vq/``: a diffusers ``VQModel`` (``save_pretrained``): images in [-1, 1] <-> a grid of codes;
* ``transformer/``: a transformers causal LM over the codes (``token-ar``, loaded with
  ``AutoModelForCausalLM``) or masked LM (``token-masked``, ``AutoModelForMaskedLM``);
* ``genbench.json``: ``grid`` ([h, w] codes), ``codebook_size`` K (ids ``0..K-1`` are codes; the
  first K logits are read, any others are ignored), and how a class enters: ``num_classes`` C
  (null for an unconditional model), ``class_token`` (the id of class 0's token: a sequence is
  ``[class_token + label] + codes``, LlamaGen's class-token prefix), ``null_class`` (the label
  of label dropout, LlamaGen's C; used for classifier-free guidance and for the likelihood),
  ``bos_token`` (the prefix of an unconditional model; none for a masked model without prefix),
  ``mask_token`` (``token-masked``), and ``rope_2d`` (``token-ar`` from
  ``genbench.adapters.convert_llamagen``: LlamaGen's 2-D rotary positions, see :class:`Rope2D`).

``token-ar``: raster order with the key/value cache, ``temperature`` / ``top_k`` / ``top_p``
(LlamaGen's order: temperature, then the filters), classifier-free guidance by LlamaGen's rule
``logits = null + g (cond - null)`` (NFE per sample ``2 h w``; else ``h w``); exact NLL in
bits per code of the image's VQ codes (``unit = "token"``).

``token-masked``: MaskGIT sampling through the zoo's masked sampler
(:func:`genbench.adapters.mdlm.masked_sample`: cosine schedule, ``steps``, ``temperature``,
``choice_temperature``, ``order`` confidence | random), guidance by the same logit mixing;
NFE per sample ``steps`` (x2 guided); the MDLM ELBO over the codes
(:func:`genbench.adapters.mdlm.sequences_to_elbo`, ``mc_samples``), an upper bound in nats.

Both decode codes with the VQ decoder (``force_not_quantize``: the codebook vectors themselves)
and quantise with the ``round`` rule. The likelihood is of the codes the VQ encoder gives an
image (not of its pixels), scored under the null class for a class-conditional model; a model
without a null class says ``unavailable``.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genbench.adapters import mdlm
from genbench.adapters.conditioning import check_guidance, condition_to_labels, images_to_model_input
from genbench.adapters.device import to_device
from genbench.adapters.diffusers_tokenizers import vq_codes_to_images, vq_pixels_to_codes
from genbench.adapters import hf
from genbench.adapters.raster import check_sampling_options, raster_images, raster_nll
from genbench.errors import UserError
from genbench.interfaces import Generator, LikelihoodKind, LogLikelihood, Samples

LAYOUT = ("use {name}:DIR with DIR holding vq/ (a diffusers VQModel.save_pretrained), transformer/ (a transformers "
          "{lm}.save_pretrained) and genbench.json (grid, codebook_size, num_classes, class_token, null_class, "
          "bos_token, mask_token)")
SPEC_KEYS = {"grid", "codebook_size", "num_classes", "class_token", "null_class", "bos_token", "mask_token", "rope_2d",
             "source"}


def read_layout(name: str, path: str | None, lm: str) -> tuple[Path, dict[str, Any]]:
    """(DIR, genbench.json) after checking the layout; each problem a one-line error naming ``name``."""
    fix = LAYOUT.format(name=name, lm=lm)
    if path is None or not str(path).strip():
        raise UserError(f"{name} needs a folder: {fix}")
    root = Path(path).expanduser()
    if not root.is_dir():
        raise UserError(f"{name}: folder {root} does not exist; {fix}")
    for sub, what in (("vq", "config.json"), ("transformer", "config.json")):
        if not (root / sub / what).is_file():
            raise UserError(f"{name}: {root / sub / what} does not exist: the folder has no {sub}/; {fix}")
    spec_file = root / "genbench.json"
    if not spec_file.is_file():
        raise UserError(f"{name}: {spec_file} does not exist; {fix}")
    try:
        spec = json.loads(spec_file.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{name}: {spec_file} is not valid JSON ({e})") from None
    unknown = set(spec) - SPEC_KEYS
    if unknown:
        raise UserError(f"{name}: {spec_file}: unknown key(s) {sorted(unknown)}; valid keys: {sorted(SPEC_KEYS)}")
    grid = spec.get("grid")
    if not (isinstance(grid, list) and len(grid) == 2 and all(isinstance(g, int) and g > 0 for g in grid)):
        raise UserError(f"{name}: {spec_file}: field 'grid' must be [h, w] (codes per column and row), got {grid!r}")
    if not isinstance(spec.get("codebook_size"), int) or spec["codebook_size"] < 2:
        raise UserError(f"{name}: {spec_file}: field 'codebook_size' must be an integer >= 2")
    if spec.get("num_classes") and not isinstance(spec.get("class_token"), int):
        raise UserError(f"{name}: {spec_file}: num_classes = {spec['num_classes']} needs 'class_token' (the id of "
                        "class 0's prefix token)")
    return root, spec


class Rope2D(torch.nn.Module):
    """LlamaGen's 2-D rotary positions for a transformers Llama (q/k weights in Llama's
    half-split layout, as ``genbench.adapters.convert_llamagen`` writes them).

    Position ``p < prefix`` (the class token) gets cos = sin = 0, as LlamaGen's cache (its q and
    k are zeroed); code ``q = p - prefix`` at row ``q // w``, column ``q % w`` turns pair ``i`` of
    ``head_dim / 2`` by ``row * f_i`` for the first quarter of the head's dimensions and
    ``col * f_i`` for the second, ``f_i = base^(-4 i / head_dim)``.
    """

    def __init__(self, head_dim: int, grid: tuple[int, int], prefix: int, base: float = 10000.0):
        super().__init__()
        self.grid, self.prefix = grid, prefix
        quarter = head_dim // 4
        self.register_buffer("freqs", 1.0 / base ** (torch.arange(quarter, dtype=torch.float32) * 4 / head_dim),
                             persistent=False)

    def forward(self, x: torch.Tensor, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q = (position_ids - self.prefix).clamp(min=0).float()
        row, col = torch.div(q, self.grid[1], rounding_mode="floor"), q % self.grid[1]
        angles = torch.cat([row[..., None] * self.freqs, col[..., None] * self.freqs], dim=-1)  # (B, T, d/2)
        angles = torch.cat([angles, angles], dim=-1)
        live = (position_ids >= self.prefix)[..., None].float()
        return (angles.cos() * live).to(x.dtype), (angles.sin() * live).to(x.dtype)


class _TokenModel(Generator):
    """Loading, VQ coding and conditioning shared by the two token adapters."""

    modality = "image"
    likelihood_unit = "token"
    auto_class = "AutoModelForCausalLM"

    @classmethod
    def check_options(cls, path: str | None, **options: Any) -> None:
        _, spec = read_layout(cls.name, path, cls.auto_class)
        check_guidance(f"{cls.name}:{path}", options.get("guidance_scale", 1.0), spec.get("null_class"),
                       bool(spec.get("num_classes")))

    def __init__(self, path: str | None, device: str, batch_size: int):
        import diffusers
        import transformers

        self.root, self.spec = read_layout(self.name, path, self.auto_class)
        self.label = f"{self.name}:{path}"
        self.device = torch.device(device)
        try:
            with hf._quiet_progress_bars():
                self.vq = diffusers.VQModel.from_pretrained(self.root / "vq", low_cpu_mem_usage=False)
                self.model = getattr(transformers, self.auto_class).from_pretrained(self.root / "transformer")
        except (OSError, ValueError, KeyError) as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise UserError(f"{self.name}: could not load {self.root}: {first}") from None
        self.vq.to(self.device).eval()
        self.model.to(self.device).eval()
        self.grid = tuple(self.spec["grid"])
        self.length = self.grid[0] * self.grid[1]
        self.codebook_size = int(self.spec["codebook_size"])
        if self.vq.quantize.embedding.num_embeddings != self.codebook_size:
            raise UserError(f"{self.name}: {self.root}/genbench.json codebook_size = {self.codebook_size} but vq/ has "
                            f"{self.vq.quantize.embedding.num_embeddings} codes")
        self.num_classes = self.spec.get("num_classes") or None
        self.null_class = self.spec.get("null_class")
        f = 2 ** (len(self.vq.config.block_out_channels) - 1)
        self.image_size = (self.grid[0] * f, self.grid[1] * f)
        self.channels = int(self.vq.config.in_channels)
        self.batch_size = int(batch_size)

    def prefix(self, labels: np.ndarray | None, n: int) -> torch.Tensor:
        """(n, P) prefix ids: the class token of each label, or the BOS token, or none (P = 0)."""
        if labels is not None:
            return torch.from_numpy(labels + int(self.spec["class_token"]))[:, None]
        if self.spec.get("bos_token") is not None:
            return torch.full((n, 1), int(self.spec["bos_token"]), dtype=torch.int64)
        return torch.empty((n, 0), dtype=torch.int64)

    def null_prefix(self, n: int) -> torch.Tensor | None:
        if self.num_classes is None or self.null_class is None:
            return None
        return torch.full((n, 1), int(self.spec["class_token"]) + int(self.null_class), dtype=torch.int64)

    @torch.inference_mode()
    def codes_to_images(self, codes: torch.Tensor) -> np.ndarray:
        """int64 (N, h*w) -> uint8 (N, H, W, C) through the VQ decoder, by the ``round`` rule."""
        idx = to_device(codes.reshape(len(codes), *self.grid), self.device)
        lookup = bool(getattr(self.vq.config, "lookup_from_codebook", False))
        return vq_codes_to_images(self.vq, idx, self.vq.quantize.embedding.embedding_dim, lookup)

    @torch.inference_mode()
    def images_to_codes(self, images: Any) -> torch.Tensor:
        """uint8 (N, H, W, C) -> int64 codes (N, h*w), the VQ encoder's nearest codes."""
        x = images_to_model_input(self.label, images, self.image_size, self.channels)
        x = to_device(torch.from_numpy(x).permute(0, 3, 1, 2).float(), self.device) / 127.5 - 1.0
        return vq_pixels_to_codes(self.vq, x).reshape(len(x), -1).cpu().long()

    @property
    def likelihood_unavailable_reason(self) -> str:
        if self.num_classes is not None and self.null_class is None:
            return ("likelihood_kind is unavailable: the model is class-conditional with no null_class in "
                    "genbench.json, and the likelihood suite has no labels")
        return ""

    def _describe(self, sampler: dict[str, Any]) -> dict[str, Any]:
        return {"name": self.name, "paradigm": self.paradigm, "modality": self.modality, "path": str(self.root),
                "genbench_json": self.spec, "transformer": type(self.model).__name__,
                "n_params": int(sum(p.numel() for p in self.model.parameters())),
                "vq_params": int(sum(p.numel() for p in self.vq.parameters())), "sampler": sampler}

    def _likelihood_info(self, images: Any) -> dict[str, Any]:
        return {"of": f"the VQ codes of the image ({self.grid[0]}x{self.grid[1]} codes of {self.codebook_size}), "
                      "not its pixels", "unit_is": "a VQ code",
                "conditioning": None if self.num_classes is None else f"null class {self.null_class}",
                "grey_input": "replicated to RGB" if np.asarray(images).shape[-1] == 1 and self.channels == 3 else None}


class TokenAR(_TokenModel):
    """LlamaGen-shaped: raster-order codes from a causal LM. Options: ``device``, ``batch_size``
    (likelihood rows per forward pass); runtime: ``temperature``, ``top_k``, ``top_p``,
    ``guidance_scale``, ``kv_cache``."""

    name = "token-ar"
    paradigm = "autoregressive"
    runtime_options = frozenset({"temperature", "top_k", "top_p", "guidance_scale", "kv_cache"})

    def __init__(self, path: str | None = None, *, device: str = "cpu", batch_size: int = 32,
                 temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0, guidance_scale: float = 1.0,
                 kv_cache: bool = True):
        super().__init__(path, device, batch_size)
        rope = self.spec.get("rope_2d")
        if rope:
            cfg = self.model.config
            head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
            self.model.model.rotary_emb = Rope2D(head_dim, self.grid, int(rope.get("prefix", 1)),
                                                 float(rope.get("base", 10000.0))).to(self.device)
        self.kv_cache = bool(kv_cache)
        self._set(temperature=temperature, top_k=top_k, top_p=top_p, guidance_scale=guidance_scale)

    def _set(self, **o: Any) -> None:
        self.temperature, self.top_k, self.top_p = check_sampling_options(self.label, o["temperature"], o["top_k"],
                                                                          o["top_p"])
        self.guidance_scale = check_guidance(self.label, o["guidance_scale"], self.null_class,
                                             self.num_classes is not None)

    def with_options(self, **options: Any) -> "TokenAR":
        if set(options) - self.runtime_options:
            return super().with_options(**options)
        view = copy.copy(self)
        view.kv_cache = bool(options.pop("kv_cache", self.kv_cache))
        view._set(**{"temperature": self.temperature, "top_k": self.top_k, "top_p": self.top_p,
                     "guidance_scale": self.guidance_scale, **options})
        return view

    def describe(self) -> dict[str, Any]:
        return self._describe({"temperature": self.temperature, "top_k": self.top_k, "top_p": self.top_p,
                               "guidance_scale": self.guidance_scale, "kv_cache": self.kv_cache})

    @property
    def likelihood_kind(self) -> LikelihoodKind:
        return LikelihoodKind.UNAVAILABLE if self.likelihood_unavailable_reason else LikelihoodKind.EXACT

    def sample(self, n: int, *, seed: int, batch_size: int = 64, condition: Any = None,
               steps: int | None = None, start: int = 0) -> Samples:
        """n images uint8 (n, H, W, C); start: the index of the first sample (its random stream and
        default label)."""
        labels = condition_to_labels(self.label, n, condition, self.num_classes, start)
        if steps is not None and int(steps) != self.length:
            raise UserError(f"{self.name} is autoregressive: one step per code ({self.length}); pass steps=None")
        guided = self.guidance_scale != 1.0
        out, batches = raster_images(
            self, n, seed=seed, start=start, batch_size=batch_size, length=self.length, vocab=self.codebook_size,
            image_shape=(*self.image_size, self.vq.config.out_channels), tokens_to_images=self.codes_to_images,
            prefix=lambda b0, size: self.prefix(None if labels is None else labels[b0: b0 + size], size),
            null_prefix=self.null_prefix if guided else None, guidance_scale=self.guidance_scale)
        per_sample = self.length * (2 if guided else 1)
        return Samples(images=out, nfe=batches * per_sample, nfe_per_sample=float(per_sample),
                       info={"quantisation": "round", "temperature": self.temperature, "top_k": self.top_k,
                             "top_p": self.top_p, "guidance_scale": self.guidance_scale, "kv_cache": self.kv_cache})

    def log_likelihood(self, batch: Any, *, seed: int = 0, start: int = 0) -> LogLikelihood:
        """uint8 images (N, H, W, C) -> exact NLL in nats of each image's h*w VQ codes."""
        if self.likelihood_unavailable_reason:
            return LogLikelihood.unavailable(len(batch), "token")
        codes = self.images_to_codes(batch)
        prefix = self.null_prefix(len(codes)) if self.num_classes is not None else self.prefix(None, len(codes))
        if prefix.shape[1] == 0:
            raise UserError(f"{self.label}: an unconditional token-ar model needs bos_token in genbench.json (the "
                            "token the first code is predicted from)")
        nll = raster_nll(self.model, prefix, codes, self.codebook_size, batch_size=self.batch_size)
        return LogLikelihood(nll=nll.numpy(), units=np.full(len(codes), float(self.length)), unit="token",
                             kind=LikelihoodKind.EXACT, info=self._likelihood_info(batch))


class TokenMasked(_TokenModel):
    """MaskGIT-shaped: a masked LM over the codes, sampled by the zoo's masked sampler.

    Options: ``device``, ``batch_size`` (ELBO rows per forward pass), ``mc_samples`` (default
    32); runtime: ``steps`` (default 8), ``schedule`` (cosine | linear), ``temperature``,
    ``choice_temperature`` (default 4.5, MaskGIT's), ``order`` (confidence | random),
    ``guidance_scale``.
    """

    name = "token-masked"
    paradigm = "masked"
    auto_class = "AutoModelForMaskedLM"
    runtime_options = frozenset({"steps", "schedule", "temperature", "choice_temperature", "order",
                                 "guidance_scale"})

    def __init__(self, path: str | None = None, *, device: str = "cpu", batch_size: int = 64, mc_samples: int = 32,
                 steps: int = 8, schedule: str = "cosine", temperature: float = 1.0, choice_temperature: float = 4.5,
                 order: str = "confidence", guidance_scale: float = 1.0):
        super().__init__(path, device, batch_size)
        if not isinstance(self.spec.get("mask_token"), int):
            raise UserError(f"{self.label}: {self.root}/genbench.json has no 'mask_token' (the id of the mask)")
        self.mask_token = int(self.spec["mask_token"])
        self.mc_samples = mdlm.check_mc_samples(mc_samples)
        self._set(steps=steps, schedule=schedule, temperature=temperature, choice_temperature=choice_temperature,
                  order=order, guidance_scale=guidance_scale)

    def _set(self, **o: Any) -> None:
        sampler = mdlm.check_masked_sampler_options(self.name, self.length, steps=o["steps"], schedule=o["schedule"],
                                                    order=o["order"], temperature=o["temperature"],
                                                    choice_temperature=o["choice_temperature"])
        self.steps, self.schedule, self.order = sampler.steps, sampler.schedule, sampler.order
        self.temperature, self.choice_temperature = sampler.temperature, sampler.choice_temperature
        self.guidance_scale = check_guidance(self.label, o["guidance_scale"], self.null_class,
                                             self.num_classes is not None)

    def _options(self) -> dict[str, Any]:
        return {"steps": self.steps, "schedule": self.schedule, "temperature": self.temperature,
                "choice_temperature": self.choice_temperature, "order": self.order,
                "guidance_scale": self.guidance_scale}

    def with_options(self, **options: Any) -> "TokenMasked":
        if set(options) - self.runtime_options:
            return super().with_options(**options)
        view = copy.copy(self)
        view._set(**{**self._options(), **options})
        return view

    def describe(self) -> dict[str, Any]:
        return {**self._describe(self._options()), "likelihood": {"mc_samples": self.mc_samples}}

    @property
    def likelihood_kind(self) -> LikelihoodKind:
        return LikelihoodKind.UNAVAILABLE if self.likelihood_unavailable_reason else LikelihoodKind.UPPER_BOUND

    def _logits(self, ids: torch.Tensor, prefix: torch.Tensor) -> torch.Tensor:
        """Masked code ids (B, L) with their prefix (B, P) -> logits (B, L, K) over the codes only,
        left on the model's device (the sampler and the ELBO work there: nothing read back)."""
        seq = torch.cat([to_device(prefix, self.device), to_device(ids, self.device)], dim=1)
        return self.model(input_ids=seq).logits[:, prefix.shape[1]:, : self.codebook_size].float()

    def sample(self, n: int, *, seed: int, batch_size: int = 64, condition: Any = None,
               steps: int | None = None, start: int = 0) -> Samples:
        """n images uint8 (n, H, W, C); start: the index of the first sample (its random stream and
        default label)."""
        labels = condition_to_labels(self.label, n, condition, self.num_classes, start)
        model = self if steps is None or int(steps) == self.steps else self.with_options(steps=int(steps))
        guided = model.guidance_scale != 1.0
        prefixes = to_device(model.prefix(labels, n), self.device)
        null = to_device(model.null_prefix(n), self.device) if guided else None

        def logits_fn(ids: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
            rows = to_device(rows, self.device)
            cond = model._logits(ids, prefixes[rows])
            if not guided:
                return cond
            unconditional = model._logits(ids, null[: len(ids)])
            return unconditional + model.guidance_scale * (cond - unconditional)

        with torch.inference_mode():
            codes, _ = mdlm.masked_sample(logits_fn, n, self.length, self.mask_token, steps=model.steps, seed=seed,
                                          schedule=model.schedule, temperature=model.temperature,
                                          choice_temperature=model.choice_temperature, batch_size=batch_size,
                                          order=model.order, with_rows=True, first=start)
        images = np.concatenate([model.codes_to_images(codes[s: s + batch_size]) for s in range(0, n, batch_size)]) \
            if n else np.empty((0, *self.image_size, self.vq.config.out_channels), dtype=np.uint8)
        per_sample = model.steps * (2 if guided else 1)
        return Samples(images=images, nfe=per_sample * -(-n // batch_size), nfe_per_sample=float(per_sample),
                       info={"quantisation": "round", **model._options(),
                             "sampler": "genbench.adapters.mdlm.masked_sample (MaskGIT)"})

    def log_likelihood(self, batch: Any, *, seed: int = 0, start: int = 0) -> LogLikelihood:
        """uint8 images (N, H, W, C) -> the MDLM ELBO in nats of each image's h*w VQ codes."""
        if self.likelihood_unavailable_reason:
            return LogLikelihood.unavailable(len(batch), "token")
        return self.likelihood_grid(batch, seed=seed, start=start).whole()

    def likelihood_grid(self, batch: Any, *, seed: int = 0, start: int = 0) -> mdlm.ElboGrid:
        """``log_likelihood``'s (image, Monte Carlo sample) grid, computed in parts (``mdlm.ElboGrid``:
        torchrun ranks split its forward passes); image i's draws are keyed by ``start + i``."""
        if self.likelihood_unavailable_reason:
            raise UserError(f"{self.label}: {self.likelihood_unavailable_reason}")
        codes = self.images_to_codes(batch)
        prefix = self.null_prefix(1) if self.num_classes is not None else self.prefix(None, 1)
        info = {**self._likelihood_info(batch), "estimator": "MDLM ELBO over the codes (log-linear schedule, SUBS)",
                "timesteps": "antithetic", "weight": "rao-blackwell"}

        def logits_fn(ids: torch.Tensor) -> torch.Tensor:
            return self._logits(ids, prefix.expand(len(ids), -1))

        def finish(nll: np.ndarray, se: np.ndarray) -> LogLikelihood:
            return LogLikelihood(nll=np.asarray(nll), units=np.full(len(codes), float(self.length)), unit="token",
                                 kind=LikelihoodKind.UPPER_BOUND, stderr=np.asarray(se), mc_samples=self.mc_samples,
                                 info=info)

        block = (codes, None, [(start + i,) for i in range(len(codes))])
        return mdlm.sequences_to_elbo_grid(logits_fn, [block], self.mask_token, finish, mc_samples=self.mc_samples,
                                           seed=seed, batch_size=self.batch_size)


__all__ = ["TokenAR", "TokenMasked", "Rope2D", "read_layout"]
