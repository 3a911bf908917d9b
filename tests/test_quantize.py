"""quantize: float -> QKeras twin per preset, pattern configs, unsupported layers, PTQ drop and
fine-tune recovery on digits, resume, and the CLI end to end."""
from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from tinyharden._tf import keras, tf
from tinyharden.cli.app import app
from tinyharden.errors import UserError
from tinyharden.models import load_model
from tinyharden.jobs import quantize as pipeline
from tinyharden.models.convert import input_rescaling, quantize_model
from tinyharden.quantization.presets import PRESETS, resolve
from tinyharden.quantization.quantizers import make_quantizer
from tinyharden.recipe import QuantizationSpec

L = keras.layers
runner = CliRunner()
WEIGHTED = ("conv2d", "depthwise", "conv2d_1", "dense")


def user_model(name="user"):
    """A float model as users write them: fused ReLUs, BN, ReLU(), a conv without bias, softmax."""
    inp = keras.Input((8, 8, 1), name="pixels")
    x = L.Conv2D(16, 3, padding="same", name="conv2d")(inp)
    x = L.BatchNormalization(momentum=0.9, name="bn")(x)
    x = L.Activation("relu", name="act")(x)
    x = L.DepthwiseConv2D(3, padding="same", activation="relu", name="depthwise")(x)
    x = L.Conv2D(32, 3, strides=2, padding="same", use_bias=False, name="conv2d_1")(x)
    x = L.BatchNormalization(momentum=0.9, name="bn_1")(x)
    x = L.ReLU(name="relu")(x)
    x = L.GlobalAveragePooling2D(name="pool")(x)
    x = L.Dropout(0.1, name="drop")(x)
    out = L.Dense(10, activation="softmax", name="dense")(x)
    return keras.Model(inp, out, name=name)


@pytest.fixture(scope="module")
def float_model(digits):
    """user_model trained briefly on digits (~95% test accuracy)."""
    keras.utils.set_random_seed(0)
    m = user_model()
    m.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy", metrics=["accuracy"])
    m.fit(digits.x_train, digits.y_train, epochs=10, batch_size=64, verbose=0)
    return m


