"""AutoAttack's warning flags, in the form of `tinyharden.attacks.masking` checks.

Example:

    checks.softmax_like_outputs(target, x)["flagged"]   # True for a model ending in softmax

Croce & Hein's reference implementation warns when a model is random at inference, when
its outputs look like probabilities (cross-entropy and DLR then work on squashed scores),
when gradients are zero, and when Square, a black-box attack, breaks samples the
white-box attacks could not. Zero gradients are already `masking.zero_gradients`; the
others live here, plus one for quantized models: whether the straight-through gradient
(BPDA) predicts what the forward pass does. Each returns {"name", "flagged", "message",
...}; the suite adds them to attack.json's masking checks and the CLI prints flagged
ones as warnings.
"""
from __future__ import annotations

import numpy as np

from tinyharden.attacks.masking import _check, tolerance
from tinyharden.formatting import fmt_eps


def softmax_like_outputs(target, x) -> dict:
    z = np.asarray(target.predict(np.asarray(x, np.float32)), np.float64)
    probs = bool(len(z)) and (z.min() >= 0) and (z.max() <= 1) and np.allclose(z.sum(-1), 1.0, atol=1e-3)
    msg = ("the model's outputs are in [0, 1] and sum to 1 (softmax-like): CE and DLR losses see squashed scores and "
           "gradients vanish on confident samples; attack the logits (strip the final softmax)" if probs
           else "outputs are logits, not probabilities")
    return _check("aa_softmax_outputs", probs, msg)


def randomness_note(target, x) -> dict:
    random = bool(getattr(target, "stochastic_at_inference", lambda _x: False)(x))
    msg = ("the model is random at inference: figures are one draw of its predictions; gradients are averaged (EOT)"
           if random else "the model is deterministic at inference: autoattack (standard) is the stronger evaluation")
    return _check("aa_randomness_at_inference", False, msg, random=random)


def ste_forward_agreement(target, x, y, *, eps: float, norm: str, min_agreement: float = 0.5) -> dict:
    """Does a small step along the gradient raise the margin loss as the gradient predicts?

    For each sample, predicted = g . delta for delta = eps/4 along sign(g) (Linf) or
    g/|g| (L2), actual = loss(x + delta) - loss(x), loss = max_{i!=y} z_i - z_y. On a
    smooth model almost every step with predicted > 0 raises the loss. Straight-through
    gradients of a coarse quantizer can point where the forward pass does not move; if
    fewer than `min_agreement` of the steps do, BPDA gradients are misleading.
    """
    from tinyharden._tf import tf

    if len(x) == 0:
        return _check("aa_ste_forward_agreement", False, "not run: no samples", skipped=True)
    xb, yb = tf.constant(np.asarray(x, np.float32)), tf.constant(np.asarray(y, np.int64))

    def margin(xa):
        z = target.logits(xa, training=False)
        return tf.reduce_max(z - 1e9 * tf.one_hot(yb, tf.shape(z)[-1]), -1) - tf.gather(z, yb, batch_dims=1)

    with tf.GradientTape() as tape:
        tape.watch(xb)
        m0 = margin(xb)
        total = tf.reduce_sum(m0)
    g = tape.gradient(total, xb)
    g = np.zeros(xb.shape, np.float32) if g is None else g.numpy()
    flat = g.reshape(len(g), -1)
    h = eps / 4.0
    if norm == "linf":
        d = h * np.sign(flat)
    else:
        d = h * flat / np.maximum(np.linalg.norm(flat, axis=1, keepdims=True), 1e-12)
    predicted = (flat * d).sum(1)
    x1 = np.clip(np.asarray(x, np.float32) + d.reshape(g.shape), 0.0, 1.0)
    actual = margin(tf.constant(x1)).numpy() - m0.numpy()
    live = predicted > 0
    if not live.any():
        return _check("aa_ste_forward_agreement", False, "not run: every gradient is zero (see zero_gradients)",
                      skipped=True)
    agree = float((actual[live] > 0).mean())
    flagged = agree < min_agreement
    msg = (f"a step of eps/4 along the gradient raised the loss on only {agree:.0%} of {int(live.sum())} samples: the "
           "straight-through (BPDA) gradient disagrees with the forward pass; trust Square more than the gradient attacks"
           if flagged else f"the gradient predicts the forward pass ({agree:.0%} of small steps raise the loss)")
    return _check("aa_ste_forward_agreement", flagged, msg, agreement=agree, samples=int(live.sum()),
                  threshold=min_agreement)


def square_beats_whitebox(components: list[dict], n: int, *, eps: float) -> dict:
    """Square breaking samples that APGD-CE, APGD-T and FAB-T all left robust."""
    sq = next((c for c in components if c["name"] == "square"), None)
    if sq is None:
        return _check("aa_square_beats_whitebox", False, "not run: no Square component", skipped=True)
    share = sq["fooled"] / max(n, 1)
    flagged = share > tolerance(n)
    msg = (f"Square broke {sq['fooled']} of {n} samples ({share:.1%}) that every white-box attack left robust at eps "
           f"{fmt_eps(eps)}: gradients are likely masked" if flagged
           else f"Square broke {sq['fooled']} sample(s) the white-box attacks missed (within noise)")
    return _check("aa_square_beats_whitebox", flagged, msg, square_fooled=int(sq["fooled"]), share=share,
                  tolerance=tolerance(n))
