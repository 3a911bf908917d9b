"""Square attack (ART's `SquareAttack`) as `square-art`: score-based black-box, Linf or L2.

`square` is tinyharden's compiled Linf version (`square_graph`), which hands L2 to this one.

Andriushchenko et al. (2020): random square-shaped updates accepted when they lower
the margin loss. Needs only `Target.predict`, so it runs on `.tflite` targets too.
`max_iter` is ART's iteration budget; ART queries the model up to three times per
iteration for each not-yet-fooled sample, so the JSON reports the queries actually
counted, not the budget. `p_init` defaults to the paper's 0.05 (Linf) and 0.1 (L2)
rather than ART's 0.8, which was tuned for another setting and is much weaker here.
"""
from __future__ import annotations

import numpy as np

from tinyharden.attacks._adapters import QueryCounter, art_blackbox, int_labels, seed_numpy_and_random
from tinyharden.attacks.base import BLACK_BOX, Attack, AttackOutput
from tinyharden.errors import UserError


class SquareBudget(Attack):
    """The budget both Square implementations take (`square` and `square-art`), so recipes read the same."""

    kind = BLACK_BOX

    def __init__(self, *, max_iter: int = 1000, p_init: float | None = None, restarts: int = 1):
        if max_iter < 1 or restarts < 1 or (p_init is not None and not 0 < p_init <= 1):
            raise ValueError("max_iter and restarts must be >= 1 and p_init in (0, 1]")
        self.max_iter = max_iter
        self.p_init = p_init
        self.restarts = restarts


class Square(SquareBudget):
    """Square attack with a per-sample iteration budget."""

    name = "square-art"
    library = "art"

    def algorithm(self) -> str:
        return "art.attacks.evasion.SquareAttack"

    def run(self, target, x, y, *, eps, norm, seed, eot=1, batch_size=256) -> AttackOutput:
        from art.attacks.evasion import SquareAttack

        if np.asarray(x).ndim != 4:
            raise UserError(f"square needs image-like inputs (H, W, C); target '{target.name}' takes {target.input_shape}")
        if norm == "l2" and min(np.asarray(x).shape[1:3]) < 10:
            # ART tiles the image 5x5 for its L2 initialization; below 10 pixels a tile is
            # one pixel, its perturbation norm is zero and every output turns NaN.
            raise UserError(f"square with the L2 norm needs inputs of at least 10x10 pixels (ART's tiling); "
                            f"target '{target.name}' takes {target.input_shape}: attack it in the linf norm or with another attack")
        seed_numpy_and_random(seed)
        counter = QueryCounter(target)
        p_init = self.p_init if self.p_init is not None else (0.05 if norm == "linf" else 0.1)
        attack = SquareAttack(art_blackbox(counter, target), norm=np.inf if norm == "linf" else 2, max_iter=self.max_iter,
                              eps=eps, p_init=p_init, nb_restarts=self.restarts, batch_size=batch_size, verbose=False)
        # ART's L2 square divides by a zero norm on tiny images (8x8) and then discards
        # the NaN candidates; the warnings are noise, not failures.
        with np.errstate(divide="ignore", invalid="ignore"):
            x_adv = attack.generate(x=np.asarray(x, np.float32), y=_onehot(int_labels(y), target.num_classes))
        x_adv = x_adv.astype(np.float32)
        bad = ~np.isfinite(x_adv).reshape(len(x_adv), -1).all(axis=1)
        x_adv[bad] = np.asarray(x, np.float32)[bad]  # a NaN candidate is a failed attack, not an example
        return AttackOutput(x_adv, queries=counter.count, info={"non_finite_outputs": int(bad.sum())})


def _onehot(y: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros((len(y), k), np.float32)
    out[np.arange(len(y)), y] = 1.0
    return out
