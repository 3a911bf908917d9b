"""Training-step throughput: tinyharden's STQ+JR step vs a plain Keras `model.fit`, each in float32 and bfloat16.

The plain version is what a user would write from the Keras docs: a `keras.Model` whose
`train_step` computes the same loss (cross-entropy + lambda * random-projection Jacobian
penalty on the logits, on the same share of the batch), run with `model.fit`. Same model
(built from the recipe), same batches, same process; the four methods alternate in rounds
so machine noise hits all, and the JSON keeps every round and the medians:

- tinyharden float32 and tinyharden `train.precision=mixed_bfloat16` (convolutions in
  bfloat16, quantizers in float32);
- plain `model.fit` in Keras' default float32, and plain `model.fit` with the one line a
  performance-minded user adds, `keras.mixed_precision.set_global_policy("mixed_bfloat16")`,
  set before the model is built and kept while it trains (restored afterwards so the other
  methods are unaffected).

Ratios compare like with like (bf16 / bf16, fp32 / fp32). Fraction of peak: nominal MACs of
a step (tinyharden's footprint of the model; 3 forwards an image for CE, 6 more for each JR
image: forward, input-gradient backward, and the outer backward through both) x images/s,
over the CPU's nominal peak (`attack_throughput.cpu_peak`) and over a matmul measured in the run.

    python bench/train_throughput.py [--recipe recipes/cifar10-stq-jr.yaml] [--steps 30] [--rounds 3]
"""
from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

import numpy as np

from tinyharden._tf import keras, tf
from tinyharden.data import load_dataset
from tinyharden.defenses.jacobian import random_unit
from tinyharden.footprint import summarize
from tinyharden.recipe import load_recipe
from tinyharden.training import precision
from tinyharden.training.schedules import make_optimizer
from tinyharden.training.steps import StepConfig, make_train_step
from tinyharden.training.trainer import build_for_recipe
from tinyharden.workspace import atomic_write_json, package_versions

from attack_throughput import cpu_peak, measured_peak  # bench/ is the script's folder, hence on sys.path

METHODS = ("tinyharden_float32", "tinyharden_mixed_bfloat16", "plain_fit_float32", "plain_fit_mixed_bfloat16")


class PlainJR(keras.Model):
    """The straightforward Keras version of CE + lambda * JR(logits).

    `float32_logits` is the fix the Keras mixed-precision guide gives for model outputs:
    as written, under mixed_bfloat16 the bfloat16 cross-entropy cannot be added to the
    float32 penalty (the input gradient has the float32 input's dtype).
    """

    def __init__(self, inner, lam: float, fraction: float, num_classes: int, *, float32_logits: bool = False):
        super().__init__()
        self.inner, self.lam, self.fraction, self.num_classes = inner, lam, fraction, num_classes
        self.float32_logits = float32_logits

    def call(self, x, training=False):
        return self.inner(x, training=training)

    def train_step(self, data):
        x, y = data
        k = max(1, int(round(self.fraction * x.shape[0])))
        with tf.GradientTape() as tape:
            logits = self(x, training=True)
            if self.float32_logits:
                logits = tf.cast(logits, tf.float32)
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


def stock_qkeras_probe() -> dict:
    """Does a QKeras layer with QKeras' own quantizers run under the global mixed_bfloat16 policy?"""
    import qkeras

    with precision.policy("mixed_bfloat16"):
        try:
            layer = qkeras.QConv2D(8, 3, kernel_quantizer=qkeras.stochastic_ternary(alpha="auto"),
                                   bias_quantizer=qkeras.quantized_bits(8, 0, 1))
            out = layer(tf.zeros([1, 8, 8, 3]), training=True)
            return {"runs": True, "output_dtype": out.dtype.name}
        except Exception as exc:  # what the user would see
            return {"runs": False, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}",
                    "fix": "quantize in float32 and cast the result to the layer's compute dtype "
                           "(tinyharden.quantization.quantizers does this); the plain bf16 fit here uses "
                           "the recipe's model, whose quantizers are tinyharden's"}


def build_methods(recipe, ds, x, y, steps: int) -> tuple[dict, dict]:
    """(runners: method -> fn() -> (images/s, last loss), errors: method -> what failed while building)."""
    bs = recipe.train.batch_size
    n = len(y)
    jr = recipe.robustness.jacobian
    lam = jr.lambdas()[0] if jr else 0.01
    fraction = jr.batch_fraction if jr else 1.0
    cfg = StepConfig.from_recipe(recipe, ds.num_classes, ds.input_range)
    batches = [(tf.constant(x[i:i + bs]), tf.constant(y[i:i + bs])) for i in range(0, n, bs)]
    runners, errors = {}, {}

    def ours(step):
        def run():
            t = time.perf_counter()
            for i, (xb, yb) in enumerate(batches):
                loss = step(xb, yb, tf.constant([0, i], tf.int64))[0]
            loss = float(loss)
            return n / (time.perf_counter() - t), loss
        return run

    def plain(model, prec):
        def run():
            with precision.policy(prec):
                t = time.perf_counter()
                hist = model.fit(x, y, batch_size=bs, epochs=1, shuffle=False, verbose=0)
                return n / (time.perf_counter() - t), float(hist.history["loss"][-1])
        return run

    for prec in precision.POLICIES:
        with precision.policy(prec):
            model = build_for_recipe(recipe, ds, init=False)  # weights do not change the speed
        runners[f"tinyharden_{prec}"] = ours(make_train_step(model, make_optimizer(recipe.train, steps), cfg))
        for float32_logits in (False, True):
            try:
                with precision.policy(prec):
                    peer = PlainJR(build_for_recipe(recipe, ds, init=False), lam, fraction, ds.num_classes,
                                   float32_logits=float32_logits)
                    peer.compile(optimizer=make_optimizer(recipe.train, steps))
                    peer.fit(x[:bs], y[:bs], batch_size=bs, epochs=1, verbose=0)  # does the user's code run?
                runners[f"plain_fit_{prec}"] = plain(peer, prec)
                break
            except Exception as exc:  # recorded in the JSON: what a user would hit
                errors[f"plain_fit_{prec}" + ("_float32_logits" if float32_logits else "_as_written")] = _last_line(exc)
    return runners, errors


