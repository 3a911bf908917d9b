"""The model zoo: name -> builder, with each model's natural input shape and classes."""
from __future__ import annotations

from typing import Any

from tinyharden.errors import UserError
from tinyharden.models.builder import QuantBuilder
from tinyharden.registry import MODELS

# The model names, builders and natural shapes live in tinyharden/registry.py (MODELS).


def build_model(name: str, input_shape=None, num_classes: int | None = None,
                quantization: Any = "float", *, width: float = 1.0, weight_decay: float = 0.0):
    """Build a zoo model under a quantization spec (a preset name, dict or QuantizationSpec).

    The model outputs logits. Per-layer overrides in the spec that match no layer of the
    model are an error, since they are almost always a typo.
    """
    if name not in MODELS:
        raise UserError(f"unknown model '{name}' (zoo: {MODELS.choices()}){MODELS.hint(name)}")
    fn, meta = MODELS.get(name), MODELS.meta(name)
    default_shape, default_classes = meta["input_shape"], meta["classes"]
    builder = QuantBuilder(quantization, weight_decay=weight_decay)
    model = fn(builder, tuple(input_shape or default_shape), num_classes or default_classes, width=width)
    from tinyharden.quantization.presets import unused_layer_patterns

    unused = unused_layer_patterns(builder.spec, builder.names)
    if unused:
        raise UserError(
            f"quantization.layers names {', '.join(repr(u) for u in unused)}, which match no layer of '{name}'; "
            f"its quantizable layers are: {', '.join(builder.names)}")
    return model
