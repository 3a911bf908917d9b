"""The float twin of a QKeras model: plain Keras layers holding the quantized weights.

The TFLite converter knows nothing of QKeras, so export goes through a twin in which
every QConv2D / QDense / QDepthwiseConv2D / QSeparableConv2D becomes its Keras layer with
`quantizer(weight)` baked in (ternary kernels stay exactly {-a, 0, +a} per channel, which
int8 per-channel quantization represents without loss), and every quantized ReLU becomes
a ReLU clipped where the quantizer saturates (`ClipActivation`). BatchNormalization is
kept as is so the converter folds it into the preceding convolution. Layers without
quantizers copy through.

What the twin does not reproduce is the activation *staircase* (e.g. the 16 levels of
quantized_relu(4,2)): int8 activations are finer, calibrated on data, so the exported
model sees the same clipping but less rounding than the QKeras one.
"""
from __future__ import annotations

import copy
import inspect

import numpy as np

from tinyharden._tf import keras, tf
from tinyharden.errors import UserError
from tinyharden.interfaces import KerasModel
from tinyharden.footprint.summary import WEIGHT_QUANTIZERS
from tinyharden.quantization import quantizers as tq

# QKeras layer -> (Keras layer, {weight name: quantizer attribute}).
def _weights(*names: str) -> dict[str, str]:
    return {n: WEIGHT_QUANTIZERS[n] for n in names}


_WEIGHT_LAYERS = {
    "QConv1D": ("Conv1D", _weights("kernel", "bias")),
    "QConv2D": ("Conv2D", _weights("kernel", "bias")),
    "QDense": ("Dense", _weights("kernel", "bias")),
    "QDepthwiseConv2D": ("DepthwiseConv2D", _weights("depthwise_kernel", "bias")),
    "QSeparableConv2D": ("SeparableConv2D", _weights("depthwise_kernel", "pointwise_kernel", "bias")),
}
_SUPPORTED = sorted([*_WEIGHT_LAYERS, "QActivation", "QBatchNormalization (without quantizers)"])
_BASE_LAYER_KWARGS = {"name", "trainable", "dtype", "input_shape", "batch_input_shape", "batch_size", "input_dim"}
_NESTED = {"Functional", "Sequential", "Model"}


@keras.utils.register_keras_serializable(package="tinyharden_export")
class ClipActivation(keras.layers.Layer):
    """Clamp to [lo, hi]: a quantized activation minus its rounding.

    With lo = 0 it is written min(relu(x), hi) rather than Keras' ReLU(max_value), which
    converts to MINIMUM + RELU ops: this way the ReLU fuses into the convolution before
    it and only one MINIMUM op (and one activation buffer) remains.
    """

    def __init__(self, lo: float, hi: float, **kwargs):
        super().__init__(**kwargs)
        self.lo, self.hi = float(lo), float(hi)

    def call(self, x):
        if self.lo == 0.0:
            return tf.minimum(tf.nn.relu(x), self.hi)
        return tf.clip_by_value(x, self.lo, self.hi)

    def get_config(self):
        return {**super().get_config(), "lo": self.lo, "hi": self.hi}


def short_name(weight) -> str:
    """'conv1/kernel:0' -> 'kernel'."""
    return weight.name.split("/")[-1].split(":")[0]


def _is_quantizer(obj) -> bool:
    # QKeras quantizers are objects with a bit width; Keras activations are plain functions.
    return obj is not None and not inspect.isfunction(obj) and hasattr(obj, "bits")


def _saturation(q) -> tuple[float, float]:
    """Where a quantizer saturates, found by evaluating it far outside its range."""
    v = q(tf.constant([-1e6, 1e6], tf.float32)).numpy()
    return float(v[0]), float(v[1])


def _activation_entry(q, name: str, layer_name: str) -> tuple[str, dict]:
    """(class_name, config) of the Keras layer standing in for activation `q`."""
    if not _is_quantizer(q):
        return "Activation", {"name": name, "activation": keras.activations.serialize(q) if q is not None else "linear"}
    kind = type(q).__name__
    if kind == "quantized_relu":
        if getattr(q, "use_sigmoid", 0) or getattr(q, "negative_slope", 0.0) or getattr(q, "relu_upper_bound", None) is not None:
            raise UserError(
                f"layer '{layer_name}': quantized_relu with use_sigmoid, negative_slope or relu_upper_bound cannot be "
                "exported yet; use a plain quantized_relu(bits, integer)")
        _, hi = _saturation(q)
        return "ClipActivation", {"name": name, "lo": 0.0, "hi": hi}
    if kind == "quantized_bits":
        lo, hi = _saturation(q)
        return "ClipActivation", {"name": name, "lo": lo, "hi": hi}
    raise UserError(
        f"layer '{layer_name}' uses activation quantizer {kind}, which tinyharden cannot export; "
        "use quantized_relu(bits, integer) or quantized_bits(...)")


def _target_config(cls_name: str, q_config: dict) -> dict:
    """The Q layer's config minus what the Keras layer does not take (quantizers, ranges)."""
    cls = getattr(keras.layers, cls_name)
    accepted = set(inspect.signature(cls.__init__).parameters) | _BASE_LAYER_KWARGS
    # Constraints and regularizers only act in training; QKeras' own would need its classes.
    return {k: (None if k.endswith(("_constraint", "_regularizer")) else v)
            for k, v in q_config.items() if k in accepted}


