"""Image folders -> uint8 arrays, with errors that name the file.

``ImageFolder(path)`` lists the images of a folder (``.png .jpg .jpeg .bmp .webp``, any case,
recursively, sorted by relative path), hashes their bytes, and decodes them into uint8
``(H, W, 3)`` arrays one by one, as a stacked ``(N, H, W, 3)`` array, or in batches.

Nothing is changed silently. clean-fid and torch-fidelity call ``Image.open(f).convert("RGB")``
on every file, which turns a greyscale image into three equal channels and drops an alpha
channel without a word; here:

* a greyscale image (modes ``1 L LA I I;16 F``) is an error naming the file unless
  ``grey="convert"`` (replicate the channel, which is what the reference tools do);
* an image with transparency (alpha not 255 everywhere) is an error unless ``alpha="drop"``
  (keep the colour channels, as ``convert("RGB")`` does); a fully opaque alpha is dropped;
* a corrupt or truncated file is an error naming the file (unless the process has set
  ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES``, which makes Pillow pad truncated files);
* images of different sizes are an error where a stacked array is asked for
  (``same_size=True``), naming the first file whose size differs;
* an empty folder (no file with an image extension) is an error naming the folder.

EXIF orientation is not applied (neither do the reference tools).

``center_crop_arr`` is ADM's preprocessing of ImageNet references (guided-diffusion
``image_datasets.center_crop_arr``), reimplemented with the same arithmetic.

``DatasetImages("hf:PATH[:SPLIT]")`` reads the images of anything Hugging Face ``datasets``
loads offline: a directory written by ``save_to_disk``, an ``imagefolder`` directory (one
subfolder per split), or a hub data set already in the local cache. Rows are decoded by the
same code as files (same errors, naming the row and its file), and hashed row by row.

``float_images_to_uint8`` is the quantisation of model outputs to uint8, by rule
(``QUANTISATION_RULES``): papers differ, and the difference moves FID.
"""
from __future__ import annotations

import hashlib
import io
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from genbench.errors import UserError

#: the file extensions read as images (compared case-insensitively)
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "I;16N", "F")
GREY_OPTIONS = ("error", "convert")
ALPHA_OPTIONS = ("error", "drop")


def list_image_files(folder: str | Path, *, recursive: bool = True) -> list[Path]:
    """The image files under ``folder``, sorted by their path relative to it (POSIX form).

    Raises ``UserError`` when the folder does not exist, is not a folder, or holds no image.
    """
    root = Path(folder)
    if not root.exists():
        raise UserError(f"{root}: no such file or folder")
    if not root.is_dir():
        raise UserError(f"{root}: not a folder of images")
    walker = root.rglob("*") if recursive else root.iterdir()
    files = [p for p in walker if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()]
    if not files:
        raise UserError(
            f"{root}: empty folder: no image files ({' '.join(IMAGE_EXTENSIONS)})"
            f"{' in it or its subfolders' if recursive else ''}; point at the folder that holds the images"
        )
    files.sort(key=lambda p: p.relative_to(root).as_posix())
    return files


def decode_image(data: bytes, name: str | Path, *, grey: str = "error", alpha: str = "error") -> np.ndarray:
    """Encoded image bytes -> uint8 (H, W, 3). ``name`` is only used in error messages."""
    from PIL import Image

    _check_option("grey", grey, GREY_OPTIONS)
    _check_option("alpha", alpha, ALPHA_OPTIONS)
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()  # decodes now: a truncated or corrupt file fails here, not later
            return _to_rgb(img, name, grey=grey, alpha=alpha)
    except UserError:
        raise
    except Exception as e:  # Pillow raises OSError, SyntaxError, ValueError, DecompressionBombError...
        kind = "truncated" if "truncated" in str(e).lower() else "corrupt or unreadable"
        raise UserError(
            f"{name}: {kind} image file ({type(e).__name__}: {e}); re-export or remove it"
        ) from None


def _to_rgb(img, name, *, grey: str, alpha: str) -> np.ndarray:
    mode = img.mode
    if mode == "RGB":
        return np.asarray(img, dtype=np.uint8).copy()
    if mode in GREY_MODES:
        if grey != "convert":
            raise UserError(
                f"{name}: greyscale image (mode {mode}); Inception features need RGB. Pass "
                f"grey='convert' (CLI: --grey convert) to replicate the channel, as clean-fid does "
                f"silently, or remove the file"
            )
        if mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
            raise UserError(
                f"{name}: greyscale image with {mode} pixels (more than 8 bits); genbench does not "
                f"quantise it silently: save it as an 8-bit PNG"
            )
        if mode == "LA":
            _check_alpha(np.asarray(img)[..., 1], name, alpha)
        return np.asarray(img.convert("L"), dtype=np.uint8)[..., None].repeat(3, axis=2)
    if mode in ("RGBA", "RGBa", "PA") or (mode == "P" and "transparency" in img.info):
        rgba = np.asarray(img.convert("RGBA"), dtype=np.uint8)
        _check_alpha(rgba[..., 3], name, alpha)
        return rgba[..., :3].copy()
    if mode in ("P", "CMYK", "YCbCr", "LAB", "HSV"):
        return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()
    raise UserError(f"{name}: unsupported image mode {mode}; save it as an 8-bit RGB PNG")


