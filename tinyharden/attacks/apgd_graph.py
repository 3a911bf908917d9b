"""APGD in one `tf.function`: AutoAttack's APGD-CE, APGD-DLR and targeted APGD-T.

Example (a KerasTarget `t`, [0, 1] inputs `x`, labels `y`):

    eng = apgd_engine(t, norm="linf", loss="ce", eot=1)
    adv, fooled = eng(x, y, eps=8/255, steps=100)

Croce & Hein (2020), "Reliable evaluation of adversarial robustness with an ensemble of
diverse parameter-free attacks", Algorithm 1, written from the paper: step size 2 eps,
momentum 0.75, and at the checkpoints w_j (p_0 = 0, p_1 = 0.22, p_{j+1} = p_j +
max(p_j - p_{j-1} - 0.03, 0.06), in whole iterations) the step is halved and the iterate reset to the best
point when fewer than 75% of the steps since the last checkpoint raised the loss, or when
the step was not reduced at the last checkpoint and the best loss has not improved.
Everything is per sample. The first misclassified iterate is kept (AutoAttack's
`x_best_adv`). Losses: cross-entropy; DLR -(z_y - max_{i!=y} z_i) / (z_pi1 - z_pi3);
targeted DLR -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2).

Why in-graph: ART 1.20.1's `AutoProjectedGradientDescent` calls the model eagerly every
step, builds its DLR loss with a Python loop over the batch, and its targeted mode negates
the untargeted DLR instead of using the targeted DLR above (see README: measured ratio).
With `eot > 1` gradient and loss are means over `eot` passes with the stochastic layers
sampling (inside `KerasTarget.sampling_mode()`).
"""
from __future__ import annotations

import weakref

import numpy as np

RHO = 0.75
MOMENTUM = 0.75


def checkpoints(steps: int) -> list[int]:
    """AutoAttack's checkpoint iterations for `steps` iterations, e.g. 100 -> [22, 41, 57, ...].

    In whole iterations, as AutoAttack counts them: the first after 22% of the budget,
    each interval 3% shorter than the last but at least 6%.
    """
    interval, shrink, shortest = max(int(0.22 * steps), 1), max(int(0.03 * steps), 1), max(int(0.06 * steps), 1)
    out, k = [], interval
    while k < steps:
        out.append(k)
        interval = max(interval - shrink, shortest)
        k += interval
    return out


