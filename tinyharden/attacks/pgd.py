"""FGSM and PGD: tinyharden's own in-graph gradient attacks (Linf and L2).

Why our own: the whole attack loop (random start, every step, projection, tracking the
first adversarial iterate) is one `tf.function`, so a batch never leaves the graph
between steps. foolbox and ART call the model eagerly and go through NumPy or eagerpy
every step; `bench/attack_throughput.py` measures the difference on the MLPerf ResNet-8
(the issue measured ~1.7x foolbox and 2x ART).

The algorithm is Madry et al.'s PGD: x0 = x + U(ball) when `random_start`, then `steps`
ascent steps of size `rel_step * eps` along sign(g) (Linf) or g/||g||_2 (L2), each
followed by projection onto the eps ball and [0, 1]. The first iterate that is
misclassified is kept (it is a valid adversarial example, and later steps may wander
off it); `restarts` reruns from new random starts for the samples still not fooled.
FGSM is the one-step case with step eps and no random start (Goodfellow et al.).

Stochastic models: with `eot > 1` each gradient is the mean over `eot` passes with the
stochastic quantizers sampling (Expectation over Transformation, Athalye et al.), taken
inside `KerasTarget.sampling_mode()` so BatchNorm stays in inference mode.
"""
from __future__ import annotations

import weakref
from typing import Literal

import numpy as np

from tinyharden.attacks.base import WHITE_BOX, Attack, AttackOutput, batches
from tinyharden.attacks.target import require_differentiable



def _margins(logits, y):
    """Per sample: best other logit - true logit."""
    from tinyharden._tf import tf

    true = tf.gather(logits, y, batch_dims=1)
    return tf.reduce_max(logits - 1e9 * tf.one_hot(y, tf.shape(logits)[-1]), axis=-1) - true


def margin_loss(logits, y):
    """Sum over the batch of (best other logit - true logit): > 0 exactly where a sample is misclassified.

        loss = margin_loss(target.logits(x), y)
    """
    from tinyharden._tf import tf

    return tf.reduce_sum(_margins(logits, y))

class PGD(Attack):
    """Projected gradient descent, Linf or L2, with random start and restarts."""

    name = "pgd"
    kind = WHITE_BOX
    eot_capable = True
    precision_capable = True

    def __init__(self, *, steps: int = 20, rel_step: float = 0.25, random_start: bool = True,
                 restarts: int = 1, loss: Literal["ce", "margin"] = "ce"):
        if steps < 1 or restarts < 1 or rel_step <= 0:
            raise ValueError("steps and restarts must be >= 1 and rel_step > 0")
        self.steps = steps
        self.rel_step = rel_step
        self.random_start = random_start
        self.restarts = restarts
        self.loss = loss

    def algorithm(self) -> str:
        return "PGD (Madry et al. 2018), in-graph"

    def run(self, target, x, y, *, eps, norm, seed, eot=1, batch_size=256) -> AttackOutput:
        require_differentiable(target, self.name)
        engine = engine_for(target, norm=norm, loss=self.loss, eot=eot)
        engine.reseed(seed)
        x_out = np.array(x, dtype=np.float32, copy=True)
        found = np.zeros(len(x), bool)
        for r in range(self.restarts):
            todo = np.flatnonzero(~found)
            if len(todo) == 0:
                break
            for sl in batches(len(todo), batch_size):
                idx = todo[sl]
                adv, ok = engine(x[idx], y[idx], eps=eps, step=self.rel_step * eps, steps=self.steps,
                                 random_start=self.random_start or r > 0)
                x_out[idx] = adv
                found[idx] = ok
        return AttackOutput(x_out, info={"restarts_used": r + 1})


class FGSM(PGD):
    """Fast gradient sign method: one step of size eps (L2: along the normalized gradient)."""

    name = "fgsm"

    def __init__(self, *, rel_step: float = 1.0, random_start: bool = False, loss: Literal["ce", "margin"] = "ce"):
        super().__init__(steps=1, rel_step=rel_step, random_start=random_start, restarts=1, loss=loss)

    def algorithm(self) -> str:
        return "FGSM (Goodfellow et al. 2015), in-graph"


# --------------------------------------------------------------------------- engine