def _entry(cls_name: str, config: dict) -> dict:
    """A layer entry of a model config, resolvable by the deserializer."""
    if cls_name == "ClipActivation":
        return {"module": None, "class_name": cls_name, "config": config, "registered_name": cls_name}
    return {"module": "keras.layers", "class_name": cls_name, "config": config, "registered_name": None}


def _rename_refs(node, old: str, new: str):
    """Point every inbound/output reference [old, node, tensor, ...] at `new`."""
    if isinstance(node, list):
        if len(node) >= 3 and node[0] == old and isinstance(node[1], int) and isinstance(node[2], int):
            return [new, *node[1:]]
        return [_rename_refs(n, old, new) for n in node]
    if isinstance(node, dict):
        return {k: _rename_refs(v, old, new) for k, v in node.items()}
    return node


def _check_supported(layer) -> None:
    cls = type(layer).__name__
    module = type(layer).__module__
    if cls in _NESTED or isinstance(layer, keras.Model):
        raise UserError(f"layer '{layer.name}' is a nested model; flatten it into one functional model before export")
    if cls == "QBatchNormalization":
        if any(getattr(layer, a, None) for a in ("gamma_quantizer", "beta_quantizer", "mean_quantizer", "variance_quantizer")):
            raise UserError(
                f"layer '{layer.name}' is a QBatchNormalization with quantizers, which tinyharden cannot export; "
                "use keras BatchNormalization (the converter folds it into the convolution)")
        return
    if module.startswith("qkeras") and cls not in _WEIGHT_LAYERS and cls != "QActivation":
        raise UserError(
            f"layer '{layer.name}' ({cls}) cannot be exported; supported QKeras layers: {', '.join(_SUPPORTED)}")


def quantized_weights(layer) -> dict[str, np.ndarray]:
    """The layer's weights by short name, with its quantizers applied (at inference)."""
    cls = type(layer).__name__
    quant_attrs = _WEIGHT_LAYERS.get(cls, (None, {}))[1]
    out = {}
    for w in layer.weights:
        name = short_name(w)
        q = getattr(layer, quant_attrs.get(name, ""), None)
        # Outside a training call the tinyharden stochastic quantizers round deterministically.
        out[name] = np.asarray(q(w).numpy() if q is not None else w.numpy(), dtype=np.float32)
    return out


def quantized_twin(model: KerasModel) -> KerasModel:
    """A plain-Keras model computing what `model` computes at inference, for the converter."""
    for layer in model.layers:
        _check_supported(layer)
    config = copy.deepcopy(model.get_config())
    sequential = isinstance(model, keras.Sequential)
    by_name = {layer.name: layer for layer in model.layers}
    new_entries, renames = [], []
    for entry in config["layers"]:
        entries, rename = _twin_entries(entry, by_name.get(entry["config"]["name"]), sequential)
        new_entries += entries
        if rename:
            renames.append(rename)
    for old, new in renames:
        for e in new_entries:
            if e["config"]["name"] != new:
                e["inbound_nodes"] = _rename_refs(e.get("inbound_nodes", []), old, new)
        config["output_layers"] = _rename_refs(config["output_layers"], old, new)
    config["layers"] = new_entries
    config["name"] = f"{model.name}_twin"
    twin = _rebuild(model.name, config, sequential)
    for layer in model.layers:
        if not layer.weights:
            continue
        values = quantized_weights(layer)
        target = twin.get_layer(layer.name)
        target.set_weights([values[short_name(w)] for w in target.weights])
    return twin


def _twin_entries(entry: dict, layer, sequential: bool) -> tuple[list[dict], tuple[str, str] | None]:
    """The plain-Keras config entries replacing one layer's, and (old, new) if its outputs move to a new name."""
    name, cls = entry["config"]["name"], entry["class_name"]
    if layer is None or not type(layer).__module__.startswith("qkeras"):
        return [entry], None
    if cls == "QActivation":
        q = getattr(layer, "quantizer", None) or layer.activation
        twin_cls, twin_cfg = _activation_entry(q, name, name)
        return [{**entry, **_entry(twin_cls, twin_cfg)}], None
    if cls == "QBatchNormalization":
        cfg = _target_config("BatchNormalization", entry["config"])
        return [{**entry, **_entry("BatchNormalization", cfg)}], None
    twin_cls = _WEIGHT_LAYERS[cls][0]
    cfg = _target_config(twin_cls, entry["config"])
    act = layer.activation
    if not _is_quantizer(act):
        return [{**entry, **_entry(twin_cls, cfg)}], None
    # A quantized activation inside the layer becomes a layer of its own after it.
    cfg["activation"] = "linear"
    act_name = f"{name}_act"
    act_cls, act_cfg = _activation_entry(act, act_name, name)
    act_entry = {**_entry(act_cls, act_cfg), "name": act_name}
    if sequential:
        return [{**entry, **_entry(twin_cls, cfg)}, act_entry], None
    act_entry["inbound_nodes"] = [[[name, 0, 0, {}]]]
    return [{**entry, **_entry(twin_cls, cfg)}, act_entry], (name, act_name)


def _rebuild(name: str, config: dict, sequential: bool):
    objects = {**tq.custom_objects(), "ClipActivation": ClipActivation}
    try:
        with keras.utils.custom_object_scope(objects):
            return (keras.Sequential if sequential else keras.Model).from_config(config)
    except UserError:
        raise
    except Exception as exc:  # Keras raises many types while rebuilding a graph
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"cannot rebuild '{name}' with plain Keras layers for export: {first[:200]}") from None