class APGDEngine:
    """One compiled APGD loop for a (target, norm, loss, eot) combination."""

    def __init__(self, target, *, norm: str, loss: str, eot: int):
        from tinyharden._tf import tf

        if loss not in ("ce", "dlr", "dlr-t"):
            raise ValueError(f"unknown APGD loss {loss!r}")
        self.target, self.norm, self.loss, self.eot = target, norm, loss, eot
        self.gen = tf.random.Generator.from_seed(0)
        self._fn = tf.function(self._attack)

    def reseed(self, seed: int) -> None:
        self.gen.reset_from_seed(seed)

    def __call__(self, x, y, *, eps: float, steps: int, y_target=None, rel_step: float = 2.0):
        """(adversarial x, found) for a batch; `rel_step` is the first step as a multiple of eps (the paper's 2)."""
        from tinyharden._tf import tf

        ck = np.zeros(steps + 1, bool)
        ck[checkpoints(steps)] = True
        t = np.full(len(y), -1, np.int64) if y_target is None else np.asarray(y_target, np.int64)
        adv, found = self._fn(tf.convert_to_tensor(x, tf.float32), tf.convert_to_tensor(y, tf.int64),
                              tf.convert_to_tensor(t), tf.constant(eps, tf.float32), tf.constant(steps, tf.int32),
                              tf.convert_to_tensor(ck), tf.constant(rel_step * eps, tf.float32))
        return adv.numpy(), found.numpy()

    # ------------------------------------------------------------------ pieces
    def _per_sample_loss(self, z, y, t):
        from tinyharden._tf import tf

        if self.loss == "ce":
            return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=z)
        srt = tf.sort(z, axis=-1, direction="DESCENDING")
        zy = tf.gather(z, y, batch_dims=1)
        if self.loss == "dlr":
            other = tf.reduce_max(z - 1e9 * tf.one_hot(y, tf.shape(z)[-1]), axis=-1)
            return -(zy - other) / (srt[:, 0] - srt[:, 2] + 1e-12)
        zt = tf.gather(z, t, batch_dims=1)
        return -(zy - zt) / (srt[:, 0] - 0.5 * (srt[:, 2] + srt[:, 3]) + 1e-12)

    def _grad(self, xa, y, t):
        """(gradient, per-sample loss, inference logits) at xa."""
        from tinyharden._tf import tf

        training = self.eot > 1
        g, loss = tf.zeros_like(xa), tf.zeros(tf.shape(xa)[:1])
        for _ in tf.range(self.eot):
            with tf.GradientTape() as tape:
                tape.watch(xa)
                li = self._per_sample_loss(self.target.logits(xa, training=training), y, t)
                total = tf.reduce_sum(li)  # inside the tape: a sum taken outside it has no gradient
            gi = tape.gradient(total, xa)
            g += tf.zeros_like(xa) if gi is None else gi  # None: no differentiable path (masked)
            loss += li
        z = self.target.logits(xa, training=False)
        return g / float(self.eot), loss / float(self.eot), z

    def _step(self, g):
        from tinyharden._tf import tf

        if self.norm == "linf":
            return tf.sign(g)
        return g / (tf.sqrt(tf.reduce_sum(tf.square(g), axis=_axes(g), keepdims=True)) + 1e-12)

    def _project(self, x, xa, eps):
        from tinyharden.attacks.pgd import project

        return project(x, xa, eps, self.norm)

    def _start(self, x, eps):
        from tinyharden._tf import tf

        if self.norm == "linf":
            r = self.gen.uniform(tf.shape(x), -1.0, 1.0)
            r /= tf.reduce_max(tf.abs(r), axis=_axes(x), keepdims=True)
        else:
            r = self.gen.normal(tf.shape(x))
            r /= tf.sqrt(tf.reduce_sum(tf.square(r), axis=_axes(x), keepdims=True)) + 1e-12
        return tf.clip_by_value(x + eps * r, 0.0, 1.0)

    def _attack(self, x, y, t, eps, steps, ck, eta0):
        from tinyharden._tf import tf

        x_prev = self._start(x, eps)
        g, loss, z = self._grad(x_prev, y, t)
        found = tf.argmax(z, -1) != y
        best_adv = tf.where(_b(found, x), x_prev, x)
        x_best, loss_best, g_best = x_prev, loss, g
        eta = tf.ones_like(loss) * eta0
        x_cur = self._project(x, x_prev + _s(eta, x) * self._step(g), eps)
        loss_prev, n_up = loss, tf.zeros_like(loss)
        loss_best_ck, reduced_ck, last_ck = loss_best, tf.ones_like(found), tf.constant(0)
        for k in tf.range(1, steps + 1):
            g, loss, z = self._grad(x_cur, y, t)
            fooled = tf.argmax(z, -1) != y
            best_adv = tf.where(_b(fooled & ~found, x), x_cur, best_adv)
            found = found | fooled
            n_up += tf.cast(loss > loss_prev, tf.float32)
            loss_prev = loss
            better = loss > loss_best
            x_best, g_best = tf.where(_b(better, x), x_cur, x_best), tf.where(_b(better, x), g, g_best)
            loss_best = tf.where(better, loss, loss_best)
            if k == steps:
                break
            if ck[k]:
                few_ups = n_up < RHO * tf.cast(k - last_ck, tf.float32)
                stalled = ~reduced_ck & (loss_best <= loss_best_ck)
                reduce = few_ups | stalled
                eta = tf.where(reduce, eta / 2.0, eta)
                x_cur, g = tf.where(_b(reduce, x), x_best, x_cur), tf.where(_b(reduce, x), g_best, g)
                n_up, loss_best_ck, reduced_ck, last_ck = tf.zeros_like(n_up), loss_best, reduce, k
            zk = self._project(x, x_cur + _s(eta, x) * self._step(g), eps)
            a = tf.where(k > 1, MOMENTUM, 1.0)
            x_new = self._project(x, x_cur + a * (zk - x_cur) + (1.0 - a) * (x_cur - x_prev), eps)
            x_prev, x_cur = x_cur, x_new
        return tf.where(_b(found, x), best_adv, x_best), found


def _axes(x):
    return list(range(1, len(x.shape)))


def _b(mask, like):
    from tinyharden._tf import tf

    return tf.reshape(mask, [-1] + [1] * (len(like.shape) - 1))


def _s(v, like):
    from tinyharden._tf import tf

    return tf.reshape(v, [-1] + [1] * (len(like.shape) - 1))


_ENGINES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def apgd_engine(target, *, norm: str, loss: str, eot: int) -> APGDEngine:
    from tinyharden.attacks.pgd import cached_engine

    return cached_engine(_ENGINES, APGDEngine, target, norm=norm, loss=loss, eot=eot)
