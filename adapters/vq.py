"""A small VQ-VAE tokenizer for the 8x8 digits (``vq-digits``, :class:`VQDigits`).

Images are mapped to the 17 grey levels and scaled to ``[0, 1]`` (level / 16). A conv
encoder downsamples by 2 to a 4x4 grid of ``code_dim``-vectors; each is replaced by its
nearest codebook entry (squared Euclidean distance, ties to the lower index), and a conv
decoder maps the 4x4 grid of entries back to 8x8 intensities, which ``decode`` rounds to
the nearest of the 17 levels (so its output is on the same grid as the data).

Training (VQ-VAE, van den Oord et al. 2017): reconstruction MSE on [0, 1] plus a
commitment loss ``beta ||z_e - sg(e)||^2``, straight-through gradients from the decoder to
the encoder, and a codebook updated by exponential moving averages of its assigned
vectors (VQ-VAE-2, Razavi et al. 2019); a code whose average usage falls below a threshold
is restarted on a random encoder output of the current batch.

Reconstruction quality (the card's validation metric): PSNR on [0, 1] images with data
range 1, ``10 log10(1 / MSE)`` with MSE over every pixel of the split (a per-image mean
of PSNR would be infinite for any image rebuilt exactly, which happens here).
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from genbench import data
from genbench.adapters import zoo
from genbench.adapters.sampling import cosine_lr
from genbench.errors import UserError
from genbench.interfaces import Tokenizer
from genbench.registry import ADAPTERS

LEVELS = data.DIGITS_LEVELS


@dataclass
class VQConfig:
    codebook_size: int = 256
    code_dim: int = 16
    channels: int = 64
    downsample: int = 2     # 8x8 images -> (8 / downsample)^2 codes

    def to_dict(self) -> dict:
        return asdict(self)


class VQVAE(nn.Module):
    """images (B, 1, 8, 8) in [0, 1] <-> codes (B, 4, 4) int64."""

    def __init__(self, cfg: VQConfig):
        super().__init__()
        if cfg.downsample != 2:
            raise ValueError("only downsample=2 (8x8 -> 4x4 codes) is implemented")
        self.cfg = cfg
        c = cfg.channels
        self.encoder = nn.Sequential(
            nn.Conv2d(1, c // 2, 3, padding=1), nn.SiLU(),
            nn.Conv2d(c // 2, c, 4, stride=2, padding=1), nn.SiLU(),   # 8x8 -> 4x4
            nn.Conv2d(c, c, 3, padding=1), nn.SiLU(),
            nn.Conv2d(c, cfg.code_dim, 1),
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(cfg.code_dim, c, 3, padding=1), nn.SiLU(),
            nn.Conv2d(c, c, 3, padding=1), nn.SiLU(),
            nn.ConvTranspose2d(c, c // 2, 4, stride=2, padding=1), nn.SiLU(),  # 4x4 -> 8x8
            nn.Conv2d(c // 2, 1, 3, padding=1),
        )
        self.register_buffer("codebook", torch.randn(cfg.codebook_size, cfg.code_dim) * 0.1)
        # EMA statistics are training state only: not shipped
        self.register_buffer("ema_count", torch.ones(cfg.codebook_size), persistent=False)
        self.register_buffer("ema_sum", self.codebook.clone(), persistent=False)

    def encode_vectors(self, x: torch.Tensor) -> torch.Tensor:
        """images (B, 1, 8, 8) -> encoder outputs (B, 4, 4, code_dim)."""
        return self.encoder(x).permute(0, 2, 3, 1)

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """vectors (..., code_dim) -> index of the nearest codebook entry (...) int64."""
        flat = z.reshape(-1, z.shape[-1])
        dist = (flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.codebook.t()
                + self.codebook.pow(2).sum(1)[None, :])
        return dist.argmin(1).view(z.shape[:-1])

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (B, 4, 4) int64 -> intensities (B, 1, 8, 8) float, roughly in [0, 1]."""
        return self.decoder(self.codebook[codes].permute(0, 3, 1, 2))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, 1, 8, 8) -> (reconstruction, commitment loss, codes), straight-through."""
        z = self.encode_vectors(x)
        codes = self.nearest(z.detach())
        q = self.codebook[codes]
        commit = F.mse_loss(z, q.detach())
        q_st = z + (q - z).detach()
        return self.decoder(q_st.permute(0, 3, 1, 2)), commit, codes

    @torch.no_grad()
    def ema_update(self, z: torch.Tensor, codes: torch.Tensor, decay: float, restart_below: float,
                   gen: torch.Generator) -> int:
        """Move each entry toward the mean of its assigned vectors; restart dead entries on
        random vectors of this batch. Returns how many entries were restarted."""
        flat, idx = z.reshape(-1, z.shape[-1]), codes.reshape(-1)
        onehot = F.one_hot(idx, self.cfg.codebook_size).type_as(flat)
        self.ema_count.mul_(decay).add_(onehot.sum(0), alpha=1 - decay)
        self.ema_sum.mul_(decay).add_(onehot.t() @ flat, alpha=1 - decay)
        n = self.ema_count.sum()
        # Laplace smoothing keeps an empty entry from dividing by zero
        count = (self.ema_count + 1e-5) / (n + self.cfg.codebook_size * 1e-5) * n
        self.codebook.copy_(self.ema_sum / count[:, None])
        dead = torch.nonzero(self.ema_count < restart_below).view(-1)
        if len(dead):
            pick = torch.randint(0, len(flat), (len(dead),), generator=gen)
            self.codebook[dead] = flat[pick]
            self.ema_sum[dead] = flat[pick]
            self.ema_count[dead] = 1.0
        return int(len(dead))


def images_to_unit(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, 8, 8, 1) -> float32 (N, 1, 8, 8) in [0, 1] on the 17-level grid."""
    return torch.from_numpy(data.image_to_levels(images)).float().permute(0, 3, 1, 2) / (LEVELS - 1)


