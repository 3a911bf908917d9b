"""Scoring by tinyharden itself: re-check, re-predict, count, with confidence intervals.

No library success flag is trusted. Every returned example is checked to lie inside
the eps ball (in the attack's evaluation norm, small float tolerance) and inside
[0, 1]; violations are either projected back (`policy="clip"`, then re-predicted) or
the example is rejected and the sample counts as an attack failure (`policy="reject"`).
Both counts are recorded. Minimum-norm attacks (CW, boundary, ZOO) are not projected:
at each eps, their example counts only if its norm is within eps.

All norms and eps are in [0, 1] data units.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinyharden.stats import wilson_interval as wilson

# Float tolerance for "inside the ball": relative to eps, plus an absolute floor for
# float32 rounding of x + delta near 0 and 1.
REL_TOL = 1e-4
ABS_TOL = 1e-6


def proportion(mask: np.ndarray) -> dict:
    """{value, k, n, ci95} for a boolean mask."""
    mask = np.asarray(mask, bool)
    k, n = int(mask.sum()), int(mask.size)
    lo, hi = wilson(k, n)
    return {"value": (k / n) if n else 0.0, "k": k, "n": n, "ci95": [lo, hi]}


def norms(delta: np.ndarray, norm: str) -> np.ndarray:
    flat = delta.reshape(len(delta), -1).astype(np.float64)
    if norm == "linf":
        return np.abs(flat).max(axis=1) if flat.shape[1] else np.zeros(len(delta))
    return np.sqrt((flat ** 2).sum(axis=1))


def project(x: np.ndarray, x_adv: np.ndarray, eps: float, norm: str) -> np.ndarray:
    d = x_adv - x
    if norm == "linf":
        d = np.clip(d, -eps, eps)
    else:
        n = norms(d, "l2").reshape((-1,) + (1,) * (x.ndim - 1))
        d = d * np.minimum(1.0, eps / np.maximum(n, 1e-12))
    return np.clip(x + d, 0.0, 1.0).astype(np.float32)


@dataclass
class Checked:
    x_adv: np.ndarray          # the examples actually scored
    norm: np.ndarray           # their perturbation norm (evaluation norm)
    out_of_ball: int
    out_of_range: int
    non_finite: int
    rejected: np.ndarray       # bool per sample: replaced by the clean input

    def summary(self, policy: str) -> dict:
        return {"policy": policy, "out_of_ball": self.out_of_ball, "out_of_range": self.out_of_range,
                "non_finite": self.non_finite, "rejected": int(self.rejected.sum())}


def recheck(x: np.ndarray, x_adv: np.ndarray, *, eps: float | None, norm: str, policy: str = "clip") -> Checked:
    """Validate candidates against the ball (eps=None: no ball, minimum-norm) and [0, 1]."""
    x = np.asarray(x, np.float32)
    x_adv = np.array(x_adv, dtype=np.float32, copy=True)
    if x_adv.shape != x.shape:
        raise ValueError(f"attack returned shape {x_adv.shape} for inputs of shape {x.shape}")
    axes = tuple(range(1, x.ndim))
    finite = np.isfinite(x_adv).all(axis=axes)
    x_adv[~finite] = x[~finite]  # NaN/inf is always a failed attack
    out_range = ((x_adv < -ABS_TOL) | (x_adv > 1.0 + ABS_TOL)).any(axis=axes)
    n = norms(x_adv - x, norm)
    out_ball = np.zeros(len(x), bool) if eps is None else n > eps * (1 + REL_TOL) + ABS_TOL
    rejected = ~finite
    if policy == "reject":
        bad = out_range | out_ball
        x_adv[bad] = x[bad]
        rejected = rejected | bad
    else:
        if eps is not None and out_ball.any():
            x_adv[out_ball] = project(x[out_ball], x_adv[out_ball], eps, norm)
    # Excursions within tolerance (1.0000001) and projected ones both end up in range.
    x_adv = np.clip(x_adv, 0.0, 1.0)
    return Checked(x_adv, norms(x_adv - x, norm), int(out_ball.sum()), int(out_range.sum()), int((~finite).sum()), rejected)


def perturbation_stats(n: np.ndarray, success: np.ndarray) -> dict:
    """Norms of the successful perturbations (where the attack flipped a correct label)."""
    s = n[success]
    if len(s) == 0:
        return {"count": 0, "mean": None, "median": None}
    return {"count": int(len(s)), "mean": float(s.mean()), "median": float(np.median(s))}


def worst_case(robust: list[np.ndarray], clean_correct: np.ndarray) -> np.ndarray:
    """Per sample: robust only if correct clean and robust under every entry of `robust`."""
    out = np.asarray(clean_correct, bool).copy()
    for r in robust:
        out &= np.asarray(r, bool)
    return out


CHANCE_MARGIN = 0.05  # five points above chance: a model fed inputs in the wrong range lands about there
CHANCE_MIN_N = 50  # below this, chance-level accuracy is too noisy to call


def near_chance(accuracy: float, n: int, num_classes: int) -> dict | None:
    """A flag when clean accuracy on `n` samples is at most a few points above 1/num_classes, else None.

        near_chance(0.11, 500, 10)["code"]   # 'near_chance'

    A model scoring chance on clean data makes every robust figure meaningless; the usual
    cause is a model that expects another input range than the data's (e.g. 0..255 pixels).
    """
    chance = 1.0 / max(num_classes, 1)
    if n < CHANCE_MIN_N or accuracy > chance + CHANCE_MARGIN:
        return None
    return {"code": "near_chance", "accuracy": accuracy, "chance": chance, "n": int(n),
            "message": f"clean accuracy {100 * accuracy:.1f}% on {n} samples is near chance ({100 * chance:.1f}% for "
                       f"{num_classes} classes): the robust figures mean nothing; check the model's input range"}