def _last_line(exc: Exception) -> str:
    """The exception's own message: Keras wraps a traced step's error in its traceback, the cause is last."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[-1][:300] if lines else ''}"


def time_rounds(runners: dict, rounds: int) -> tuple[dict, dict, dict]:
    """(images/s per round, last loss per round, errors) per method; the first call of each traces and is not timed."""
    errors = {}
    for name, run in list(runners.items()):
        try:
            run()
        except Exception as exc:
            errors[name] = _last_line(exc)
            del runners[name]
    speed = {name: [] for name in runners}
    losses = {name: [] for name in runners}
    for r in range(rounds):
        for name, run in runners.items():
            s, loss = run()
            speed[name].append(s)
            losses[name].append(loss)
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.0f} img/s" for k, v in speed.items()), flush=True)
    return speed, losses, errors


def peak_fractions(med: dict, macs_per_image: int, fraction: float) -> dict:
    """Nominal GMAC/s of each method's step and its share of the CPU's nominal and measured-matmul peaks."""
    peak = cpu_peak()
    measured = measured_peak(tf)
    work = (3 + 6 * fraction) * macs_per_image
    out = {"cpu": peak, "measured_matmul_gmacs": measured, "step_macs_per_image": work,
           "work_model": "3 forwards an image for CE + 6 forwards for each JR image (fraction of the batch)"}
    for name, ips in med.items():
        prec = "bfloat16" if name.endswith("bfloat16") else "float32"
        gmacs = ips * work / 1e9
        out[name] = {"gmacs": gmacs, "fraction_of_nominal_peak": gmacs / peak["nominal_gmacs"][prec],
                     "fraction_of_measured_matmul": gmacs / measured[prec]}
    return out


def _ratio(med: dict, a: str, b: str) -> float | None:
    return med[a] / med[b] if a in med and b in med else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default="recipes/cifar10-stq-jr.yaml")
    ap.add_argument("--steps", type=int, default=30, help="timed steps per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default="bench/results/train_throughput.json")
    args = ap.parse_args()

    recipe = load_recipe(args.recipe, ["data.limit_train=4096", "data.limit_test=100"])
    ds = load_dataset(recipe.data, recipe.seed)
    n = args.steps * recipe.train.batch_size
    jr = recipe.robustness.jacobian
    load_before = os.getloadavg()
    runners, errors = build_methods(recipe, ds, ds.x_train[:n], ds.y_train[:n], args.steps)
    speed, losses, run_errors = time_rounds(runners, args.rounds)
    errors.update(run_errors)
    med = {name: float(np.median(v)) for name, v in speed.items()}
    with precision.policy("float32"):
        macs = int(summarize(build_for_recipe(recipe, ds, init=False))["totals"]["macs"])
    result = {
        "recipe": args.recipe, "model": recipe.model.name, "batch_size": recipe.train.batch_size,
        "steps_per_round": args.steps, "rounds": args.rounds, "model_macs_per_image": macs,
        "jr_lambda": jr.lambdas()[0] if jr else None, "jr_batch_fraction": jr.batch_fraction if jr else None,
        "images_per_s": med,
        "ratio_bfloat16": _ratio(med, "tinyharden_mixed_bfloat16", "plain_fit_mixed_bfloat16"),
        "ratio_float32": _ratio(med, "tinyharden_float32", "plain_fit_float32"),
        "ratio_tinyharden_bfloat16_vs_plain_float32": _ratio(med, "tinyharden_mixed_bfloat16", "plain_fit_float32"),
        "per_round": speed, "last_loss_per_round": losses,
        "non_finite_loss": sorted(k for k, v in losses.items() if not all(math.isfinite(x) for x in v)),
        "errors": errors, "stock_qkeras_under_global_mixed_bfloat16": stock_qkeras_probe(),
        "notes": {"plain_fit_mixed_bfloat16": "the recipe's model built under the global policy; the train_step as "
                  "written fails (errors), so it casts the logits to float32 as the Keras mixed-precision guide "
                  "advises, as tinyharden's step does",
                  "peak": "nominal: attack_throughput.cpu_peak (vector FMA units; AMX not counted); the measured "
                  "matmul is the practical ceiling on this machine, at this load"},
        "peak": peak_fractions(med, macs, jr.batch_fraction if jr else 0.0),
        "loadavg_before": load_before, "loadavg_after": os.getloadavg(), "versions": package_versions(),
    }
    print("median: " + ", ".join(f"{k} {v:.0f} img/s" for k, v in med.items()))
    print(f"ratio bf16/bf16 {result['ratio_bfloat16']}, fp32/fp32 {result['ratio_float32']}")
    atomic_write_json(Path(args.out), result)


if __name__ == "__main__":
    main()
