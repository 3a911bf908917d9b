"""APGD-CE: tinyharden's in-graph `apgd` and ART's `AutoProjectedGradientDescent` as `apgd-art`.

    out = APGD(steps=100).run(target, x, y, eps=8 / 255, norm="linf", seed=0)

Croce & Hein (2020): PGD with a step size that adapts itself from the progress of the
loss, so it needs no step-size tuning; the first attack of AutoAttack. `rel_step` is the
initial step as a multiple of eps (the paper's 2 eps). `apgd` runs the compiled engine of
`attacks.apgd_graph` (the one `autoattack` uses; 2-4x ART's speed with the same robust
accuracy, bench/attack_throughput.py); a restart attacks again, from a new random start,
only the samples the earlier runs did not fool.
"""
from __future__ import annotations

import numpy as np

from tinyharden.attacks._adapters import art_classifier, int_labels, seed_numpy_and_random
from tinyharden.attacks.base import WHITE_BOX, Attack, AttackOutput, batches
from tinyharden.attacks.target import require_differentiable


class APGD(Attack):
    """Auto-PGD with cross-entropy loss, Linf or L2, compiled in one `tf.function` per batch."""

    name = "apgd"
    kind = WHITE_BOX
    library = "tinyharden"
    eot_capable = True
    precision_capable = True

    def __init__(self, *, steps: int = 100, restarts: int = 1, rel_step: float = 2.0):
        if steps < 1 or restarts < 1 or rel_step <= 0:
            raise ValueError("steps and restarts must be >= 1 and rel_step > 0")
        self.steps = steps
        self.restarts = restarts
        self.rel_step = rel_step

    def algorithm(self) -> str:
        return "APGD-CE (Croce & Hein 2020, Algorithm 1), in-graph (tinyharden.attacks.apgd_graph)"

    def run(self, target, x, y, *, eps, norm, seed, eot=1, batch_size=256) -> AttackOutput:
        from tinyharden.attacks.apgd_graph import apgd_engine

        require_differentiable(target, self.name)
        x, y = np.asarray(x, np.float32), np.asarray(y, np.int64)
        engine = apgd_engine(target, norm=norm, loss="ce", eot=eot)
        engine.reseed(seed)
        out, todo = x.copy(), np.ones(len(x), bool)
        for _ in range(self.restarts):
            idx = np.flatnonzero(todo)
            for sl in batches(len(idx), max(batch_size, 1)):
                part = idx[sl]
                adv, found = engine(x[part], y[part], eps=eps, steps=self.steps, rel_step=self.rel_step)
                out[part] = adv
                todo[part[found]] = False
            if not todo.any():
                break
        return AttackOutput(out)


class ARTAPGD(APGD):
    """ART 1.20.1's `AutoProjectedGradientDescent` (cross-entropy), the same budget: `apgd-art`."""

    name = "apgd-art"
    library = "art"

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
