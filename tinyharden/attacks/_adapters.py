"""Adapters from a Target to what foolbox and ART expect, plus query counting.

Library attacks see the target in [0, 1] units with bounds (0, 1); a KerasTarget's
`data_model` already contains the map to the model's own input range, so no library
preprocessing is involved.
"""
from __future__ import annotations

import functools
import random

import numpy as np


class QueryCounter:
    """Wraps `target.predict` and counts every sample sent to the model."""

    def __init__(self, target):
        self.target = target
        self.count = 0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        self.count += len(x)
        return np.asarray(self.target.predict(x), dtype=np.float32)


class EOTModel:
    """Logits averaged over `n` passes with stochastic quantizers sampling.

    foolbox and ART take gradients of their own losses through whatever callable they
    are given; averaging logits (rather than loss gradients, as our PGD does) is the
    form of EOT that fits behind their model interface. Must be called inside
    `target.sampling_mode()`.
    """

    def __init__(self, target, n: int):
        self.target, self.n = target, n

    def __call__(self, x, training=False):
        from tinyharden._tf import tf

        return tf.add_n([self.target.logits(x, training=True) for _ in range(self.n)]) / float(self.n)


def differentiable_model(target, eot: int):
    return target.data_model if eot <= 1 else EOTModel(target, eot)


def compiled_logits(target):
    """The target's logits as one tf.function that foolbox can differentiate through.

    foolbox runs its loss under a GradientTape in eager mode; handed the Keras model, every
    step dispatched each layer's ops one at a time forward and again on the tape backward
    (C&W on 20 images: 80 ms forward + 73 ms gradient per step, mostly dispatch). A
    tf.function records as one op on the tape, so forward and backward each run as a
    graph. Same network, same inference mode (foolbox calls `model(x)`, i.e. training off).
    """
    from tinyharden._tf import tf

    model = target.data_model
    return tf.function(lambda x: model(x, training=False), reduce_retracing=True)


def foolbox_model(target, eot: int = 1):
    import foolbox as fb

    # EOT keeps the eager model: its passes sample the stochastic quantizers, and a trace
    # would have to be taken and called inside sampling_mode (see target._SamplingMode).
    model = compiled_logits(target) if eot <= 1 else EOTModel(target, eot)
    return fb.TensorFlowModel(model, bounds=(0.0, 1.0))


def art_classifier(target, eot: int = 1):
    from art.estimators.classification import TensorFlowV2Classifier

    from tinyharden._tf import keras

    return TensorFlowV2Classifier(
        model=differentiable_model(target, eot), nb_classes=target.num_classes, input_shape=target.input_shape,
        loss_object=keras.losses.CategoricalCrossentropy(from_logits=True), clip_values=(0.0, 1.0))


def art_blackbox(predict_fn, target):
    from art.estimators.classification.blackbox import BlackBoxClassifierNeuralNetwork

    # The NeuralNetwork variant, because ART's SquareAttack requires NeuralNetworkMixin.
    return BlackBoxClassifierNeuralNetwork(predict_fn, tuple(target.input_shape), target.num_classes,
                                           channels_first=False, clip_values=(0.0, 1.0))


def whole_batch_blackbox(predict_fn, target):
    """ART's `BlackBoxClassifier` that hands each query array to `predict_fn` in one call.

    ART's own `predict` splits by the attack's `batch_size`, and ZOO must run with
    batch_size=1 (one sample at a time), so each of its 2 x nb_parallel coordinate probes
    reached the model as a separate one-image call: 10,547 calls for 5 images, ~4 ms each,
    latency-bound. The Target batches internally (`KerasTarget.batch_size`), so one call
    per query array is the same predictions at the model's batched throughput.
    """
    return _whole_batch_class()(predict_fn, tuple(target.input_shape), target.num_classes, clip_values=(0.0, 1.0))


@functools.cache
def _whole_batch_class():
    from art.config import ART_NUMPY_DTYPE
    from art.estimators.classification import BlackBoxClassifier

    class WholeBatchBlackBox(BlackBoxClassifier):
        def predict(self, x: np.ndarray, batch_size: int = 128, **kwargs) -> np.ndarray:
            x_pre, _ = self._apply_preprocessing(x, y=None, fit=False)
            preds = np.asarray(self.predict_fn(x_pre), dtype=ART_NUMPY_DTYPE)
            return self._apply_postprocessing(preds=preds, fit=False)

    return WholeBatchBlackBox


def seed_numpy_and_random(seed: int) -> None:
    """ART draws from NumPy's and Python's global generators; seed both for reruns."""
    np.random.seed(seed % 2**32)
    random.seed(seed)


def int_labels(y: np.ndarray) -> np.ndarray:
    # foolbox/eagerpy call np.find_common_type (gone in NumPy 2) when the label and
    # prediction dtypes differ; int64 matches argmax's dtype and avoids that path.
    return np.asarray(y, dtype=np.int64)
