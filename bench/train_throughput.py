"""Training-step throughput: tinyharden's STQ+JR step vs a plain Keras `model.fit`.

The plain version is what a user would write from the Keras docs: a `keras.Model` whose
`train_step` computes the same loss (cross-entropy + lambda * random-projection Jacobian
penalty on the logits, on the same share of the batch), run with `model.fit`. Same model
(built from the recipe), same batches, same process; they alternate in rounds so
machine noise hits all. tinyharden's step runs twice: in float32, and with
`train.precision=mixed_bfloat16` (convolutions in bfloat16, quantizers in float32); the
plain version runs in Keras' default float32. Prints images/s and the ratios and writes
them to JSON.

    python bench/train_throughput.py [--recipe recipes/cifar10-stq-jr.yaml] [--steps 30] [--rounds 3]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from tinyharden._tf import keras, tf
from tinyharden.data import load_dataset
from tinyharden.defenses.jacobian import random_unit
from tinyharden.recipe import load_recipe
from tinyharden.training import precision
from tinyharden.training.schedules import make_optimizer
from tinyharden.training.steps import StepConfig, make_train_step
from tinyharden.training.trainer import build_for_recipe
from tinyharden.workspace import atomic_write_json, package_versions


class PlainJR(keras.Model):
    """The straightforward Keras version of CE + lambda * JR(logits)."""

    def __init__(self, inner, lam: float, fraction: float, num_classes: int):
        super().__init__()
        self.inner, self.lam, self.fraction, self.num_classes = inner, lam, fraction, num_classes

    def call(self, x, training=False):
        return self.inner(x, training=training)

    def train_step(self, data):
        x, y = data
        k = max(1, int(round(self.fraction * x.shape[0])))
        with tf.GradientTape() as tape:
            logits = self(x, training=True)
            ce = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
            xs = x[:k]
            with tf.GradientTape() as inner:
                inner.watch(xs)
                out = self(xs, training=True)
            g = inner.gradient(out, xs, output_gradients=random_unit(out))
            reg = self.num_classes * tf.reduce_mean(tf.reduce_sum(tf.reshape(g * g, [k, -1]), axis=1))
            loss = ce + self.lam * reg
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        return {"loss": loss}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default="recipes/cifar10-stq-jr.yaml")
    ap.add_argument("--steps", type=int, default=30, help="timed steps per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default="bench/results/train_throughput.json")
    args = ap.parse_args()

    recipe = load_recipe(args.recipe, ["data.limit_train=4096", "data.limit_test=100"])
    ds = load_dataset(recipe.data, recipe.seed)
    bs = recipe.train.batch_size
    n = args.steps * bs
    x = ds.x_train[:n]
    y = ds.y_train[:n]
    jr = recipe.robustness.jacobian
    lam = jr.lambdas()[0] if jr else 0.01
    fraction = jr.batch_fraction if jr else 1.0

    cfg = StepConfig.from_recipe(recipe, ds.num_classes, ds.input_range)
    steps = {}
    for prec in precision.POLICIES:
        with precision.policy(prec):
            model = build_for_recipe(recipe, ds, init=False)  # weights do not change the speed
        steps[prec] = make_train_step(model, make_optimizer(recipe.train, args.steps), cfg)
    batches = [(tf.constant(x[i:i + bs]), tf.constant(y[i:i + bs])) for i in range(0, n, bs)]

    plain = PlainJR(build_for_recipe(recipe, ds, init=False), lam, fraction, ds.num_classes)
    plain.compile(optimizer=make_optimizer(recipe.train, args.steps))

    def run_ours(prec):
        t = time.perf_counter()
        for i, (xb, yb) in enumerate(batches):
            loss = steps[prec](xb, yb, tf.constant([0, i], tf.int64))[0]
        float(loss)
        return n / (time.perf_counter() - t)

    def run_plain():
        t = time.perf_counter()
        plain.fit(x, y, batch_size=bs, epochs=1, shuffle=False, verbose=0)
        return n / (time.perf_counter() - t)

    for prec in steps:  # compile everything before timing
        run_ours(prec)
    run_plain()
    ours = {prec: [] for prec in steps}
    theirs = []
    for r in range(args.rounds):
        for prec in steps:
            ours[prec].append(run_ours(prec))
        theirs.append(run_plain())
        print(f"round {r + 1}: tinyharden float32 {ours['float32'][-1]:.0f} img/s, tinyharden mixed_bfloat16 "
              f"{ours['mixed_bfloat16'][-1]:.0f} img/s, plain model.fit {theirs[-1]:.0f} img/s")
    med = {prec: float(np.median(v)) for prec, v in ours.items()}
    plain_med = float(np.median(theirs))
    result = {
        "recipe": args.recipe, "model": recipe.model.name, "parameters": int(plain.inner.count_params()),
        "batch_size": bs, "steps_per_round": args.steps, "rounds": args.rounds,
        "jr_lambda": lam, "jr_batch_fraction": fraction,
        "tinyharden_images_per_s": med["mixed_bfloat16"], "tinyharden_float32_images_per_s": med["float32"],
        "plain_fit_images_per_s": plain_med,
        "ratio": med["mixed_bfloat16"] / plain_med, "ratio_float32": med["float32"] / plain_med,
        "per_round": {"tinyharden_mixed_bfloat16": ours["mixed_bfloat16"], "tinyharden_float32": ours["float32"],
                      "plain_fit": theirs},
        "versions": package_versions(),
    }
    print(f"median: tinyharden mixed_bfloat16 {med['mixed_bfloat16']:.0f} img/s ({result['ratio']:.2f}x), "
          f"float32 {med['float32']:.0f} img/s ({result['ratio_float32']:.2f}x), plain model.fit {plain_med:.0f} img/s")
    atomic_write_json(Path(args.out), result)


if __name__ == "__main__":
    main()
