"""FAB-T in one `tf.function`: AutoAttack's targeted fast adaptive boundary attack.

Example (a KerasTarget `t`, [0, 1] inputs `x`, labels `y`, target classes `yt`):

    eng = fab_engine(t, norm="linf")
    adv, norm = eng(x, y, yt, steps=100)   # smallest adversarial found, and its norm

Croce & Hein (2020), "Minimally distorted adversarial examples with a fast adaptive
boundary attack", written from the paper. Each step linearizes the boundary between
the true class y and the target t (g = z_t - z_y), projects both the iterate and the
original onto that hyperplane inside the box [0, 1] (delta_k, delta_0), and moves to
the convex combination (1 - a)(x_k + eta delta_k) + a (x + eta delta_0) with
a = min(|delta_k| / (|delta_k| + |delta_0|), alpha_max): a biased step that keeps the
iterate close to the original. After a success it steps back towards the original,
x_k <- (1 - beta) x + beta x_k. Defaults are AutoAttack's (eta 1.05, beta 0.9,
alpha_max 0.1, no random start on the first run).

The box-constrained projection onto {d: r + w.d = 0} is d = clip(lam u, -p, 1 - p) with
u = -sign(r) sign(w) (Linf) or -sign(r) w/|w|_2 (L2): |r + w.d(lam)| falls as lam grows,
so lam is bracketed by doubling from the unconstrained solution and then bisected (the
paper sorts the breakpoints instead; both give the same point to float precision).
"""
from __future__ import annotations

import weakref

ETA, BETA, ALPHA_MAX = 1.05, 0.9, 0.1
_DOUBLINGS, _BISECTIONS = 24, 24


class FABEngine:
    """One compiled FAB-T loop for a (target, norm) pair."""

    def __init__(self, target, *, norm: str):
        from tinyharden._tf import tf

        self.target, self.norm = target, norm
        self._fn = tf.function(self._attack)

    def __call__(self, x, y, y_target, *, steps: int):
        from tinyharden._tf import tf

        adv, n = self._fn(tf.convert_to_tensor(x, tf.float32), tf.convert_to_tensor(y, tf.int64),
                          tf.convert_to_tensor(y_target, tf.int64), tf.constant(steps, tf.int32))
        return adv.numpy(), n.numpy()

    def _norm(self, d):
        from tinyharden._tf import tf

        flat = tf.reshape(d, [tf.shape(d)[0], -1])
        if self.norm == "linf":
            return tf.reduce_max(tf.abs(flat), axis=1)
        return tf.sqrt(tf.reduce_sum(tf.square(flat), axis=1))

    def _boundary(self, xa, y, t):
        """g = z_t - z_y at xa and its input gradient (flattened)."""
        from tinyharden._tf import tf

        with tf.GradientTape() as tape:
            tape.watch(xa)
            z = self.target.logits(xa, training=False)
            g = tf.gather(z, t, batch_dims=1) - tf.gather(z, y, batch_dims=1)
            total = tf.reduce_sum(g)
        w = tape.gradient(total, xa)
        w = tf.zeros_like(xa) if w is None else w
        return g, tf.reshape(w, [tf.shape(xa)[0], -1])

    def project(self, p, w, r):
        """Smallest d (this norm) with r + w.d = 0 and p + d in [0, 1]; all flattened (B, D)."""
        from tinyharden._tf import tf

        s = -tf.sign(r)[:, None]
        if self.norm == "linf":
            u, c = s * tf.sign(w), tf.reduce_sum(tf.abs(w), axis=1)
        else:
            wn = tf.sqrt(tf.reduce_sum(tf.square(w), axis=1))
            u, c = s * w / (wn[:, None] + 1e-12), wn
        lo_box, hi_box = -p, 1.0 - p

        def crossed(lam):  # True where r + w.d(lam) has reached the other side of 0
            d = tf.clip_by_value(lam[:, None] * u, lo_box, hi_box)
            return tf.sign(r) * (r + tf.reduce_sum(w * d, axis=1)) <= 0.0

        lam0 = tf.abs(r) / (c + 1e-12)
        lo, hi = tf.zeros_like(lam0), lam0
        for _ in range(_DOUBLINGS):  # bracket: hi doubles until the hyperplane is crossed
            done = crossed(hi)
            lo, hi = tf.where(done, lo, hi), tf.where(done, hi, 2.0 * hi)
        for _ in range(_BISECTIONS):
            mid = 0.5 * (lo + hi)
            done = crossed(mid)
            lo, hi = tf.where(done, lo, mid), tf.where(done, mid, hi)
        return tf.clip_by_value(hi[:, None] * u, lo_box, hi_box)

    def _attack(self, x, y, t, steps):
        from tinyharden._tf import tf

        shape = tf.shape(x)
        x0 = tf.reshape(x, [shape[0], -1])
        xk = x0
        best, best_n = x0, tf.fill(shape[:1], 1e10)
        for _ in tf.range(steps):
            g, w = self._boundary(tf.reshape(xk, shape), y, t)
            dk = self.project(xk, w, g)
            d0 = self.project(x0, w, g + tf.reduce_sum(w * (x0 - xk), axis=1))
            nk, n0 = self._norm(dk), self._norm(d0)
            a = tf.minimum(nk / (nk + n0 + 1e-12), ALPHA_MAX)[:, None]
            xn = tf.clip_by_value((1.0 - a) * (xk + ETA * dk) + a * (x0 + ETA * d0), 0.0, 1.0)
            adv = tf.argmax(self.target.logits(tf.reshape(xn, shape), training=False), -1) != y
            n = self._norm(xn - x0)
            better = adv & (n < best_n)
            best, best_n = tf.where(better[:, None], xn, best), tf.where(better, n, best_n)
            xk = tf.where(adv[:, None], (1.0 - BETA) * x0 + BETA * xn, xn)
        return tf.reshape(best, shape), best_n


_ENGINES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def fab_engine(target, *, norm: str) -> FABEngine:
    per_target = _ENGINES.setdefault(target, {})
    if norm not in per_target:
        per_target[norm] = FABEngine(target, norm=norm)
    return per_target[norm]
