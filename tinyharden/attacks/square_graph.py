"""Square attack, Linf, batched over every image and compiled: tinyharden's own `square`.

Example (a Target `t`, [0, 1] images `x`, labels `y`):

    out = SquareGraph(max_iter=1000).run(t, x, y, eps=2 / 255, norm="linf", seed=0)
    out.queries  # model queries, init included: at most max_iter per image

Andriushchenko et al. (2020), "Square Attack: a query-efficient black-box adversarial
attack via random search", Linf version, written from the paper:

- start at the vertical stripes x + d, d constant along each column, one sign per
  column and channel: d in {-eps, eps} (one query per image);
- each iteration draws, per image, a square window of side s = round(sqrt(p * H * W))
  (1 <= s < min(H, W)) at a uniform position, and sets the perturbation inside it to
  +eps or -eps, one sign per channel (a proposal that changes nothing is redrawn); the
  candidate is projected on [0, 1] and kept if it lowers the margin loss
  z_y - max_{k != y} z_k;
- p starts at `p_init` and halves after 10, 50, 200, 500, 1000, 2000, 4000, 6000 and
  8000 of 10,000 iterations, the schedule rescaled to the budget as the paper does for
  budgets other than 10,000;
- an image stops being queried once its margin is negative (misclassified), so it
  costs one query for the start and one per iteration while it resists: `max_iter`
  queries in all at most, the paper's query limit (ART's `max_iter` counts iterations
  after the start, so ART spends at most one more).

Why our own: ART's `SquareAttack` loops in NumPy and asks the model for predictions up
to three times per iteration; here one compiled step per iteration proposes for every
still-robust image at once, queries the model once on them (in-graph for a Keras
target, through `Target.predict` for a .tflite one) and accepts or rejects
(bench/attack_throughput.py has the ratio). The L2 version is ART's (`square-art`).
"""
from __future__ import annotations

import weakref

import numpy as np

from tinyharden.attacks.base import AttackOutput, batches
from tinyharden.attacks.square import SquareBudget
from tinyharden.errors import UserError

# Iteration fractions (of 10,000) after which the paper halves the square's area.
_HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)
_REDRAWS = 8  # attempts at a proposal that changes the image; each unchanged one is 1/2^C likely


def p_schedule(p_init: float, i: int, n_iters: int) -> float:
    """The fraction of pixels the square covers at iteration `i` of `n_iters`, e.g. p_schedule(0.05, 30, 1000) == 0.0125.

    The paper's schedule for 10,000 iterations, with `i` rescaled to that length.
    """
    k = int(i / n_iters * 10000)
    return p_init / 2 ** sum(k > h for h in _HALVINGS)


def side(p: float, h: int, w: int) -> int:
    """Side of the square covering a fraction `p` of an h x w image: 1 <= side <= min(h, w) - 1."""
    return int(min(max(round(np.sqrt(p * h * w)), 1), max(min(h, w) - 1, 1)))


class SquareGraph(SquareBudget):
    """Square attack (Linf in-graph; L2 through ART) with a per-image query budget."""

    name = "square"

    def algorithm(self) -> str:
        return "Square attack (Andriushchenko et al. 2020), Linf, batched and compiled"

    def run(self, target, x, y, *, eps, norm, seed, eot=1, batch_size=256) -> AttackOutput:
        if norm == "l2":  # the paper's L2 proposals are ART's implementation
            from tinyharden.attacks.square import Square

            return Square(max_iter=self.max_iter, p_init=self.p_init, restarts=self.restarts).run(
                target, x, y, eps=eps, norm=norm, seed=seed, batch_size=batch_size)
        x = np.asarray(x, np.float32)
        if x.ndim != 4:
            raise UserError(f"square needs image-like inputs (H, W, C); target '{target.name}' takes {target.input_shape}")
        p_init = self.p_init if self.p_init is not None else 0.05
        engine = _engine(target)
        engine.gen.reset_from_seed(seed)
        calls0 = engine.calls
        x_adv, queries = x.copy(), np.zeros(len(x), np.int64)
        todo = np.ones(len(x), bool)
        for _ in range(self.restarts):  # a restart redraws the stripes for the images still standing
            idx = np.flatnonzero(todo)
            for sl in batches(len(idx), max(batch_size, 1)):
                part = idx[sl]
                adv, q, fooled = engine.attack(x[part], np.asarray(y, np.int64)[part], eps=eps, p_init=p_init,
                                               n_iters=self.max_iter)
                x_adv[part], queries[part] = adv, queries[part] + q
                todo[part] = ~fooled
            if not todo.any():
                break
        return AttackOutput(x_adv, queries=int(queries.sum()),
                            info={"queries_per_image_max": int(queries.max()) if len(x) else 0,
                                  "model_calls": engine.calls - calls0})


