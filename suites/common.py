"""Helpers the suites share: sample grids, seeds, reference data by name."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from genbench.errors import UserError

#: how text suites separate samples in an artifacts' samples.txt (reports split on it)
SAMPLE_SEPARATOR = "\n\n-----\n\n"

#: the reference image sets a suite can compare against, by name
IMAGE_DATASETS = ("digits",)


def reference_images(dataset: str, split: str) -> np.ndarray:
    """uint8 (N, H, W, C) images of a named offline data set split."""
    from genbench import data

    if dataset == "digits":
        return data.digits_arrays(split)[0]
    raise UserError(f"unknown image dataset {dataset!r}; built in: {', '.join(IMAGE_DATASETS)}")


def images_to_grid_png(images: np.ndarray, path: Path, *, columns: int = 16, scale: int = 4) -> Path:
    """uint8 (N, H, W, C) -> one PNG grid (nearest-neighbour upscaled so 8x8 digits are visible)."""
    from PIL import Image

    n, h, w, c = images.shape
    rows = (n + columns - 1) // columns
    pad = 1
    grid = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, c), 255, dtype=np.uint8)
    for i, img in enumerate(images):
        r, col = divmod(i, columns)
        grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + col * (w + pad): pad + col * (w + pad) + w] = img
    mode = "L" if c == 1 else "RGB"
    pil = Image.fromarray(grid[..., 0] if c == 1 else grid, mode=mode)
    pil = pil.resize((pil.width * scale, pil.height * scale), Image.NEAREST)
    path.parent.mkdir(parents=True, exist_ok=True)
    pil.save(path)
    return path


def subset(images: np.ndarray, n: int, seed: int) -> np.ndarray:
    """A seeded random subset of n rows (all rows, in order, when n >= len)."""
    if n >= len(images):
        return images
    idx = np.random.default_rng(seed).choice(len(images), size=n, replace=False)
    return images[np.sort(idx)]
