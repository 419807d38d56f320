"""The one tester for "our number matches the reference implementation within tolerance".

Every metric test that compares genbench with a reference tool (clean-fid, ADM's evaluator,
torch-fidelity, lm-evaluation-harness, scikit-image...) goes through
:func:`assert_matches_reference`, so tolerances are stated the same way everywhere and a
failure always prints both numbers.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

__all__ = ["assert_matches_reference", "relative_difference"]


def relative_difference(ours: float, reference: float) -> float:
    """``|ours - reference| / |reference|`` (the absolute difference when reference is 0)."""
    diff = abs(float(ours) - float(reference))
    scale = abs(float(reference))
    return diff / scale if scale > 0 else diff


def _is_scalar(x: Any) -> bool:
    return np.ndim(x) == 0 and not isinstance(x, (str, bytes, Mapping))


def _check_scalar(ours: Any, reference: Any, rtol: float, atol: float, equal_nan: bool, what: str) -> None:
    try:
        a, b = float(ours), float(reference)
    except (TypeError, ValueError):
        if ours != reference:
            raise AssertionError(f"{what}: ours {ours!r} != reference {reference!r}") from None
        return
    if math.isnan(a) or math.isnan(b):
        if equal_nan and math.isnan(a) and math.isnan(b):
            return
        raise AssertionError(f"{what}: ours {a!r} vs reference {b!r} (NaN)")
    if a == b:  # includes equal infinities
        return
    diff = abs(a - b)
    if not diff <= atol + rtol * abs(b):
        raise AssertionError(
            f"{what}: ours {a!r} vs reference {b!r}: differ by {diff:.3g} "
            f"(relative {relative_difference(a, b):.3g}), allowed rtol={rtol:g}, atol={atol:g}"
        )


def _check_array(ours: Any, reference: Any, rtol: float, atol: float, equal_nan: bool, what: str) -> None:
    a = np.asarray(ours)
    b = np.asarray(reference)
    if a.shape != b.shape:
        raise AssertionError(f"{what}: ours has shape {a.shape} but reference has shape {b.shape}")
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool) or not (
        np.issubdtype(b.dtype, np.number) or b.dtype == bool
    ):
        if not np.array_equal(a, b):
            raise AssertionError(f"{what}: ours {a!r} != reference {b!r}")
        return
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    close = np.isclose(a64, b64, rtol=rtol, atol=atol, equal_nan=equal_nan)
    if close.all():
        return
    bad = np.argwhere(~close)
    with np.errstate(invalid="ignore"):
        excess = np.abs(a64 - b64) - (atol + rtol * np.abs(b64))
    excess = np.where(np.isnan(excess), np.inf, excess)
    worst = tuple(int(i) for i in np.unravel_index(int(np.argmax(excess)), a.shape))
    x, y = float(a64[worst]), float(b64[worst])
    raise AssertionError(
        f"{what}: {len(bad)} of {a.size} elements differ beyond rtol={rtol:g}, atol={atol:g}; "
        f"worst at index {worst}: ours {x!r} vs reference {y!r} "
        f"(relative {relative_difference(x, y):.3g})"
    )


def assert_matches_reference(
    ours: Any,
    reference: Any,
    rtol: float = 1e-6,
    *,
    atol: float = 0.0,
    what: str = "value",
    equal_nan: bool = False,
) -> None:
    """Assert ``ours`` equals ``reference`` within ``atol + rtol * |reference|``, elementwise.

    Handles scalars (Python, numpy, 0-d tensors), arrays (anything ``np.asarray`` takes),
    tuples/lists (compared item by item, same length) and dicts (same keys); a list of plain numbers counts as one array. ``what`` names
    the comparison, e.g. ``"FID vs clean-fid"``; the failure message names both values, the
    difference and the tolerance.
    """
    if isinstance(ours, Mapping) or isinstance(reference, Mapping):
        if not (isinstance(ours, Mapping) and isinstance(reference, Mapping)):
            raise AssertionError(f"{what}: ours is {type(ours).__name__}, reference is {type(reference).__name__}")
        if set(ours) != set(reference):
            raise AssertionError(
                f"{what}: keys differ; only ours {sorted(set(ours) - set(reference), key=str)}, "
                f"only reference {sorted(set(reference) - set(ours), key=str)}"
            )
        for key in reference:
            assert_matches_reference(ours[key], reference[key], rtol, atol=atol,
                                     what=f"{what}[{key!r}]", equal_nan=equal_nan)
        return
    if isinstance(ours, (tuple, list)) and isinstance(reference, (tuple, list)) and not (
        isinstance(ours, list) and _is_array_like_numbers(ours) and _is_array_like_numbers(reference)
    ):
        if len(ours) != len(reference):
            raise AssertionError(f"{what}: ours has {len(ours)} items, reference has {len(reference)}")
        for i, (x, y) in enumerate(zip(ours, reference)):
            assert_matches_reference(x, y, rtol, atol=atol, what=f"{what}[{i}]", equal_nan=equal_nan)
        return
    if _is_scalar(ours) and _is_scalar(reference):
        _check_scalar(_item(ours), _item(reference), rtol, atol, equal_nan, what)
        return
    _check_array(_to_numpy(ours), _to_numpy(reference), rtol, atol, equal_nan, what)


def _is_array_like_numbers(x: Any) -> bool:
    """A flat list of plain numbers is compared as an array (one message for all); tuples,
    such as (mean, std), are compared item by item."""
    return all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in x)


def _item(x: Any) -> Any:
    return x.item() if hasattr(x, "item") else x


def _to_numpy(x: Any) -> Any:
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor, without importing torch
        return x.detach().cpu().numpy()
    return x
