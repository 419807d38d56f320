"""``center_crop_arr``: ADM's preprocessing of ImageNet references (guided-diffusion
``image_datasets.center_crop_arr``), reimplemented with the same arithmetic."""
from __future__ import annotations

import numpy as np

from genbench.errors import UserError


def center_crop_arr(image, image_size: int) -> np.ndarray:
    """ADM's reference preprocessing: a PIL image or uint8 (H, W, C) array -> uint8 (S, S, C).

    While the short side is at least ``2 * image_size``, halve both sides (integer division) with
    a BOX filter; then resize with BICUBIC so that the short side is ``image_size`` (the long side
    ``round(side * image_size / short)``, Python's round); then take the centre crop.
    """
    from PIL import Image

    if image_size < 1:
        raise UserError(f"image_size={image_size}: must be >= 1")
    if isinstance(image, np.ndarray):
        arr = np.asarray(image)
        if arr.dtype != np.uint8 or arr.ndim not in (2, 3):
            raise UserError(f"center_crop_arr takes uint8 (H, W[, C]) images; got {arr.dtype} {arr.shape}")
        pil = Image.fromarray(arr[..., 0] if arr.ndim == 3 and arr.shape[2] == 1 else arr)
        squeeze_back = arr.ndim == 3 and arr.shape[2] == 1
    else:
        pil, squeeze_back = image, False
    while min(pil.size) >= 2 * image_size:
        pil = pil.resize((pil.size[0] // 2, pil.size[1] // 2), resample=Image.BOX)
    scale = image_size / min(pil.size)
    pil = pil.resize((round(pil.size[0] * scale), round(pil.size[1] * scale)), resample=Image.BICUBIC)
    out = np.asarray(pil)
    top = (out.shape[0] - image_size) // 2
    left = (out.shape[1] - image_size) // 2
    out = out[top: top + image_size, left: left + image_size]
    return (out[..., None] if squeeze_back else out).copy()


__all__ = ["center_crop_arr"]
