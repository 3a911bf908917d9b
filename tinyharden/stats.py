"""Confidence intervals for accuracies (no TensorFlow)."""
from __future__ import annotations

import math


def wilson_interval(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score 95% interval for a binomial proportion k/n.

    Unlike the normal approximation it stays inside [0, 1] and is sensible at 0 and n,
    where robust accuracies often sit. With no samples it is the whole of [0, 1].
    """
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)