class _Engine:
    """One compiled PGD loop for a (target, norm, loss, eot) combination."""

    def __init__(self, target, *, norm: str, loss: str, eot: int):
        from tinyharden._tf import tf

        self.target, self.norm, self.loss, self.eot = target, norm, loss, eot
        # On a bfloat16 twin (attacks.precision) the first iterate its logits call misclassified
        # is often a borderline one the float32 re-check calls correct; the iterate with the
        # largest bf16 margin is the one most likely to stay misclassified in float32.
        self.keep_max_margin = getattr(target, "precision", "float32") != "float32"
        self.gen = tf.random.Generator.from_seed(0)
        # No jit_compile: on CPU, XLA's convolutions measured ~10x slower than the
        # oneDNN kernels of the plain graph on the MLPerf ResNet-8.
        self._fn = tf.function(self._attack)

    def reseed(self, seed: int) -> None:
        self.gen.reset_from_seed(seed)

    def __call__(self, x, y, *, eps, step, steps, random_start):
        from tinyharden._tf import tf

        adv, found = self._fn(tf.convert_to_tensor(x, tf.float32), tf.convert_to_tensor(y, tf.int64),
                              tf.constant(eps, tf.float32), tf.constant(step, tf.float32),
                              tf.constant(steps, tf.int32), tf.constant(float(random_start), tf.float32))
        return adv.numpy(), found.numpy()

    def _loss(self, logits, y):
        from tinyharden._tf import tf

        if self.loss == "ce":
            return tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
        return margin_loss(logits, y)

    def _grad(self, xa, y):
        from tinyharden._tf import tf

        if self.eot == 1:
            with tf.GradientTape() as tape:
                tape.watch(xa)
                logits = self.target.logits(xa, training=False)
                loss = self._loss(logits, y)
            g = tape.gradient(loss, xa)
            # A None gradient means no differentiable path (e.g. rounding without a
            # straight-through estimator): the attack then stalls, which the masking
            # checks report, instead of crashing.
            return (tf.zeros_like(xa) if g is None else g), logits
        g = tf.zeros_like(xa)
        for _ in tf.range(self.eot):
            with tf.GradientTape() as tape:
                tape.watch(xa)
                loss = self._loss(self.target.logits(xa, training=True), y)
            gi = tape.gradient(loss, xa)
            if gi is not None:
                g += gi
        return g / float(self.eot), self.target.logits(xa, training=False)

    def _project(self, x, xa, eps):
        return project(x, xa, eps, self.norm)

    def _attack(self, x, y, eps, step, steps, random_start):
        from tinyharden._tf import tf

        shape = tf.shape(x)
        if self.norm == "linf":
            d0 = self.gen.uniform(shape, -1.0, 1.0) * eps
        else:
            d0 = self.gen.normal(shape)
            d0 /= tf.sqrt(tf.reduce_sum(tf.square(d0), axis=_axes(x), keepdims=True)) + 1e-12
            dim = tf.cast(tf.reduce_prod(shape[1:]), tf.float32)
            r = self.gen.uniform(tf.concat([shape[:1], tf.ones_like(shape[1:])], 0)) ** (1.0 / dim)
            d0 *= r * eps
        xa = tf.clip_by_value(x + d0 * random_start, 0.0, 1.0)
        best = x
        found = tf.zeros(shape[:1], tf.bool)
        best_margin = tf.fill(shape[:1], -np.inf)
        for _ in tf.range(steps):
            g, logits = self._grad(xa, y)
            fooled = tf.argmax(logits, axis=-1) != y
            if self.keep_max_margin:
                m = _margins(logits, y)
                new = m > best_margin
                best_margin = tf.maximum(m, best_margin)
            else:
                new = tf.logical_and(fooled, tf.logical_not(found))
            best = tf.where(_bcast(new, x), xa, best)
            found = tf.logical_or(found, fooled)
            if self.norm == "linf":
                xa = xa + step * tf.sign(g)
            else:
                gn = tf.sqrt(tf.reduce_sum(tf.square(g), axis=_axes(g), keepdims=True))
                xa = xa + step * g / tf.maximum(gn, 1e-12)
            xa = self._project(x, xa, eps)
        logits = self.target.logits(xa, training=False)
        fooled = tf.argmax(logits, axis=-1) != y
        if self.keep_max_margin:
            last = _margins(logits, y) > best_margin
            return tf.where(_bcast(last, x), xa, best), tf.logical_or(found, fooled)
        return tf.where(_bcast(found, x), best, xa), tf.logical_or(found, fooled)


def _axes(x):
    return list(range(1, len(x.shape)))


def project(x, xa, eps, norm: str):
    """`xa` moved into the `norm` ball of radius `eps` around `x` (per sample), then into [0, 1]; in-graph."""
    from tinyharden._tf import tf

    d = xa - x
    if norm == "linf":
        d = tf.clip_by_value(d, -eps, eps)
    else:
        n = tf.sqrt(tf.reduce_sum(tf.square(d), axis=_axes(d), keepdims=True))
        d = d * tf.minimum(1.0, eps / tf.maximum(n, 1e-12))
    return tf.clip_by_value(x + d, 0.0, 1.0)


def _bcast(mask, like):
    from tinyharden._tf import tf

    return tf.reshape(mask, [-1] + [1] * (len(like.shape) - 1))


_ENGINES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def cached_engine(cache: "weakref.WeakKeyDictionary", engine_cls, target, *, norm: str, loss: str, eot: int):
    """One `engine_cls` per (target, norm, loss, eot), so a sweep over eps traces the graph once."""
    per_target = cache.setdefault(target, {})
    key = (norm, loss, eot)
    if key not in per_target:
        per_target[key] = engine_cls(target, norm=norm, loss=loss, eot=eot)
    return per_target[key]


def engine_for(target, *, norm: str, loss: str, eot: int) -> _Engine:
    return cached_engine(_ENGINES, _Engine, target, norm=norm, loss=loss, eot=eot)
