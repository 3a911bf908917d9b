"""A QKeras model's float twin: quantized layers back to their Keras layers, same weights.

    >>> float_model, names = dequantize(load_model("runs/quickstart"))

`tinyharden quantize` takes a float model, and tinyharden's own "float" runs may still
hold QKeras layers (a recipe's per-layer int8 ends, or QKeras layers without
quantizers). Rather than refusing them, the architecture config is rewritten, with
QConv2D/QDepthwiseConv2D/QDense becoming Conv2D/DepthwiseConv2D/Dense and QActivation
an Activation of the same shape of function, and the weights are copied by layer name.
"""
from __future__ import annotations

import copy

from tinyharden._tf import keras

_FLOAT_OF = {"QConv2D": "Conv2D", "QDepthwiseConv2D": "DepthwiseConv2D", "QDense": "Dense"}
_QUANTIZER_KEYS = ("kernel_quantizer", "bias_quantizer", "depthwise_quantizer", "kernel_range", "bias_range",
                   "depthwise_range")


def _activation_of(quantizer) -> str:
    """The float function a QActivation's quantizer approximates."""
    name = quantizer if isinstance(quantizer, str) else (quantizer or {}).get("class_name", "") \
        if isinstance(quantizer, dict) else type(quantizer).__name__
    name = str(name).split("(")[0].split(">")[-1]
    if "relu" in name:
        return "relu"
    for fn in ("tanh", "sigmoid"):
        if fn in name:
            return fn
    return "relu" if name == "relu" else "linear"


def _float_layer_config(layer_cfg: dict) -> bool:
    """Rewrite one layer entry of a model config in place; True if it was a QKeras layer."""
    cls = layer_cfg.get("class_name")
    cfg = layer_cfg.get("config", {})
    if cls in _FLOAT_OF:
        layer_cfg["class_name"] = _FLOAT_OF[cls]
        for key in _QUANTIZER_KEYS:
            cfg.pop(key, None)
        for key in ("kernel_constraint", "bias_constraint", "depthwise_constraint"):
            if isinstance(cfg.get(key), dict) and cfg[key].get("class_name") == "Clip":
                cfg[key] = None  # QKeras' clip to the quantizer's range, meaningless in float
        act = cfg.get("activation")
        if act is not None and not isinstance(act, str) or isinstance(act, str) and "(" in act:
            cfg["activation"] = _activation_of(act)
        return True
    if cls == "QActivation":
        layer_cfg["class_name"] = "Activation"
        layer_cfg["config"] = {"name": cfg["name"], "trainable": cfg.get("trainable", True),
                               "dtype": cfg.get("dtype", "float32"), "activation": _activation_of(cfg.get("activation"))}
        return True
    return False


def dequantize(model) -> tuple[object, list[str]]:
    """(float twin of `model`, names of the layers that were QKeras layers); `model` itself if none were."""
    if not isinstance(model, keras.Model) or not getattr(model, "_is_graph_network", False):
        return model, []
    config = copy.deepcopy(model.get_config())
    changed = [entry["config"]["name"] for entry in config.get("layers", []) if _float_layer_config(entry)]
    if not changed:
        return model, []
    twin = model.__class__.from_config(config) if isinstance(model, keras.Sequential) else keras.Model.from_config(config)
    for layer in twin.layers:
        source = model.get_layer(layer.name).get_weights()
        if source:
            layer.set_weights(source[: len(layer.weights)])
    return twin, changed
