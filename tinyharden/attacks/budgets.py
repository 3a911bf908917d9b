"""Attack budgets in the units a speech engineer reads, turned into [0, 1] data units.

    >>> to_data_units("0.25step,1step,2/255", space="features")
    '0.000980392,0.00392157,2/255'
    >>> to_data_units("-40dB", space="waveform")
    '0.005'

- `Nstep`: N int8 input steps of the deployed model. An int8 input spans 255 steps over the
  dataset's whole input range (the speech features' range is exactly the MLPerf KWS model's
  int8 range, scale 0.5847), so one step is 1/255 in [0, 1] data units.
- `NdB` (waveform space only): Linf relative to the clip's peak, 20 log10(eps), as Carlini
  and Wagner's audio attacks report it. Clips are peak-normalized to 1 in [-1, 1], which is
  2 wide in [0, 1] units: eps = 10^(N/20) / 2.
Plain numbers and fractions pass through unchanged (already [0, 1] data units).
"""
from __future__ import annotations

import re

from tinyharden.errors import UserError

INT8_STEPS = 255
_UNIT = re.compile(r"^\s*([-+]?\d*\.?\d+(?:e[-+]?\d+)?)\s*(step|steps|db)\s*$", re.IGNORECASE)


def budget(token: str, *, space: str) -> str:
    """One eps token in data units (as text, so fractions stay exact when no unit is given)."""
    m = _UNIT.match(token)
    if m is None:
        return token.strip()
    value, unit = float(m.group(1)), m.group(2).lower()
    if unit.startswith("step"):
        if value <= 0:
            raise UserError(f"eps {token}: a budget in int8 steps must be positive, e.g. 0.5step")
        return f"{value / INT8_STEPS:.6g}"
    if space != "waveform":
        raise UserError(f"eps {token}: dB budgets are relative to the clip's peak and apply to the waveform space; "
                        "use int8 steps (1step) or [0,1] units in feature space")
    if value >= 0:
        raise UserError(f"eps {token}: a dB budget relative to the peak must be negative, e.g. -40dB")
    return f"{10 ** (value / 20) / 2:.6g}"


def to_data_units(text: str, *, space: str) -> str:
    """A comma-separated eps list with `step` / `dB` units, as [0, 1] data units."""
    return ",".join(budget(t, space=space) for t in text.split(",") if t.strip())


def label(eps01: float, *, space: str) -> str:
    """A budget in [0, 1] units, in the space's own unit: int8 steps or dB re. peak."""
    import math

    if space == "waveform":
        return f"{20 * math.log10(2 * eps01):.1f} dB" if eps01 > 0 else "0"
    return f"{eps01 * INT8_STEPS:.3g} int8 steps"
