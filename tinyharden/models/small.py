"""Small models for the digits quickstart (8x8x1 inputs) and tests."""
from __future__ import annotations

from tinyharden._tf import keras
from tinyharden.models.builder import QuantBuilder, bn

L = keras.layers


def cnn(b: QuantBuilder, input_shape=(8, 8, 1), num_classes=10, width=1.0):
    f = max(1, round(16 * width))
    inp = keras.Input(shape=input_shape, name="input")
    x = b.conv("conv1", f, 3)(inp)
    x = bn(name="bn1")(x)
    x = b.relu("act1")(x)
    x = b.conv("conv2", 2 * f, 3, strides=2)(x)
    x = bn(name="bn2")(x)
    x = b.relu("act2")(x)
    x = L.GlobalAveragePooling2D(name="pool")(x)
    out = b.dense("logits", num_classes)(x)
    return keras.Model(inp, out, name="cnn")


def mlp(b: QuantBuilder, input_shape=(8, 8, 1), num_classes=10, width=1.0):
    units = max(1, round(64 * width))
    inp = keras.Input(shape=input_shape, name="input")
    x = L.Flatten(name="flatten")(inp)
    x = b.dense("fc1", units)(x)
    x = bn(name="bn1")(x)
    x = b.relu("act1")(x)
    out = b.dense("logits", num_classes)(x)
    return keras.Model(inp, out, name="mlp")
