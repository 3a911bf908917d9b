"""Attacking in bfloat16, scoring in float32: the target a white-box attack sees under `--precision`.

Example (a KerasTarget `t`):

    fast = attack_target(t, "mixed_bfloat16")
    adv = PGD().run(fast, x, y, eps=1 / 255, norm="linf", seed=0).x_adv

`attack_target` returns a twin of the target whose `logits` (what gradients and in-graph
attacks use) come from a copy of the model with its weights computing under the Keras
`mixed_bfloat16` policy (`training.precision.recast`), cast back to float32; its `predict`
is the float32 original's. With AVX-512 BF16 (Zen 4; Intel with AMX) PGD-20 on the bf16 twin
of the MLPerf ResNet-8 ran 1.5-1.8x faster with the same robust accuracy
(bench/attack_throughput.py, medians of interleaved rounds); float32 stays the default. Nothing the twin
computes decides a result: the suite re-predicts every returned example with the float32
target, so a coarser bf16 gradient can only find fewer adversarial examples (under-claim
attack success); an example counts only if the float32 model misclassifies it. attack.json
records the precision of every attack.
"""
from __future__ import annotations

import weakref
from typing import Any

PRECISIONS = ("float32", "mixed_bfloat16")

_TWINS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


class LowPrecisionTarget:
    """A differentiable target whose logits are computed in bfloat16; predictions stay float32."""

    differentiable = True

    def __init__(self, target: Any, precision: str):
        from tinyharden._tf import keras
        from tinyharden.training.precision import recast

        # A weak reference: the twin is cached under its base target and must not keep it alive.
        self._base, self.precision = weakref.ref(target), precision
        self.name, self.input_shape, self.num_classes = target.name, target.input_shape, target.num_classes
        self.input_range = target.input_range
        self.model = recast(target.model, precision, keep_float32=input_readers(target.model))
        lo, hi = target.input_range
        inp = keras.Input(shape=self.input_shape, name="x01")
        z = inp if (lo, hi) == (0.0, 1.0) else keras.layers.Rescaling(hi - lo, offset=lo, name="to_model_range")(inp)
        # A float32 output layer, so losses, argmax and library adapters see float32 logits.
        out = keras.layers.Activation("linear", dtype="float32", name="logits_f32")(self.model(z))
        self.data_model = keras.Model(inp, out, name=f"{self.name}_{precision}")

    def logits(self, x, *, training: bool = False):
        return self.data_model(x, training=training)

    @property
    def base(self) -> Any:
        return self._base()

    def predict(self, x):
        return self.base.predict(x)

    def has_stochastic_quantizers(self) -> bool:
        return self.base.has_stochastic_quantizers()

    def stochastic_at_inference(self, x) -> bool:
        return self.base.stochastic_at_inference(x)

    def sampling_mode(self):
        from tinyharden.attacks.target import _SamplingMode

        return _SamplingMode(self.data_model)


def input_readers(model) -> set[str]:
    """Names of the layers that read the model's input: they stay float32.

    bfloat16 has 8 significant bits, so on a raw 0..255 input (the MLPerf ResNet-8) every
    pixel above 128 is rounded to a whole level and a 1/255 perturbation vanishes before
    the first convolution. That convolution is a few percent of the MACs (3.5% of ResNet-8's).
    """
    from tinyharden._tf import tf

    inputs = {id(t) for t in model.inputs}
    readers = set()
    for layer in model.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        if any(id(t) in inputs for t in tf.nest.flatten(layer.input)):
            readers.add(layer.name)
    return readers


def attack_target(target: Any, precision: str) -> Any:
    """`target` itself for float32 (or a target without a Keras model); else its cached low-precision twin."""
    if precision not in PRECISIONS:
        from tinyharden.errors import UserError

        raise UserError(f"attack precision must be {' or '.join(PRECISIONS)}, got '{precision}'")
    if precision == "float32" or not hasattr(target, "model") or not getattr(target, "differentiable", False):
        return target
    per = _TWINS.setdefault(target, {})
    if precision not in per:
        per[precision] = LowPrecisionTarget(target, precision)
    return per[precision]
