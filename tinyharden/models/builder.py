"""Builds layers under a quantization spec.

Zoo models ask the builder for a conv, dense or activation by *name*; the builder looks
up that name in the recipe's quantization section and returns a QKeras layer with the
right quantizers, or the plain Keras layer when everything resolves to float. Layer
names are therefore stable and documented: they are what per-layer overrides and
per-layer Jacobian regularization refer to.
"""
from __future__ import annotations

from typing import Any

from tinyharden._tf import keras  # first: sets TF_USE_LEGACY_KERAS before QKeras imports TF

import qkeras  # noqa: E402
from tinyharden.quantization.presets import LayerQuantizers, resolve
from tinyharden.quantization.quantizers import make_quantizer
from tinyharden.recipe import QuantizationSpec

L = keras.layers


def bn(name: str):
    """BatchNormalization with momentum 0.9: Keras' 0.99 needs ~500 steps before the
    inference statistics are usable, more than a short fine-tune or a small dataset gives."""
    return L.BatchNormalization(momentum=0.9, name=name)


def as_spec(quantization: Any) -> QuantizationSpec:
    if quantization is None:
        return QuantizationSpec()
    if isinstance(quantization, QuantizationSpec):
        return quantization
    if isinstance(quantization, str):
        return QuantizationSpec(preset=quantization)
    from tinyharden.recipe import validate

    return validate({"quantization": quantization}, source="quantization").quantization


class QuantBuilder:
    def __init__(self, quantization: Any = "float", *, weight_decay: float = 0.0):
        self.spec = as_spec(quantization)
        self.reg = keras.regularizers.l2(weight_decay) if weight_decay else None
        self.names: list[str] = []

    def quantizers(self, name: str) -> LayerQuantizers:
        self.names.append(name)
        return resolve(self.spec, name)

    def conv(self, name: str, filters: int, kernel_size, strides=1, padding="same", use_bias=True):
        q = self.quantizers(name)
        kw = dict(strides=strides, padding=padding, use_bias=use_bias, kernel_regularizer=self.reg, name=name)
        if q.kernel is None and q.bias is None:
            return L.Conv2D(filters, kernel_size, **kw)
        return qkeras.QConv2D(filters, kernel_size, kernel_quantizer=make_quantizer(q.kernel),
                              bias_quantizer=make_quantizer(q.bias), **kw)

    def depthwise(self, name: str, kernel_size, strides=1, padding="same", use_bias=True):
        q = self.quantizers(name)
        kw = dict(strides=strides, padding=padding, use_bias=use_bias, depthwise_regularizer=self.reg, name=name)
        if q.kernel is None and q.bias is None:
            return L.DepthwiseConv2D(kernel_size, **kw)
        return qkeras.QDepthwiseConv2D(kernel_size, depthwise_quantizer=make_quantizer(q.kernel),
                                       bias_quantizer=make_quantizer(q.bias), **kw)

    def dense(self, name: str, units: int, use_bias=True):
        q = self.quantizers(name)
        kw = dict(use_bias=use_bias, kernel_regularizer=self.reg, name=name)
        if q.kernel is None and q.bias is None:
            return L.Dense(units, **kw)
        return qkeras.QDense(units, kernel_quantizer=make_quantizer(q.kernel),
                             bias_quantizer=make_quantizer(q.bias), **kw)

    def relu(self, name: str):
        q = self.quantizers(name)
        if q.activation is None:
            return L.Activation("relu", name=name)
        return qkeras.QActivation(make_quantizer(q.activation), name=name)

    def input_quant(self, name: str = "input_quant"):
        """An optional quantizer on the model input, used only if the spec names this layer."""
        if name not in self.spec.layers:
            return None
        q = self.quantizers(name)
        return qkeras.QActivation(make_quantizer(q.activation), name=name) if q.activation else None
