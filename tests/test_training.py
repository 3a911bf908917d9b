"""Training: the quickstart bar, JR shrinks input gradients, resume, adversarial bounds, determinism."""
from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from tinyharden._tf import tf
from tinyharden.cli.app import app
from tinyharden.data import load_dataset
from tinyharden.defenses.adversarial import default_noise, default_step_size, linf_pgd
from tinyharden.defenses.jacobian import input_gradient_norm
from tinyharden.models import build_model
from tinyharden.recipe import load_recipe, validate
from tinyharden.training import run
from tinyharden.training.steps import StepConfig

runner = CliRunner()


def small_recipe(**sections):
    base = {"name": "t", "seed": 0, "data": {"dataset": "digits"}, "model": {"name": "cnn"},
            "quantization": {"preset": "stq"}, "train": {"epochs": 4, "batch_size": 64, "lr": 0.005}}
    for k, v in sections.items():
        base[k] = {**base.get(k, {}), **v} if isinstance(v, dict) else v
    return validate(base)


def test_quickstart_recipe_reaches_90_percent(quickstart_run):
    run_dir = quickstart_run.path
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] >= 0.90
    assert metrics["epochs"] == 30 and len(metrics["history"]) == 30
    for name in ("model.h5", "recipe.yaml", "env.json", "train.log"):
        assert (run_dir / name).is_file(), name
    assert load_recipe(run_dir / "recipe.yaml").quantization.preset == "stq"
    assert not list(run_dir.glob(".*.tmp*"))  # no half-written artifacts
@pytest.mark.slow  # > 8 s idle


def test_jacobian_regularization_shrinks_input_gradients(tmp_path):
    ds = load_dataset(validate({"data": {"dataset": "digits"}}).data, 0)
    norms = {}
    for lam in (0.0, 0.5):
        r = small_recipe(robustness={"jacobian": {"layers": ["logits"], "lambda": lam}}, train={"epochs": 6})
        t = run.start(r, tmp_path)
        t.fit()
        norms[lam] = input_gradient_norm(t.model, ds.x_test[:200], ds.y_test[:200])
    assert norms[0.5] < 0.8 * norms[0.0], norms


def test_per_layer_jacobian_reports_one_term_per_layer(tmp_path):
    r = small_recipe(robustness={"jacobian": {"layers": [{"name": "act1", "lambda": 0.01}, {"name": "logits", "lambda": 0.02}],
                                              "projections": 2}}, train={"epochs": 1})
    t = run.start(r, tmp_path)
    t.fit()
    assert len(t.history[0]["reg"]) == 2 and all(v > 0 for v in t.history[0]["reg"])
@pytest.mark.slow  # > 8 s idle


