"""``float_images_to_uint8``: the quantisation of model outputs to uint8, by rule
(``QUANTISATION_RULES``): papers differ, and the difference moves FID."""
from __future__ import annotations

import numpy as np

from genbench.errors import UserError

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


__all__ = ["QUANTISATION_RULES", "float_images_to_uint8"]
