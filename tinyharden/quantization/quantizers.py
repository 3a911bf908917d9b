"""Quantizers that know whether the model is training.

QKeras' stochastic quantizers decide between sampling and rounding with
`K.learning_phase()`, which in TF2 stays 0 even inside `model(x, training=True)`: the
"stochastic" ternary silently trains as plain ternary. The classes here read the Keras
call context instead, which `model(x, training=True)`, `model.fit` and our trainer all
set, so they sample while training and are deterministic at inference (including
`model.predict`, `model(x)` and the exported graph).

`make_quantizer("stochastic_ternary(alpha='auto')")` builds one from QKeras' string
syntax, with these classes standing in for QKeras' own stochastic ones.
"""
from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from tinyharden._tf import keras, tf  # first: sets TF_USE_LEGACY_KERAS before QKeras imports TF

import qkeras  # noqa: E402

from tinyharden import rng as _rng  # noqa: E402  - the checkpointed sampling stream
from qkeras import quantizers as qk  # noqa: E402
from tinyharden.footprint.summary import WEIGHT_QUANTIZERS  # noqa: E402

K = keras.backend


_FORCE_DETERMINISTIC = False
# Multiplies every stochastic quantizer's sampling temperature. A variable, so a traced
# training step reads its current value: the trainer anneals it (quantization.temperature_growth).
_TEMPERATURE_SCALE = tf.Variable(1.0, trainable=False, dtype=tf.float32, name="stq_temperature_scale")


@contextlib.contextmanager
def temperature_scale(value: float):
    """Stochastic quantizers sample with `value` x their temperature inside this block.

    A higher temperature sharpens the sampling probabilities towards the deterministic
    levels: annealing it lets training explore early and match inference late.
    """
    before = float(_TEMPERATURE_SCALE.numpy())
    _TEMPERATURE_SCALE.assign(value)
    try:
        yield
    finally:
        _TEMPERATURE_SCALE.assign(before)


@contextlib.contextmanager
def deterministic_quantizers():
    """Quantizers behave as at inference even in training-mode calls.

    For re-estimating batch-norm statistics: BN must see the deterministic weights the
    model will run with, while still updating its moving averages (training=True).
    A tf.function traced inside this block keeps the deterministic quantizers.
    """
    global _FORCE_DETERMINISTIC
    before, _FORCE_DETERMINISTIC = _FORCE_DETERMINISTIC, True
    try:
        yield
    finally:
        _FORCE_DETERMINISTIC = before


def _training() -> bool | tf.Tensor:
    from tf_keras.src.engine import base_layer_utils

    if _FORCE_DETERMINISTIC:
        return False
    training = base_layer_utils.call_context().training
    return False if training is None else training


def _channel_axes(x) -> list[int]:
    rank = len(x.shape)
    return list(range(rank - 1)) if rank > 1 else [0]


def _mix_incremental(quantizer, x, q):
    """Apply an incremental-quantization mask: quantized where mask is 1, float elsewhere."""
    mask = getattr(quantizer, "incremental_mask", None)
    if mask is None:
        return q
    return mask * q + (1.0 - mask) * x


def _ternary_sample(self, x):
    # QKeras' stochastic_ternary sampling (sigmoid-smoothed two-threshold coin flips around
    # the ternary scale), reached through our training flag, with one fix: QKeras samples
    # around half the *final* scale, but its inference ternary cuts at half the scale of the
    # previous unroll. Where the unrolls have not converged the two disagree (measured: 6-8%
    # of a fine-tuned ResNet-8's weights, costing 4 points of test accuracy once annealing
    # sharpened training onto the sampler's threshold). Sampling around the inference
    # threshold makes plain ternary the sampler's zero-temperature limit.
    axis = _channel_axes(x)
    x_std = K.std(x, axis=axis, keepdims=True)
    m = K.max(tf.abs(x), axis=axis, keepdims=True)
    scale = 2.0 * m / 3.0
    if self.alpha == "auto_po2":
        scale = K.pow(2.0, tf.math.round(K.log(scale + K.epsilon()) / np.log(2.0)))
    threshold = scale / 2.0
    for _ in range(self.number_of_unrolls):
        threshold = scale / 2.0
        q_ns = K.cast(tf.abs(x) >= threshold, K.floatx()) * K.sign(x)
        scale = qk._get_scale(self.alpha, x, q_ns)
    x_norm = x / (x_std + K.epsilon())
    t = threshold / (x_std + K.epsilon())
    temperature = self.temperature * _TEMPERATURE_SCALE
    p0 = tf.sigmoid(temperature * (x_norm - t))
    p1 = tf.sigmoid(temperature * (x_norm + t))
    q0 = tf.sign(p0 - _rng.stream().uniform(tf.shape(p0)))
    q0 += 1.0 - tf.abs(q0)
    q1 = tf.sign(p1 - _rng.stream().uniform(tf.shape(p1)))
    q1 += 1.0 - tf.abs(q1)
    q = (q0 + q1) / 2.0
    self.scale = scale
    return x + tf.stop_gradient(-x + scale * q)


