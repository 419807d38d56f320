"""Image sources: what a ``PATH`` names, as chunks of zero-argument loaders of uint8 (H, W, 3).

A source is one of:

* a folder of images (``genbench.features.folder``: png, jpg, jpeg, bmp, webp, recursive, sorted);
* a ``.npz`` file's ``arr_0`` uint8 (N, H, W, 3): ADM / DiT sample batches (``genbench.features.npz``);
* a data set name: ``digits`` or ``fashion-mnist`` (the test split), or ``NAME:SPLIT``
  (``genbench.data``; the grey images are replicated to RGB, which the convention records);
* ``hf:PATH[:SPLIT]``: anything Hugging Face ``datasets`` loads offline
  (``genbench.features.hf_datasets``).

Real images can be centre-cropped first as ADM prepares ImageNet (``with_center_crop``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from genbench.data import IMAGE_DATASETS
from genbench.errors import UserError
from genbench.features.loaders import ArrayImage, CenterCropped, FileImage
from genbench.features.npz import npz_fields, npz_images
from genbench.features.weights import file_sha256

DATASETS = IMAGE_DATASETS
DEFAULT_SPLIT = "test"


def _looks_like_dataset(text: str) -> bool:
    name = text.partition(":")[0]
    return name in DATASETS


@dataclass
class ImageSource:
    """Images to measure: chunks of zero-argument loaders (``genbench.features.loaders``: picklable,
    so that worker processes can decode them), each returning uint8 (H, W, 3).

    hash_data: the content hash (read only when the cache is used: hashing reads every file).
    """

    label: str
    kind: str
    hash_data: Callable[[], str]
    preprocessing: dict[str, Any]
    chunks: Callable[[], Iterator[list[Callable[[], np.ndarray]]]]


def _array_chunks(images: np.ndarray) -> Callable[[], Iterator[list[Callable[[], np.ndarray]]]]:
    return lambda: iter([[ArrayImage(im, grey_to_rgb=True) for im in images]])


def path_to_image_source(path, *, grey: str, alpha: str) -> ImageSource | None:
    """The images a path names, or None when it is a statistics-only npz (or no images at all)."""
    p = Path(path)
    if p.is_dir():
        from genbench.features.folder import ImageFolder

        folder = ImageFolder(p, grey=grey, alpha=alpha)
        pre = {"source": "image folder", "decode": "Pillow", "grey": grey, "alpha": alpha, "recursive": True}
        return ImageSource(str(p), "folder", folder.content_hash, pre,
                           lambda: iter([[FileImage(f, grey, alpha) for f in folder.files]]))
    if p.is_file() and p.suffix.lower() == ".npz":
        if "arr_0" not in npz_fields(p):
            return None
        images = npz_images(p, grey)
        pre = {"source": "npz arr_0", "grey": grey}
        return ImageSource(str(p), "images_npz", lambda: file_sha256(p), pre,
                           lambda: ([ArrayImage(im, grey_to_rgb=True) for im in chunk] for chunk in images.chunks()))
    text = str(path)
    from genbench.features.hf_datasets import HF_PREFIX

    if text.startswith(HF_PREFIX):
        from genbench.features.hf_datasets import DatasetImages

        ds = DatasetImages(text, grey=grey, alpha=alpha)
        pre = {"source": "datasets", "column": ds.column, "decode": "Pillow", "grey": grey, "alpha": alpha}
        return ImageSource(ds.label, "hf", ds.content_hash, pre, ds.chunks)
    if _looks_like_dataset(text):
        name, _, split = text.partition(":")
        split = split or DEFAULT_SPLIT
        from genbench import data as gdata

        images = gdata.image_dataset_arrays(name, split)[0]
        pre = {"source": "dataset", "grey": "replicated to RGB (the data set is greyscale)"}
        return ImageSource(f"{name}:{split}", "dataset", lambda: gdata.image_dataset_id(name, split),
                            pre, _array_chunks(images))
    return None


def with_center_crop(src: ImageSource, size: int | None) -> ImageSource:
    """ADM's ImageNet preprocessing applied to every image (part of the cache key)."""
    if size is None:
        return src
    if size < 1:  # 0 too: it is not "off" (leave the option out for that)
        raise UserError(f"center_crop={size}: must be a positive image size, e.g. 256")
    pre = {**src.preprocessing, "center_crop": f"ADM center_crop_arr to {size}x{size}"}

    def chunks():
        for chunk in src.chunks():
            yield [CenterCropped(f, size) for f in chunk]

    return ImageSource(src.label, src.kind, src.hash_data, pre, chunks)


__all__ = ["DATASETS", "DEFAULT_SPLIT", "ImageSource", "path_to_image_source", "with_center_crop"]