def _check_alpha(a: np.ndarray, name, alpha: str) -> None:
    if alpha != "drop" and int(a.min()) < 255:
        raise UserError(
            f"{name}: image has transparency (alpha < 255 in places); pass alpha='drop' "
            f"(CLI: --alpha drop) to keep the colour channels as they are, or flatten it first"
        )


def load_image(path: str | Path, *, grey: str = "error", alpha: str = "error") -> np.ndarray:
    """One image file -> uint8 (H, W, 3)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror or e})") from None
    return decode_image(data, path, grey=grey, alpha=alpha)


def _check_option(field: str, value: str, valid: Sequence[str]) -> None:
    if value not in valid:
        raise UserError(f"{field}={value!r}: use one of {', '.join(valid)}")


def _default_threads() -> int:
    import os

    return max(1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


class ImageFolder:
    """The images of a folder, in sorted order.

    grey:  ``"error"`` (default) or ``"convert"``: what a greyscale image does.
    alpha: ``"error"`` (default) or ``"drop"``: what an image with transparency does.
    threads: files decoded in parallel (Pillow's decoders release the GIL).
    """

    def __init__(self, path: str | Path, *, grey: str = "error", alpha: str = "error",
                 recursive: bool = True, threads: int | None = None):
        _check_option("grey", grey, GREY_OPTIONS)
        _check_option("alpha", alpha, ALPHA_OPTIONS)
        self.root = Path(path)
        self.grey = grey
        self.alpha = alpha
        self.files = list_image_files(self.root, recursive=recursive)
        self.threads = threads or _default_threads()
        self._hash: str | None = None

    def __len__(self) -> int:
        return len(self.files)

    def __repr__(self) -> str:
        return f"ImageFolder({str(self.root)!r}, {len(self)} images)"

    def relative_names(self) -> list[str]:
        return [p.relative_to(self.root).as_posix() for p in self.files]

    def content_hash(self) -> str:
        """sha256 over the sorted (relative name, sha256 of the file's bytes) of every image.

        Any changed, added, removed or renamed image changes it; files that are not images do not.
        """
        if self._hash is None:
            outer = hashlib.sha256(b"genbench-image-folder-v1\n")
            for rel, path in zip(self.relative_names(), self.files):
                digest = _file_sha256(path)
                outer.update(f"{rel}\0{digest}\n".encode())
            self._hash = outer.hexdigest()
        return self._hash

    def load(self, i: int) -> np.ndarray:
        return load_image(self.files[i], grey=self.grey, alpha=self.alpha)

    def iter_images(self, *, same_size: bool = False) -> Iterator[np.ndarray]:
        """Each image as uint8 (H, W, 3), in order (decoded a few ahead in threads)."""
        first: tuple[tuple[int, ...], Path] | None = None
        step = max(1, 4 * self.threads)
        with ThreadPoolExecutor(self.threads) as pool:
            for start in range(0, len(self.files), step):
                chunk = range(start, min(start + step, len(self.files)))
                for i, img in zip(chunk, pool.map(self.load, chunk)):
                    if same_size:
                        if first is None:
                            first = (img.shape, self.files[i])
                        elif img.shape != first[0]:
                            raise _size_error(self.files[i], img.shape, first)
                    yield img

    def batches(self, batch_size: int, *, same_size: bool = True) -> Iterator[np.ndarray | list[np.ndarray]]:
        """Consecutive batches: uint8 (B, H, W, 3) arrays when ``same_size`` (the default; a
        differing size is an error naming the file), else lists of (H, W, 3) arrays."""
        if batch_size < 1:
            raise UserError(f"batch_size={batch_size}: must be >= 1")
        batch: list[np.ndarray] = []
        for img in self.iter_images(same_size=same_size):
            batch.append(img)
            if len(batch) == batch_size:
                yield np.stack(batch) if same_size else batch
                batch = []
        if batch:
            yield np.stack(batch) if same_size else batch

    def array(self) -> np.ndarray:
        """All images as one uint8 (N, H, W, 3) array (they must share one size)."""
        images = list(self.iter_images(same_size=True))
        return np.stack(images)


def _size_error(path: Path, shape, first) -> UserError:
    (h0, w0, _), path0 = first
    return UserError(
        f"{path}: image is {shape[1]}x{shape[0]} but the first image, {path0}, is {w0}x{h0}; "
        f"images of different sizes cannot be stacked: resize them to one size, or use a "
        f"resizing extractor (mixed sizes are fine for FID with mode clean)"
    )


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror or e})") from None
    return h.hexdigest()


def load_image_folder(path: str | Path, *, grey: str = "error", alpha: str = "error",
                      recursive: bool = True) -> np.ndarray:
    """All images of a folder as uint8 (N, H, W, 3); they must share one size."""
    return ImageFolder(path, grey=grey, alpha=alpha, recursive=recursive).array()


def iter_image_batches(path: str | Path, batch_size: int, *, same_size: bool = True, grey: str = "error",
                       alpha: str = "error", recursive: bool = True):
    """Batches of a folder's images (see ``ImageFolder.batches``)."""
    return ImageFolder(path, grey=grey, alpha=alpha, recursive=recursive).batches(batch_size, same_size=same_size)


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


# --- Hugging Face datasets ---------------------------------------------------------------------
HF_PREFIX = "hf:"
#: rows whose encoded bytes are read from the Arrow table at a time
HF_CHUNK = 1000


def parse_hf_source(text: str) -> tuple[str, str | None]:
    """``hf:PATH[:SPLIT]`` -> (PATH, SPLIT or None). The split is what follows the last colon."""
    body = text[len(HF_PREFIX):] if text.startswith(HF_PREFIX) else text
    if not body:
        raise UserError(f"{text!r}: write hf:PATH[:SPLIT], PATH a save_to_disk or imagefolder directory "
                        f"or a cached hub data set")
    path, sep, split = body.rpartition(":")
    if not sep or not path or "/" in split:
        return body, None
    return path, split


def _load_hf(path: str, split: str | None, label: str):
    """A ``datasets.Dataset`` (one split) from a directory or the local hub cache, never the network."""
    import tempfile

    import datasets

    root = Path(path)
    try:
        if root.is_dir() and ((root / "state.json").is_file() or (root / "dataset_dict.json").is_file()):
            loaded = datasets.load_from_disk(str(root))
        elif root.is_dir():
            # an imagefolder: datasets writes an Arrow copy of the file list; keep it in memory
            with tempfile.TemporaryDirectory(prefix="genbench-imagefolder-") as cache:
                loaded = datasets.load_dataset("imagefolder", data_dir=str(root), cache_dir=cache,
                                               keep_in_memory=True)
        elif root.exists():
            raise UserError(f"{label}: {root} is a file; hf:PATH names a save_to_disk or imagefolder directory")
        else:
            import os

            os.environ.setdefault("HF_DATASETS_OFFLINE", "1")  # genbench never downloads data
            loaded = datasets.load_dataset(path)
    except UserError:
        raise
    except Exception as e:  # FileNotFoundError, DatasetNotFoundError, ConnectionError...
        raise UserError(f"{label}: datasets cannot load {path} offline ({type(e).__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else ''}); give a save_to_disk or imagefolder "
                        f"directory, or a hub data set already in the local cache") from None
    if isinstance(loaded, datasets.DatasetDict):
        names = sorted(loaded)
        if split is None:
            if len(names) != 1:
                raise UserError(f"{label}: the data set has splits {', '.join(names)}; name one: "
                                f"hf:{path}:SPLIT")
            split = names[0]
        if split not in loaded:
            raise UserError(f"{label}: no split {split!r}; the data set has {', '.join(names)}")
        return loaded[split], split
    own = str(loaded.split) if loaded.split is not None else None
    if split is not None and own is not None and split != own:
        raise UserError(f"{label}: this saved data set is the {own!r} split, not {split!r}")
    return loaded, split or own


class DatasetImages:
    """The images of a ``datasets`` data set (``hf:PATH[:SPLIT]``), in row order.

    column: the image column (default: the only column of ``datasets.Image`` type).
    grey / alpha: as for :class:`ImageFolder`.
    """

    def __init__(self, source: str, *, grey: str = "error", alpha: str = "error", column: str | None = None):
        import datasets

        _check_option("grey", grey, GREY_OPTIONS)
        _check_option("alpha", alpha, ALPHA_OPTIONS)
        path, split = parse_hf_source(source)
        self.grey, self.alpha = grey, alpha
        ds, self.split = _load_hf(path, split, source)
        self.label = f"{HF_PREFIX}{path}" + (f":{self.split}" if self.split else "")
        image_columns = [k for k, v in ds.features.items() if isinstance(v, datasets.Image)]
        if column is None:
            if len(image_columns) != 1:
                raise UserError(f"{self.label}: {'no' if not image_columns else 'several'} image columns "
                                f"({', '.join(image_columns) or 'columns: ' + ', '.join(ds.column_names)}); "
                                f"name the one to use (column=...)")
            column = image_columns[0]
        elif column not in image_columns:
            raise UserError(f"{self.label}: column {column!r} does not hold images; image columns: "
                            f"{', '.join(image_columns) or 'none'}")
        if len(ds) == 0:
            raise UserError(f"{self.label}: the split holds no rows")
        self.column = column
        # undecoded: {"bytes", "path"} per row, so decoding (and its errors) is genbench's own
        self.dataset = ds.select_columns([column]).cast_column(column, datasets.Image(decode=False))
        self._hash: str | None = None

    def __len__(self) -> int:
        return len(self.dataset)

    def __repr__(self) -> str:
        return f"DatasetImages({self.label!r}, {len(self)} images)"

    def _raw(self, start: int, stop: int) -> list[tuple[str, bytes]]:
        """(name for messages, encoded bytes) of rows start..stop-1."""
        out = []
        for i, cell in enumerate(self.dataset[start:stop][self.column], start):
            name = f"{self.label} row {i}" + (f" ({cell['path']})" if cell.get("path") else "")
            data = cell.get("bytes")
            if data is None:
                if not cell.get("path"):
                    raise UserError(f"{name}: the row holds neither image bytes nor a file path")
                try:
                    data = Path(cell["path"]).read_bytes()
                except OSError as e:
                    raise UserError(f"{name}: cannot read ({e.strerror or e})") from None
            out.append((name, data))
        return out

    def chunks(self, rows: int | None = None):
        """Lists of zero-argument callables, each decoding one row to uint8 (H, W, 3)."""
        rows = rows or HF_CHUNK
        for start in range(0, len(self), rows):
            yield [(lambda n=name, d=data: decode_image(d, n, grey=self.grey, alpha=self.alpha))
                   for name, data in self._raw(start, min(start + rows, len(self)))]

    def content_hash(self) -> str:
        """sha256 over the split name and the sha256 of every row's encoded image, in row order."""
        if self._hash is None:
            outer = hashlib.sha256(f"genbench-hf-images-v1\n{self.split}\n".encode())
            for start in range(0, len(self), HF_CHUNK):
                for i, (_, data) in enumerate(self._raw(start, min(start + HF_CHUNK, len(self))), start):
                    outer.update(f"{i}\0{hashlib.sha256(data).hexdigest()}\n".encode())
            self._hash = outer.hexdigest()
        return self._hash


# --- quantisation ---------------------------------------------------------------------------------
#: float model outputs -> uint8, by rule: (input range, formula)
QUANTISATION_RULES = {
    "round": ("[-1, 1]", "clamp(round(127.5 x + 127.5), 0, 255): genbench's ImageNet protocol; DiT and "
                         "LlamaGen's clamp(127.5 x + 128) then a truncating cast is the same but for exact ties"),
    "truncate": ("[-1, 1]", "clamp((x + 1) * 127.5, 0, 255) then a truncating cast (ADM's image_sample.py; "
                            "biased half a level low)"),
    "round01": ("[0, 1]", "round(clip(x * 255, 0, 255)) (MAR)"),
}


def float_images_to_uint8(x, rule: str = "round") -> np.ndarray:
    """float images (N, H, W, C) in the rule's range -> uint8, by ``QUANTISATION_RULES[rule]``.

    Rounding is numpy's (half to even), which differs from half-up only at exact ties.
    """
    if rule not in QUANTISATION_RULES:
        raise UserError(f"quantisation rule {rule!r}: use one of {', '.join(QUANTISATION_RULES)}")
    a = np.asarray(x, dtype=np.float64)
    if rule == "round":
        return np.clip(np.rint(127.5 * a + 127.5), 0, 255).astype(np.uint8)
    if rule == "truncate":
        return np.floor(np.clip((a + 1) * 127.5, 0, 255)).astype(np.uint8)
    return np.rint(np.clip(a * 255, 0, 255)).astype(np.uint8)


__all__ = [
    "IMAGE_EXTENSIONS", "ImageFolder", "list_image_files", "decode_image", "load_image",
    "load_image_folder", "iter_image_batches", "center_crop_arr", "DatasetImages", "parse_hf_source",
    "HF_PREFIX", "QUANTISATION_RULES", "float_images_to_uint8",
]