def _binary_sample(self, x):
    if isinstance(self.alpha, str):
        std = K.std(x, axis=_channel_axes(x), keepdims=True) + K.epsilon()
    else:
        std = 1.0
    p = tf.sigmoid(self.temperature * _TEMPERATURE_SCALE * x / std)
    q = tf.sign(p - _rng.stream().uniform(tf.shape(x)))
    q += 1.0 - tf.abs(q)
    q_det = tf.sign(x)
    q_det += 1.0 - tf.abs(q_det)
    scale = qk._get_scale(self.alpha, x, q_det)
    self.scale = scale
    return x + tf.stop_gradient(-x + scale * q)


def _in_float32(call):
    """Run a quantizer's arithmetic in float32 and return the input's dtype.

    Under the `mixed_bfloat16` policy a layer hands its quantizers bfloat16 tensors, and
    QKeras casts its results to float32 (the layer's convolution then refuses the mix).
    Quantizing in float32 keeps scales and thresholds exact; the result is cast back, which
    keeps ternary/binary levels distinct and the 8-bit ReLU grid exact (k/32 below 8 fits
    bfloat16's 8-bit significand). Casts pass gradients, so the straight-through estimator
    is unchanged.
    """
    def wrapped(self, x):
        dtype = getattr(x, "dtype", None)
        if dtype is None or dtype == tf.float32 or not tf.as_dtype(dtype).is_floating:
            return call(self, x)
        return tf.cast(call(self, tf.cast(x, tf.float32)), dtype)

    wrapped.__doc__ = call.__doc__
    return wrapped


def _switch(training, stochastic, deterministic):
    if isinstance(training, bool):
        return stochastic() if training else deterministic()
    return tf.cond(tf.cast(training, tf.bool), stochastic, deterministic)


class _MaskMixin:
    """Lets the incremental schedule keep part of a layer's weights in float."""

    incremental_mask = None

    def get_config(self):  # the mask is training state, never part of the saved model
        return super().get_config()


class _SampledMixin(_MaskMixin):
    """A stochastic quantizer: `_sample` while training, `_deterministic`'s levels at inference."""

    _sample: Any  # (quantizer, x) -> sampled levels, straight-through
    _deterministic: Any  # the QKeras class whose __call__ gives the inference levels

    @_in_float32
    def __call__(self, x):
        q = _switch(_training(), lambda: type(self)._sample(self, x), lambda: self._deterministic.__call__(self, x))
        return _mix_incremental(self, x, q)


@keras.utils.register_keras_serializable(package="tinyharden")
class stochastic_ternary(_SampledMixin, qkeras.stochastic_ternary):  # noqa: N801 - QKeras naming
    """Ternary weights {-a, 0, +a}; sampled while training, deterministic at inference."""

    _sample, _deterministic = staticmethod(_ternary_sample), qkeras.ternary


@keras.utils.register_keras_serializable(package="tinyharden")
class stochastic_binary(_SampledMixin, qkeras.stochastic_binary):  # noqa: N801
    """Binary weights {-a, +a}; sampled while training, deterministic at inference."""

    _sample, _deterministic = staticmethod(_binary_sample), qkeras.binary


class _DeterministicMixin(_MaskMixin):
    """A deterministic QKeras quantizer (the next class in the MRO) under the incremental schedule."""

    @_in_float32
    def __call__(self, x):
        return _mix_incremental(self, x, super().__call__(x))


@keras.utils.register_keras_serializable(package="tinyharden")
class ternary(_DeterministicMixin, qkeras.ternary):  # noqa: N801
    pass


@keras.utils.register_keras_serializable(package="tinyharden")
class binary(_DeterministicMixin, qkeras.binary):  # noqa: N801
    pass


@keras.utils.register_keras_serializable(package="tinyharden")
class quantized_bits(_DeterministicMixin, qkeras.quantized_bits):  # noqa: N801
    pass


def _plain_relu_grid(q, dtype) -> bool:
    """True if `q` is QKeras' default clipped ReLU on a grid `dtype` holds exactly.

    Then `_relu_on_grid` gives QKeras' values and gradients in `dtype` itself, bit for bit
    (checked on every finite bfloat16 below 2^110, tests/test_quantizers.py; far above that
    QKeras' own x * 2^bits overflows to NaN): the levels k * 2^(integer - bits), k < 2^bits,
    need `bits` significant bits (8 in bfloat16), and every intermediate is a power-of-two
    scaling, a rounding, a clip or a difference of at most half a level, all exact.
    """
    if dtype is None:
        return False
    significant = {tf.bfloat16: 8, tf.float32: 24}.get(tf.as_dtype(dtype))
    return (significant is not None and isinstance(q.bits, int) and isinstance(q.integer, int)
            and 0 < q.bits <= significant and q.is_quantized_clip and not q.use_sigmoid
            and q.negative_slope == 0 and not q.use_stochastic_rounding and q.relu_upper_bound is None
            and q.use_ste and not q.use_variables and isinstance(q.qnoise_factor, (int, float)) and q.qnoise_factor == 1)


