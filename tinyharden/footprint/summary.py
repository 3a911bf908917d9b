"""Per-layer memory and compute cost of a (Q)Keras model, as a JSON-ready dict.

Everything is read from layer objects and their quantizers (duck-typed), so this module
imports no TensorFlow itself: the caller already holds a model.

Figures and their formulas:
- params: every weight the layer stores (BatchNormalization counts its four vectors).
- bits: from the weight's QKeras quantizer (ternary 2, binary 1, quantized_bits(n) n);
  a weight with no quantizer is float, 32 bits.
- packed_bytes = ceil(sum(count * bits) / 8): the weights at their quantized width,
  bit-packed; per-channel scales are not counted (they fold into requantization).
- macs: multiply-accumulates per inference (kernel size x output positions; dense layers
  kernel size x leading positions); BatchNormalization, activations, pooling and adds 0.
- activation_bytes: the layer's output tensor at one byte an element (int8, as exported).
- peak_activation_bytes: the largest sum of tensors alive at once when the layers run in
  order, each freed after its last reader. Batch norm, dropout and plain ReLUs add no
  tensor when they are the only reader of their input (the converter folds them into the
  op before); a quantized ReLU does, as it exports as a MINIMUM op of its own.
"""
from __future__ import annotations

import math
from typing import Any

SCHEMA = "tinyharden.footprint/1"
FLOAT_BITS = 32
ACTIVATION_BYTES = 1  # int8 activations, as in the exported model

# Weight name -> the QKeras layer attribute holding its quantizer: the one list every
# module that walks weight quantizers reads (loading, incremental, export twin, STQ checks).
WEIGHT_QUANTIZERS = {
    "kernel": "kernel_quantizer_internal",
    "depthwise_kernel": "depthwise_quantizer_internal",
    "pointwise_kernel": "pointwise_quantizer_internal",
    "bias": "bias_quantizer_internal",
}
_QUANTIZER_ATTR = {
    **WEIGHT_QUANTIZERS,
    "gamma": "gamma_quantizer_internal",
    "beta": "beta_quantizer_internal",
    "moving_mean": "mean_quantizer_internal",
    "moving_variance": "variance_quantizer_internal",
}
_KERNELS = ("kernel", "depthwise_kernel", "pointwise_kernel")
# Layers the converter folds into the op before them (or drops): they add no tensor.
_FOLDED = {
    "BatchNormalization", "QBatchNormalization", "Dropout", "SpatialDropout1D", "SpatialDropout2D",
    "SpatialDropout3D", "GaussianNoise", "GaussianDropout", "AlphaDropout", "ActivityRegularization",
}
_FUSED_ACTIVATIONS = {"relu", "relu6", "linear"}


def _folds_into_previous(layer) -> bool:
    """True if the exported model has no tensor of this layer's own.

    Batch norm and dropout vanish; ReLU (and ReLU6) fuse into the op before. A quantized
    ReLU clipped elsewhere exports as a separate MINIMUM op with its own output tensor.
    """
    kind = type(layer).__name__
    if kind in _FOLDED:
        return True
    if kind == "Activation":
        return getattr(layer.activation, "__name__", "") in _FUSED_ACTIVATIONS
    if kind == "ReLU":
        return (not getattr(layer, "negative_slope", 0) and not getattr(layer, "threshold", 0)
                and getattr(layer, "max_value", None) in (None, 6, 6.0))
    if kind == "QActivation":
        q = getattr(layer, "quantizer", None) or getattr(layer, "activation", None)
        return not hasattr(q, "bits") and getattr(q, "__name__", "") in _FUSED_ACTIVATIONS
    return False

UNITS = {
    "params": "count",
    "bits": "bits per weight",
    "packed_bits": "bits",
    "packed_bytes": "bytes",
    "macs": "multiply-accumulates per inference",
    "activation_bytes": "bytes (int8)",
    "peak_activation_bytes": "bytes (int8)",
    "flash_bytes": "bytes",
    "arena_bytes": "bytes",
}
FORMULAS = {
    "bits": "from the weight's quantizer: ternary 2, binary 1, quantized_bits(n) n, float 32",
    "packed_bytes": "ceil(sum(count * bits) / 8)",
    "float32_bytes": "params * 4",
    "macs": "conv: kernel size * output positions; dense: kernel size * leading positions",
    "activation_bytes": "prod(output shape) * 1 byte (int8)",
    "peak_activation_bytes": "max over layers of the bytes of tensors alive while it runs "
                             "(folded, no tensor of their own: batch norm, dropout, plain ReLU)",
    "flash_bytes": "size of the .tflite flatbuffer",
    "arena_bytes": "tensor arena recorded by the TensorFlow Lite Micro interpreter",
}


def _short(weight) -> str:
    return weight.name.split("/")[-1].split(":")[0]


def _bits(layer, weight_name: str) -> tuple[int, str | None]:
    q = getattr(layer, _QUANTIZER_ATTR.get(weight_name, ""), None)
    bits = getattr(q, "bits", None) if q is not None else None
    if bits is None:
        return FLOAT_BITS, None
    return int(bits), str(q)


def _shape(shape) -> list[int | None] | None:
    if shape is None:
        return None
    if isinstance(shape, list) and shape and isinstance(shape[0], (tuple, list)):
        shape = shape[0]  # a layer with several outputs: its first
    return [None if d is None else int(d) for d in tuple(shape)[1:]]


def _numel(shape: list | None) -> int:
    if not shape or any(d is None for d in shape):
        return 0
    return int(math.prod(shape))


