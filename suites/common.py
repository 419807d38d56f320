"""Helpers the suites share: sample grids, seeds, reference data by name."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from genbench.data import IMAGE_DATASETS
from genbench.errors import UserError

#: how text suites separate samples in an artifacts' samples.txt (reports split on it)
SAMPLE_SEPARATOR = "\n\n-----\n\n"


def reference_images(dataset: str, split: str) -> np.ndarray:
    """uint8 (N, H, W, C) images of a named offline data set split."""
    from genbench import data

    return data.image_dataset_arrays(dataset, split)[0]


@dataclass
class ImageChunks:
    """Images of a source, ``chunks()`` yielding lists of uint8 (H, W, C) arrays a chunk at a time.

    label: the source as named (``digits:test``, a folder, ``hf:PATH:SPLIT``...); split: the
    split for named data sets, else None; preprocessing: how the images were decoded.
    """

    label: str
    split: str | None
    n: int | None
    chunk: int
    preprocessing: dict[str, Any]
    _chunks: Callable[[], Iterator[list[np.ndarray]]]

    @property
    def n_chunks(self) -> int | None:
        return None if self.n is None else (self.n + self.chunk - 1) // self.chunk

    def chunks(self) -> Iterator[list[np.ndarray]]:
        return self._chunks()


def image_source_chunks(source: str, *, split: str = "test", grey: str = "error", chunk: int = 500,
                        max_images: int | None = None) -> ImageChunks:
    """Any image source as chunks of images, streamed.

    source: ``digits[:SPLIT]`` / ``fashion-mnist[:SPLIT]`` (native grey (H, W, 1); ``split``
    when the name has none), or what ``genbench fid`` takes: an image folder, a ``.npz`` with
    ``arr_0``, ``hf:PATH[:SPLIT]`` (decoded to RGB; grey files only with ``grey = "convert"``).
    """
    if chunk < 1:
        raise UserError(f"chunk = {chunk}: must be >= 1")
    limit = int(max_images) if max_images else None
    name, _, named_split = str(source).partition(":")
    if name in IMAGE_DATASETS:
        split = named_split or split
        from genbench import data

        images = data.image_dataset_arrays(name, split)[0][:limit]

        def arrays():
            for s in range(0, len(images), chunk):
                yield list(images[s: s + chunk])

        pre = {"source": f"genbench.data {name}", "decode": "none (arrays)", "channels": int(images.shape[-1])}
        return ImageChunks(f"{name}:{split}", split, len(images), chunk, pre, arrays)
    from genbench.features.sources import path_to_image_source

    src = path_to_image_source(source, grey=grey, alpha="error")
    if src is None:
        raise UserError(f"image source {source!r}: not an image folder, a .npz with arr_0, hf:PATH[:SPLIT] or one of "
                        f"{', '.join(IMAGE_DATASETS)}[:SPLIT]")

    def decoded():  # regroup the source's chunks lazily: an npz's images are read a chunk at a time
        buf, seen = [], 0
        for part in src.chunks():
            for f in part:
                if limit is not None and seen >= limit:
                    break
                buf.append(f())
                seen += 1
                if len(buf) == chunk:
                    yield buf
                    buf = []
            if limit is not None and seen >= limit:
                break  # read no further chunk of the source
        if buf:
            yield buf

    return ImageChunks(src.label, None, None, chunk, dict(src.preprocessing), decoded)


RESIZE_METHODS = {"center_crop": "ADM center_crop_arr (BOX halvings, BICUBIC, centre crop)",
                  "bicubic": "PIL bicubic to the size, aspect ratio ignored"}


def resize_images(images: Sequence[np.ndarray], size: tuple[int, int], method: str, label: str) -> np.ndarray:
    """uint8 (H, W, C) images of any sizes -> uint8 (N, h, w, C) by ``method`` (see RESIZE_METHODS)."""
    from PIL import Image

    from genbench.features.crop import center_crop_arr

    h, w = size
    out = []
    for img in images:
        if img.shape[:2] == (h, w):
            out.append(img)
        elif method == "center_crop":
            if h != w:
                raise UserError(f"{label}: resize = center_crop makes square images; the tokenizer takes {h}x{w}: "
                                f"use resize = bicubic")
            out.append(center_crop_arr(img, h))
        elif method == "bicubic":
            pil = Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img)
            arr = np.asarray(pil.resize((w, h), resample=Image.BICUBIC))
            out.append(arr[..., None] if arr.ndim == 2 else arr)
        else:
            raise UserError(f"resize method {method!r}: use one of {', '.join(RESIZE_METHODS)}")
    return stack_images(out, label)


def stack_images(images: Sequence[np.ndarray], label: str) -> np.ndarray:
    """uint8 (H, W, C) images of one size -> (N, H, W, C); a one-line error when sizes differ."""
    if isinstance(images, np.ndarray):
        return images
    first = images[0].shape
    for i, img in enumerate(images):
        if img.shape != first:
            raise UserError(f"{label}: images differ in size ({first[0]}x{first[1]}x{first[2]} and "
                            f"{img.shape[0]}x{img.shape[1]}x{img.shape[2]} at image {i} of a chunk); set resize = "
                            f"center_crop (ADM) or bicubic")
    return np.stack(images)


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
