"""Quantization presets: which QKeras quantizer each kind of layer gets.

A preset is three quantizer expressions (kernel, bias, activation) in QKeras' own string
syntax, so a recipe can name any QKeras quantizer in a per-layer override. This module
imports no TensorFlow.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass


@dataclass(frozen=True)
class LayerQuantizers:
    kernel: str | None = None
    bias: str | None = None
    activation: str | None = None


# Biases stay at 8 bits in every deep preset: they are few, and TFLite stores them as int32.
_BIAS8 = "quantized_bits(8,3,1,alpha=1)"
_RELU4 = "quantized_relu(4,2)"  # 4-bit ReLU on [0, 4): room for post-BN activations above 1

# Each preset is registered by name in tinyharden/registry.py (PRESETS).
FLOAT = LayerQuantizers()
# STQ: stochastic ternary weights while training, plain ternary at inference.
STQ = LayerQuantizers("stochastic_ternary(alpha='auto')", _BIAS8, _RELU4)
TERNARY = LayerQuantizers("ternary(alpha='auto')", _BIAS8, _RELU4)
BINARY = LayerQuantizers("binary(alpha='auto')", _BIAS8, _RELU4)
STOCHASTIC_BINARY = LayerQuantizers("stochastic_binary(alpha='auto')", _BIAS8, _RELU4)
INT8 = LayerQuantizers("quantized_bits(8,0,1,alpha='auto')", _BIAS8, "quantized_relu(8,3)")
INT4 = LayerQuantizers("quantized_bits(4,0,1,alpha='auto')", _BIAS8, _RELU4)


class _Presets:
    """Read-only mapping view of the registry's presets: `PRESETS["stq"]`, `"stq" in PRESETS`."""

    def __getitem__(self, name: str) -> LayerQuantizers:
        from tinyharden.registry import PRESETS as registry

        return registry.get(name)

    def __contains__(self, name: object) -> bool:
        from tinyharden.registry import PRESETS as registry

        return name in registry

    def __iter__(self):
        from tinyharden.registry import PRESETS as registry

        return iter(registry.names())


PRESETS = _Presets()


def resolve(spec, layer_name: str) -> LayerQuantizers:
    """Quantizers for `layer_name` under a `QuantizationSpec` (preset, activation, layers).

    Per-layer entries match by exact name first, then by glob pattern (`conv*`), in the
    order the recipe lists them; within an entry, a `preset` is applied first and any
    explicit kernel/bias/activation overrides it.
    """
    base = PRESETS[spec.preset]
    if spec.activation is not None:
        base = LayerQuantizers(base.kernel, base.bias, spec.activation)
    entry = spec.layers.get(layer_name)
    if entry is None:
        entry = next((e for pat, e in spec.layers.items() if fnmatch.fnmatchcase(layer_name, pat)), None)
    if entry is None:
        return base
    chosen = PRESETS[entry.preset] if entry.preset else base
    return LayerQuantizers(
        _pick(entry.kernel, chosen.kernel),
        _pick(entry.bias, chosen.bias),
        _pick(entry.activation, chosen.activation),
    )


def _pick(explicit: str | None, default: str | None) -> str | None:
    if explicit is None:
        return default
    return None if explicit.strip().lower() in ("float", "none", "") else explicit


def unused_layer_patterns(spec, layer_names: list[str]) -> list[str]:
    """Per-layer entries that match no layer: almost always a typo in the recipe."""
    return [p for p in spec.layers if not any(n == p or fnmatch.fnmatchcase(n, p) for n in layer_names)]
