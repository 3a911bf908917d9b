"""Numbers as people read them, shared by every table and report.

    pct(0.4567)      # '45.67%'
    fmt_eps(8 / 255) # '8/255'
"""
from __future__ import annotations

from fractions import Fraction

# Budgets are usually whole 255ths, or simple fractions of the [0,1] range.
_EPS_DENOMINATORS = (255, 2, 4, 8, 10, 16, 20, 100)


def pct(value: float | None, digits: int = 2, missing: str = "") -> str:
    """A fraction as a percentage; `missing` for None."""
    return missing if value is None else f"{100 * value:.{digits}f}%"


def fmt_eps(e: float | None) -> str:
    """8/255 rather than 0.031372549; "" for None."""
    if e is None:
        return ""
    f = Fraction(e).limit_denominator(1000)
    if e > 0 and abs(float(f) - e) < 1e-9 and f.denominator in _EPS_DENOMINATORS:
        return f"{f.numerator}/{f.denominator}"
    return f"{e:.4g}"
