"""APGD-CE (ART's `AutoProjectedGradientDescent` with the cross-entropy loss).

Croce & Hein (2020): PGD with a step size that adapts itself from the progress of the
loss, so it needs no step-size tuning; the first attack of AutoAttack. `rel_step` is the
initial step as a multiple of eps (the paper's 2 eps).
"""
from __future__ import annotations

import numpy as np

from tinyharden.attacks._adapters import art_classifier, int_labels, seed_numpy_and_random
from tinyharden.attacks.base import WHITE_BOX, Attack, AttackOutput
from tinyharden.attacks.target import require_differentiable


class APGD(Attack):
    """Auto-PGD with cross-entropy loss, Linf or L2."""

    name = "apgd"
    kind = WHITE_BOX
    library = "art"
    eot_capable = True
    precision_capable = True

    def __init__(self, *, steps: int = 100, restarts: int = 1, rel_step: float = 2.0):
        if steps < 1 or restarts < 1 or rel_step <= 0:
            raise ValueError("steps and restarts must be >= 1 and rel_step > 0")
        self.steps = steps
        self.restarts = restarts
        self.rel_step = rel_step

    def algorithm(self) -> str:
        return "art.attacks.evasion.AutoProjectedGradientDescent(loss_type='cross_entropy')"

    def run(self, target, x, y, *, eps, norm, seed, eot=1, batch_size=256) -> AttackOutput:
        from art.attacks.evasion import AutoProjectedGradientDescent

        require_differentiable(target, self.name)
        seed_numpy_and_random(seed)
        attack = AutoProjectedGradientDescent(
            art_classifier(target, eot), norm=np.inf if norm == "linf" else 2, eps=eps, eps_step=self.rel_step * eps,
            max_iter=self.steps, nb_random_init=self.restarts, batch_size=batch_size, loss_type="cross_entropy",
            verbose=False)
        return AttackOutput(attack.generate(x=np.asarray(x, np.float32), y=int_labels(y)).astype(np.float32))