def unit_to_images(x: torch.Tensor) -> np.ndarray:
    """float (N, 1, 8, 8) intensities -> uint8 (N, 8, 8, 1), rounded to the nearest level."""
    levels = torch.clamp(torch.round(x * (LEVELS - 1)), 0, LEVELS - 1).long()
    return data.levels_to_image(levels.permute(0, 2, 3, 1).numpy())


def images_to_psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of uint8 images b against a, both read as [0, 1], data range 1, with the
    MSE taken over every pixel of the set."""
    mse = float(np.mean((a.astype(np.float64) / 255.0 - b.astype(np.float64) / 255.0) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)


@ADAPTERS.register("vq-digits")
class VQDigits(Tokenizer):
    """VQ-VAE tokenizer: uint8 (N, 8, 8, 1) digits <-> int64 codes (N, 4, 4) in [0, codebook_size).

    ``encode`` maps pixels to the nearest of the 17 grey levels first; ``decode`` returns
    images on the 17-level grid. Both are deterministic.
    """

    name = "vq-digits"
    modality = "image"
    kind = "discrete"
    channels = 1
    resolution = (8, 8)
    pixel_scaling = "nearest of the 17 grey levels, level / 16 ([0, 1])"
    output_quantisation = ("round(16 y) clamped to the levels 0..16, then uint8 round(level * 255 / 16) "
                           "(the data's own grid)")

    def __init__(self, path: str | None = None, *, device: str = "cpu", batch_size: int = 512):
        state, meta = zoo.load_model_state(self.name, Path(path) if path is not None else None)
        self.meta = meta
        self.config = VQConfig(**meta["config"]["vq"])
        self.device = torch.device(device)
        self.model = VQVAE(self.config)
        self.model.load_state_dict(state)
        self.model.to(self.device).eval()
        self.codebook_size = self.config.codebook_size
        self.downsampling = self.config.downsample
        self.grid = 8 // self.config.downsample
        self.batch_size = int(batch_size)
        if self.batch_size < 1:
            raise UserError(f"{self.name}: batch_size must be >= 1, got {batch_size}")

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "modality": self.modality, "weights_sha256": self.meta["sha256"],
                "code_dim": self.config.code_dim, "code_grid": [self.grid, self.grid]}

    def encode(self, images: np.ndarray) -> np.ndarray:
        """uint8 (N, 8, 8, 1) -> int64 codes (N, 4, 4)."""
        self.check_images(images, "encode")
        out = np.empty((len(images), self.grid, self.grid), dtype=np.int64)
        with torch.inference_mode():
            for s in range(0, len(images), self.batch_size):
                x = images_to_unit(images[s: s + self.batch_size]).to(self.device)
                out[s: s + self.batch_size] = self.model.nearest(self.model.encode_vectors(x)).cpu().numpy()
        return out

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """int64 codes (N, 4, 4) in [0, codebook_size) -> uint8 (N, 8, 8, 1) on the 17-level grid."""
        if not isinstance(codes, np.ndarray) or not np.issubdtype(codes.dtype, np.integer) \
                or codes.ndim != 3 or codes.shape[1:] != (self.grid, self.grid):
            raise UserError(
                f"{self.name}: decode takes an integer array (N, {self.grid}, {self.grid}); got "
                f"{type(codes).__name__} {getattr(codes, 'dtype', '')} {getattr(codes, 'shape', '')}")
        if codes.size and (codes.min() < 0 or codes.max() >= self.codebook_size):
            raise UserError(f"{self.name}: codes must lie in [0, {self.codebook_size}); got values from "
                            f"{codes.min()} to {codes.max()}")
        out = np.empty((len(codes), 8, 8, 1), dtype=np.uint8)
        with torch.inference_mode():
            for s in range(0, len(codes), self.batch_size):
                c = torch.from_numpy(codes[s: s + self.batch_size].astype(np.int64)).to(self.device)
                out[s: s + self.batch_size] = unit_to_images(self.model.decode_codes(c).cpu())
        return out


# --------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------
DIGITS_TRAIN = {"steps": 1600, "batch_size": 128, "lr": 2e-3, "beta": 0.25, "ema_decay": 0.99,
                "restart_below": 0.03, "eval_every": 250}
DIGITS_ARCH = {"codebook_size": 256, "code_dim": 16, "channels": 64, "downsample": 2}


def _model_to_reconstruction(model: VQVAE, x: torch.Tensor) -> tuple[np.ndarray, torch.Tensor]:
    """x (N, 1, 8, 8) in [0, 1] -> (uint8 reconstructions (N, 8, 8, 1), codes (N, 4, 4))."""
    model.eval()
    with torch.inference_mode():
        codes = model.nearest(model.encode_vectors(x))
        return unit_to_images(model.decode_codes(codes)), codes


def train_vq_digits(seed: int = 0, out_dir: Path = zoo.WEIGHTS_DIR, *, log_every: int = 0,
                    **overrides: Any) -> None:
    """Train vq-digits on the train split; keeps the checkpoint with the best val PSNR."""
    hp = zoo.with_overrides(DIGITS_TRAIN, overrides)
    arch = zoo.with_overrides(DIGITS_ARCH, overrides)
    gen = zoo.seed_everything(seed)
    train_images = data.digits_arrays("train")[0]
    val_images = data.digits_arrays("val")[0]
    train_x, val_x = images_to_unit(train_images), images_to_unit(val_images)
    val_ref = unit_to_images(val_x)
    cfg = VQConfig(**arch)
    model = VQVAE(cfg)
    # start the codebook on encoder outputs so that every entry is in use from the start
    with torch.no_grad():
        z0 = model.encode_vectors(train_x).reshape(-1, cfg.code_dim)
        pick = torch.randperm(len(z0), generator=gen)[: cfg.codebook_size]
        model.codebook.copy_(z0[pick])
        model.ema_sum.copy_(z0[pick])
    params = list(model.encoder.parameters()) + list(model.decoder.parameters())
    opt = torch.optim.AdamW(params, lr=hp["lr"], weight_decay=0.0)
    steps, bs = hp["steps"], hp["batch_size"]
    perm = torch.empty(0, dtype=torch.int64)
    best = (-math.inf, steps, None)
    restarts = 0
    t0 = time.perf_counter()
    for step in range(steps):
        model.train()
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, steps, hp["lr"], warmup=max(1, steps // 50), floor=0.05)
        if len(perm) < bs:
            perm = torch.randperm(len(train_x), generator=gen)
        idx, perm = perm[:bs], perm[bs:]
        x = train_x[idx]
        z = model.encode_vectors(x)
        codes = model.nearest(z.detach())
        q = model.codebook[codes]
        recon = model.decoder((z + (q - z).detach()).permute(0, 3, 1, 2))
        rec_loss = F.mse_loss(recon, x)
        commit = F.mse_loss(z, q.detach())
        loss = rec_loss + hp["beta"] * commit
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        # no restarts in the last tenth, so that the decoder settles on the final codebook
        restart = hp["restart_below"] if step < 0.9 * steps else 0.0
        restarts += model.ema_update(z.detach(), codes, hp["ema_decay"], restart, gen)
        last = step == steps - 1
        if log_every and (step % log_every == 0 or last):
            print(f"step {step} mse {rec_loss.item():.5f} commit {commit.item():.5f} restarts {restarts} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
        if (step + 1) % hp["eval_every"] == 0 or last:
            rec, _ = _model_to_reconstruction(model, val_x)
            psnr = images_to_psnr(val_ref, rec)
            if log_every:
                print(f"  step {step + 1} val PSNR {psnr:.2f} dB", flush=True)
            if psnr > best[0]:
                best = (psnr, step + 1, {k: v.detach().clone() for k, v in model.state_dict().items()})
    seconds = time.perf_counter() - t0
    model.load_state_dict(best[2])
    rec, codes = _model_to_reconstruction(model, val_x)
    mse = float(np.mean((val_ref / 255.0 - rec / 255.0) ** 2))
    _, train_codes = _model_to_reconstruction(model, train_x)
    card = {
        "paradigm": "tokenizer", "modality": "image",
        "summary": f"VQ-VAE tokenizer for 8x8 digits: conv encoder/decoder, {cfg.codebook_size}-entry EMA codebook "
                   f"of {cfg.code_dim}-d codes on a 4x4 grid (downsampling 2), decoder output rounded to the 17 "
                   "grey levels.",
        "train_steps": steps, "selected_step": best[1], "seed": seed, "train_seconds": round(seconds, 1),
        "val_metric": {"name": "val PSNR on [0, 1] images (data range 1, MSE over all pixels of the split), "
                               "checkpoint selected on it", "value": best[0], "unit": "dB"},
        "val_mse": mse,
        "val_exact_images": float(np.mean(np.all(rec == val_ref, axis=(1, 2, 3)))),
        "codebook_usage": {"train_distinct_codes": int(torch.unique(train_codes).numel()),
                           "val_distinct_codes": int(torch.unique(codes).numel()),
                           "dead_code_restarts": restarts},
        "data": "digits train split (1,197 images); validation on the 200-image val split",
        "hyperparameters": hp,
    }
    config = {"vq": cfg.to_dict(), "levels": LEVELS, "code_grid": [8 // cfg.downsample] * 2}
    zoo.save_model("vq-digits", model, config=config, card=card, out_dir=out_dir)
