"""Jacobian regularization with random projections (Hoffman, Roberts and Yaida, 2019).

For a layer output f_l(x) with C_l units, ||J_l||_F^2 = C_l * E_v ||v^T J_l||^2 for v
uniform on the unit sphere; each projection costs one backward pass. The penalty added
to the loss is sum_l lambda_l * R_l, with R_l averaged over the batch.
"""
from __future__ import annotations

from tinyharden._tf import keras, tf
from tinyharden.errors import UserError
from tinyharden import rng


def feature_model(model, layer_names: list[str]):
    """A model returning [outputs of `layer_names`..., logits]."""
    outs = []
    for name in layer_names:
        if name == "logits" and not any(l.name == "logits" for l in model.layers):
            outs.append(model.outputs[0])
            continue
        try:
            outs.append(model.get_layer(name).output)
        except ValueError:
            names = ", ".join(l.name for l in model.layers if l.weights or "act" in l.name)
            raise UserError(f"robustness.jacobian.layers names '{name}', which is not a layer of the model; layers: {names}") from None
    return keras.Model(model.inputs, outs + [model.outputs[0]], name=model.name + "_jr")


def random_unit(like):
    """Per-sample random directions, uniform on the unit sphere, shaped like `like`."""
    v = rng.stream().normal(tf.shape(like), dtype=like.dtype)  # checkpointed: resumes are bit-exact
    norms = tf.norm(tf.reshape(v, [tf.shape(v)[0], -1]), axis=1) + 1e-12
    return v / tf.reshape(norms, [-1] + [1] * (like.shape.rank - 1))


def frobenius_estimate(tape, out, x, projections: int = 1):
    """Per-sample estimate of ||d out / d x||_F^2 (needs `tape` watching x, persistent if projections>1)."""
    c = tf.cast(tf.reduce_prod(tf.shape(out)[1:]), tf.float32)
    total = 0.0
    for _ in range(projections):
        v = random_unit(out)
        g = tape.gradient(out, x, output_gradients=v)  # dtype of x (float32) even when out is bfloat16
        total += tf.reduce_sum(tf.reshape(g * g, [tf.shape(g)[0], -1]), axis=1)
    return c * total / projections


def input_gradient_norm(model, x, y):
    """Mean L2 norm of d CE / d x: the quantity JR should shrink."""
    x = tf.convert_to_tensor(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.keras.losses.sparse_categorical_crossentropy(y, model(x, training=False), from_logits=True)
    g = tape.gradient(loss, x)
    return float(tf.reduce_mean(tf.norm(tf.reshape(g, [tf.shape(g)[0], -1]), axis=1)))
