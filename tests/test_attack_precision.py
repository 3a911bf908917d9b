"""White-box attacks computed in bfloat16 and scored in float32 (`tinyharden attack --precision`)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tinyharden.attacks import evaluation as ev
from tinyharden.errors import UserError

EPS = 8 / 255


@pytest.fixture(scope="module")
def conv_target(prototypes):
    """A small CNN on 16x16x3 class prototypes, with a 0..255 input range like the MLPerf ResNet-8."""
    from tinyharden._tf import keras
    from tinyharden.attacks.target import KerasTarget

    keras.utils.set_random_seed(0)
    (xtr, ytr), (x, y) = prototypes(1024, 1, spread=0.06), prototypes(64, 2, spread=0.06)
    inp = keras.Input(shape=(16, 16, 3))
    h = keras.layers.Rescaling(1 / 255.0)(inp)
    h = keras.layers.Conv2D(8, 3, activation="relu", name="conv")(h)
    h = keras.layers.Conv2D(8, 3, activation="relu", name="conv2")(h)
    model = keras.Model(inp, keras.layers.Dense(10)(keras.layers.Flatten()(h)), name="cnn16")
    model.compile(keras.optimizers.Adam(3e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(xtr * 255.0, ytr, epochs=8, batch_size=64, verbose=0)
    return KerasTarget(model, input_range=(0.0, 255.0), name="cnn16"), x, y


def test_bf16_twin_computes_in_bfloat16_but_predicts_in_float32(conv_target):
    from tinyharden.attacks.precision import attack_target

    target, x, _ = conv_target
    twin = attack_target(target, "mixed_bfloat16")
    assert attack_target(target, "mixed_bfloat16") is twin  # cached: a sweep over eps traces once
    assert attack_target(target, "float32") is target
    assert twin.model.get_layer("conv2").compute_dtype == "bfloat16"
    assert twin.model.get_layer("rescaling").compute_dtype == "float32"  # reads the input: keeps sub-level steps
    z = twin.logits(x[:8]).numpy()
    assert z.dtype == np.float32
    assert np.array_equal(twin.predict(x[:8]), target.predict(x[:8]))
    assert 0 < np.abs(z - target.predict(x[:8])).max() < 0.5  # bf16 rounding, not another model
    with pytest.raises(UserError, match="float32 or mixed_bfloat16"):
        attack_target(target, "float16")


def test_bf16_pgd_is_scored_in_float32_and_records_its_precision(conv_target):
    from tinyharden.attacks.suite import SuiteConfig, run_suite

    target, x, y = conv_target
    cfg = SuiteConfig(suite=["pgd", "fgsm"], eps=[EPS], params={"pgd": {"steps": 10}}, precision="mixed_bfloat16",
                      checks=False)
    res = run_suite(target, x, y, cfg)
    rep = res.report
    assert rep["config"]["precision"] == "mixed_bfloat16"
    pgd = rep["attacks"][0]
    assert pgd["precision"] == "mixed_bfloat16" and pgd["scored_in"] == "float32"
    adv = res.examples["pgd_eps0"]
    assert ev.norms(adv - x, "linf").max() <= EPS * (1 + ev.REL_TOL) + ev.ABS_TOL
    assert adv.min() >= 0.0 and adv.max() <= 1.0
    # The robust accuracy is exactly the float32 model's verdict on the returned examples.
    f32_correct = np.argmax(target.predict(adv), -1) == y
    assert pgd["results"][0]["robust_accuracy"]["value"] == pytest.approx(np.mean(f32_correct))
    clean = rep["clean"]["accuracy"]["value"]
    assert clean >= 0.9 and pgd["results"][0]["robust_accuracy"]["value"] <= clean - 0.5


def test_bf16_pgd_finds_what_float32_pgd_finds(conv_target):
    from tinyharden.attacks.pgd import PGD
    from tinyharden.attacks.precision import attack_target

    target, x, y = conv_target
    acc = {}
    for precision in ("float32", "mixed_bfloat16"):
        adv = PGD(steps=10).run(attack_target(target, precision), x, y, eps=2 / 255, norm="linf", seed=0).x_adv
        acc[precision] = np.mean(np.argmax(target.predict(adv), -1) == y)
    assert 0.05 < acc["float32"] < 0.95, acc  # a budget where the comparison means something
    assert abs(acc["mixed_bfloat16"] - acc["float32"]) <= 0.1, acc


def test_black_box_attacks_stay_float32_under_bf16(conv_target):
    from tinyharden.attacks.suite import SuiteConfig, run_suite

    target, x, y = conv_target
    cfg = SuiteConfig(suite=["boundary"], eps=[EPS], params={"boundary": {"steps": 5, "init_directions": 5, "init_steps": 5}},
                      precision="mixed_bfloat16", checks=False)
    assert run_suite(target, x[:8], y[:8], cfg).report["attacks"][0]["precision"] == "float32"


def test_cli_precision_flag_and_recipe_key(tmp_path):
    from typer.testing import CliRunner

    from tinyharden.cli.app import app
    from tinyharden.recipe import Recipe

    assert Recipe.model_validate({"attack": {"precision": "mixed_bfloat16"}}).attack.precision == "mixed_bfloat16"
    with pytest.raises(ValueError, match="float32"):
        Recipe.model_validate({"attack": {"precision": "bf16"}})
    model = _digits_conv(tmp_path)
    base = ["-w", str(tmp_path / "ws"), "attack", str(model), "--data", "digits", "-s", "pgd", "-n", "24",
            "-p", "pgd.steps=3", "--json", "--no-checks", "--no-save-examples"]
    bad = CliRunner().invoke(app, [*base, "--precision", "fp16"])
    assert bad.exit_code == 2 and "--precision must be" in bad.stderr
    ok = CliRunner().invoke(app, [*base, "--precision", "mixed_bfloat16"])
    assert ok.exit_code == 0, ok.output
    report = json.loads(ok.stdout)
    assert report["config"]["precision"] == "mixed_bfloat16" and report["attacks"][0]["precision"] == "mixed_bfloat16"
    default = json.loads(CliRunner().invoke(app, base).stdout)
    assert default["attacks"][0]["precision"] == "float32"


def _digits_conv(tmp_path):
    from tinyharden._tf import keras

    inp = keras.Input(shape=(8, 8, 1))
    h = keras.layers.Conv2D(4, 3, activation="relu")(inp)
    model = keras.Model(inp, keras.layers.Dense(10)(keras.layers.Flatten()(h)))
    path = tmp_path / "digits_conv.h5"
    model.save(path)
    return path


@pytest.mark.slow
def test_bf16_apgd_and_autoattack_are_scored_in_float32(conv_target):
    from tinyharden.attacks.suite import SuiteConfig, run_suite

    target, x, y = conv_target
    small = {"steps": 5, "targets": 2, "fab_steps": 5, "square_queries": 20}
    cfg = SuiteConfig(suite=["apgd", "autoattack"], eps=[2 / 255], params={"apgd": {"steps": 5}, "autoattack": small},
                      precision="mixed_bfloat16", checks=False)
    res = run_suite(target, x[:24], y[:24], cfg)
    for a in res.report["attacks"]:
        assert a["precision"] == "mixed_bfloat16", a["name"]
        adv = res.examples[f"{a['name']}_eps0"]
        assert ev.norms(adv - x[:24], "linf").max() <= 2 / 255 * (1 + ev.REL_TOL) + ev.ABS_TOL
        f32 = np.mean(np.argmax(target.predict(adv), -1) == y[:24])
        assert a["results"][0]["robust_accuracy"]["value"] == pytest.approx(f32), a["name"]
