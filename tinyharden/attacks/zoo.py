"""ZOO (ART's `ZooAttack`): zeroth-order optimization, score-based black-box.

Chen et al. (2017): the Carlini-Wagner objective optimized with gradients estimated by
finite differences, `nb_parallel` coordinates at a time (two queries each). It is by
far the slowest attack here, so the default budget is deliberately small: 20 Adam
iterations, one binary-search step, 128 coordinates per iteration, a large initial
constant so a perturbation is attempted at all. At that budget ZOO is a smoke test of
black-box vulnerability, not a bound; raise `max_iter` and `binary_search_steps` (and
expect hours on CIFAR-10 with n=1000). It minimizes an L2-penalized objective and is
scored like the other minimum-norm attacks.
"""
from __future__ import annotations

import numpy as np

from tinyharden.attacks._adapters import QueryCounter, int_labels, seed_numpy_and_random, whole_batch_blackbox
from tinyharden.attacks.base import BLACK_BOX, Attack, AttackOutput


class ZOO(Attack):
    """Zeroth-order optimization attack (untargeted)."""

    name = "zoo"
    kind = BLACK_BOX
    minimum_norm = True
    norms = ("l2",)
    library = "art"

    def __init__(self, *, max_iter: int = 20, binary_search_steps: int = 1, learning_rate: float = 0.01,
                 initial_const: float = 1.0, confidence: float = 0.0, nb_parallel: int = 128,
                 variable_h: float = 1e-4):
        if max_iter < 1 or binary_search_steps < 1 or nb_parallel < 1:
            raise ValueError("max_iter, binary_search_steps and nb_parallel must be >= 1")
        self.max_iter = max_iter
        self.binary_search_steps = binary_search_steps
        self.learning_rate = learning_rate
        self.initial_const = initial_const
        self.confidence = confidence
        self.nb_parallel = nb_parallel
        self.variable_h = variable_h

    def algorithm(self) -> str:
        return "art.attacks.evasion.ZooAttack (use_resize=False, use_importance=False)"

    def run(self, target, x, y, *, eps, norm, seed, eot=1, batch_size=256) -> AttackOutput:
        from art.attacks.evasion import ZooAttack

        seed_numpy_and_random(seed)
        counter = QueryCounter(target)
        clf = whole_batch_blackbox(counter, target)
        dim = int(np.prod(target.input_shape))
        # Resizing and importance sampling assume large square images; off keeps ZOO
        # valid for any input shape (8x8 digits, 49x10 MFCCs). batch_size=1 because
        # ART 1.20's ZOO sizes its Adam state for one sample and fails on larger batches.
        attack = ZooAttack(clf, confidence=self.confidence, targeted=False, learning_rate=self.learning_rate,
                           max_iter=self.max_iter, binary_search_steps=self.binary_search_steps,
                           initial_const=self.initial_const, abort_early=True, use_resize=False, use_importance=False,
                           nb_parallel=min(self.nb_parallel, dim), batch_size=1,
                           variable_h=self.variable_h, verbose=False)
        yl = int_labels(y)
        onehot = np.eye(target.num_classes, dtype=np.float32)[yl]
        x_adv = attack.generate(x=np.asarray(x, np.float32), y=onehot)
        return AttackOutput(x_adv.astype(np.float32), queries=counter.count)
