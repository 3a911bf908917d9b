"""The model zoo: name -> builder, with each model's natural input shape and classes."""
from __future__ import annotations

import difflib
from typing import Any, Callable

from tinyharden.errors import UserError
from tinyharden.models.builder import QuantBuilder
from tinyharden.models.dscnn import dscnn
from tinyharden.models.resnet8 import resnet8
from tinyharden.models.small import cnn, mlp
from tinyharden.models.stq_cnn import stq_cnn

ZOO: dict[str, tuple[Callable, tuple[int, ...], int]] = {
    "resnet8": (resnet8, (32, 32, 3), 10),
    "dscnn": (dscnn, (49, 10, 1), 12),
    "stq_cnn": (stq_cnn, (32, 32, 3), 10),
    "cnn": (cnn, (8, 8, 1), 10),
    "mlp": (mlp, (8, 8, 1), 10),
}


def build_model(name: str, input_shape=None, num_classes: int | None = None,
                quantization: Any = "float", *, width: float = 1.0, weight_decay: float = 0.0):
    """Build a zoo model under a quantization spec (a preset name, dict or QuantizationSpec).

    The model outputs logits. Per-layer overrides in the spec that match no layer of the
    model are an error, since they are almost always a typo.
    """
    if name not in ZOO:
        close = difflib.get_close_matches(name, ZOO, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise UserError(f"unknown model '{name}' (zoo: {', '.join(ZOO)}){hint}")
    fn, default_shape, default_classes = ZOO[name]
    builder = QuantBuilder(quantization, weight_decay=weight_decay)
    model = fn(builder, tuple(input_shape or default_shape), num_classes or default_classes, width=width)
    from tinyharden.quantization.presets import unused_layer_patterns

    unused = unused_layer_patterns(builder.spec, builder.names)
    if unused:
        raise UserError(
            f"quantization.layers names {', '.join(repr(u) for u in unused)}, which match no layer of '{name}'; "
            f"its quantizable layers are: {', '.join(builder.names)}")
    return model
