"""What an attack attacks: the `Target` protocol and its Keras implementation.

Every attack talks to a `Target`, never to a Keras model or an interpreter directly, so
the same suite runs on a float Keras model, a QKeras model and an int8 `.tflite` file.

Units: a Target always takes inputs in *[0, 1] data units*: the dataset's range
(`Dataset.input_range`, e.g. [0, 1] for images, another range for speech features)
rescaled to [0, 1]. Eps is therefore always a distance in [0, 1] units, whatever the
model sees. The Target maps [0, 1] to the model's own input range: the MLPerf Tiny
ResNet-8 takes raw 0..255 pixels, so its `input_range` is (0, 255). `KerasTarget`
applies that map *inside* the graph, so gradients flow through it.

This module imports no TensorFlow at top level: `Target` is a plain protocol, and
`KerasTarget` imports TF when it is built.
"""
from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from tinyharden.errors import UserError
from tinyharden.interfaces import KerasModel


@runtime_checkable
class Target(Protocol):
    """A classifier an attack can query.

    Attributes
    ----------
    name: short label for reports, e.g. the model file's name.
    input_shape: one sample's shape, without the batch axis, e.g. (32, 32, 3).
    num_classes: length of the score vector.
    differentiable: True if the target also offers TensorFlow logits that white-box
        attacks can differentiate (`KerasTarget.logits`); False for black-box-only
        targets such as a `.tflite` interpreter.

    Methods
    -------
    predict(x) -> scores
        x: float32 array of shape (N, *input_shape) in [0, 1] data units (see the module
        docstring); the target maps it to the model's input range itself. Returns float32
        scores of shape (N, num_classes): logits or probabilities, anything whose argmax
        is the predicted class. Must not modify x, must accept any N >= 1 (batching
        internally if its backend needs to) and must be deterministic unless the model
        itself is stochastic at inference.

    A `.tflite` implementation is `tinyharden.attacks.tflite_target.TFLiteTarget(path,
    input_range)`, where `input_range` is the model's input range that [0, 1] maps to.
    """

    name: str
    input_shape: tuple[int, ...]
    num_classes: int
    differentiable: bool

    def predict(self, x: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class DifferentiableTarget(Target, Protocol):
    """A Target white-box attacks can differentiate (`KerasTarget`): TensorFlow logits of a
    [0, 1] tensor, and the stochastic-quantizer sampling mode EOT needs."""

    def logits(self, x: Any, *, training: bool = False) -> Any: ...

    def sampling_mode(self) -> Any: ...

    def has_stochastic_quantizers(self) -> bool: ...

    def stochastic_at_inference(self, x: np.ndarray) -> bool: ...


def check_target(target: object) -> None:
    """Raise a UserError naming what is missing if `target` does not meet the protocol."""
    missing = [a for a in ("name", "input_shape", "num_classes", "differentiable", "predict") if not hasattr(target, a)]
    if missing:
        raise UserError(f"{type(target).__name__} is not an attack target: it lacks {', '.join(missing)}")


class KerasTarget:
    """A Keras model as a differentiable Target.

    `model` must output logits (use `tinyharden.models.logits_model` to strip a final
    softmax: a saturated softmax masks gradients). `input_range` is the model's own
    input range, the image of [0, 1]: x_model = lo + x * (hi - lo).
    """

    differentiable = True

    def __init__(self, model: KerasModel, *, input_range: tuple[float, float] = (0.0, 1.0), name: str | None = None,
                 batch_size: int = 256):
        from tinyharden._tf import keras, tf

        self.model = model
        self.name = name or getattr(model, "name", "model")
        shape = model.input_shape
        if isinstance(shape, list):
            raise UserError(f"model '{self.name}' has {len(shape)} inputs; tinyharden attacks single-input classifiers")
        if any(d is None for d in shape[1:]):
            raise UserError(f"model '{self.name}' has an unspecified input shape {shape}; save it with a fixed input shape")
        self.input_shape = tuple(int(d) for d in shape[1:])
        self.num_classes = int(model.output_shape[-1])
        lo, hi = float(input_range[0]), float(input_range[1])
        if not hi > lo:
            raise UserError(f"input range must be LO,HI with LO < HI, got {lo},{hi}")
        self.input_range = (lo, hi)
        self.batch_size = batch_size
        if (lo, hi) == (0.0, 1.0):
            self.data_model = model
        else:
            # A wrapper model, not a Python lambda, so foolbox and ART (which call
            # `model(x, training=...)`) see the mapping as part of the network.
            inp = keras.Input(shape=self.input_shape, name="x01")
            self.data_model = keras.Model(inp, model(keras.layers.Rescaling(hi - lo, offset=lo, name="to_model_range")(inp)),
                                          name=f"{self.name}_01")
        self._predict_fn = tf.function(lambda x: self.data_model(x, training=False), reduce_retracing=True)
        self._stochastic: bool | None = None

    def logits(self, x, *, training: bool = False):
        """Logits for a [0, 1] tensor. `training=True` samples stochastic quantizers and
        must only be used inside `sampling_mode()` (otherwise BatchNorm would update)."""
        return self.data_model(x, training=training)

    def predict(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        outs = [self._predict_fn(x[i:i + self.batch_size]).numpy() for i in range(0, len(x), self.batch_size)]
        return np.concatenate(outs) if outs else np.zeros((0, self.num_classes), np.float32)

    # --- stochastic models
    def has_stochastic_quantizers(self) -> bool:
        from tinyharden.quantization.quantizers import has_stochastic_quantizers

        return has_stochastic_quantizers(self.model)

    def stochastic_at_inference(self, x: np.ndarray) -> bool:
        """True if two inference passes on `x` differ (a noise layer left on, say)."""
        if self._stochastic is None:
            from tinyharden.models.loading import is_stochastic_at_inference

            self._stochastic = is_stochastic_at_inference(self.data_model, np.asarray(x[:32], np.float32))
        return self._stochastic

    def sampling_mode(self) -> "_SamplingMode":
        """Context in which `logits(x, training=True)` samples the stochastic quantizers
        while BatchNorm keeps its moving statistics and Dropout stays off."""
        return _SamplingMode(self.data_model)


class _SamplingMode:
    """Freeze BatchNorm and silence Dropout/noise layers so `training=True` only samples.

    In tf-keras (Keras 2) a BatchNormalization layer with `trainable=False` runs in
    inference mode whatever `training` says (and so never updates its moving
    statistics), which is what EOT needs: tinyharden's quantizers read the call-context
    training flag and sample, BN stays deterministic. Dropout and noise layers would add
    randomness the deployed model does not have, so their rates are zeroed. Everything
    is restored on exit. A tf.function traced inside this context keeps the inference BN
    in its graph, but must still only be *called* inside it in case it retraces.
    """

    def __init__(self, model: KerasModel):
        self.model = model
        self._saved: list[tuple[Any, str, Any]] = []

    def __enter__(self):
        from tinyharden._tf import keras
        from tinyharden.quantization.quantizers import all_layers

        L = keras.layers
        for layer in all_layers(self.model):
            if isinstance(layer, L.BatchNormalization):
                self._saved.append((layer, "trainable", layer.trainable))
                layer.trainable = False
            elif isinstance(layer, (L.Dropout, L.GaussianDropout, L.AlphaDropout)):  # SpatialDropout* subclass Dropout
                self._saved.append((layer, "rate", layer.rate))
                layer.rate = 0.0
            elif isinstance(layer, L.GaussianNoise):
                self._saved.append((layer, "stddev", layer.stddev))
                layer.stddev = 0.0
        return self

    def __exit__(self, *exc):
        for layer, attr, value in reversed(self._saved):
            setattr(layer, attr, value)
        self._saved.clear()
        return False


def require_differentiable(target: Target, attack: str) -> None:
    if not getattr(target, "differentiable", False) or not hasattr(target, "logits"):
        raise UserError(
            f"attack '{attack}' needs gradients, but target '{target.name}' is not differentiable "
            "(e.g. a .tflite file); use black-box attacks (square, boundary, zoo) or transfer from a source model")
