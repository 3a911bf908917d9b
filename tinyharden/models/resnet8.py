"""The MLPerf Tiny image-classification ResNet-8 (and wider variants).

Layer for layer the reference `resnet_v1_eembc` of mlcommons/tiny: a 3x3 stem, three
stacks of one residual block (16/32/64 filters), 1x1 strided shortcuts, average pooling
and a dense classifier. Float, at width 1, it has exactly 78,666 parameters. Our version
outputs logits (layer `logits`); the reference ends in softmax.

Layer names: stem, s{1,2,3}_conv1, s{1,2,3}_conv2, s{2,3}_short, act_stem, s*_act1,
s*_act2, logits.
"""
from __future__ import annotations

from tinyharden._tf import keras
from tinyharden.models.builder import QuantBuilder, bn

L = keras.layers


def residual_stack(b: QuantBuilder, x, stage: int, filters: int, stride: int):
    p = f"s{stage}"
    y = b.conv(f"{p}_conv1", filters, 3, strides=stride)(x)
    y = bn(name=f"{p}_bn1")(y)
    y = b.relu(f"{p}_act1")(y)
    y = b.conv(f"{p}_conv2", filters, 3)(y)
    y = bn(name=f"{p}_bn2")(y)
    if stride != 1 or x.shape[-1] != filters:
        x = b.conv(f"{p}_short", filters, 1, strides=stride)(x)
    y = L.Add(name=f"{p}_add")([y, x])
    return b.relu(f"{p}_act2")(y)


def build_resnet(b: QuantBuilder, input_shape, num_classes: int, filters=(16, 32, 64), name="resnet8"):
    inp = keras.Input(shape=input_shape, name="input")
    x = inp
    iq = b.input_quant()
    if iq is not None:
        x = iq(x)
    x = b.conv("stem", filters[0], 3)(x)
    x = bn(name="stem_bn")(x)
    x = b.relu("act_stem")(x)
    for stage, f in enumerate(filters, start=1):
        x = residual_stack(b, x, stage, f, 1 if stage == 1 else 2)
    x = L.AveragePooling2D(pool_size=x.shape[1:3], name="pool")(x)
    x = L.Flatten(name="flatten")(x)
    out = b.dense("logits", num_classes)(x)
    return keras.Model(inp, out, name=name)


def resnet8(b: QuantBuilder, input_shape=(32, 32, 3), num_classes=10, width=1.0):
    filters = tuple(max(1, round(f * width)) for f in (16, 32, 64))
    return build_resnet(b, input_shape, num_classes, filters, name="resnet8")
