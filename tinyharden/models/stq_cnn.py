"""`stq_cnn`: the compact residual CNN we train with STQ + Jacobian regularization.

ResNet-8's topology, wider (32/64/96 filters at width 1): ternary weights cost capacity,
and the MLPerf ResNet-8 at 16/32/64 tops out near 74% when ternarized on our budget.
At width 1 it has about 222 K parameters, so its int8 TFLite flatbuffer (one byte a
weight) stays well under the study's ~322 KB; the recipe's per-layer overrides keep the
stem and classifier at 8 bits.
"""
from __future__ import annotations

from tinyharden.models.builder import QuantBuilder
from tinyharden.models.resnet8 import build_resnet


def stq_cnn(b: QuantBuilder, input_shape=(32, 32, 3), num_classes=10, width=1.0):
    filters = tuple(max(1, round(f * width)) for f in (32, 64, 96))
    return build_resnet(b, input_shape, num_classes, filters, name="stq_cnn")
