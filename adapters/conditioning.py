"""What the image adapters for real checkpoints share: class labels, guidance, per-sample
generators and the images a model reads.

* ``condition`` is an int64 label array ``(n,)``; ``None`` on a class-conditional model means
  the equal-count schedule ``label(j) = j mod num_classes`` over the run's sample indices
  ``j = start + i``.
* Sample ``i`` of a call with ``seed`` and ``start`` draws all its randomness from
  ``sampling.example_generator(seed, start + i, stream="sample")``, so a sample does not depend
  on the batch size, nor on how the caller splits the run into calls (chunks, ranks).
* Classifier-free guidance evaluates the conditional and the null-class (unconditional) halves:
  two network evaluations per sample and step, counted as such in ``nfe_per_sample``.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from genbench.adapters.sampling import example_generator
from genbench.errors import UserError


def sample_generators(seed: int, start: int, size: int) -> list[torch.Generator]:
    """One CPU generator per sample ``start .. start + size`` of a call."""
    return [example_generator(seed, start + i, stream="sample") for i in range(size)]


def condition_to_labels(name: str, n: int, condition: Any, num_classes: int | None,
                        start: int = 0) -> np.ndarray | None:
    """A call's labels: int64 (n,) or None for an unconditional model.

    ``condition=None`` on a class-conditional model gives the equal-count schedule
    ``(start + i) mod num_classes`` (by the run's sample index, whatever the calls); a label
    outside ``[0, num_classes)`` or a condition for an unconditional model is a one-line
    ``UserError`` naming the adapter."""
    if num_classes is None:
        if condition is not None:
            raise UserError(f"{name} is unconditional: it takes no class labels (condition); pass condition=None, "
                            "or drop num_classes / samples_per_class from [suite.image_quality]")
        return None
    if condition is None:
        return np.arange(start, start + n, dtype=np.int64) % num_classes
    labels = np.asarray(condition)
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
        raise UserError(f"{name}: condition must be an integer label array of shape ({n},); got "
                        f"{labels.dtype} {labels.shape}")
    bad = (labels < 0) | (labels >= num_classes)
    if bad.any():
        raise UserError(f"{name}: class label {int(labels[bad][0])} is out of range: the model has {num_classes} "
                        f"classes (0..{num_classes - 1}); set [suite.image_quality] num_classes <= {num_classes}")
    return labels.astype(np.int64)


def check_guidance(name: str, guidance_scale: Any, null_class: int | None, conditional: bool) -> float:
    """The guidance scale as a float (1.0 = no guidance), or a one-line error naming the option."""
    try:
        g = float(guidance_scale)
    except (TypeError, ValueError):
        g = float("nan")
    if not g >= 0 or g == float("inf"):
        raise UserError(f'{name}: option guidance_scale={guidance_scale!r} must be a number >= 0 (1 = no guidance); '
                        f'set [adapter."{name}"] guidance_scale in the run file')
    if g != 1.0 and not conditional:
        raise UserError(f"{name}: option guidance_scale={guidance_scale} needs a class-conditional model, and this "
                        "one is unconditional; remove guidance_scale (or set it to 1)")
    if g != 1.0 and null_class is None:
        raise UserError(f"{name}: option guidance_scale={guidance_scale} needs a null class (the label the model "
                        "was trained with when the class was dropped); pass the option null_class=ID")
    return g


def images_to_model_input(name: str, images: Any, size: tuple[int, int], channels: int) -> np.ndarray:
    """Check uint8 images (N, H, W, C) against the model's (H, W) and channels -> uint8 (N, H, W, channels).

    A greyscale image (C = 1) given to an RGB model is read as RGB with three equal channels
    (what Pillow's ``convert("RGB")`` and the reference tools do); ``info`` of the likelihood
    says so."""
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4 or len(images) == 0:
        raise UserError(f"{name}: log_likelihood takes a non-empty uint8 array (N, H, W, C); got "
                        f"{type(images).__name__} {getattr(images, 'dtype', '')} {getattr(images, 'shape', '')}")
    if tuple(images.shape[1:3]) != tuple(size):
        raise UserError(f"{name}: images are {images.shape[1]}x{images.shape[2]} but the model takes "
                        f"{size[0]}x{size[1]}; give images at the model's resolution")
    if images.shape[3] == 1 and channels == 3:
        return np.repeat(images, 3, axis=3)
    if images.shape[3] != channels:
        raise UserError(f"{name}: images have {images.shape[3]} channels but the model takes {channels}")
    return images


__all__ = ["sample_generators", "condition_to_labels", "check_guidance", "images_to_model_input"]
