"""Incremental stochastic quantization (Dong et al., BMVC 2017, "Learning accurate
low-bit deep neural networks with stochastic quantization").

In stage s a share r_s of each layer's output channels is quantized and the rest stays
in full precision. Channels are drawn at random without replacement with probability
inversely proportional to their relative quantization error ||W_c - Q(W_c)||_1 /
||W_c||_1, so channels that quantize well go first. The schedule ends at r = 1.
"""
from __future__ import annotations

import numpy as np

from tinyharden._tf import tf
from tinyharden.footprint.summary import WEIGHT_QUANTIZERS

_KERNEL_ATTRS = {attr: weight for weight, attr in WEIGHT_QUANTIZERS.items() if weight != "bias"}


def masked_layers(model):
    """(layer, quantizer, kernel variable) for every layer whose kernel quantizer takes a mask."""
    found = []
    for layer in model.layers:
        for attr, var in _KERNEL_ATTRS.items():
            q = getattr(layer, attr, None)
            if q is not None and hasattr(q, "incremental_mask") and hasattr(layer, var):
                found.append((layer, q, getattr(layer, var)))
    return found


def _channel_axis(layer) -> int:
    return -2 if "depthwise" in type(layer).__name__.lower() else -1


def attach_masks(model) -> list:
    """Give each maskable quantizer a mask variable (all ones: everything quantized)."""
    masks = []
    for layer, q, kernel in masked_layers(model):
        axis = _channel_axis(layer)
        shape = [1] * len(kernel.shape)
        shape[axis] = kernel.shape[axis]
        if q.incremental_mask is None:
            q.incremental_mask = tf.Variable(tf.ones(shape), trainable=False, name=f"{layer.name}_iq_mask")
        masks.append(q.incremental_mask)
    return masks


def stage_of(epoch: int, ratios: list[float], epochs_per_stage: int) -> int:
    return min(epoch // epochs_per_stage, len(ratios) - 1)


def choose_channels(errors: np.ndarray, ratio: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask of round(ratio*C) channels, drawn with p ~ 1/error, without replacement."""
    c = len(errors)
    k = int(round(ratio * c))
    if k >= c:
        return np.ones(c, bool)
    if k <= 0:
        return np.zeros(c, bool)
    inv = 1.0 / np.maximum(errors, 1e-12)
    chosen = rng.choice(c, size=k, replace=False, p=inv / inv.sum())
    out = np.zeros(c, bool)
    out[chosen] = True
    return out


def apply_stage(model, ratio: float, rng: np.random.Generator) -> dict[str, float]:
    """Set every layer's mask for a stage; returns the quantized share of weights per layer."""
    shares = {}
    for layer, q, kernel in masked_layers(model):
        axis = _channel_axis(layer) % len(kernel.shape)
        w = kernel.numpy()
        q.incremental_mask.assign(tf.ones_like(q.incremental_mask))  # measure the full quantization
        wq = q(tf.constant(w)).numpy()
        red = tuple(i for i in range(w.ndim) if i != axis)
        err = np.abs(w - wq).sum(axis=red) / (np.abs(w).sum(axis=red) + 1e-12)
        chosen = choose_channels(err, ratio, rng)
        q.incremental_mask.assign(tf.reshape(tf.constant(chosen, tf.float32), q.incremental_mask.shape))
        shares[layer.name] = float(chosen.mean())
    return shares


def quantized_share(model) -> float:
    """Share of all maskable weights currently quantized."""
    total = quant = 0
    for _layer, q, kernel in masked_layers(model):
        m = np.broadcast_to(q.incremental_mask.numpy(), kernel.shape)
        total += m.size
        quant += m.sum()
    return float(quant / total) if total else 1.0