def _relu_on_grid(x, bits: int, integer: int):
    # QKeras: x_u = where(x <= top, relu(x), top); out = x_u + stop_gradient(xq - x_u), xq the clipped grid point.
    steps = 2.0 ** (bits - integer)  # grid points per unit
    top = tf.constant((2 ** bits - 1) / steps, x.dtype)
    x_u = tf.where(x <= top, tf.nn.relu(x), top)
    xq = tf.clip_by_value(tf.round(x * steps), 0.0, 2 ** bits - 1) * (1.0 / steps)
    return x_u + tf.stop_gradient(xq - x_u)


# One XLA cluster per grid: fused, the chain of ~10 elementwise ops (and their first and second
# derivatives in the Jacobian-regularized step) reads and writes each activation once instead of
# once per op. Measured on the STQ+JR step of stq_cnn (batch 128, 9 alternating steps, one process):
# CPU time per step 619 -> 468 ms in bfloat16, 863 -> 735 ms in float32 (fastest of each).
# Training calls only: inference, export and attacks keep QKeras' plain graph.
_FUSED: dict[tuple[int, int, str], Any] = {}


# Compiling costs about a second per process and shape; below this many elements per call (a digits CNN's
# 64 x 8 x 8 x 32 = 131k) the fused op saved less than that over a whole training (quickstart: 30 -> 31-33 s of CPU).
_FUSE_MIN_ELEMENTS = 2**18


def _worth_fusing(x) -> bool:
    n = getattr(getattr(x, "shape", None), "num_elements", lambda: None)()
    return n is not None and n >= _FUSE_MIN_ELEMENTS


def _fused_relu_on_grid(x, bits: int, integer: int):
    key = (bits, integer, x.dtype.name)  # one function per dtype: its gradient function is typed too
    if key not in _FUSED:
        _FUSED[key] = tf.function(lambda v: _relu_on_grid(v, bits, integer), jit_compile=True, autograph=False)
    return _FUSED[key](x)


@keras.utils.register_keras_serializable(package="tinyharden")
class quantized_relu(qkeras.quantized_relu):  # noqa: N801
    def __call__(self, x):
        if _training() is True and _worth_fusing(x) and _plain_relu_grid(self, getattr(x, "dtype", None)):
            return _fused_relu_on_grid(x, self.bits, self.integer)
        return self._qkeras_call(x)

    @_in_float32
    def _qkeras_call(self, x):
        return super().__call__(x)


# Names in a quantizer expression resolve here first, then to QKeras' own.
_OURS = {
    "quantized_relu": quantized_relu,
    "stochastic_ternary": stochastic_ternary,
    "stochastic_binary": stochastic_binary,
    "ternary": ternary,
    "binary": binary,
    "quantized_bits": quantized_bits,
}


def make_quantizer(expr: str | None):
    """Build a quantizer from QKeras string syntax, e.g. "quantized_relu(4,2)".

    The string is parsed, never evaluated (`tinyharden.quantizer_expr`): only a known
    quantizer with literal, known arguments is built.
    """
    from tinyharden.errors import UserError
    from tinyharden.quantizer_expr import parse_quantizer

    if expr is None:
        return None
    parsed = parse_quantizer(expr)
    cls = _OURS.get(parsed.name) or getattr(qk, parsed.name)
    try:
        return cls(*parsed.args, **parsed.kwargs)
    except Exception as exc:  # QKeras raises bare Exceptions for bad arguments
        raise UserError(f"cannot build quantizer '{expr}': {str(exc)[:160]}; use QKeras syntax such as quantized_bits(8,0,1)") from None


def is_stochastic(quantizer) -> bool:
    return isinstance(quantizer, (stochastic_ternary, stochastic_binary, qkeras.stochastic_ternary, qkeras.stochastic_binary))


_WEIGHT_QUANTIZERS = tuple(WEIGHT_QUANTIZERS.values())


def all_layers(model):
    """Every layer of `model`, descending into nested models (e.g. an attack target's range wrapper)."""
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from all_layers(layer)


def has_stochastic_quantizers(model) -> bool:
    """True if a weight quantizer of any layer, nested models included, samples while training."""
    return any(is_stochastic(getattr(layer, attr, None)) for layer in all_layers(model) for attr in _WEIGHT_QUANTIZERS)


def custom_objects() -> dict:
    """Everything needed to load a model that uses QKeras or tinyharden quantizers."""
    objs = {}
    qkeras.utils._add_supported_quantized_objects(objs)
    objs.update({f"tinyharden>{k}": v for k, v in _OURS.items()})
    return objs
