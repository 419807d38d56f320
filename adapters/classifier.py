"""``digits-classifier``: a small CNN on 8x8 digits whose penultimate layer is the domain
feature extractor for FID / KID / precision-recall on digits.

Inception-v3 features mean little on 8x8 grey digits (they are upsampled 37x and the network
never saw such images), so the image suites on digits use a network trained on the digits
themselves, as papers on MNIST-like data do. Its test accuracy is recorded in its card and
checked by the tests (>= 95%).

Input convention: uint8 images (N, 8, 8, 1), or (N, 8, 8, 3) whose three channels are equal
(``genbench fid`` replicates grey data sets to RGB); scaled to ``x / 255``; no resize.
Features: the 128 ReLU activations before the last linear layer, float64 (N, 128), computed
in float64.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from genbench import data
from genbench.adapters import zoo
from genbench.errors import UserError
from genbench.interfaces import FeatureExtractor
from genbench.registry import EXTRACTORS

NAME = "digits-classifier"
FEATURE_DIM = 128
N_CLASSES = 10


class DigitsCNN(nn.Module):
    """x (B, 1, 8, 8) float in [0, 1] -> (features (B, 128) after ReLU, logits (B, 10))."""

    def __init__(self, width: int = 32, feature_dim: int = FEATURE_DIM, dropout: float = 0.3):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),                                     # 8x8 -> 4x4
            nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.ReLU(),
            nn.Flatten(),
        )
        self.fc = nn.Linear(2 * width * 16, feature_dim)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(feature_dim, N_CLASSES)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = F.relu(self.fc(self.body(x)))
        return h, self.out(self.drop(h))


def images_to_input(images: Any, where: str = NAME) -> torch.Tensor:
    """uint8 (N, 8, 8, 1) or grey-as-RGB (N, 8, 8, 3) -> float32 (N, 1, 8, 8) in [0, 1]."""
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4:
        raise UserError(f"{where}: takes uint8 images (N, 8, 8, 1); got {type(images).__name__} "
                        f"{getattr(images, 'dtype', '')} {getattr(images, 'shape', '')}")
    n, h, w, c = images.shape
    if (h, w) != (8, 8):
        raise UserError(f"{where}: images are {h}x{w}, but this extractor only reads 8x8 digits (no resize); "
                        "use --extractor inception (or torchscript:FILE) for other images")
    if c == 3:
        if not (np.array_equal(images[..., 0], images[..., 1]) and np.array_equal(images[..., 0], images[..., 2])):
            raise UserError(f"{where}: images have 3 different colour channels; this extractor reads grey digits "
                            "(1 channel, or 3 equal channels)")
        images = images[..., :1]
    elif c != 1:
        raise UserError(f"{where}: images have {c} channels; this extractor reads grey digits (1 or 3 equal channels)")
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).float() / 255.0


class DigitsClassifierExtractor(FeatureExtractor):
    """The shipped digits classifier as a :class:`FeatureExtractor` (and a classifier).

    ``features(images)`` -> float64 (N, 128); ``predict(images)`` -> int64 (N,) labels.
    """

    name = NAME
    dim = FEATURE_DIM

    def __init__(self, path: str | None = None, *, device: str = "cpu", batch_size: int = 1024):
        state, meta = zoo.load_model_state(NAME, Path(path) if path is not None else None)
        self.meta = meta
        self.model = DigitsCNN(**meta["config"]["architecture"])
        self.model.load_state_dict(state)
        self.device = torch.device(device)
        # float64: features then do not depend on batch size beyond ~1e-15, so neither does
        # FID (the network is small enough that this costs nothing measurable)
        self.model.to(self.device, torch.float64).eval()
        self.batch_size = int(batch_size)

    def _run(self, images: np.ndarray, batch_size: int | None) -> tuple[np.ndarray, np.ndarray]:
        x = images_to_input(images)
        bs = int(batch_size or self.batch_size)
        feats, logits = [], []
        with torch.inference_mode():
            for s in range(0, len(x), bs):
                h, z = self.model(x[s: s + bs].to(self.device, torch.float64))
                feats.append(h.double().cpu())
                logits.append(z.double().cpu())
        if not feats:
            return np.zeros((0, self.dim)), np.zeros((0, N_CLASSES))
        return torch.cat(feats).numpy(), torch.cat(logits).numpy()

    def features(self, images: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
        """uint8 (N, 8, 8, 1|3) -> float64 (N, 128): penultimate ReLU activations."""
        return self._run(images, batch_size)[0]

    def predict(self, images: np.ndarray) -> np.ndarray:
        """uint8 (N, 8, 8, 1|3) -> int64 (N,) predicted digit."""
        return self._run(images, None)[1].argmax(-1).astype(np.int64)

    def describe(self) -> dict[str, Any]:
        card = self.meta["card"]
        return {"extractor": NAME, "weights_sha256": self.meta["sha256"], "dim": self.dim,
                "layer": "penultimate (fc, after ReLU)", "input": "8x8 grey, x/255", "resize": "none",
                "test_accuracy": card.get("test_accuracy")}


EXTRACTORS.register(NAME, DigitsClassifierExtractor)


# --------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------
TRAIN = {"epochs": 40, "batch_size": 64, "lr": 2e-3, "weight_decay": 1e-4, "shift": 1}
ARCH = {"width": 32, "feature_dim": FEATURE_DIM, "dropout": 0.3}


def _shift(x: torch.Tensor, gen: torch.Generator, max_shift: int) -> torch.Tensor:
    """Each image moved by a random whole-pixel offset in [-max_shift, max_shift]^2 (zero fill)."""
    if max_shift == 0:
        return x
    padded = F.pad(x, (max_shift,) * 4)
    offsets = torch.randint(0, 2 * max_shift + 1, (len(x), 2), generator=gen)
    return torch.stack([padded[i, :, dy: dy + 8, dx: dx + 8] for i, (dy, dx) in enumerate(offsets.tolist())])


def _accuracy(model: DigitsCNN, split: str) -> float:
    images, labels = data.digits_arrays(split)
    model.eval()
    with torch.inference_mode():
        pred = model(images_to_input(images))[1].argmax(-1).numpy()
    return float((pred == labels).mean())


def train_digits_classifier(seed: int = 0, out_dir: Path = zoo.WEIGHTS_DIR, *, log_every: int = 0,
                            **overrides: Any) -> None:
    """Cross-entropy on the train split with +-1 pixel shifts; the epoch with the best val
    accuracy is kept; the card records val and test accuracy."""
    hp = zoo.with_overrides(TRAIN, overrides)
    gen = zoo.seed_everything(seed)
    images, labels = data.digits_arrays("train")
    x, y = images_to_input(images), torch.from_numpy(labels)
    model = DigitsCNN(**ARCH)
    opt = torch.optim.AdamW(model.parameters(), lr=hp["lr"], weight_decay=hp["weight_decay"])
    steps_per_epoch = math.ceil(len(x) / hp["batch_size"])
    total = hp["epochs"] * steps_per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=hp["lr"], total_steps=total)
    t0 = time.perf_counter()
    best = (-1.0, 0, None)
    loss_curve = []  # mean training loss per epoch: its shape, unlike its bytes, holds on every CPU
    for epoch in range(hp["epochs"]):
        model.train()
        epoch_loss, batches = 0.0, 0
        perm = torch.randperm(len(x), generator=gen)
        for s in range(0, len(x), hp["batch_size"]):
            idx = perm[s: s + hp["batch_size"]]
            _, logits = model(_shift(x[idx], gen, hp["shift"]))
            loss = F.cross_entropy(logits, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            epoch_loss, batches = epoch_loss + loss.item(), batches + 1
        loss_curve.append(round(epoch_loss / batches, 5))
        val = _accuracy(model, "val")
        if log_every and (epoch % log_every == 0 or epoch == hp["epochs"] - 1):
            print(f"epoch {epoch} loss {loss.item():.4f} val acc {val:.4f}", flush=True)
        if val > best[0]:
            best = (val, epoch + 1, {k: v.detach().clone() for k, v in model.state_dict().items()})
    model.load_state_dict(best[2])
    model.eval()
    seconds = time.perf_counter() - t0
    test_acc = _accuracy(model, "test")
    card = {
        "paradigm": "classifier", "modality": "image",
        "summary": "Small CNN (3 conv layers, a 128-unit ReLU layer, a linear head) classifying 8x8 digits; "
                   "its 128 penultimate activations are the `digits-classifier` feature extractor for FID, KID "
                   "and precision/recall on digits.",
        "train_steps": total, "selected_epoch": best[1], "seed": seed, "train_seconds": round(seconds, 1),
        "val_metric": {"name": "val accuracy (200 images), epoch selected on it", "value": best[0],
                       "unit": "fraction"},
        "test_accuracy": test_acc,
        "loss_curve": loss_curve,
        "data": "digits train split (1,197 images) with random +-1 pixel shifts",
        "hyperparameters": hp,
    }
    zoo.save_model(NAME, model, config={"architecture": ARCH, "input": "x/255, (N, 1, 8, 8)"}, card=card,
                   out_dir=out_dir)