class _Engine:
    """The compiled pieces: the stripes start and one random-search step for a batch."""

    def __init__(self, target):
        from tinyharden._tf import tf

        self.target, self.calls = target, 0
        self.gen = tf.random.Generator.from_seed(0)
        # Any batch size with one trace each: a batch shrinks as its images fall, a sweep changes n.
        img = tf.TensorSpec([None, *target.input_shape], tf.float32)
        lab, num = tf.TensorSpec([None], tf.int64), tf.TensorSpec([], tf.float32)
        self._init = tf.function(self._init_fn, input_signature=[img, lab, num])
        self._step = tf.function(self._step_fn, input_signature=[img, img, lab, img, tf.TensorSpec([None], tf.float32),
                                                                 tf.TensorSpec([], tf.int32)])

    def _scores(self, xs):
        from tinyharden._tf import tf

        if getattr(self.target, "differentiable", False) and hasattr(self.target, "logits"):
            return tf.cast(self.target.logits(xs, training=False), tf.float32)
        z = tf.numpy_function(lambda a: np.asarray(self.target.predict(a), np.float32), [xs], tf.float32)
        return tf.reshape(z, [tf.shape(xs)[0], self.target.num_classes])

    def _margin(self, xs, y):
        from tinyharden._tf import tf

        z = self._scores(xs)
        other = tf.reduce_max(z - 1e9 * tf.one_hot(y, tf.shape(z)[-1]), axis=-1)
        return tf.gather(z, y, batch_dims=1) - other

    def _init_fn(self, x, y, eps):
        from tinyharden._tf import tf

        s = tf.shape(x)
        stripes = eps * tf.sign(self.gen.uniform([s[0], 1, s[2], s[3]], -1.0, 1.0))
        xb = tf.clip_by_value(x + stripes, 0.0, 1.0)
        return xb, self._margin(xb, y)

    def _propose(self, lo, hi, xb, s):
        """Per image: a window of side s at a random place, each channel set to x - eps (lo) or x + eps (hi) in it.

        A draw whose signs the window already holds everywhere would waste a query, so it
        is redrawn; which signs those are is decided once per channel, on (N, C) flags.
        """
        from tinyharden._tf import tf

        n, h, w, c = tf.shape(xb)[0], tf.shape(xb)[1], tf.shape(xb)[2], tf.shape(xb)[3]
        r0 = self.gen.uniform([n], 0, h - s + 1, dtype=tf.int32)
        c0 = self.gen.uniform([n], 0, w - s + 1, dtype=tf.int32)
        rows, cols = tf.range(h)[None, :], tf.range(w)[None, :]
        in_r = (rows >= r0[:, None]) & (rows < r0[:, None] + s)
        in_c = (cols >= c0[:, None]) & (cols < c0[:, None] + s)
        window = in_r[:, :, None, None] & in_c[:, None, :, None]
        outside = tf.logical_not(window)
        holds_hi = tf.reduce_all((tf.abs(xb - hi) < 1e-7) | outside, axis=[1, 2])  # (N, C)
        holds_lo = tf.reduce_all((tf.abs(xb - lo) < 1e-7) | outside, axis=[1, 2])
        up = self.gen.uniform([n, c]) < 0.5
        for _ in range(_REDRAWS):
            same = tf.reduce_all(tf.where(up, holds_hi, holds_lo), axis=-1)
            up = tf.where(same[:, None], self.gen.uniform([n, c]) < 0.5, up)
        return tf.where(window, tf.where(up[:, None, None, :], hi, lo), xb)

    def _step_fn(self, lo, hi, y, xb, margin, s):
        """One query for every image still classified correctly; keep a proposal that lowers its margin."""
        from tinyharden._tf import tf

        active = tf.where(margin > 0)[:, 0]
        xba = tf.gather(xb, active)
        cand = self._propose(tf.gather(lo, active), tf.gather(hi, active), xba, s)
        m_old = tf.gather(margin, active)
        m_new = self._margin(cand, tf.gather(y, active))
        better = m_new < m_old
        keep = tf.where(better[:, None, None, None], cand, xba)
        xb = tf.tensor_scatter_nd_update(xb, active[:, None], keep)
        margin = tf.tensor_scatter_nd_update(margin, active[:, None], tf.minimum(m_new, m_old))
        return xb, margin

    def attack(self, x, y, *, eps: float, p_init: float, n_iters: int):
        from tinyharden._tf import tf

        h, w = int(x.shape[1]), int(x.shape[2])
        xt, yt, e = tf.constant(x), tf.constant(y), tf.constant(eps, tf.float32)
        lo, hi = tf.clip_by_value(xt - e, 0.0, 1.0), tf.clip_by_value(xt + e, 0.0, 1.0)
        xb, margin = self._init(xt, yt, e)
        self.calls += 1
        queries = np.ones(len(x), np.int64)
        for i in range(1, n_iters):
            active = margin.numpy() > 0
            if not active.any():
                break
            queries += active
            s = side(p_schedule(p_init, i, n_iters), h, w)
            xb, margin = self._step(lo, hi, yt, xb, margin, tf.constant(s, tf.int32))
            self.calls += 1
        return xb.numpy(), queries, margin.numpy() <= 0


_ENGINES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _engine(target) -> _Engine:
    """One engine per target, so an eps sweep traces its two graphs once."""
    if target not in _ENGINES:
        _ENGINES[target] = _Engine(target)
    return _ENGINES[target]
