"""A float Keras model -> its QKeras twin, float weights carried over.

The twin keeps the user's layer names (per-layer overrides and Jacobian layers refer to
them) and the graph as it is, layer for layer:

- Conv2D -> QConv2D, DepthwiseConv2D -> QDepthwiseConv2D, Dense -> QDense, with kernel
  and bias quantizers from the spec (tinyharden's `make_quantizer`, so STQ samples while
  training). A fused ReLU (`Conv2D(activation="relu")`) becomes a separate activation
  layer `<name>_relu` quantized like the layer it came from.
- Activation("relu") / ReLU() -> QActivation with the spec's activation quantizer.
- Weight-free plumbing (pooling, Flatten, Add, Dropout, ...) and BatchNormalization are
  kept as they are; batch norm is not quantized, it folds into the conv at export.
- A final softmax is dropped (`logits_model`): training, attacks and JR need logits.

A layer resolving to all-float is cloned as it is, so nothing stays float unless the spec
says so. Anything else (LSTM, Conv3D, a nested model, a mid-graph softmax, ...) is refused
up front with the layer's name and the supported list: a quantized model with one float
layer hidden in it would report a footprint it does not have.

Inputs in another range than the dataset's (the MLPerf Tiny ResNet-8 takes 0..255 pixels)
get a `Rescaling` layer in front, so the twin takes the dataset's own units: training,
attack eps, JR and export then need no `--input-range` for the run folder.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

from tinyharden._tf import keras, tf  # first: sets TF_USE_LEGACY_KERAS before QKeras imports TF

import qkeras  # noqa: E402
from tinyharden.errors import UserError
from tinyharden.interfaces import KerasModel
from tinyharden.quantization.presets import LayerQuantizers, resolve, unused_layer_patterns
from tinyharden.quantization.quantizers import make_quantizer
from tinyharden.recipe import QuantizationSpec

L = keras.layers
INPUT_SCALE = "input_scale"

# Layer type -> (QKeras type, name of its kernel quantizer argument).
_WEIGHTED = {
    "Conv2D": (qkeras.QConv2D, "kernel_quantizer"),
    "DepthwiseConv2D": (qkeras.QDepthwiseConv2D, "depthwise_quantizer"),
    "Dense": (qkeras.QDense, "kernel_quantizer"),
}
# Kept as they are: no weights to quantize (batch norm folds into the conv at export).
_KEPT = {
    "InputLayer", "BatchNormalization", "Add", "Concatenate", "Flatten", "Reshape", "Dropout", "SpatialDropout2D",
    "ZeroPadding2D", "Rescaling", "MaxPooling1D", "MaxPooling2D", "AveragePooling1D", "AveragePooling2D",
    "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalMaxPooling1D", "GlobalMaxPooling2D",
}
SUPPORTED = ("Conv2D, DepthwiseConv2D, Dense (activation linear or relu), Activation(relu|linear), plain ReLU, "
             "and unchanged: " + ", ".join(sorted(_KEPT - {"InputLayer"})))
# Batch-norm statistics must follow the quantized weights within a short fine-tune;
# Keras' default 0.99 needs ~500 steps (see models.builder.bn).
_BN_MOMENTUM = 0.9


@dataclass
class LayerPlan:
    """How one source layer maps into the twin (one row of the summary and quantize.json)."""

    name: str
    source: str  # the source layer's type
    twin: str  # the twin layer's type, "+Q..." when a fused ReLU was split off
    kernel: str | None = None  # quantizer expressions; None = float
    bias: str | None = None
    activation: str | None = None
    role: str = "quantized"  # quantized | float (the spec says so) | kept (no weights)

    def as_dict(self) -> dict:
        return asdict(self)


def _act_name(layer) -> str:
    act = getattr(layer, "activation", None)
    return getattr(act, "__name__", str(act))


def _is_plain_relu(layer) -> bool:
    return (not getattr(layer, "max_value", None) and not float(getattr(layer, "negative_slope", 0) or 0)
            and not float(getattr(layer, "threshold", 0) or 0))


def _unsupported(layer) -> str | None:
    """Why `layer` cannot be mapped, or None."""
    kind = type(layer).__name__
    if isinstance(layer, keras.Model):
        return f"layer '{layer.name}' is a nested model ({kind}); flatten it into one functional model first"
    if kind.startswith("Q") and hasattr(qkeras, kind):
        return f"layer '{layer.name}' is already a QKeras {kind}; quantize takes a float model"
    if kind in _WEIGHTED:
        if _act_name(layer) not in ("linear", "relu"):
            return (f"layer '{layer.name}' ({kind}) has a fused '{_act_name(layer)}' activation; "
                    "only linear or relu fuse into a quantized layer (a final softmax is dropped)")
        if getattr(layer, "groups", 1) != 1:
            return f"layer '{layer.name}' ({kind}) is a grouped convolution (groups={layer.groups}), which QKeras cannot quantize"
        return None
    if kind == "Activation":
        if _act_name(layer) in ("relu", "linear"):
            return None
        return f"layer '{layer.name}' is Activation('{_act_name(layer)}'); only relu and linear are supported mid-model"
    if kind == "ReLU":
        return None if _is_plain_relu(layer) else \
            f"layer '{layer.name}' is a ReLU with max_value/negative_slope/threshold; only a plain ReLU maps to a quantized ReLU"
    if kind in _KEPT:
        return None
    return f"layer '{layer.name}' ({kind}) cannot be quantized"


def check_supported(model) -> None:
    problems = [p for p in (_unsupported(layer) for layer in model.layers) if p]
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise UserError(f"{problems[0]}{more}; tinyharden quantize supports {SUPPORTED}")


def weighted_layer_names(model) -> list[str]:
    return [layer.name for layer in model.layers if type(layer).__name__ in _WEIGHTED]


def _quantized_weighted(layer, q: LayerQuantizers):
    """The QKeras twin of a Conv2D/DepthwiseConv2D/Dense, activation stripped."""
    qtype, kernel_arg = _WEIGHTED[type(layer).__name__]
    cfg = layer.get_config()
    cfg.pop("groups", None)
    cfg["activation"] = "linear"
    cfg[kernel_arg] = make_quantizer(q.kernel)
    cfg["bias_quantizer"] = make_quantizer(q.bias)
    return qtype(**cfg)


def _plain_clone(layer, **changes):
    cfg = layer.get_config()
    cfg.update(changes)
    return type(layer).from_config(cfg)


def _relu_layer(name: str, q: LayerQuantizers):
    if q.activation is None:
        return L.Activation("relu", name=name)
    return qkeras.QActivation(make_quantizer(q.activation), name=name)


def _map_layer(layer, spec: QuantizationSpec, taken: set[str]) -> tuple[list, LayerPlan]:
    """The twin layers (called in sequence) standing in for `layer`, and its plan row."""
    kind = type(layer).__name__
    if kind in _WEIGHTED:
        q = resolve(spec, layer.name)
        fused = _act_name(layer) == "relu"
        if q.kernel is None and q.bias is None:
            main, twin, role = _plain_clone(layer, activation="linear"), kind, "float"
        else:
            main = _quantized_weighted(layer, q)
            twin, role = type(main).__name__, "quantized"
        layers = [main]
        if fused:
            relu_name = _free_name(f"{layer.name}_relu", taken)
            relu = _relu_layer(relu_name, q)
            layers.append(relu)
            twin += f"+{type(relu).__name__}"
        plan = LayerPlan(layer.name, kind, twin, q.kernel, q.bias if layer.use_bias else None,
                         q.activation if fused else None, role)
        return layers, plan
    if kind in ("Activation", "ReLU") and (kind == "ReLU" or _act_name(layer) == "relu"):
        q = resolve(spec, layer.name)
        new = _relu_layer(layer.name, q)
        return [new], LayerPlan(layer.name, kind, type(new).__name__, activation=q.activation,
                                role="quantized" if q.activation else "float")
    if kind == "BatchNormalization":
        new = _plain_clone(layer, momentum=min(float(layer.momentum), _BN_MOMENTUM))
    else:
        new = _plain_clone(layer)
    return [new], LayerPlan(layer.name, kind, kind, role="kept")


def _free_name(name: str, taken: set[str]) -> str:
    base, n = name, 1
    while name in taken:
        n += 1
        name = f"{base}_{n}"
    taken.add(name)
    return name


def input_rescaling(data_range: Sequence[float], model_range: Sequence[float]) -> tuple[float, float] | None:
    """(scale, offset) mapping data units onto the model's input range, or None if equal."""
    (dlo, dhi), (mlo, mhi) = data_range, model_range
    if (float(dlo), float(dhi)) == (float(mlo), float(mhi)):
        return None
    scale = (mhi - mlo) / (dhi - dlo)
    return float(scale), float(mlo - dlo * scale)


