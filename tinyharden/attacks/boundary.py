"""Boundary attack (foolbox's `BoundaryAttack`): decision-based, minimum L2 norm.

Brendel et al. (2018): start from an input that is already misclassified (a blend of
the sample with uniform noise, found by foolbox's `LinearSearchBlendedUniformNoiseAttack`)
and walk along the decision boundary towards the sample, seeing only predicted labels.
It runs on any Target (foolbox's `NumPyModel` over `Target.predict`). foolbox's default
of 25,000 steps is hours on a CPU; ours is 1,000, so the norms it reports are upper
bounds that shrink with more steps. Samples whose noise start is not adversarial are
left unattacked (counted as attack failures), since foolbox refuses the whole batch.
"""
from __future__ import annotations

import numpy as np

from tinyharden.attacks._adapters import QueryCounter, int_labels, seed_numpy_and_random
from tinyharden.attacks.base import BLACK_BOX, Attack, AttackOutput, batches


class Boundary(Attack):
    """Decision-based boundary attack."""

    name = "boundary"
    kind = BLACK_BOX
    minimum_norm = True
    norms = ("l2",)
    library = "foolbox"

    def __init__(self, *, steps: int = 1000, spherical_step: float = 0.01, source_step: float = 0.01,
                 step_adaptation: float = 1.5, init_directions: int = 1000, init_steps: int = 1000):
        if steps < 1 or init_directions < 1 or init_steps < 1 or spherical_step <= 0 or source_step <= 0:
            raise ValueError("steps, init_directions and init_steps must be >= 1; step sizes > 0")
        self.steps = steps
        self.spherical_step = spherical_step
        self.source_step = source_step
        self.step_adaptation = step_adaptation
        self.init_directions = init_directions
        self.init_steps = init_steps

    def algorithm(self) -> str:
        return "foolbox.attacks.BoundaryAttack (init: LinearSearchBlendedUniformNoiseAttack)"

    def run(self, target, x, y, *, eps, norm, seed, eot=1, batch_size=256) -> AttackOutput:
        import foolbox as fb

        seed_numpy_and_random(seed)
        counter = QueryCounter(target)
        fmodel = fb.models.NumPyModel(counter, bounds=(0.0, 1.0))
        x = np.asarray(x, np.float32)
        yl = int_labels(y)
        init = fb.attacks.LinearSearchBlendedUniformNoiseAttack(directions=self.init_directions, steps=self.init_steps)
        attack = fb.attacks.BoundaryAttack(steps=self.steps, spherical_step=self.spherical_step,
                                           source_step=self.source_step, step_adaptation=self.step_adaptation)
        x_out = x.copy()
        no_start = 0
        for sl in batches(len(x), batch_size):
            xb, yb = x[sl], yl[sl]
            starts = np.asarray(init.run(fmodel, xb, fb.criteria.Misclassification(yb)), np.float32)
            ok = np.argmax(counter(starts), axis=-1) != yb
            no_start += int((~ok).sum())
            if ok.any():
                raw, _, _ = attack(fmodel, xb[ok], yb[ok], epsilons=None, starting_points=starts[ok])
                out = x_out[sl]
                out[ok] = np.asarray(raw, np.float32)
                x_out[sl] = out
        return AttackOutput(x_out, queries=counter.count, info={"no_adversarial_start": no_start})
