"""``diffusers:DIR``: a diffusers pipeline folder (``model_index.json``) behind the common interface.

The denoiser is a ``UNet2DModel`` or a DiT (``DiTTransformer2DModel`` / ``Transformer2DModel``),
in pixel space or on the latents of a ``vae`` (``AutoencoderKL``) or ``vqvae`` (``VQModel``),
unconditional or class-conditional. Pipelines with a text encoder, or of any other denoiser, are
refused with the reason.

Sampling is genbench's own loop over ``scheduler.step`` (not the pipeline's ``__call__``), so
that every network evaluation is counted, noise is drawn per sample, and the speed suite times
this code. Options (``runtime_options``: changed without reloading the weights):

* ``scheduler``: ``pipeline`` (the folder's own, default), ``ddpm``, ``ddim``, ``dpm-solver++``,
  ``euler``, ``heun``, each built with ``from_config`` from the folder's scheduler config;
* ``steps`` (default 50): ``scheduler.set_timesteps(steps)``; NFE per sample is the number of
  timesteps the scheduler walks (``2 * steps - 1`` for Heun), times two with guidance;
* ``guidance_scale`` (default 1 = none): classifier-free guidance, ``eps = eps_null + g (eps_c -
  eps_null)`` on the predicted channels (as ``DiTPipeline``), the conditional and null-class
  halves run in one batch; ``null_class`` (DiT: ``num_embeds_ada_norm``, the label-dropout row);
* ``eta`` (DDIM only, default 0).

Sample ``i`` of a call draws its initial noise and every step's noise from
``sampling.example_generator(seed, i, stream="sample")`` (a per-sample generator list handed
to ``scheduler.step``), so
images do not depend on the batch size. Output: ``x`` in [-1, 1] (a latent model decodes
``latents / scaling_factor + shift_factor``) -> uint8 by the ``round`` rule,
``clamp(round(127.5 x + 127.5))`` (``Samples.info["quantisation"]``).

Likelihood: for a pixel-space model predicting epsilon, v or x0 with fixed variances, the
discrete-time variational bound of Ho et al. (2020) in nats per image, computed as
improved-diffusion's ``calc_bpd_loop``:

    -log p(x) <= L_T + sum_{t=1}^{T-1} L_{t-1} + L_0
    L_T     = KL(q(x_T | x_0) || N(0, I))                       (exact)
    L_{t-1} = KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t))     (Gaussians, at one x_t ~ q(x_t | x_0))
    L_0     = -log p(x_0 | x_1): the discretized Gaussian over 256 levels of [-1, 1] (bin 2/255, edge
              bins to +-inf; improved-diffusion's tanh approximation of the normal CDF)

with the model mean from the predicted ``x_0`` clipped to [-1, 1] (``clip_denoised``, default
true as ``image_nll.py``) and the variance ``fixed_small`` (posterior variance, log clipped at
t = 0) or ``fixed_large`` (betas, posterior variance at t = 0), from the scheduler's
``variance_type`` or the option ``variance``. The sum over the T training timesteps is estimated
from ``mc_samples`` (default 32) timesteps drawn uniformly with replacement (``T * mean``) with
its Monte Carlo standard error ``T * std / sqrt(K)``; ``all_timesteps = true`` sums every t
once (improved-diffusion's loop: one noise draw per t, no standard error). Image ``start + i``
of a call draws its timesteps, then its noise ``(K, C, H, W)``, from
``example_generator(seed, start + i, stream="likelihood")``, as every adapter's likelihood does. Latent models, learned variances and conditional models without a null class say
``unavailable`` and why.
"""
from __future__ import annotations

import copy
import inspect
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genbench.adapters.conditioning import (check_guidance, condition_to_labels, images_to_model_input,
                                            sample_generators)
from genbench.adapters.device import to_device
from genbench.adapters.sampling import example_generator
from genbench.errors import UserError
from genbench.features.quantise import float_images_to_uint8
from genbench.interfaces import Generator, LikelihoodKind, LogLikelihood, Samples