def quantize_model(model: KerasModel, spec: QuantizationSpec | str, *, rescale: tuple[float, float] | None = None,
                   name: str | None = None):
    """(twin, plan): the QKeras twin of float `model` outputting logits, and one LayerPlan per layer.

    `rescale` = (scale, offset) prepends `Rescaling(scale, offset)` named 'input_scale';
    see `input_rescaling`. The source model is not modified.
    """
    if isinstance(spec, str):
        spec = QuantizationSpec(preset=spec)
    name = name or model.name
    model = _quantizable(model, spec, rescale)
    taken = {layer.name for layer in model.layers}
    new_inputs, tensor_map = _twin_inputs(model, rescale, taken)
    pairs, plan = _map_graph(model, spec, taken, tensor_map)
    outputs = [tensor_map[id(t)] for t in model.outputs]
    twin = keras.Model(new_inputs, outputs if len(outputs) > 1 else outputs[0], name=name)
    for old, new in pairs:
        new.set_weights(old.get_weights())
    order = {layer.name: i for i, layer in enumerate(model.layers)}
    plan.sort(key=lambda p: order.get(p.name, len(order)))
    return twin, plan


def _quantizable(model: KerasModel, spec: QuantizationSpec, rescale: tuple[float, float] | None) -> KerasModel:
    """`model` as a logits model, or a UserError saying why it cannot be quantized as asked."""
    from tinyharden.models.loading import logits_model

    if not isinstance(model, keras.Model) or not getattr(model, "_is_graph_network", False):
        raise UserError(f"model '{getattr(model, 'name', model)}' is a subclassed Keras model; "
                        "quantize needs a functional or Sequential model (save it with model.save('m.h5') from one)")
    model = logits_model(model)
    check_supported(model)
    unused = unused_layer_patterns(spec, [layer.name for layer in model.layers])
    if unused:
        raise UserError(f"quantization.layers names {', '.join(repr(u) for u in unused)}, which match no layer of "
                        f"'{model.name}'; its quantizable layers are: {', '.join(weighted_layer_names(model))}")
    if len(model.inputs) != 1 and rescale is not None:
        raise UserError(f"model '{model.name}' has {len(model.inputs)} inputs; an input range applies to "
                        "single-input models only")
    return model


