"""Export: QKeras -> int8 TFLite, parity on the TFLM interpreter, C source, TFLite target, CLI gates."""
from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from tinyharden.errors import UserError
from tinyharden.export.c_source import parse_c_array
from tinyharden.export.micro import MicroModel
from tinyharden.models import build_model


@pytest.fixture(scope="module")
def trained_stq(digits):
    """The quickstart STQ cnn after a short real training on digits (~88% test accuracy)."""
    from tinyharden._tf import keras

    from tinyharden import rng

    keras.utils.set_random_seed(1)
    rng.reset(seed=1)  # STQ samples from tinyharden's stream, which set_random_seed does not touch
    model = build_model("cnn", quantization="stq")
    model.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(digits.x_train, digits.y_train, epochs=10, batch_size=32, verbose=0)
    return model


@pytest.fixture(scope="module")
def exported(trained_stq, digits, tmp_path_factory):
    from tinyharden.jobs.export import export_model

    out = tmp_path_factory.mktemp("export")
    return export_model(trained_stq, digits, out, calib=100, source="test")


def test_stq_export_keeps_accuracy_on_tflm(exported):
    p = exported["parity"]
    assert p["samples"] == 359 and p["keras_accuracy"] > 60  # a real, trained model on the whole test split
    # int8 may score a few test images better by chance (359 samples: 1 point is ~4 images); it must not lose more
    assert p["drop"] <= 1.0, p
    assert p["agreement"] >= 90.0, p
    assert "tflite-micro" in p["interpreter"]
    assert exported["failed"] == []


def test_artifacts_and_measured_figures(exported):
    from pathlib import Path

    out = Path(exported["out_dir"])
    assert sorted(exported["files"]) == sorted(["model.tflite", "model_data.h", "model_data.cc", "footprint.json", "export.json"])
    data = (out / "model.tflite").read_bytes()
    footprint = json.loads((out / "footprint.json").read_text())
    assert footprint["deployed"]["flash_bytes"] == len(data)
    # The arena figure is the interpreter's own, not an estimate.
    arena = MicroModel(data).arena()
    assert footprint["deployed"]["arena_bytes"] == arena["total"] > 0
    assert footprint["deployed"]["arena_head_bytes"] == arena["head"]
    # the graph estimate of peak activations matches what TFLM's planner reserved
    assert footprint["totals"]["peak_activation_bytes"] == arena["head"]
    record = json.loads((out / "export.json").read_text())
    assert record["input"]["dtype"] == record["output"]["dtype"] == "int8"
    assert record["input_range"] == [0.0, 1.0] and record["calibration_samples"] == 100


def test_c_array_round_trips(exported):
    from pathlib import Path

    out = Path(exported["out_dir"])
    data = (out / "model.tflite").read_bytes()
    cc = (out / "model_data.cc").read_text()
    h = (out / "model_data.h").read_text()
    assert parse_c_array(cc) == data
    assert "alignas(16) const unsigned char g_model_data[]" in cc
    assert f"g_model_data_len = {len(data)};" in cc
    q = exported["input"]
    assert f"scale {q['scale']:.9g}, zero point {q['zero_point']}" in h
    assert "extern const unsigned int g_model_data_len;" in h and "output" in h


def test_tflite_target_meets_the_attack_protocol(exported, digits):
    from pathlib import Path

    from tinyharden.attacks.target import Target, check_target
    from tinyharden.attacks.tflite_target import TFLiteTarget

    out = Path(exported["out_dir"])
    target = TFLiteTarget.from_run(out)
    check_target(target)
    assert isinstance(target, Target) and target.differentiable is False
    assert target.input_shape == (8, 8, 1) and target.num_classes == 10
    x = digits.x_test[:40].copy()
    scores = target.predict(x)
    assert scores.shape == (40, 10) and scores.dtype == np.float32
    assert np.array_equal(x, digits.x_test[:40])  # inputs untouched
    micro = TFLiteTarget(out / "model.tflite", (0.0, 1.0), engine="micro")
    np.testing.assert_allclose(micro.predict(x[:10]), MicroModel((out / "model.tflite").read_bytes()).predict(x[:10]))
    on_device = micro.predict(x).argmax(-1)
    assert np.mean(on_device == scores.argmax(-1)) >= 0.95
    reference = TFLiteTarget(out / "model.tflite", (0.0, 1.0), engine="reference")
    assert np.mean(on_device == reference.predict(x).argmax(-1)) >= 0.95
    # the input range maps [0, 1] onto what the model takes before quantizing
    wide = TFLiteTarget(out / "model.tflite", (0.0, 2.0))
    np.testing.assert_allclose(wide.predict(x[:5] * 0.5), target.predict(x[:5]), atol=1e-6)