@pytest.fixture(scope="module")
def model_file(float_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("float") / "digits_float.h5"
    float_model.save(path)
    return path


# ----------------------------------------------------------------------------- conversion

@pytest.mark.parametrize("preset", [p for p in PRESETS if p != "float"])
def test_each_preset_round_trips_with_weights_carried_over(float_model, digits, preset, tmp_path):
    twin, plan = quantize_model(float_model, preset)
    expect = PRESETS[preset]
    rows = {p.name: p for p in plan}
    assert [p.name for p in plan] == [layer.name for layer in float_model.layers[1:]]  # the user's names
    for name in WEIGHTED:
        layer, src = twin.get_layer(name), float_model.get_layer(name)
        assert type(layer).__name__ == "Q" + type(src).__name__
        kq = layer.kernel_quantizer_internal if name != "depthwise" else layer.depthwise_quantizer_internal
        assert str(kq) == str(make_quantizer(expect.kernel)) and rows[name].kernel == expect.kernel
        for a, b in zip(layer.get_weights(), src.get_weights()):  # float weights carried over unchanged
            np.testing.assert_array_equal(a, b)
    assert type(twin.get_layer("act")).__name__ == type(twin.get_layer("relu")).__name__ == "QActivation"
    assert str(twin.get_layer("depthwise_relu").quantizer) == str(make_quantizer(expect.activation))  # fused ReLU split off
    np.testing.assert_array_equal(twin.get_layer("bn").get_weights()[2], float_model.get_layer("bn").get_weights()[2])
    assert twin.layers[-1].name == "dense" and twin.get_layer("dense").activation.__name__ == "linear"  # logits

    # Quantized outputs are what the quantizers say: the classifier computed by hand.
    x = digits.x_test[:16]
    feats = keras.Model(twin.inputs, twin.get_layer("drop").output)(x, training=False).numpy()
    dense = twin.get_layer("dense")
    w = make_quantizer(expect.kernel)(tf.constant(dense.kernel)).numpy()
    b = make_quantizer(expect.bias)(tf.constant(dense.bias)).numpy()
    out = twin(x, training=False).numpy()
    np.testing.assert_allclose(out, feats @ w + b, rtol=1e-4, atol=1e-4)

    twin.save(tmp_path / "twin.h5")
    np.testing.assert_allclose(load_model(tmp_path / "twin.h5")(x, training=False).numpy(), out, atol=1e-5)

    # Deterministic at inference; STQ / stochastic binary sample while training.
    np.testing.assert_array_equal(out, twin(x, training=False).numpy())
    pool = keras.Model(twin.inputs, twin.get_layer("pool").output)  # before the dropout, which samples too
    sampled = [pool(x, training=True).numpy() for _ in range(2)]  # (moves BN statistics: last)
    assert (not np.array_equal(*sampled)) == preset.startswith("st")


def test_float_spec_reproduces_the_model_and_rescaling_maps_input_range(float_model, digits):
    from tinyharden.models import logits_model

    x = digits.x_test[:32]
    ref = logits_model(float_model)(x).numpy()
    same, _ = quantize_model(float_model, "float")
    np.testing.assert_allclose(same(x).numpy(), ref, atol=1e-5)
    # A model trained on raw 0..16 pixels, fed [0,1] data through the prepended Rescaling.
    scaled = input_rescaling((0.0, 1.0), (0.0, 16.0))
    assert scaled == (16.0, 0.0) and input_rescaling((0, 1), (0, 1)) is None
    twin, _ = quantize_model(float_model, "float", rescale=scaled)
    assert twin.layers[1].name == "input_scale"
    np.testing.assert_allclose(twin(x / 16.0).numpy(), ref, atol=1e-4)


def test_layer_patterns_apply_where_they_should(float_model):
    spec = QuantizationSpec(preset="stq", layers={
        "conv2d*": {"preset": "int8"}, "dense": {"kernel": "float", "bias": "float"}, "act": {"activation": "float"},
        "depthwise": {"kernel": "float"}})
    twin, plan = quantize_model(float_model, spec)
    rows = {p.name: p for p in plan}
    for name in ("conv2d", "conv2d_1"):
        assert str(twin.get_layer(name).kernel_quantizer_internal) == str(make_quantizer(PRESETS["int8"].kernel))
    assert type(twin.get_layer("dense")).__name__ == "Dense" and rows["dense"].role == "float"  # float as asked
    assert type(twin.get_layer("act")).__name__ == "Activation"
    dw = twin.get_layer("depthwise")  # kernel float, bias and fused ReLU still quantized
    assert dw.depthwise_quantizer_internal is None and dw.bias_quantizer_internal is not None
    assert rows["depthwise"].activation == resolve(spec, "depthwise").activation == PRESETS["stq"].activation
    assert str(twin.get_layer("relu").quantizer) == str(make_quantizer(PRESETS["stq"].activation))

    with pytest.raises(UserError, match=r"'conv_\*'.*match no layer.*conv2d, depthwise, conv2d_1, dense"):
        quantize_model(float_model, QuantizationSpec(preset="stq", layers={"conv_*": {"preset": "int8"}}))


@pytest.mark.parametrize("make, named", [
    (lambda x: L.LSTM(4, name="lstm")(L.Reshape((8, 8), name="seq")(x)), "'lstm' (LSTM)"),
    (lambda x: L.Conv3D(2, 3, padding="same", name="c3d")(L.Reshape((8, 8, 1, 1), name="vol")(x)), "'c3d' (Conv3D)"),
    (lambda x: L.Activation("tanh", name="squash")(x), "Activation('tanh')"),
])
def test_unsupported_layer_is_named_with_what_is_supported(make, named):
    inp = keras.Input((8, 8, 1))
    out = L.Dense(10)(L.Flatten()(make(inp)))
    with pytest.raises(UserError, match="supports Conv2D, DepthwiseConv2D, Dense") as exc:
        quantize_model(keras.Model(inp, out), "stq")
    assert named in str(exc.value) and "\n" not in str(exc.value)


# ----------------------------------------------------------------------------- pipeline

def stop_in_second_epoch(epoch, step, steps, stats):
    if epoch == 1:
        raise KeyboardInterrupt


def _recipe(preset, epochs, **train):
    recipe, n = pipeline.build_recipe(name=f"q-{preset}", data={"dataset": "digits"}, quantization={"preset": preset},
                                      overrides=[f"train.{k}={v}" for k, v in train.items()], finetune_epochs=epochs)
    return recipe, n


def test_finetuning_recovers_the_post_training_drop(float_model, digits, tmp_path):
    recipe, epochs = _recipe("binary", 4, lr=0.005, batch_size=64)
    result = pipeline.quantize(float_model, recipe, digits, tmp_path, source="float_model", finetune_epochs=epochs)
    acc = {k: v["accuracy"] for k, v in result["stages"].items()}
    assert acc["float"] >= 0.9, acc
    assert acc["post_training"] < acc["float"] - 0.2, acc  # binary weights without fine-tuning: a large drop
    assert acc["finetuned"] > acc["post_training"] + 0.2, acc  # quantization-aware fine-tuning recovers it
    run_dir = tmp_path / result["run"]
    on_disk = json.loads((run_dir / "quantize.json").read_text())
    assert on_disk["schema_version"] == 1 and on_disk["status"] == "done"
    assert on_disk["stages"]["post_training"]["footprint"]["packed_bytes"] < on_disk["stages"]["float"]["footprint"]["packed_bytes"] / 8
    assert json.loads((run_dir / "metrics.json").read_text())["test"]["accuracy"] == pytest.approx(acc["finetuned"])


def test_interrupted_finetune_resumes_from_the_saved_quantized_model(float_model, digits, tmp_path):
    recipe, epochs = _recipe("stq", 2, batch_size=256)

    with pytest.raises(KeyboardInterrupt):
        pipeline.quantize(float_model, recipe, digits, tmp_path, source="m", finetune_epochs=epochs,
                          on_progress=stop_in_second_epoch)
    run_dir = next(tmp_path.iterdir())
    saved = yaml.safe_load((run_dir / "recipe.yaml").read_text())
    assert saved["model"]["path"] == str((run_dir / "ptq_model.h5").resolve())
    assert json.loads((run_dir / "quantize.json").read_text())["status"] == "finetuning"
    result = pipeline.resume(run_dir)
    assert result["status"] == "done" and result["finetune"]["epochs"] == 2
    assert [h["epoch"] for h in json.loads((run_dir / "metrics.json").read_text())["history"]] == [1, 2]
    with pytest.raises(UserError, match="already finished"):
        pipeline.resume(run_dir)
    # A fine-tune that `train --resume` finished: quantize --resume only completes the record.
    record = json.loads((run_dir / "quantize.json").read_text())
    (run_dir / "quantize.json").write_text(json.dumps({**record, "status": "finetuning", "stages": {
        **record["stages"], "finetuned": None}}))
    assert pipeline.resume(run_dir)["stages"]["finetuned"] == record["stages"]["finetuned"]


def test_distillation_from_the_float_model_is_kept_for_resume_and_changes_the_loss(float_model, digits, tmp_path):
    recipe, epochs = pipeline.build_recipe(name="q-kd", data={"dataset": "digits"}, quantization={"preset": "stq"},
                                           overrides=["train.batch_size=256", "train.distill.weight=1.0"],
                                           finetune_epochs=2, distill=True)
    assert recipe.train.distill.weight == 1.0 and recipe.train.distill.teacher is None

    with pytest.raises(KeyboardInterrupt):
        pipeline.quantize(float_model, recipe, digits, tmp_path, source="m", finetune_epochs=epochs,
                          on_progress=stop_in_second_epoch)
    run_dir = next(tmp_path.iterdir())
    teacher = run_dir / "teacher.h5"
    assert yaml.safe_load((run_dir / "recipe.yaml").read_text())["train"]["distill"]["teacher"] == str(teacher.resolve())
    # the saved teacher is the float model (as logits): same predictions
    np.testing.assert_allclose(tf.nn.softmax(load_model(teacher)(digits.x_test[:64])).numpy(),
                               float_model(digits.x_test[:64]).numpy(), atol=1e-5)
    result = pipeline.resume(run_dir)
    assert result["finetune"]["distill"]["teacher"] == str(teacher.resolve())
    history = json.loads((run_dir / "metrics.json").read_text())["history"]
    # weight 1: the loss is the distillation term alone, not the cross-entropy it still logs
    assert all(abs(h["loss"] - h["ce"]) > 1e-3 for h in history), history
    assert result["stages"]["finetuned"]["accuracy"] > result["stages"]["post_training"]["accuracy"]


def test_a_borrowed_recipe_neither_names_the_run_nor_asks_a_post_training_run_for_a_teacher(tmp_path):
    borrowed = tmp_path / "kd.yaml"
    borrowed.write_text("name: someone-elses\ndata: {dataset: digits}\ntrain: {epochs: 3, distill: {weight: 0.5}}\n")
    recipe, epochs = pipeline.build_recipe(name="mine", data={}, quantization={"preset": "stq"},
                                           recipe_file=borrowed, finetune_epochs=0)
    assert (recipe.name, epochs, recipe.train.distill) == ("mine", 0, None)
    recipe, epochs = pipeline.build_recipe(name="mine", data={}, quantization={"preset": "stq"}, recipe_file=borrowed)
    assert (recipe.name, epochs, recipe.train.distill.weight) == ("mine", 3, 0.5)


def test_distill_loss_is_zero_only_when_the_student_matches_the_teacher():
    from tinyharden.training.steps import distill_loss

    t = tf.constant([[2.0, 0.5, -1.0], [0.0, 3.0, 1.0]])
    assert float(distill_loss(t, t + 5.0, 4.0)) == pytest.approx(0.0, abs=1e-6)  # softmax ignores a shift
    s = tf.Variable([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    with tf.GradientTape() as tape:
        loss = distill_loss(t, s, 4.0)
    assert float(loss) > 0.01
    s.assign_sub(0.5 * tape.gradient(loss, s))
    assert float(distill_loss(t, s, 4.0)) < float(loss)


def test_ready_model_finetunes_in_mixed_bfloat16_and_saves_float32(float_model, digits, tmp_path):
    recipe, epochs = _recipe("stq", 2, batch_size=64, precision="mixed_bfloat16")
    result = pipeline.quantize(float_model, recipe, digits, tmp_path, source="m", finetune_epochs=epochs)
    saved = load_model(tmp_path / result["run"] / "model.h5")
    assert {l.dtype_policy.name for l in saved.layers} == {"float32"}
    from tinyharden.training.trainer import evaluate

    assert evaluate(saved, digits.x_test, digits.y_test)[1] == pytest.approx(result["stages"]["finetuned"]["accuracy"], abs=1e-9)
    assert result["stages"]["finetuned"]["accuracy"] > result["stages"]["post_training"]["accuracy"]


# ----------------------------------------------------------------------------- CLI

def test_cli_end_to_end(model_file, tmp_path):
    cfg = tmp_path / "q.yaml"
    cfg.write_text("quantization:\n  preset: ternary\n  layers:\n    depthwise: {kernel: float}\n")
    r = runner.invoke(app, ["-w", str(tmp_path / "ws"), "quantize", str(model_file), "--data", "digits",
                            "--config", str(cfg), "--preset", "stq", "--ends", "int8", "--finetune-epochs", "1",
                            "--distill", "train.batch_size=256"])
    assert r.exit_code == 0, r.output
    run_dir = tmp_path / "ws" / "quantize-digits_float-stq"
    result = json.loads((run_dir / "quantize.json").read_text())
    layers = {row["name"]: row for row in result["layers"]}
    assert layers["conv2d"]["kernel"] == layers["dense"]["kernel"] == PRESETS["int8"].kernel  # --ends
    assert layers["conv2d_1"]["kernel"] == PRESETS["stq"].kernel and layers["depthwise"]["kernel"] is None
    assert result["finetune"]["epochs"] == 1 and all(result["stages"].values())
    assert result["finetune"]["distill"]["teacher"] == str((run_dir / "teacher.h5").resolve())
    for text in ("float", "quantized (PTQ)", "fine-tuned (QAT)", "stochastic_ternary", "quantized_relu(4,2)", "distilled"):
        assert text in r.output
    from tinyharden.recipe import load_recipe

    assert load_recipe(run_dir / "recipe.yaml").quantization.preset == "stq"
    model = load_model(run_dir)
    assert type(model.get_layer("conv2d_1")).__name__ == "QConv2D"
    assert json.loads((run_dir / "metrics.json").read_text())["epochs"] == 1


@pytest.mark.parametrize("args, message", [
    (["missing.h5", "--data", "digits", "--preset", "stq"], "not found"),
    (["{model}", "--preset", "stq"], "bare model file: name its dataset"),
    (["{model}", "--data", "digits", "--preset", "stqq"], "did you mean 'stq'"),
    (["{model}", "--data", "digits"], "no quantization chosen"),
    (["{model}", "--data", "digits", "--preset", "stq", "--input-range", "255,0"], "--input-range"),
    (["{model}", "--data", "digits", "--preset", "stq", "train.epoch=3"], "did you mean 'epochs'"),
    (["{model}", "--data", "digits", "--preset", "stq", "--distill"], "give the fine-tune a number of epochs"),
    (["{lstm}", "--data", "digits", "--preset", "stq"], "'lstm' (LSTM) cannot be quantized"),
])
def test_cli_bad_input_is_one_line_and_exit_2(model_file, tmp_path, args, message):
    lstm = tmp_path / "lstm.h5"
    if "{lstm}" in args:
        inp = keras.Input((8, 8, 1))
        keras.Model(inp, L.Dense(10)(L.LSTM(4, name="lstm")(L.Reshape((8, 8))(inp)))).save(lstm)
    args = [a.format(model=model_file, lstm=lstm) for a in args]
    r = runner.invoke(app, ["-w", str(tmp_path / "ws"), "quantize", *args])
    assert r.exit_code == 2, r.output
    lines = [line for line in r.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in r.output, r.output
    assert "Traceback" not in r.output and not (tmp_path / "ws").exists()
