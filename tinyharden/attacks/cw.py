"""Carlini-Wagner L2 (foolbox's `L2CarliniWagnerAttack`): a minimum-norm white-box attack.

It ignores eps: it searches for the smallest L2 perturbation that flips the label, and
the evaluation scores that one example at every eps of the sweep (in the suite's norm).
foolbox's defaults (9 binary-search steps x 10,000 Adam steps) take hours on a CPU; ours
are 5 x 100 with a larger initial constant, enough to find most boundaries on small
models. Raise `steps` and `binary_search_steps` for a final evaluation.
"""
from __future__ import annotations

import numpy as np

from tinyharden.attacks._adapters import foolbox_model, int_labels
from tinyharden.attacks.base import WHITE_BOX, Attack, AttackOutput, batches
from tinyharden.attacks.target import require_differentiable


class CarliniWagnerL2(Attack):
    """Carlini & Wagner (2017) L2 attack."""

    name = "cw"
    kind = WHITE_BOX
    minimum_norm = True
    norms = ("l2",)
    library = "foolbox"
    eot_capable = True

    def __init__(self, *, binary_search_steps: int = 5, steps: int = 100, stepsize: float = 0.01,
                 confidence: float = 0.0, initial_const: float = 0.01, abort_early: bool = True):
        if binary_search_steps < 1 or steps < 1 or stepsize <= 0 or initial_const <= 0:
            raise ValueError("binary_search_steps and steps must be >= 1, stepsize and initial_const > 0")
        self.binary_search_steps = binary_search_steps
        self.steps = steps
        self.stepsize = stepsize
        self.confidence = confidence
        self.initial_const = initial_const
        self.abort_early = abort_early

    def algorithm(self) -> str:
        return "foolbox.attacks.L2CarliniWagnerAttack"

    def run(self, target, x, y, *, eps, norm, seed, eot=1, batch_size=256) -> AttackOutput:
        import foolbox as fb

        from tinyharden._tf import tf

        require_differentiable(target, self.name)
        fmodel = foolbox_model(target, eot)
        attack = fb.attacks.L2CarliniWagnerAttack(
            binary_search_steps=self.binary_search_steps, steps=self.steps, stepsize=self.stepsize,
            confidence=self.confidence, initial_const=self.initial_const, abort_early=self.abort_early)
        x_out = np.array(x, dtype=np.float32, copy=True)
        yl = int_labels(y)
        for sl in batches(len(x), batch_size):
            raw, _, _ = attack(fmodel, tf.constant(x[sl]), tf.constant(yl[sl]), epsilons=None)
            raw = raw.numpy()
            # foolbox returns an all-zero image where it found nothing. Decided by our own
            # prediction, not foolbox's flag: keep the clean input there, so a failure is
            # a failure and not a huge "perturbation" in the norm statistics.
            fooled = np.argmax(target.predict(raw), axis=-1) != yl[sl]
            x_out[sl] = np.where(fooled.reshape((-1,) + (1,) * (x.ndim - 1)), raw, x[sl])
        return AttackOutput(x_out)
