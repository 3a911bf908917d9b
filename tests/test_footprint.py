"""Footprint: bits per weight from quantizers, packed bytes, MACs, peak activations, the table."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from rich.console import Console

from tinyharden.footprint import render_table, summarize
from tinyharden.models import build_model


def _layer(summary, name):
    return next(r for r in summary["layers"] if r["name"] == name)


def _render(table, width=160) -> str:
    console = Console(width=width, record=True, file=open("/dev/null", "w"))
    console.print(table)
    return console.export_text()


def test_packed_weights_equal_count_times_bits():
    model = build_model("cnn", quantization="stq")
    s = summarize(model)
    expected_bits = 0
    for layer in model.layers:
        for w in layer.weights:
            short = w.name.split("/")[-1].split(":")[0]
            bits = {"kernel": 2, "bias": 8}.get(short, 32) if type(layer).__name__.startswith("Q") else 32
            expected_bits += int(np.prod(w.shape)) * bits
    assert s["totals"]["packed_bits"] == expected_bits
    assert s["totals"]["packed_bytes"] == math.ceil(expected_bits / 8)
    assert s["totals"]["params"] == model.count_params()
    # conv1: 3x3x1x16 ternary kernel + 16 8-bit biases
    conv1 = _layer(s, "conv1")
    assert [(w["name"], w["count"], w["bits"]) for w in conv1["weights"]] == [("kernel", 144, 2), ("bias", 16, 8)]
    assert conv1["packed_bytes"] == math.ceil((144 * 2 + 16 * 8) / 8) == 52
    assert "ternary" in conv1["weights"][0]["quantizer"]


@pytest.mark.parametrize("preset,kernel_bits", [("binary", 1), ("ternary", 2), ("int4", 4), ("int8", 8), ("float", 32)])
def test_bits_per_weight_follow_the_quantizer(preset, kernel_bits):
    s = summarize(build_model("mlp", quantization=preset))
    fc1 = _layer(s, "fc1")
    assert fc1["weights"][0]["bits"] == kernel_bits
    assert fc1["weights"][1]["bits"] == (32 if preset == "float" else 8)
    assert all(w["bits"] == 32 for w in _layer(s, "bn1")["weights"])  # BatchNorm stays float until folded
    assert fc1["packed_bits"] == 64 * 64 * kernel_bits + 64 * fc1["weights"][1]["bits"]


def test_macs_of_the_mlperf_shapes():
    s = summarize(build_model("cnn"))
    assert _layer(s, "conv1")["macs"] == 8 * 8 * 16 * 3 * 3 * 1
    assert _layer(s, "conv2")["macs"] == 4 * 4 * 32 * 3 * 3 * 16
    assert _layer(s, "logits")["macs"] == 32 * 10
    assert _layer(s, "bn1")["macs"] == 0
    # MLPerf Tiny ResNet-8: 12.5 M MACs; DS-CNN: depthwise = positions x 3x3 x channels
    assert summarize(build_model("resnet8", quantization="stq"))["totals"]["macs"] == 12_501_632
    ds = summarize(build_model("dscnn", quantization="int8"))
    assert _layer(ds, "ds1_dw")["macs"] == 25 * 5 * 9 * 64
    assert _layer(ds, "ds1_pw")["macs"] == 25 * 5 * 64 * 64


def test_peak_activation_estimate():
    s = summarize(build_model("cnn", quantization="stq"))
    # bn1 folds into conv1; the quantized ReLU act1 is an op of its own: conv1's and act1's 1,024 B coexist
    assert _layer(s, "conv1")["activation_bytes"] == 8 * 8 * 16
    assert _layer(s, "bn1")["in_place"] and not _layer(s, "act1")["in_place"]
    assert s["totals"]["peak_activation_bytes"] == 1024 + 1024
    assert s["totals"]["peak_activation_layer"] == "act1"
    # float: Activation('relu') fuses too, so conv1's 1,024 B and conv2's 512 B are the peak
    f = summarize(build_model("cnn"))
    assert f["totals"]["peak_activation_bytes"] == 1024 + 512 and f["totals"]["peak_activation_layer"] == "conv2"
    # ResNet-8: a residual block holds the block input (16 KiB) and two 16 KiB tensors
    r = summarize(build_model("resnet8"))
    assert r["totals"]["peak_activation_bytes"] == 3 * 32 * 32 * 16


def test_sequential_model_and_json_ready():
    from tinyharden._tf import keras

    model = keras.Sequential([keras.layers.Conv2D(4, 3, input_shape=(6, 6, 2)), keras.layers.ReLU(),
                              keras.layers.Flatten(), keras.layers.Dense(3)], name="seq")
    s = summarize(model)
    assert [r["name"] for r in s["layers"]][0] == model.layers[0].name
    assert s["totals"]["macs"] == 4 * 4 * 4 * 3 * 3 * 2 + 64 * 3
    assert s["totals"]["input_bytes"] == 72
    # conv output 64 B + input 72 B while the conv runs; then 64 + 64 for the flatten
    assert s["totals"]["peak_activation_bytes"] == 136
    json.loads(json.dumps(s))


def test_render_table_shows_totals_and_deployed_figures():
    s = summarize(build_model("cnn", quantization="stq"))
    text = _render(render_table(s))
    assert "conv1" in text and "QConv2D" in text and "total" in text and "2/8" in text
    assert f"{s['totals']['packed_bytes']:,}" in text and "ceil" in text
    assert "flash" not in text  # nothing deployed yet
    s["deployed"] = {"flash_bytes": 9896, "arena_bytes": 4632, "arena_head_bytes": 2048, "arena_tail_bytes": 2584}
    text = _render(render_table(json.loads(json.dumps(s))), width=80)
    assert "9,896 B" in text and "4,632 B" in text and "RAM" in text
