"""The MLPerf Tiny keyword-spotting DS-CNN (49x10x1 MFCC input, 12 classes).

As mlcommons/tiny's `kws` reference: a 10x4 strided stem with 64 filters, four
depthwise-separable blocks, dropout, average pooling and a dense classifier. Float, it
has exactly 24,908 parameters. Outputs logits (layer `logits`).

Layer names: stem, act_stem, ds{1..4}_dw, ds{1..4}_dw_act, ds{1..4}_pw, ds{1..4}_pw_act, logits.
"""
from __future__ import annotations

from tinyharden._tf import keras
from tinyharden.models.builder import QuantBuilder, bn

L = keras.layers


def dscnn(b: QuantBuilder, input_shape=(49, 10, 1), num_classes=12, width=1.0):
    filters = max(1, round(64 * width))
    inp = keras.Input(shape=input_shape, name="input")
    x = inp
    iq = b.input_quant()
    if iq is not None:
        x = iq(x)
    x = b.conv("stem", filters, (10, 4), strides=(2, 2))(x)
    x = bn(name="stem_bn")(x)
    x = b.relu("act_stem")(x)
    x = L.Dropout(0.2, name="drop1")(x)
    for i in range(1, 5):
        x = b.depthwise(f"ds{i}_dw", (3, 3))(x)
        x = bn(name=f"ds{i}_dw_bn")(x)
        x = b.relu(f"ds{i}_dw_act")(x)
        x = b.conv(f"ds{i}_pw", filters, (1, 1))(x)
        x = bn(name=f"ds{i}_pw_bn")(x)
        x = b.relu(f"ds{i}_pw_act")(x)
    x = L.Dropout(0.4, name="drop2")(x)
    x = L.AveragePooling2D(pool_size=x.shape[1:3], name="pool")(x)
    x = L.Flatten(name="flatten")(x)
    out = b.dense("logits", num_classes)(x)
    return keras.Model(inp, out, name="dscnn")