@pytest.mark.parametrize("name,preset,shape,classes", [
    ("resnet8", "stq", (32, 32, 3), 10),
    ("dscnn", "int4", (49, 10, 1), 12),
])
def test_mlperf_shapes_export_to_int8(name, preset, shape, classes):
    from tinyharden.export.tflite import export_tflite
    from tinyharden.footprint import summarize

    model = build_model(name, quantization=preset)
    calib = np.random.default_rng(0).random((8, *shape), dtype=np.float32)
    data, twin = export_tflite(model, calib)
    assert not any(type(l).__module__.startswith("qkeras") for l in twin.layers)
    micro = MicroModel(data)
    assert micro.input["shape"] == [1, *shape] and micro.output["shape"] == [1, classes]
    assert micro.input["dtype"] == micro.output["dtype"] == "int8"
    assert micro.predict(calib[:2]).shape == (2, classes)
    assert len(data) < 2 * model.count_params()  # int8 weights: about a byte each
    arena = micro.arena()
    peak = summarize(model)["totals"]["peak_activation_bytes"]
    assert abs(arena["head"] - peak) <= 0.25 * peak  # the graph estimate tracks TFLM's planner


def test_twin_bakes_in_the_quantized_weights():
    import qkeras

    from tinyharden._tf import keras
    from tinyharden.export.twin import quantized_twin
    from tinyharden.quantization.quantizers import make_quantizer

    inp = keras.Input((6, 6, 2))
    x = qkeras.QConv2D(4, 3, kernel_quantizer=make_quantizer("stochastic_ternary(alpha='auto')"),
                       bias_quantizer=make_quantizer("quantized_bits(8,3,1,alpha=1)"), name="conv")(inp)
    y = qkeras.QDense(3, kernel_quantizer=make_quantizer("binary(alpha='auto')"), name="fc",
                      activation=make_quantizer("quantized_relu(4,2)"))(keras.layers.Flatten()(x))
    model = keras.Model(inp, [x, y])
    model.get_layer("conv").set_weights([np.random.default_rng(1).normal(size=(3, 3, 2, 4)).astype("float32"),
                                         np.linspace(-1, 1, 4).astype("float32")])
    twin = quantized_twin(model)
    assert type(twin.get_layer("conv")).__name__ == "Conv2D"
    assert type(twin.get_layer("fc_act")).__name__ == "ClipActivation"  # the inline activation became a layer
    assert twin.get_layer("fc_act").hi == 3.75  # where quantized_relu(4,2) saturates
    kernel = twin.get_layer("conv").get_weights()[0]
    assert all(len(np.unique(np.round(np.abs(kernel[..., c]), 6))) <= 2 for c in range(4))  # {0, a_c}
    x_in = np.random.default_rng(2).random((5, 6, 6, 2)).astype("float32")
    k_conv, k_fc = model(x_in, training=False)
    t_conv, t_fc = twin(x_in)
    np.testing.assert_allclose(t_conv, k_conv, atol=1e-5)
    assert np.max(np.abs(np.asarray(t_fc) - np.asarray(k_fc))) <= 0.125 + 1e-5  # rounding to the 4-bit step


