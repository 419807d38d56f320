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


__all__ = [
    "IMAGE_EXTENSIONS", "ImageFolder", "list_image_files", "decode_image", "load_image",
    "load_image_folder", "iter_image_batches", "center_crop_arr",
]