def _twin_inputs(model, rescale: tuple[float, float] | None, taken: set[str]) -> tuple[list, dict]:
    """The twin's Input layers (each followed by the rescaling, if any) and id(source tensor) -> twin tensor."""
    tensor_map: dict = {}  # id(source tensor) -> twin tensor (Keras tensors are unhashable)
    new_inputs = []
    for t in model.inputs:
        src = t._keras_history.layer
        inp = keras.Input(shape=t.shape[1:], dtype=t.dtype, name=src.name)
        new_inputs.append(inp)
        x = inp
        if rescale is not None:
            x = L.Rescaling(rescale[0], rescale[1], name=_free_name(INPUT_SCALE, taken))(x)
        tensor_map[id(t)] = x
    return new_inputs, tensor_map


def _map_graph(model, spec: QuantizationSpec, taken: set[str], tensor_map: dict) -> tuple[list[tuple], list[LayerPlan]]:
    """Call every layer's twin on the twin tensors, node by node; (source, twin) weight pairs and the plan."""
    layer_map: dict = {}
    pairs: list[tuple] = []  # (source layer, its first twin layer): weights to carry over
    plan: list[LayerPlan] = []
    for depth in sorted(model._nodes_by_depth, reverse=True):
        for node in model._nodes_by_depth[depth]:
            layer = node.outbound_layer
            if isinstance(layer, L.InputLayer):
                continue
            if layer not in layer_map:  # a shared layer is mapped once and called per node
                layer_map[layer], row = _map_layer(layer, spec, taken)
                pairs.append((layer, layer_map[layer][0]))
                plan.append(row)
            args = tf.nest.map_structure(lambda t: tensor_map.get(id(t), t), node.call_args)
            kwargs = tf.nest.map_structure(lambda t: tensor_map.get(id(t), t), node.call_kwargs)
            chain = layer_map[layer]
            out = chain[0](*args, **kwargs)
            for extra in chain[1:]:
                out = extra(out)
            for old, new in zip(tf.nest.flatten(node.output_tensors), tf.nest.flatten(out)):
                tensor_map[id(old)] = new
    return pairs, plan

