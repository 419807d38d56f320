"""Numbers as text: significant digits decided by the uncertainty, one notation per kind of spread.

Every report format (HTML, Markdown, LaTeX, CSV's ``formatted`` column) prints a number through
:func:`cell_to_text`, so the same record reads the same everywhere.
"""
from __future__ import annotations

import math
from typing import Any

#: how a cell's uncertainty was obtained -> how it is written and explained
SPREADS = {
    "ci": "[low, high]: the recorded 95% interval (FID: bootstrap of the samples, reference fixed)",
    "stderr": "± one standard error (Monte Carlo or over examples); 95% interval ±1.96 se",
    "seeds": "mean ± standard deviation over seeds (n = seeds); 95% interval of the mean by Student's t",
    "range": "[fastest, slowest] over the timed repeats",
    "exact": "exact: a count, or a deterministic score of a fixed split (exact likelihood), no Monte Carlo noise",
    "none": "† no uncertainty recorded",
    "unavailable": "unavailable: no number, with the record's reason (e.g. LPIPS without local weights); "
                   "‡ marks a reason too long for the table, given in its notes",
}


def is_missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def negligible(uncertainty: float | None, value: float) -> bool:
    """An uncertainty below a millionth of the value (identical seeds, float round-off) says
    nothing about the digits: the value keeps four significant digits."""
    return uncertainty is None or not math.isfinite(uncertainty) or uncertainty <= 1e-6 * abs(value) \
        or uncertainty == 0


def decimals_for(uncertainty: float | None, value: float) -> int:
    """Decimal places: two significant digits of the uncertainty, else four of the value."""
    if not negligible(uncertainty, value):
        return max(0, 1 - int(math.floor(math.log10(uncertainty))))
    if value == 0 or not math.isfinite(value):
        return 0
    return max(0, 3 - int(math.floor(math.log10(abs(value)))))


def fixed(x: float, decimals: int) -> str:
    """``x`` with ``decimals`` places; thousands separated by a thin comma for big numbers."""
    if abs(x) >= 1e7 or (x != 0 and abs(x) < 1e-4 and decimals > 8):
        return f"{x:.3g}"
    text = f"{x:.{min(decimals, 12)}f}"
    if abs(x) >= 1e4:  # thin-space thousands: a comma would read as a list inside [low, high]
        text = f"{x:,.{min(decimals, 12)}f}".replace(",", "\u2009")
    return text


def _spread_text(u: float, value: float) -> str:
    return "0" if negligible(u, value) else fixed(u, decimals_for(u, value))


def cell_to_text(value: Any, *, spread: str = "none", low: Any = None, high: Any = None, stderr: Any = None,
                 sd: Any = None, seeds: int = 1, kind: str | None = None) -> str:
    """One measured number with its uncertainty, e.g. ``12.4 [11.1, 13.9]``, ``1.234 ± 0.012``,
    ``≤ 2.51 ± 0.03``, ``0.52 ± 0.04 (sd, 3 seeds)``, ``64``, ``3.1†``; ``—`` when missing."""
    if is_missing(value):
        return "—"
    v = float(value)
    if spread in ("ci", "range") and not is_missing(low) and not is_missing(high):  # an interval or a range
        d = decimals_for((float(high) - float(low)) / 2, v)
        text = f"{fixed(v, d)} [{fixed(float(low), d)}, {fixed(float(high), d)}]"
    elif spread == "stderr" and not is_missing(stderr):
        text = f"{fixed(v, decimals_for(float(stderr), v))} ± {_spread_text(float(stderr), v)}"
    elif spread == "seeds" and not is_missing(sd):
        text = f"{fixed(v, decimals_for(float(sd), v))} ± {_spread_text(float(sd), v)} (sd, {seeds} seeds)"
    elif spread == "exact":
        text = fixed(v, 0) if v == int(v) and abs(v) < 1e7 else fixed(v, decimals_for(None, v))
    else:
        text = fixed(v, decimals_for(None, v)) + "†"
    return ("≤ " + text) if kind == "upper_bound" else text


def delta_to_text(delta: float, half_width: float | None) -> str:
    """A change against the baseline run, e.g. ``Δ -1.2 ± 0.8`` (95% half-width of the difference)."""
    if half_width is not None and abs(delta) <= 1e-6 * half_width or delta == 0 or abs(delta) < 1e-12:
        delta = 0.0
    d = decimals_for(half_width, delta) if half_width else decimals_for(None, delta)
    sign = "+" if delta > 0 else ""
    text = f"Δ {sign}{fixed(delta, d)}"
    if half_width is not None and half_width > 0:
        text += f" ± {fixed(half_width, d)}"
    return text
