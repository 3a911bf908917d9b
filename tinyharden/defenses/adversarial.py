"""In-graph FGSM/PGD/N-FGSM for adversarial training (the attack suite has its own PGD: attacks/pgd.py).

Everything is TensorFlow ops, so the whole perturbation loop compiles into the training
step's graph. Inputs stay in the valid range [lo, hi]; FGSM and PGD also stay inside the L-inf
ball, N-FGSM deliberately does not (see `linf_pgd`).
"""
from __future__ import annotations

from tinyharden._tf import tf


def _ce(logits, y):
    # float32 even for a mixed-precision model, whose logits are bfloat16
    return tf.keras.losses.sparse_categorical_crossentropy(y, tf.cast(logits, tf.float32), from_logits=True)


def linf_pgd(model, x, y, *, eps, step_size, steps: int, lo=0.0, hi=1.0, random_start: bool = True,
             noise: float = 1.0, project: bool = True, training: bool = False, seed=None):
    """L-inf PGD maximizing cross-entropy; steps=1 with random start is "fast" FGSM-RS.

    `eps` and `step_size` are in the model's input units; `seed` (a shape-[2] int tensor)
    makes the random start reproducible. The random start is uniform in +/- `noise` * eps.
    N-FGSM (de Jorge et al. 2022) is steps=1, noise=2, step_size=eps, project=False: the
    larger noise and the unclipped step are what keep single-step training at 8/255 from
    catastrophic overfitting, so its examples may lie up to 3 eps from x.
    """
    x = tf.convert_to_tensor(x)
    if random_start:
        u = (tf.random.stateless_uniform(tf.shape(x), seed, -1.0, 1.0) if seed is not None
             else tf.random.uniform(tf.shape(x), -1.0, 1.0))
        x_adv = tf.clip_by_value(x + noise * eps * u, lo, hi)
    else:
        x_adv = x
    for _ in range(steps):
        with tf.GradientTape() as tape:
            tape.watch(x_adv)
            loss = tf.reduce_sum(_ce(model(x_adv, training=training), y))
        grad = tape.gradient(loss, x_adv)
        x_adv = x_adv + step_size * tf.sign(grad)
        if project:
            x_adv = tf.clip_by_value(x_adv, x - eps, x + eps)
        x_adv = tf.clip_by_value(x_adv, lo, hi)
    return tf.stop_gradient(x_adv)


def default_step_size(method: str, eps: float, steps: int) -> float:
    # Wong et al. (2020) use 1.25*eps for FGSM with random start; de Jorge et al. (2022) eps for
    # N-FGSM; Madry-style PGD 2.5*eps/steps.
    return {"fgsm": 1.25 * eps, "nfgsm": eps}.get(method, 2.5 * eps / steps)


def default_noise(method: str) -> float:
    """Half-width of the random start, in multiples of eps."""
    return 2.0 if method == "nfgsm" else 1.0