NAME = "diffusers"
#: option value -> diffusers scheduler class
SCHEDULERS = {"ddpm": "DDPMScheduler", "ddim": "DDIMScheduler", "dpm-solver++": "DPMSolverMultistepScheduler",
              "euler": "EulerDiscreteScheduler", "heun": "HeunDiscreteScheduler"}
DENOISERS = {"unet": ("UNet2DModel",), "transformer": ("DiTTransformer2DModel", "Transformer2DModel")}
AUTOENCODERS = {"vae": ("AutoencoderKL",), "vqvae": ("VQModel",)}
VARIANCES = ("fixed_small", "fixed_large")
PREDICTIONS = ("epsilon", "v_prediction", "sample")


def _fail(msg: str) -> UserError:
    return UserError(f"{NAME}: {msg}")


def read_pipeline(path: str | None) -> dict[str, Any]:
    """The folder's components: ``{"model": (key, class), "autoencoder": (key, class) | None,
    "scheduler": class, "config": the denoiser's config.json}``; every problem a one-line error."""
    fix = "use diffusers:DIR with DIR a pipeline folder written by pipeline.save_pretrained(DIR)"
    if path is None or not str(path).strip():
        raise _fail(f"needs a pipeline folder: {fix}")
    root = Path(path).expanduser()
    if not root.is_dir():
        raise _fail(f"pipeline folder {root} does not exist; {fix}")
    index_file = root / "model_index.json"
    if not index_file.is_file():
        raise _fail(f"{index_file} does not exist, so {root} is not a diffusers pipeline folder; {fix}")
    index = json.loads(index_file.read_text())
    components = {k: v[1] for k, v in index.items() if not k.startswith("_") and isinstance(v, list)
                  and len(v) == 2 and v[1] is not None}
    kind = index.get("_class_name", "?")
    extra = sorted(set(components) - {"scheduler", "id2label"} - set(DENOISERS) - set(AUTOENCODERS))
    models = [(k, components[k]) for k in DENOISERS if k in components]
    if extra or len(models) != 1 or models[0][1] not in DENOISERS[models[0][0]]:
        found = ", ".join(f"{k}={v}" for k, v in components.items())
        raise _fail(f"{index_file}: a {kind} ({found}) is not a pipeline of a kind this adapter runs: it takes an "
                    "unconditional or class-conditional UNet2DModel or DiT (unet or transformer), optionally on a "
                    "vae (AutoencoderKL) or vqvae (VQModel), with no text encoder")
    autoencoders = [(k, components[k]) for k in AUTOENCODERS if k in components]
    for k, cls in autoencoders:
        if cls not in AUTOENCODERS[k]:
            raise _fail(f"{index_file}: {k} is a {cls}; this adapter decodes latents with {AUTOENCODERS[k][0]}")
    if "scheduler" not in components:
        raise _fail(f"{index_file} names no scheduler")
    config_file = root / models[0][0] / "config.json"
    if not config_file.is_file():
        raise _fail(f"{config_file} does not exist; the folder is incomplete ({fix})")
    return {"root": root, "kind": kind, "model": models[0], "autoencoder": autoencoders[0] if autoencoders else None,
            "scheduler": components["scheduler"], "config": json.loads(config_file.read_text())}


def _classes_of(info: dict[str, Any]) -> tuple[int | None, int | None]:
    """(number of classes or None, the null class of label dropout or None) from the config."""
    cfg = info["config"]
    if info["model"][0] == "transformer":
        n = cfg.get("num_embeds_ada_norm")
        return (int(n), int(n)) if n else (None, None)
    n = cfg.get("num_class_embeds")
    return (int(n) if n else None), None