def test_unsupported_layers_are_named():
    import qkeras

    from tinyharden._tf import keras
    from tinyharden.export.twin import quantized_twin

    inp = keras.Input((4, 4, 1))
    model = keras.Model(inp, qkeras.QAveragePooling2D(name="qpool")(inp))
    with pytest.raises(UserError, match="'qpool'.*QAveragePooling2D"):
        quantized_twin(model)
    model = keras.Model(inp, qkeras.QActivation("quantized_tanh(4)", name="qtanh")(inp))
    with pytest.raises(UserError, match="'qtanh'.*quantized_tanh"):
        quantized_twin(model)


# --------------------------------------------------------------------------- CLI

def _cli(args, workspace):
    from tinyharden.cli.app import app

    return CliRunner().invoke(app, ["--workspace", str(workspace), "export", *args])


def _error_lines(result) -> list[str]:
    return [ln for ln in (result.stderr if hasattr(result, "stderr") else result.output).splitlines() if ln.strip()]


@pytest.fixture(scope="module")
def model_file(trained_stq, tmp_path_factory):
    path = tmp_path_factory.mktemp("bare") / "stq_cnn.h5"
    trained_stq.save(path)
    return path


def test_cli_run_folder_uses_recipe_budget_and_writes_artifacts_first(model_file, tmp_path):
    import shutil

    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(model_file, run / "model.h5")
    (run / "recipe.yaml").write_text(yaml.safe_dump({
        "name": "quick", "seed": 0, "data": {"dataset": "digits"},
        "model": {"name": "cnn"}, "quantization": {"preset": "stq"},
        "export": {"formats": "tflite,c", "calib": 50, "max_flash": 1000}}))
    (run / "metrics.json").write_text("{}")
    result = _cli([str(run), "--limit", "40"], tmp_path / "ws")
    assert result.exit_code == 3, result.output
    assert "flash" in result.output and "max_flash 1,000" in result.output
    for name in ("model.tflite", "model_data.h", "model_data.cc", "footprint.json", "export.json"):
        assert (run / name).is_file(), name
    record = json.loads((run / "export.json").read_text())
    assert [g["gate"] for g in record["gates"] if not g["passed"]] == ["max_flash"]
    assert record["calibration_samples"] == 50


def test_cli_bare_model_ram_budget_and_success(model_file, tmp_path):
    ws = tmp_path / "ws"
    result = _cli([str(model_file), "--data", "digits", "--limit", "20", "--calib", "20",
                   "--max-ram", "100", "--max-flash", "10000000", "--format", "tflite"], ws)
    assert result.exit_code == 3, result.output
    last = _error_lines(result)[-1]
    assert "RAM" in last and "max_ram 100" in last and "flash" not in last
    folder = ws / "export-stq_cnn"
    assert (folder / "model.tflite").is_file() and not (folder / "model_data.cc").exists()
    assert (folder / "footprint.json").is_file() and (folder / "env.json").is_file()

    result = _cli([str(model_file), "--data", "digits", "--limit", "20", "--calib", "20", "--allow-drop"], ws)
    assert result.exit_code == 0, result.output
    assert "parity on 20 test samples" in result.output and "footprint" in result.output
    assert (ws / "export-stq_cnn-2" / "model_data.cc").is_file()


def test_cli_bad_inputs_are_one_line_errors(model_file, tmp_path):
    corrupt = tmp_path / "broken.h5"
    corrupt.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 64)
    for args, needle in [
        ([str(corrupt), "--data", "digits"], "broken.h5"),
        ([str(model_file)], "bare model file: name its dataset"),
        ([str(model_file), "--data", "mnist"], "unknown dataset 'mnist'"),
        ([str(model_file), "--data", "digits", "--input-range", "5,1"], "--input-range"),
        ([str(model_file), "--data", "digits", "--format", "onnx"], "--format tflite,c"),
    ]:
        result = _cli(args, tmp_path / "ws")
        assert result.exit_code == 2, (args, result.output)
        lines = _error_lines(result)
        assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], (args, result.output)
        assert "Traceback" not in result.output
