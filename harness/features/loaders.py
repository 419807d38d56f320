"""Zero-argument image loaders, one per image: what a source hands the pipeline.

Each is a small picklable callable returning uint8 (H, W, 3), so that decoding can run in
worker processes (``genbench.features.decode_workers``) as well as in this one. ``decodes`` says
whether calling it costs CPU work worth a worker (decoding, cropping) or only hands over an
array already in memory.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


class FileImage:
    """An image file, decoded by ``genbench.features.decode.load_image``."""

    __slots__ = ("path", "grey", "alpha")
    decodes = True

    def __init__(self, path: str | Path, grey: str = "error", alpha: str = "error"):
        self.path, self.grey, self.alpha = path, grey, alpha

    def __call__(self) -> np.ndarray:
        from genbench.features.decode import load_image

        return load_image(self.path, grey=self.grey, alpha=self.alpha)


class EncodedImage:
    """Encoded image bytes (a data set row); ``name`` is what errors call it."""

    __slots__ = ("name", "data", "grey", "alpha")
    decodes = True

    def __init__(self, name: str, data: bytes, grey: str = "error", alpha: str = "error"):
        self.name, self.data, self.grey, self.alpha = name, data, grey, alpha

    def __call__(self) -> np.ndarray:
        from genbench.features.decode import decode_image

        return decode_image(self.data, self.name, grey=self.grey, alpha=self.alpha)


class ArrayImage:
    """An image already in memory; ``grey_to_rgb`` replicates a single channel (the sources that
    hold greyscale arrays say so in their convention)."""

    __slots__ = ("array", "grey_to_rgb")
    decodes = False

    def __init__(self, array: np.ndarray, grey_to_rgb: bool = False):
        self.array, self.grey_to_rgb = array, grey_to_rgb

    def __call__(self) -> np.ndarray:
        a = self.array
        return np.repeat(a, 3, axis=-1) if self.grey_to_rgb and a.shape[-1] == 1 else a


class CenterCropped:
    """Another loader's image through ADM's ``center_crop_arr``."""

    __slots__ = ("inner", "size")
    decodes = True

    def __init__(self, inner, size: int):
        self.inner, self.size = inner, size

    def __call__(self) -> np.ndarray:
        from genbench.features.crop import center_crop_arr

        return center_crop_arr(self.inner(), self.size)


__all__ = ["FileImage", "EncodedImage", "ArrayImage", "CenterCropped"]