def test_resume_after_interruption_reaches_the_same_epoch_count(tmp_path):
    r = small_recipe(train={"epochs": 4}, quantization={"preset": "stq", "incremental": {"ratios": [0.5, 1.0]}})

    def stop_at_epoch_3(epoch, step, steps, stats):
        if epoch == 2 and step == 3:
            raise KeyboardInterrupt

    t = run.start(r, tmp_path, on_progress=stop_at_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        t.fit()
    run_dir = t.run_dir
    assert not (run_dir / "metrics.json").exists()
    resumed = run.resume(run_dir)
    assert int(resumed.epoch.numpy()) == 2  # both finished epochs kept, the interrupted one redone
    assert int(resumed.stage.numpy()) == 0 and resumed.history[-1]["epoch"] == 2
    metrics = resumed.fit()
    assert metrics["epochs"] == 4 and [h["epoch"] for h in metrics["history"]] == [1, 2, 3, 4]
    assert [h["quantized_share"] for h in metrics["history"]] == [0.5, 0.5, 1.0, 1.0]
    result = runner.invoke(app, ["train", "--resume", str(run_dir)])
    assert result.exit_code == 2 and "already finished" in result.output


def test_resume_restores_the_checkpointed_weights(tmp_path):
    r = small_recipe(train={"epochs": 2})
    t = run.start(r, tmp_path)
    after_epoch_1 = []
    t.on_epoch = lambda log: after_epoch_1.append(t.model.get_layer("conv2").kernel.numpy().copy())

    def stop(epoch, step, steps, stats):
        if epoch == 1 and step == 2:
            raise KeyboardInterrupt

    t.on_progress = stop
    with pytest.raises(KeyboardInterrupt):
        t.fit()
    assert not np.array_equal(t.model.get_layer("conv2").kernel.numpy(), after_epoch_1[0])  # moved on since
    resumed = run.resume(t.run_dir)
    np.testing.assert_array_equal(resumed.model.get_layer("conv2").kernel.numpy(), after_epoch_1[0])


def test_adversarial_examples_stay_in_bounds_and_in_the_ball():
    model = build_model("cnn", quantization="stq")
    x = tf.random.uniform([16, 8, 8, 1])
    y = tf.constant(np.arange(16) % 10, tf.int64)
    eps = 8 / 255
    for steps, rs in ((1, True), (5, True), (3, False)):
        adv = linf_pgd(model, x, y, eps=eps, step_size=eps / 2, steps=steps, random_start=rs,
                       seed=tf.constant([1, 2], tf.int64)).numpy()
        assert adv.min() >= 0.0 and adv.max() <= 1.0
        assert np.abs(adv - x.numpy()).max() <= eps + 1e-6
        assert np.abs(adv - x.numpy()).max() > eps / 4  # it did move


def test_nfgsm_leaves_the_ball_but_not_the_range():
    # N-FGSM's point is the unprojected step from a 2-eps start: clipping it to eps would
    # silently turn it back into FGSM-RS
    model = build_model("cnn", quantization="stq")
    x = tf.random.uniform([64, 8, 8, 1])
    y = tf.constant(np.arange(64) % 10, tf.int64)
    eps = 8 / 255
    adv = linf_pgd(model, x, y, eps=eps, step_size=default_step_size("nfgsm", eps, 1), steps=1,
                   noise=default_noise("nfgsm"), project=False, seed=tf.constant([3, 4], tf.int64)).numpy()
    dist = np.abs(adv - x.numpy())
    assert adv.min() >= 0.0 and adv.max() <= 1.0
    assert eps * 1.5 < dist.max() <= 3 * eps + 1e-6


def test_recipe_nfgsm_reaches_the_step_config():
    r = small_recipe(robustness={"adversarial": {"method": "nfgsm", "eps": "8/255"}})
    cfg = StepConfig.from_recipe(r, 10, (0.0, 255.0))
    assert (cfg.adv_steps, cfg.adv_noise, cfg.adv_project, cfg.adv_random_start) == (1, 2.0, False, True)
    assert cfg.adv_step_size == pytest.approx(8.0) and cfg.adv_eps == pytest.approx(8.0)
    plain = StepConfig.from_recipe(small_recipe(robustness={"adversarial": {"method": "pgd", "steps": 3}}), 10, (0, 1))
    assert (plain.adv_noise, plain.adv_project, plain.adv_steps) == (1.0, True, 3)


def test_adversarial_training_runs_with_inputs_in_range(tmp_path):
    r = small_recipe(robustness={"adversarial": {"method": "pgd", "eps": "8/255", "steps": 2, "ratio": 0.5}},
                     train={"epochs": 5}, quantization={"preset": "float"})
    t = run.start(r, tmp_path)
    m = t.fit()
    assert m["test"]["accuracy"] > 0.5 and m["defense"].startswith("AT-pgd")
@pytest.mark.slow  # > 8 s idle


def test_same_recipe_and_seed_give_the_same_metrics(tmp_path):
    r = small_recipe(train={"epochs": 2}, robustness={"jacobian": {"layers": ["logits"]}})
    a = run.start(r, tmp_path).fit()
    b = run.start(r, tmp_path).fit()
    assert a["test"] == b["test"]
    assert [h["loss"] for h in a["history"]] == [h["loss"] for h in b["history"]]
@pytest.mark.slow  # > 8 s idle


def test_mixed_bfloat16_training_saves_a_float32_model_that_scores_as_reported(tmp_path):
    from tinyharden.models import load_model
    from tinyharden.training.trainer import evaluate

    acc = {}
    for prec in ("float32", "mixed_bfloat16"):
        r = small_recipe(train={"epochs": 6, "precision": prec}, robustness={"jacobian": {"layers": ["logits"]}})
        t = run.start(r, tmp_path)
        metrics = t.fit()
        acc[prec] = metrics["test"]["accuracy"]
    assert acc["mixed_bfloat16"] >= acc["float32"] - 0.05, acc  # measured: 73.3% vs 71.6%
    saved = load_model(t.run_dir / "model.h5")
    assert {l.dtype_policy.name for l in saved.layers} == {"float32"}
    ds = load_dataset(r.data, r.seed)
    assert evaluate(saved, ds.x_test, ds.y_test)[1] == pytest.approx(metrics["test"]["accuracy"], abs=1e-9)
    # A ready model (built float32 outside the recipe) is recast to compute in bfloat16, weights kept.
    ready = build_model("cnn", quantization="stq")
    t = run.start(r, tmp_path, model=ready)
    assert t.model.get_layer("conv2").dtype_policy.name == "mixed_bfloat16"
    for a, b in zip(t.model.get_weights(), ready.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_model_init_copies_float_weights_into_the_quantized_twin(tmp_path):
    float_run = run.start(small_recipe(quantization={"preset": "float"}, train={"epochs": 1}), tmp_path)
    float_run.fit()
    stq = run.start(small_recipe(model={"name": "cnn", "init": str(float_run.run_dir)}), tmp_path)
    for name in ("conv1", "conv2", "bn1", "logits"):
        for a, b in zip(stq.model.get_layer(name).get_weights(), float_run.model.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)
    assert type(stq.model.get_layer("conv2")).__name__ == "QConv2D"
    with pytest.raises(Exception, match="initialize from"):
        run.start(small_recipe(model={"name": "cnn", "width": 2.0, "init": str(float_run.run_dir)}), tmp_path)
@pytest.mark.slow  # > 8 s idle


def test_audio_augmentation_recomputes_features_each_epoch(tmp_path, shared):
    r = validate({"name": "kws", "data": {"dataset": "speech_commands", "limit_train": 64}, "model": {"name": "dscnn"},
                  "train": {"epochs": 1, "batch_size": 32, "augment": {"noise": 0.8, "shift_ms": 100}}})
    t = run.start(r, tmp_path)
    e0, e1 = t._epoch_inputs(0), t._epoch_inputs(1)
    assert e0.shape == t.ds.x_train.shape and np.isfinite(e0).all()
    from tinyharden.data import frontend

    clean = frontend.mfcc_numpy(t.augmentation.waveforms)  # the raw clips line up with x_train, limit included
    np.testing.assert_allclose(clean, t.ds.x_train, atol=5e-3)
    assert not np.allclose(e0, t.ds.x_train, atol=1e-3)  # augmented, not the stored clean features
    assert not np.allclose(e0, e1, atol=1e-3)  # fresh augmentation every epoch
    np.testing.assert_array_equal(e0, t._epoch_inputs(0))  # but reproducible from the seed
    lo, hi = t.ds.input_range
    assert e0.min() >= lo - 1e-4 and e0.max() <= hi + 1e-4
    assert t.fit()["epochs"] == 1
    with pytest.raises(Exception, match="augment audio features"):
        run.start(small_recipe(train={"augment": {"noise": 0.5}}), tmp_path)


def test_bn_statistics_follow_the_deterministic_weights_of_stq(tmp_path):
    """After training, BN statistics describe the inference (deterministic) weights, not sampled ones."""
    from tinyharden._tf import keras

    t = run.start(small_recipe(train={"epochs": 2}), tmp_path)
    t.fit()
    conv2 = keras.Model(t.model.inputs, t.model.get_layer("conv2").output)
    acts = conv2.predict(t.ds.x_train, verbose=0)  # inference: deterministic ternary weights
    bn = t.model.get_layer("bn2")
    np.testing.assert_allclose(bn.moving_mean.numpy(), acts.mean(axis=(0, 1, 2)), rtol=0.05, atol=0.02)
    np.testing.assert_allclose(bn.moving_variance.numpy(), acts.var(axis=(0, 1, 2)), rtol=0.15, atol=0.02)


def test_a_distillation_teacher_that_does_not_fit_is_refused_without_a_run_folder(tmp_path):
    other = run.start(small_recipe(name="teacher", data={"dataset": "synthetic", "shape": [8, 8, 1], "num_classes": 3},
                                   train={"epochs": 1}), tmp_path)
    other.fit()
    before = sorted(tmp_path.iterdir())
    for teacher, message in ((str(tmp_path / "missing.h5"), "not found"), (str(other.run_dir), "3 classes")):
        with pytest.raises(Exception, match=message):
            run.start(small_recipe(train={"epochs": 1, "distill": {"teacher": teacher}}), tmp_path)
        assert sorted(tmp_path.iterdir()) == before


def test_temperature_growth_anneals_the_sampling_per_epoch(tmp_path):
    r = small_recipe(quantization={"preset": "stq", "temperature_growth": 16}, train={"epochs": 3})
    metrics = run.start(r, tmp_path).fit()
    assert [h["temperature_scale"] for h in metrics["history"]] == pytest.approx([1.0, 4.0, 16.0])
    from tinyharden.quantization.quantizers import _TEMPERATURE_SCALE

    assert float(_TEMPERATURE_SCALE.numpy()) == 1.0  # restored: attacks and EOT sample at the quantizer's own temperature