class DiffusersPipeline(Generator):
    """A diffusers UNet2DModel / DiT pipeline: genbench's own sampling loop and the DDPM bound.

    Options: ``device``, ``dtype`` (float32 | float16 | bfloat16), ``null_class``,
    ``eval_batch_size`` (forward passes of the bound), ``mc_samples``, ``all_timesteps``,
    ``variance`` (fixed_small | fixed_large; default the scheduler's), ``clip_denoised``; runtime:
    ``scheduler``, ``steps``, ``guidance_scale``, ``eta``.
    """

    name = NAME
    paradigm = "diffusion"
    modality = "image"
    likelihood_unit = "dimension"
    runtime_options = frozenset({"scheduler", "steps", "guidance_scale", "eta"})

    @classmethod
    def check_options(cls, path: str | None, **options: Any) -> None:
        info = read_pipeline(path)
        classes, null = _classes_of(info)
        null = options.get("null_class", null)
        check_guidance(f"{NAME}:{path}", options.get("guidance_scale", 1.0), null, classes is not None)
        _check_sampler(options.get("scheduler", "pipeline"), options.get("steps", 50), options.get("eta", 0.0))

    def __init__(self, path: str | None = None, *, device: str = "cpu", dtype: str = "float32",
                 scheduler: str = "pipeline", steps: int = 50, guidance_scale: float = 1.0, eta: float = 0.0,
                 null_class: int | None = None, mc_samples: int = 32, all_timesteps: bool = False,
                 variance: str | None = None, clip_denoised: bool = True, eval_batch_size: int = 64):
        import diffusers

        info = read_pipeline(path)
        self.path, self.root = str(path), info["root"]
        self.label = f"{NAME}:{path}"
        self.device = torch.device(device)
        self.dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}.get(str(dtype))
        if self.dtype is None:
            raise _fail(f"option dtype={dtype!r} must be float32, float16 or bfloat16")
        self.num_classes, default_null = _classes_of(info)
        self.null_class = default_null if null_class is None else int(null_class)
        if not isinstance(mc_samples, int) or mc_samples < 2:
            raise _fail(f"option mc_samples={mc_samples!r} must be an integer >= 2 (a standard error needs two)")
        self.mc_samples, self.all_timesteps = mc_samples, bool(all_timesteps)
        self.clip_denoised, self.eval_batch_size = bool(clip_denoised), int(eval_batch_size)
        key, cls = info["model"]
        try:
            self.model = getattr(diffusers, cls).from_pretrained(self.root, subfolder=key, torch_dtype=self.dtype,
                                                               low_cpu_mem_usage=False)
            self.autoencoder = None
            if info["autoencoder"] is not None:
                akey, acls = info["autoencoder"]
                self.autoencoder = getattr(diffusers, acls).from_pretrained(self.root, subfolder=akey, low_cpu_mem_usage=False,
                                                                            torch_dtype=self.dtype)
                self.autoencoder.to(self.device).eval()
            self.base_scheduler = getattr(diffusers, info["scheduler"]).from_pretrained(self.root,
                                                                                        subfolder="scheduler")
        except (OSError, ValueError, KeyError, AttributeError) as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise _fail(f"could not load the pipeline in {self.root}: {first}") from None
        self.model.to(self.device).eval()
        self.kind, self.denoiser = info["kind"], cls
        cfg = self.model.config
        self.channels = int(cfg.in_channels)
        size = cfg.sample_size
        self.latent_size = tuple(size) if isinstance(size, (list, tuple)) else (int(size), int(size))
        if self.autoencoder is not None:
            f = 2 ** (len(self.autoencoder.config.block_out_channels) - 1)
            self.image_size = (self.latent_size[0] * f, self.latent_size[1] * f)
            self.image_channels = int(self.autoencoder.config.out_channels)
        else:
            self.image_size, self.image_channels = self.latent_size, self.channels
        self.training = self._training_schedule()
        self.variance = variance or self._scheduler_variance()
        self.scheduler_name, self.steps, self.guidance_scale, self.eta = "pipeline", 50, 1.0, 0.0
        self._set(scheduler=scheduler, steps=steps, guidance_scale=guidance_scale, eta=eta)

    # --- options -----------------------------------------------------------------------
    def _set(self, **options: Any) -> None:
        o = {"scheduler": self.scheduler_name, "steps": self.steps, "guidance_scale": self.guidance_scale,
             "eta": self.eta, **options}
        _check_sampler(o["scheduler"], o["steps"], o["eta"])
        self.guidance_scale = check_guidance(self.label, o["guidance_scale"], self.null_class,
                                             self.num_classes is not None)
        self.scheduler_name, self.steps, self.eta = o["scheduler"], int(o["steps"]), float(o["eta"])
        if self.scheduler_name == "pipeline":
            self.scheduler = self.base_scheduler
        else:
            import diffusers

            self.scheduler = getattr(diffusers, SCHEDULERS[self.scheduler_name]).from_config(self.base_scheduler.config)
        if self.eta != 0 and type(self.scheduler).__name__ != "DDIMScheduler":
            raise _fail(f"option eta={self.eta} is DDIM's; this run's scheduler is {type(self.scheduler).__name__} "
                        "(set scheduler = \"ddim\" or drop eta)")

    def with_options(self, **options: Any) -> "DiffusersPipeline":
        if set(options) - self.runtime_options:
            return super().with_options(**options)  # raises, naming the options
        view = copy.copy(self)  # shares the weights
        view._set(**options)
        return view

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "paradigm": self.paradigm, "modality": self.modality, "path": str(self.root),
                "pipeline": self.kind, "denoiser": self.denoiser,
                "autoencoder": type(self.autoencoder).__name__ if self.autoencoder is not None else None,
                "n_params": int(sum(p.numel() for p in self.model.parameters())),
                "num_classes": self.num_classes,
                "sampler": {"scheduler": type(self.scheduler).__name__, "steps": self.steps,
                            "guidance_scale": self.guidance_scale, "eta": self.eta},
                "likelihood": {"mc_samples": self.mc_samples, "all_timesteps": self.all_timesteps,
                               "variance": self.variance, "clip_denoised": self.clip_denoised}}

    # --- sampling ----------------------------------------------------------------------
    def _denoise(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """One network evaluation: x (B, C, h, w), t (B,), labels (B,) or None -> prediction (B, C', h, w)."""
        # host tensors go through to_device (pinned, non-blocking): a plain .to() of host memory
        # waits for the device's queue to drain, at every step
        kwargs = {} if labels is None else {"class_labels": to_device(labels, self.device)}
        return self.model(to_device(x, self.device).to(self.dtype), to_device(t, self.device), **kwargs).sample.float()

    @torch.inference_mode()
    def sample(self, n: int, *, seed: int, batch_size: int = 64, condition: Any = None,
               steps: int | None = None, start: int = 0) -> Samples:
        """n images uint8 (n, H, W, C); ``condition`` int64 labels (n,) for a class-conditional model;
        start: the index of the first sample (its random stream and default label)."""
        labels = condition_to_labels(self.label, n, condition, self.num_classes, start)
        model = self if steps is None or int(steps) == self.steps else self.with_options(steps=int(steps))
        out = np.empty((n, *self.image_size, self.image_channels), dtype=np.uint8)
        per_sample = 0
        for b0, size in self.batches(n, batch_size):
            lab = None if labels is None else torch.from_numpy(labels[b0: b0 + size])
            out[b0: b0 + size], per_sample = model._sample_batch(sample_generators(seed, start + b0, size), lab)
        return Samples(images=out, nfe=per_sample * math.ceil(n / batch_size) if n else 0,
                       nfe_per_sample=float(per_sample),
                       info={"quantisation": "round", "scheduler": type(model.scheduler).__name__,
                             "steps": model.steps, "guidance_scale": model.guidance_scale, "eta": model.eta,
                             "labels": None if labels is None else ("given" if condition is not None
                                                                    else "i mod num_classes")})

    def _sample_batch(self, gens: list[torch.Generator], labels: torch.Tensor | None) -> tuple[np.ndarray, int]:
        sched = copy.deepcopy(self.scheduler)  # its step state (multistep history) is per call
        sched.set_timesteps(self.steps)
        shape = (self.channels, *self.latent_size)
        x = torch.stack([torch.randn(shape, generator=g) for g in gens]) * sched.init_noise_sigma
        x = x.to(self.device)
        guided = self.guidance_scale != 1.0
        step_kw = {}
        params = inspect.signature(sched.step).parameters
        if "generator" in params:
            step_kw["generator"] = gens
        if "eta" in params:
            step_kw["eta"] = self.eta
        evaluations = 0
        for t in sched.timesteps:
            inp = sched.scale_model_input(x, t)
            tt = torch.as_tensor(t).reshape(1).expand(len(x))
            if guided:
                null = torch.full_like(labels, self.null_class)
                pred = self._denoise(torch.cat([inp, inp]), torch.cat([tt, tt]), torch.cat([labels, null]))
                cond, uncond = pred.chunk(2)
                c = self.channels
                eps = uncond[:, :c] + self.guidance_scale * (cond[:, :c] - uncond[:, :c])
                pred = torch.cat([eps, cond[:, c:]], dim=1)
                evaluations += 2
            else:
                pred = self._denoise(inp, tt, labels)
                evaluations += 1
            if pred.shape[1] == 2 * self.channels and not (
                    type(sched).__name__ == "DDPMScheduler" and sched.config.variance_type in ("learned", "learned_range")):
                pred = pred[:, : self.channels]  # a learned variance the scheduler does not use (as DiTPipeline)
            x = sched.step(pred.to(x.dtype), t, x, **step_kw).prev_sample
        if self.autoencoder is not None:
            acfg = self.autoencoder.config
            z = x / acfg.scaling_factor + (getattr(acfg, "shift_factor", None) or 0.0)
            x = self.autoencoder.decode(z.to(self.dtype)).sample.float()
        images = float_images_to_uint8(x.permute(0, 2, 3, 1).cpu().numpy(), "round")
        return images, evaluations

    # --- likelihood --------------------------------------------------------------------
    def _training_schedule(self) -> dict[str, torch.Tensor] | None:
        """float64 betas, alphas_cumprod of the T training steps (any discrete diffusers scheduler)."""
        betas = getattr(self.base_scheduler, "betas", None)
        if betas is None:
            return None
        betas = betas.double()
        acp = torch.cumprod(1 - betas, 0)
        prev = torch.cat([torch.ones(1, dtype=torch.float64), acp[:-1]])
        post_var = betas * (1 - prev) / (1 - acp)
        return {"betas": betas, "acp": acp, "post_var": post_var,
                "post_logvar_clipped": torch.log(torch.cat([post_var[1:2], post_var[1:]])),
                "coef_x0": betas * prev.sqrt() / (1 - acp), "coef_xt": (1 - prev) * (1 - betas).sqrt() / (1 - acp)}

    def _scheduler_variance(self) -> str:
        v = getattr(self.base_scheduler.config, "variance_type", None) or "fixed_small"
        return {"fixed_small_log": "fixed_small", "fixed_large_log": "fixed_large"}.get(v, v)

    @property
    def likelihood_unavailable_reason(self) -> str:
        if self.autoencoder is not None:
            return (f"likelihood_kind is unavailable: {self.label} is a latent model (its {type(self.autoencoder).__name__}"
                    " decoder has no tractable likelihood of pixels)")
        if self.training is None:
            return f"likelihood_kind is unavailable: the scheduler {type(self.base_scheduler).__name__} has no betas"
        if self.model.config.out_channels != self.channels or self.variance not in VARIANCES:
            return (f"likelihood_kind is unavailable: {self.label} has learned variances ({self.variance}, "
                    f"{self.model.config.out_channels} output channels); only fixed_small / fixed_large are supported")
        pred = self.base_scheduler.config.get("prediction_type", "epsilon")
        if pred not in PREDICTIONS:
            return f"likelihood_kind is unavailable: prediction_type {pred!r} is not one of {PREDICTIONS}"
        if self.num_classes is not None and self.null_class is None:
            return ("likelihood_kind is unavailable: the model is class-conditional with no null class, and the "
                    "likelihood suite has no labels; pass null_class=ID to score p(x) under the null class")
        return ""

    @property
    def likelihood_kind(self) -> LikelihoodKind:
        return LikelihoodKind.UNAVAILABLE if self.likelihood_unavailable_reason else LikelihoodKind.UPPER_BOUND

    def _schedule_on_device(self) -> dict[str, torch.Tensor]:
        """``training`` (float64) on the model's device, copied there once: the bound's terms are
        computed where the network's predictions are, with nothing read back per batch."""
        cached = getattr(self, "_device_schedule", None)
        if cached is None or cached[0] != str(self.device):
            cached = self._device_schedule = (str(self.device), {k: to_device(v, self.device)
                                                                 for k, v in self.training.items()})
        return cached[1]

    def _x0_from(self, pred: torch.Tensor, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = self._schedule_on_device()["acp"][t].view(-1, 1, 1, 1)
        kind = self.base_scheduler.config.get("prediction_type", "epsilon")
        if kind == "epsilon":
            x0 = (xt - (1 - a).sqrt() * pred) / a.sqrt()
        elif kind == "v_prediction":
            x0 = a.sqrt() * xt - (1 - a).sqrt() * pred
        else:
            x0 = pred
        return x0.clamp(-1, 1) if self.clip_denoised else x0

    def timestep_terms(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """The bound's term at timestep t (0-based: L_0 at t = 0, else L_{t}'s KL) for each row:
        x0 (B, C, H, W) in [-1, 1], t (B,) int64, noise (B, C, H, W) -> (B,) float64 nats, on
        the model's device (computed there in float64)."""
        s = self._schedule_on_device()
        x0, noise, t = (to_device(v, self.device) for v in (x0.double(), noise.double(), t))
        a = s["acp"][t].view(-1, 1, 1, 1)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
        labels = None if self.num_classes is None else torch.full((len(t),), self.null_class, dtype=torch.int64,
                                                                  device=t.device)
        pred = self._denoise(xt.float(), t, labels).double()
        x0_hat = self._x0_from(pred, xt, t)
        mean = s["coef_x0"][t].view(-1, 1, 1, 1) * x0_hat + s["coef_xt"][t].view(-1, 1, 1, 1) * xt
        if self.variance == "fixed_small":
            logvar = s["post_logvar_clipped"][t]
        else:
            logvar = torch.log(torch.cat([s["post_var"][1:2], s["betas"][1:]]))[t]
        logvar = logvar.view(-1, 1, 1, 1).expand_as(mean)
        true_mean = s["coef_x0"][t].view(-1, 1, 1, 1) * x0 + s["coef_xt"][t].view(-1, 1, 1, 1) * xt
        true_logvar = s["post_logvar_clipped"][t].view(-1, 1, 1, 1).expand_as(mean)
        kl = normal_kl(true_mean, true_logvar, mean, logvar).flatten(1).sum(1)
        decoder = -discretized_gaussian_log_likelihood(x0, mean, 0.5 * logvar).flatten(1).sum(1)
        return torch.where(t == 0, decoder, kl)

    def prior_term(self, x0: torch.Tensor) -> torch.Tensor:
        """L_T = KL(q(x_T | x_0) || N(0, I)): x0 (B, C, H, W) -> (B,) float64 nats."""
        a = self.training["acp"][-1]
        zero = torch.zeros((), dtype=torch.float64)
        return normal_kl(a.sqrt() * x0.double(), torch.log(1 - a).expand_as(x0).double(), zero, zero).flatten(1).sum(1)

    @torch.inference_mode()
    def log_likelihood(self, batch: Any, *, seed: int = 0, start: int = 0) -> LogLikelihood:
        """uint8 images (N, H, W, C) -> the DDPM bound in nats per image over H*W*C dimensions."""
        if self.likelihood_unavailable_reason:
            return LogLikelihood.unavailable(len(batch), "dimension")
        images = images_to_model_input(self.label, batch, self.image_size, self.channels)
        x0 = torch.from_numpy(images).permute(0, 3, 1, 2).double() / 127.5 - 1.0
        n, big_t = len(x0), len(self.training["betas"])
        k = big_t if self.all_timesteps else self.mc_samples
        rows_t, rows_noise = [], []
        for i in range(n):
            g = example_generator(seed, start + i, stream="likelihood")
            rows_t.append(torch.arange(big_t) if self.all_timesteps else torch.randint(0, big_t, (k,), generator=g))
            rows_noise.append(torch.randn((k, *x0.shape[1:]), generator=g, dtype=torch.float64))
        ts, noise = torch.stack(rows_t), torch.stack(rows_noise)  # (N, K), (N, K, C, H, W)
        # the (image, timestep) pairs in row-major order, eval_batch_size per forward pass; each
        # batch's terms stay on the device until one read at the end
        ii, jj = torch.arange(n).repeat_interleave(k), torch.arange(k).repeat(n)
        t_flat, parts = ts[ii, jj], []
        for s0 in range(0, n * k, self.eval_batch_size):
            rows = slice(s0, s0 + self.eval_batch_size)
            parts.append(self.timestep_terms(x0[ii[rows]], t_flat[rows], noise[ii[rows], jj[rows]]))
        terms = (torch.cat(parts).cpu() if parts else torch.empty(0, dtype=torch.float64)).view(n, k)
        prior = self.prior_term(x0)
        if self.all_timesteps:
            nll, stderr, mc = prior + terms.sum(1), None, None
        else:
            nll = prior + big_t * terms.mean(1)
            stderr, mc = (big_t * terms.std(1, unbiased=True) / math.sqrt(k)).numpy(), k
        info = {"estimator": "DDPM discrete-time variational bound (Ho et al. 2020; improved-diffusion calc_bpd_loop)",
                "decoder": "discretized Gaussian over 256 levels of [-1, 1]", "levels": 256,
                "timesteps": f"all {big_t}, one noise draw each" if self.all_timesteps
                else f"{k} drawn uniformly of {big_t}, with replacement",
                "all_timesteps": self.all_timesteps, "variance": self.variance, "clip_denoised": self.clip_denoised,
                "conditioning": None if self.num_classes is None else f"null class {self.null_class}",
                "grey_input": "replicated to RGB" if np.asarray(batch).shape[-1] == 1 and self.channels == 3 else None}
        return LogLikelihood(nll=nll.numpy(), units=np.full(n, float(np.prod(x0.shape[1:]))), unit="dimension",
                             kind=LikelihoodKind.UPPER_BOUND, stderr=stderr, mc_samples=mc, info=info)


def _check_sampler(scheduler: Any, steps: Any, eta: Any) -> None:
    if scheduler != "pipeline" and scheduler not in SCHEDULERS:
        raise _fail(f"option scheduler={scheduler!r} is not one of pipeline, {', '.join(SCHEDULERS)}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise _fail(f"option steps={steps!r} must be a positive integer")
    if not isinstance(eta, (int, float)) or not 0 <= eta <= 1:
        raise _fail(f"option eta={eta!r} must be a number in [0, 1] (DDIM's)")


def normal_kl(mean1, logvar1, mean2, logvar2) -> torch.Tensor:
    """KL(N(mean1, e^logvar1) || N(mean2, e^logvar2)) elementwise, nats (broadcasting)."""
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2)
                  + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def _approx_standard_normal_cdf(x: torch.Tensor) -> torch.Tensor:
    # improved-diffusion's (and Ho et al.'s) tanh approximation, kept so the numbers are theirs
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def discretized_gaussian_log_likelihood(x: torch.Tensor, means: torch.Tensor, log_scales: torch.Tensor) -> torch.Tensor:
    """log p(x) of 8-bit data x in [-1, 1] (levels 2/255 apart) under N(means, e^(2 log_scales))
    discretized to the 256 bins (edge bins extended to +-inf), elementwise, nats."""
    centered = x - means
    inv_stdv = torch.exp(-log_scales)
    cdf_plus = _approx_standard_normal_cdf(inv_stdv * (centered + 1.0 / 255.0))
    cdf_min = _approx_standard_normal_cdf(inv_stdv * (centered - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    log_delta = torch.log((cdf_plus - cdf_min).clamp(min=1e-12))
    return torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_min, log_delta))


__all__ = ["DiffusersPipeline", "read_pipeline", "SCHEDULERS", "normal_kl", "discretized_gaussian_log_likelihood"]