def _inbound(layer, model) -> list[str]:
    """Names of the layers feeding `layer` inside `model` (its node in this graph)."""
    nodes = getattr(layer, "inbound_nodes", None) or getattr(layer, "_inbound_nodes", [])
    keys = getattr(model, "_network_nodes", set())
    node = next((n for i, n in enumerate(nodes) if f"{layer.name}_ib-{i}" in keys), nodes[0] if nodes else None)
    if node is None:
        return []
    src = node.inbound_layers
    return [s.name for s in (src if isinstance(src, (list, tuple)) else [src])]


def _macs(layer, in_shape, out_shape, weights: dict[str, int]) -> int:
    kernels = sum(weights.get(k, 0) for k in _KERNELS)
    if not kernels:
        return 0
    name = type(layer).__name__
    if "Dense" in name:
        positions = _numel(in_shape[:-1]) if in_shape and len(in_shape) > 1 else 1
    elif "Transpose" in name:
        positions = _numel(in_shape[:-1]) if in_shape else 0
    else:
        positions = _numel(out_shape[:-1]) if out_shape else 0
    return int(positions * kernels)


def _layer_record(layer, model) -> dict[str, Any]:
    weights = []
    counts: dict[str, int] = {}
    for w in layer.weights:
        n = int(math.prod(w.shape)) if len(w.shape) else 1
        bits, quantizer = _bits(layer, _short(w))
        weights.append({"name": _short(w), "count": n, "bits": bits, "quantizer": quantizer,
                        "trainable": any(w is t for t in layer.trainable_weights)})
        counts[_short(w)] = counts.get(_short(w), 0) + n
    try:
        out_shape = _shape(layer.output_shape)
    except (AttributeError, RuntimeError):
        out_shape = None
    try:
        in_shape = _shape(layer.input_shape)
    except (AttributeError, RuntimeError):
        in_shape = None
    packed_bits = sum(w["count"] * w["bits"] for w in weights)
    inner_macs = 0
    if hasattr(layer, "layers") and hasattr(layer, "inputs"):  # a nested model: cost of its own layers
        inner_macs = summarize(layer)["totals"]["macs"]
    return {
        "name": layer.name,
        "type": type(layer).__name__,
        "inputs": _inbound(layer, model),
        "output_shape": out_shape,
        "params": sum(w["count"] for w in weights),
        "weights": weights,
        "packed_bits": packed_bits,
        "packed_bytes": math.ceil(packed_bits / 8),
        "macs": inner_macs or _macs(layer, in_shape, out_shape, counts),
        "activation_bytes": _numel(out_shape) * ACTIVATION_BYTES,
        "in_place": _folds_into_previous(layer),
    }


def peak_activations(records: list[dict], input_bytes: dict[str, int], outputs: set[str]) -> tuple[int, str | None]:
    """(peak bytes, layer at the peak) when layers run in list order; see the module docstring."""
    readers: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        for src in r["inputs"]:
            readers.setdefault(src, []).append(i)
    buffer_of: dict[str, str] = {name: name for name in input_bytes}  # tensor -> buffer holding it
    size = dict(input_bytes)
    last_use: dict[str, float] = {}

    def touch(tensor: str, step: float) -> None:
        buf = buffer_of[tensor]
        last_use[buf] = max(last_use.get(buf, -1), step)

    for name in input_bytes:
        touch(name, max(readers.get(name, [-1])) if name not in outputs else math.inf)
    live = set(input_bytes)
    peak, at = sum(input_bytes.values()), None
    for i, r in enumerate(records):
        name, srcs = r["name"], [s for s in r["inputs"] if s in buffer_of]
        in_place = r["in_place"] and len(srcs) == 1 and len(readers.get(srcs[0], [])) == 1
        if in_place:
            buffer_of[name] = buffer_of[srcs[0]]
        else:
            buffer_of[name] = name
            size[name] = r["activation_bytes"]
            live.add(name)
        touch(name, math.inf if name in outputs else max(readers.get(name, [i])))
        current = sum(size[b] for b in live)
        if current > peak:
            peak, at = current, name
        for b in [b for b in live if last_use.get(b, -1) <= i]:
            live.discard(b)
    return int(peak), at


def summarize(model) -> dict[str, Any]:
    """Per-layer parameters, bits, packed bytes, MACs and activations of `model`, plus totals."""
    layers = [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]
    records = [_layer_record(layer, model) for layer in layers]
    produced = {r["name"] for r in records}
    input_bytes: dict[str, int] = {}
    for r in records:
        for src in r["inputs"]:
            if src not in produced and src not in input_bytes:
                input_bytes[src] = 0
    shapes = model.input_shape if isinstance(model.input_shape, list) else [model.input_shape]
    for name, shape in zip(input_bytes, shapes):
        input_bytes[name] = _numel(_shape(shape)) * ACTIVATION_BYTES
    output_names = set(getattr(model, "output_names", None) or ([records[-1]["name"]] if records else []))
    peak, at = peak_activations(records, input_bytes, output_names)
    params = sum(r["params"] for r in records)
    packed_bits = sum(r["packed_bits"] for r in records)
    packed_bytes = math.ceil(packed_bits / 8)
    return {
        "schema": SCHEMA,
        "model": model.name,
        "units": UNITS,
        "formulas": FORMULAS,
        "layers": records,
        "totals": {
            "params": params,
            "trainable_params": sum(w["count"] for r in records for w in r["weights"] if w["trainable"]),
            "packed_bits": packed_bits,
            "packed_bytes": packed_bytes,
            "float32_bytes": params * 4,
            "compression": round(params * 4 / packed_bytes, 2) if packed_bytes else None,
            "macs": sum(r["macs"] for r in records),
            "input_bytes": sum(input_bytes.values()),
            "peak_activation_bytes": peak,
            "peak_activation_layer": at,
        },
    }
