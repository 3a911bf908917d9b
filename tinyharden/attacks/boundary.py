"""Boundary attack (foolbox's `BoundaryAttack`): decision-based, minimum L2 norm.

Brendel et al. (2018): start from an input that is already misclassified (a blend of
the sample with uniform noise, the starting point foolbox's
`LinearSearchBlendedUniformNoiseAttack` finds, computed here by `blended_noise_starts`)
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
        return ("foolbox.attacks.BoundaryAttack (init: LinearSearchBlendedUniformNoiseAttack's starting points, "
                "searched per sample)")

    def run(self, target, x, y, *, eps, norm, seed, eot=1, batch_size=256) -> AttackOutput:
        import foolbox as fb

        seed_numpy_and_random(seed)
        counter = QueryCounter(target)
        fmodel = fb.models.NumPyModel(counter, bounds=(0.0, 1.0))
        x = np.asarray(x, np.float32)
        yl = int_labels(y)
        attack = fb.attacks.BoundaryAttack(steps=self.steps, spherical_step=self.spherical_step,
                                           source_step=self.source_step, step_adaptation=self.step_adaptation)
        x_out = x.copy()
        no_start = 0
        for sl in batches(len(x), batch_size):
            xb, yb = x[sl], yl[sl]
            starts = blended_noise_starts(counter, xb, yb, directions=self.init_directions, steps=self.init_steps)
            ok = np.argmax(counter(starts), axis=-1) != yb
            no_start += int((~ok).sum())
            if ok.any():
                raw, _, _ = attack(fmodel, xb[ok], yb[ok], epsilons=None, starting_points=starts[ok])
                out = x_out[sl]
                out[ok] = np.asarray(raw, np.float32)
                x_out[sl] = out
        return AttackOutput(x_out, queries=counter.count, info={"no_adversarial_start": no_start})


def blended_noise_starts(predict, x: np.ndarray, y: np.ndarray, *, directions: int, steps: int,
                         chunk: int = 256) -> np.ndarray:
    """foolbox's `LinearSearchBlendedUniformNoiseAttack(directions, steps)` starting points, same draws.

    foolbox blends the whole batch towards uniform noise at each of `steps + 1` levels
    until every sample is misclassified, so all samples pay for the one that needs the
    most noise (on ResNet-8, 20 images: 1,000+ full-batch calls, half the Boundary
    attack's time). Each sample's start is the first level at which it is misclassified;
    this searches each sample only until it finds its own, several levels per call once
    few samples are left (up to `chunk` images a call). The noise comes from NumPy's
    global generator in foolbox's order (one full-batch draw per direction tried), and the
    blends are computed in foolbox's dtypes, so the starts are the same arrays.
    `predict(x) -> scores`; y integer labels.
    """
    n = len(x)
    noise = np.random.uniform(0.0, 1.0, size=x.shape)  # float64, as eagerpy's NumPy uniform
    found = np.argmax(predict(noise), axis=-1) != y
    for _ in range(directions - 1):
        if found.all():
            break
        draw = np.random.uniform(0.0, 1.0, size=x.shape)
        todo = np.flatnonzero(~found)
        hit = np.argmax(predict(draw[todo]), axis=-1) != y[todo]
        noise[todo] = draw[todo]  # foolbox keeps the latest draw for samples still without one
        found[todo[hit]] = True
    levels = np.linspace(0, 1, num=steps + 1, dtype=np.float32)
    best = np.ones(n, np.float64)
    active, j = np.arange(n), 0
    while len(active) and j < len(levels):
        k = min(max(1, chunk // len(active)), len(levels) - j)
        eps = levels[j:j + k].reshape((k, 1) + (1,) * x.ndim)
        blends = ((1 - eps) * x[active] + eps * noise[active]).reshape((-1,) + x.shape[1:])
        adv = (np.argmax(predict(blends), axis=-1) != np.tile(y[active], k)).reshape(k, len(active))
        hit = adv.any(axis=0)
        best[active[hit]] = levels[j + np.argmax(adv[:, hit], axis=0)].astype(np.float64)
        active, j = active[~hit], j + k
    best = best.reshape((-1,) + (1,) * (x.ndim - 1))
    return ((1 - best) * x + best * noise).astype(np.float32)
