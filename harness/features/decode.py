"""Encoded image bytes -> uint8 (H, W, 3) arrays, with errors that name the file.

Nothing is changed silently. clean-fid and torch-fidelity call ``Image.open(f).convert("RGB")``
on every file, which turns a greyscale image into three equal channels and drops an alpha
channel without a word; here:

* a greyscale image (modes ``1 L LA I I;16 F``) is an error naming the file unless
  ``grey="convert"`` (replicate the channel, which is what the reference tools do);
* an image with transparency (alpha not 255 everywhere) is an error unless ``alpha="drop"``
  (keep the colour channels, as ``convert("RGB")`` does); a fully opaque alpha is dropped;
* a corrupt or truncated file is an error naming the file (unless the process has set
  ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES``, which makes Pillow pad truncated files).

EXIF orientation is not applied (neither do the reference tools).
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np

from genbench.errors import UserError

GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "I;16N", "F")
GREY_OPTIONS = ("error", "convert")
ALPHA_OPTIONS = ("error", "drop")


def decode_image(data: bytes, name: str | Path, *, grey: str = "error", alpha: str = "error") -> np.ndarray:
    """Encoded image bytes -> uint8 (H, W, 3). ``name`` is only used in error messages."""
    from PIL import Image

    check_option("grey", grey, GREY_OPTIONS)
    check_option("alpha", alpha, ALPHA_OPTIONS)
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


def check_option(field: str, value: str, valid: Sequence[str]) -> None:
    if value not in valid:
        raise UserError(f"{field}={value!r}: use one of {', '.join(valid)}")


__all__ = ["decode_image", "load_image", "check_option", "GREY_OPTIONS", "ALPHA_OPTIONS"]
