"""``.npz`` files: their field names and fields read without loading the rest, and the uint8
images of a field (``arr_0``: ADM / DiT sample batches) streamed in chunks."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from genbench.errors import UserError

#: images read from an npz at a time (an ADM sample batch at 256x256 holds 9.8 GB)
NPZ_CHUNK = 1000


def npz_fields(path: Path) -> list[str]:
    """The field names of an npz, read from its zip directory (no array is loaded)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return list(z.files)
    except Exception as e:
        raise UserError(f"{path}: not a readable .npz file ({type(e).__name__}: {e})") from None


def npz_read(path: Path, fields) -> dict[str, np.ndarray]:
    """Only the named fields of an npz (missing ones are left out)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in fields if k in z.files}
    except Exception as e:
        raise UserError(f"{path}: cannot read fields {', '.join(fields)} ({type(e).__name__}: {e})") from None


class NpzImages:
    """Streams the uint8 images of an npz field in chunks, without loading the whole array."""

    def __init__(self, path: Path, field: str = "arr_0"):
        import zipfile

        self.path, self.field = path, field
        try:
            with zipfile.ZipFile(path) as zf, zf.open(f"{field}.npy") as f:
                self.shape, fortran, self.dtype = self._header(f)
        except (KeyError, OSError, ValueError, zipfile.BadZipFile) as e:
            raise UserError(f"{path}: field {field} cannot be read ({type(e).__name__}: {e})") from None
        if fortran:
            raise UserError(f"{path}: field {field} is stored in Fortran order; save it with np.savez from a "
                            f"C-ordered array")
        if self.dtype != np.uint8 or len(self.shape) != 4 or self.shape[-1] not in (1, 3):
            raise UserError(f"{path}: field {field} must hold uint8 images (N, H, W, 3); got {self.dtype} "
                            f"{self.shape}")
        if self.shape[0] == 0:
            raise UserError(f"{path}: field {field} holds no images")

    @staticmethod
    def _header(f):
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            return np.lib.format.read_array_header_1_0(f)
        return np.lib.format.read_array_header_2_0(f)

    def __len__(self) -> int:
        return int(self.shape[0])

    def chunks(self, rows: int | None = None):
        import zipfile

        rows = rows or NPZ_CHUNK
        row_bytes = int(np.prod(self.shape[1:]))
        with zipfile.ZipFile(self.path) as zf, zf.open(f"{self.field}.npy") as f:
            self._header(f)
            for start in range(0, len(self), rows):
                n = min(rows, len(self) - start)
                raw = f.read(n * row_bytes)
                if len(raw) != n * row_bytes:
                    raise UserError(f"{self.path}: field {self.field} is truncated at image {start + len(raw) // row_bytes}")
                yield np.frombuffer(raw, dtype=np.uint8).reshape((n, *self.shape[1:]))


def npz_images(path: Path, grey: str) -> NpzImages:
    images = NpzImages(path)
    if images.shape[-1] == 1 and grey != "convert":
        raise UserError(f"{path}: field arr_0 holds greyscale images (N, H, W, 1); pass grey='convert' "
                        f"(--grey convert) to replicate the channel")
    return images


__all__ = ["NPZ_CHUNK", "npz_fields", "npz_read", "NpzImages", "npz_images"]
