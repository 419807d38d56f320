"""Image folders: ``ImageFolder(path)`` lists the images of a folder (``.png .jpg .jpeg .bmp
.webp``, any case, recursively, sorted by relative path), hashes their bytes, and decodes them
(``genbench.features.decode``) into uint8 ``(H, W, 3)`` arrays one by one, as a stacked
``(N, H, W, 3)`` array, or in batches.

* images of different sizes are an error where a stacked array is asked for
  (``same_size=True``), naming the first file whose size differs;
* an empty folder (no file with an image extension) is an error naming the folder.
"""
from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import numpy as np

from genbench.errors import UserError
from genbench.features.decode import ALPHA_OPTIONS, GREY_OPTIONS, check_option, load_image

#: the file extensions read as images (compared case-insensitively)
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def list_image_files(folder: str | Path, *, recursive: bool = True) -> list[Path]:
    """The image files under ``folder``, sorted by their path relative to it (POSIX form).

    Raises ``UserError`` when the folder does not exist, is not a folder, or holds no image.
    """
    root = Path(folder)
    if not root.exists():
        raise UserError(f"{root}: no such file or folder")
    if not root.is_dir():
        raise UserError(f"{root}: not a folder of images")
    found: list[tuple[str, str]] = []  # (path relative to the folder, POSIX form; path)
    _scan(str(root), "", recursive, found)
    if not found:
        raise UserError(
            f"{root}: empty folder: no image files ({' '.join(IMAGE_EXTENSIONS)})"
            f"{' in it or its subfolders' if recursive else ''}; point at the folder that holds the images"
        )
    found.sort()
    return [Path(path) for _, path in found]


def _scan(folder: str, relative: str, recursive: bool, found: list) -> None:
    """``os.scandir`` (no stat per file: a listing of 50,000 files is on every FID's critical
    path): image files as pathlib's ``rglob`` finds them (symlinked files, not symlinked folders)."""
    with os.scandir(folder) as entries:
        for e in entries:
            if e.is_dir(follow_symlinks=False):
                if recursive:
                    _scan(e.path, f"{relative}{e.name}/", recursive, found)
            elif os.path.splitext(e.name)[1].lower() in IMAGE_EXTENSIONS and e.is_file():
                found.append((relative + e.name, e.path))


def _default_threads() -> int:
    from genbench.features.decode_workers import cpu_count

    return max(1, min(8, cpu_count()))


class ImageFolder:
    """The images of a folder, in sorted order.

    grey:  ``"error"`` (default) or ``"convert"``: what a greyscale image does.
    alpha: ``"error"`` (default) or ``"drop"``: what an image with transparency does.
    threads: files decoded in parallel (Pillow's decoders release the GIL).
    """

    def __init__(self, path: str | Path, *, grey: str = "error", alpha: str = "error",
                 recursive: bool = True, threads: int | None = None):
        check_option("grey", grey, GREY_OPTIONS)
        check_option("alpha", alpha, ALPHA_OPTIONS)
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


__all__ = ["IMAGE_EXTENSIONS", "ImageFolder", "list_image_files", "load_image_folder", "iter_image_batches"]
