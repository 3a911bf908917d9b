"""tinyharden attack: attacks, honest scoring, masking checks and the CLI, on tiny models.

Everything runs on scikit-learn's 8x8 digits or generated data with a small MLP trained
for a few seconds; attack budgets are cut to the bone. The whole module takes well under
two minutes on two shared cores.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tinyharden.attacks import evaluation as ev
from tinyharden.errors import UserError

EPS = 8 / 255


# --------------------------------------------------------------------------- fixtures

def _mlp(keras, input_shape, classes=10, units=64):
    inp = keras.Input(shape=input_shape, name="input")
    h = keras.layers.Flatten()(inp)
    h = keras.layers.Dense(units, activation="relu", name="fc1")(h)
    return keras.Model(inp, keras.layers.Dense(classes, name="logits")(h), name="mlp")


def _fit(keras, model, x, y, epochs):
    model.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=epochs, batch_size=64, verbose=0)
    return model


@pytest.fixture(scope="module")
def tfk():
    from tinyharden._tf import keras, tf

    keras.utils.set_random_seed(0)
    return tf, keras


@pytest.fixture(scope="module")
def digits_model(tfk, digits):
    _, keras = tfk
    return _fit(keras, _mlp(keras, (8, 8, 1)), digits.x_train, digits.y_train, epochs=25)


@pytest.fixture(scope="module")
def model_file(digits_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "digits_mlp.h5"
    digits_model.save(path)
    return path


@pytest.fixture(scope="module")
def target(digits_model):
    from tinyharden.attacks.target import KerasTarget

    return KerasTarget(digits_model, name="digits_mlp")


@pytest.fixture(scope="module")
def xy(digits, target):
    """32 test samples the model classifies correctly, in [0, 1]."""
    x, y = digits.x_test[:48], digits.y_test[:48]
    ok = np.argmax(target.predict(x), -1) == y
    return x[ok][:32], y[ok][:32]


@pytest.fixture(scope="module")
def vulnerable(linear16, prototypes):
    """The shared linear classifier of 16x16x3 prototypes and 64 test images: it falls at 8/255."""
    return (linear16, *prototypes(64, 2))


# --------------------------------------------------------------------------- scoring

def test_wilson_interval_matches_reference_values():
    lo, hi = ev.wilson(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)
    assert ev.wilson(0, 20)[0] == 0.0 and ev.wilson(0, 20)[1] == pytest.approx(0.1611, abs=1e-4)
    assert ev.wilson(20, 20)[1] == 1.0


def test_recheck_projects_or_rejects_examples_outside_the_ball():
    x = np.full((3, 2, 2, 1), 0.5, np.float32)
    adv = x.copy()
    adv[0] += 0.01                      # inside eps 0.03
    adv[1] += 0.2                       # outside the ball
    adv[2, 0, 0, 0] = np.nan            # garbage
    clip = ev.recheck(x, adv, eps=0.03, norm="linf", policy="clip")
    assert clip.out_of_ball == 1 and clip.non_finite == 1
    assert np.abs(clip.x_adv - x).max() <= 0.03 + 1e-6
    assert clip.rejected.tolist() == [False, False, True]
    rej = ev.recheck(x, adv, eps=0.03, norm="linf", policy="reject")
    assert rej.rejected.tolist() == [False, True, True]
    np.testing.assert_array_equal(rej.x_adv[1], x[1])
    l2 = ev.recheck(x, x + 0.5, eps=0.1, norm="l2", policy="clip")
    assert ev.norms(l2.x_adv - x, "l2").max() <= 0.1 + 1e-6 and l2.x_adv.max() <= 1.0


# --------------------------------------------------------------------------- attacks

CASES = [
    ("fgsm", "linf", {}),
    ("pgd", "linf", {"steps": 5, "restarts": 2}),
    ("pgd", "l2", {"steps": 5}),
    ("apgd", "linf", {"steps": 5}),
    ("apgd-art", "linf", {"steps": 5}),
    ("square", "linf", {"max_iter": 30}),
    ("square", "l2", {"max_iter": 30}),  # on 16x16 images: ART's L2 tiling needs >= 10 pixels
    ("square-art", "linf", {"max_iter": 30}),
    ("transfer", "linf", {"steps": 5}),
    ("cw", "l2", {"steps": 10, "binary_search_steps": 2}),
    ("boundary", "l2", {"steps": 20, "init_directions": 20, "init_steps": 20}),
    ("zoo", "l2", {"max_iter": 2, "nb_parallel": 64}),
]


@pytest.mark.parametrize("name,norm,params", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_each_attack_respects_eps_and_bounds(name, norm, params, target, xy, vulnerable):
    from tinyharden.attacks.base import make_attack

    x, y = xy
    if (name, norm) == ("square", "l2"):
        with pytest.raises(UserError, match="at least 10x10"):
            make_attack(name, params).run(target, x[:2], y[:2], eps=0.5, norm=norm, seed=0)
        target, x, y = vulnerable
    n = 4 if name in ("zoo", "boundary") else 16
    x, y = x[:n], y[:n]
    eps = EPS if norm == "linf" else 0.5
    attack = make_attack(name, params, _source_target=target)
    out = attack.run(target, x, y, eps=eps, norm=norm, seed=0, batch_size=16)
    assert out.x_adv.shape == x.shape and out.x_adv.dtype == np.float32
    assert np.isfinite(out.x_adv).all()
    assert out.x_adv.min() >= -1e-6 and out.x_adv.max() <= 1 + 1e-6
    if not attack.minimum_norm:  # the raw library output, before any re-check
        assert ev.norms(out.x_adv - x, norm).max() <= eps * (1 + ev.REL_TOL) + ev.ABS_TOL
    if attack.kind == "black-box":
        assert out.queries and out.queries >= n
    assert attack.params() == {**attack.params(), **params}  # every budget is recorded as given


def test_unknown_attack_and_parameter_are_one_line_user_errors():
    from tinyharden.attacks.base import make_attack

    with pytest.raises(UserError, match="did you mean 'pgd'"):
        make_attack("pdg")
    with pytest.raises(UserError, match="did you mean 'steps'"):
        make_attack("pgd", {"step": 3})
    with pytest.raises(UserError, match="pgd.steps"):
        make_attack("pgd", {"steps": "many"})
    assert make_attack("pgd", {"rel_step": "1/8"}).rel_step == 0.125  # fractions, as for eps


def test_white_box_attack_on_a_black_box_target_is_a_clear_error(target, xy):
    from tinyharden.attacks.base import make_attack
    from tinyharden.attacks.suite import SuiteConfig, run_suite

    class ScoresOnly:  # a Target with predict only, like a .tflite file
        name, differentiable = "scores-only", False
        input_shape, num_classes = target.input_shape, target.num_classes

        def predict(self, x):
            return target.predict(x)

    x, y = xy
    out = make_attack("square", {"max_iter": 10}).run(ScoresOnly(), x[:8], y[:8], eps=EPS, norm="linf", seed=0)
    assert ev.norms(out.x_adv - x[:8], "linf").max() <= EPS + 1e-6
    with pytest.raises(UserError, match="needs gradients.*not differentiable"):
        run_suite(ScoresOnly(), x, y, SuiteConfig(suite=["pgd"], eps=[EPS]))


def test_in_graph_apgd_matches_arts_and_a_restart_only_adds_fooled_samples(vulnerable):
    from tinyharden.attacks.base import make_attack

    target, x, y = vulnerable

    def fooled(name, **params):
        out = make_attack(name, {"steps": 20, **params}).run(target, x, y, eps=3 / 255, norm="linf", seed=0)
        assert np.abs(out.x_adv - x).max() <= 3 / 255 + 1e-6
        return np.argmax(target.predict(out.x_adv), -1) != y

    ours, art, restarted = fooled("apgd"), fooled("apgd-art"), fooled("apgd", restarts=3)
    assert 0.1 < ours.mean() < 0.9  # a budget where a weaker attack would show
    assert abs(int(ours.sum()) - int(art.sum())) <= 2
    assert np.all(restarted[ours])  # the first run is the same; later ones attack the survivors only


def test_pgd_at_8_255_breaks_an_undefended_model(vulnerable):
    from tinyharden.attacks.pgd import PGD

    target, x, y = vulnerable
    clean = np.mean(np.argmax(target.predict(x), -1) == y)
    adv = PGD(steps=10).run(target, x, y, eps=EPS, norm="linf", seed=0).x_adv
    robust = np.mean(np.argmax(target.predict(adv), -1) == y)
    assert clean >= 0.9
    assert robust <= clean - 0.5, (clean, robust)


# --------------------------------------------------------------------------- the suite

@pytest.fixture(scope="module")
def sweep(vulnerable):
    from tinyharden.attacks.suite import SuiteConfig, run_suite

    target, x, y = vulnerable
    cfg = SuiteConfig(suite=["fgsm", "pgd", "square"], eps=[1 / 255, 2 / 255, 4 / 255, 8 / 255],
                      params={"pgd": {"steps": 10}, "square": {"max_iter": 50}}, sanity_n=32)
    return run_suite(target, x, y, cfg).report


def test_accuracy_never_increases_along_the_eps_sweep(sweep):
    for a in sweep["attacks"]:
        accs = [r["robust_accuracy"]["value"] for r in a["results"]]
        assert accs == sorted(accs, reverse=True), (a["name"], accs)
        assert all(r["robust_accuracy"]["value"] <= sweep["clean"]["accuracy"]["value"] for r in a["results"])
    suite = [p["robust_accuracy"]["value"] for p in sweep["suite"]["per_eps"]]
    assert suite == sorted(suite, reverse=True)
    assert not sweep["masking"]["flagged"], sweep["masking"]


def test_worst_case_is_never_above_any_single_attack(sweep):
    per_sample = sweep["per_sample"]
    overall = np.array(per_sample["suite_robust"])
    for k, p in enumerate(sweep["suite"]["per_eps"]):
        for a in sweep["attacks"]:
            assert p["robust_accuracy"]["value"] <= a["results"][k]["robust_accuracy"]["value"]
            robust = np.array(per_sample["attacks"][a["name"]]["robust"][k])
            assert not (overall & ~robust).any()  # robust under the suite => robust under each attack
    assert sweep["suite"]["robust_accuracy"]["value"] == pytest.approx(overall.mean())
    lo, hi = sweep["suite"]["robust_accuracy"]["ci95"]
    assert lo <= overall.mean() <= hi


def test_report_records_ci_success_rate_queries_and_rechecks(sweep):
    pgd = next(a for a in sweep["attacks"] if a["name"] == "pgd")
    assert pgd["implementation"]["library"] == "tinyharden" and pgd["params"]["steps"] == 10
    r = pgd["results"][-1]
    assert set(r) >= {"eps", "robust_accuracy", "robust_accuracy_run", "success_rate", "perturbation", "recheck", "time_s"}
    assert r["recheck"]["out_of_ball"] == 0 and r["recheck"]["policy"] == "clip"
    square = next(a for a in sweep["attacks"] if a["name"] == "square")
    assert square["implementation"]["library"] == "tinyharden" and square["results"][0]["queries"]["total"] > 0


def test_rounding_without_straight_through_gradient_raises_the_masking_flag(tfk, digits_model, digits):
    from tinyharden.attacks.suite import SuiteConfig, run_suite
    from tinyharden.attacks.target import KerasTarget

    tf, keras = tfk

    class Round16(keras.layers.Layer):
        # Digits are multiples of 1/16, so this changes no clean input, but tf.round has
        # no gradient: every gradient attack is blind.
        def call(self, x):
            return tf.round(x * 16.0) / 16.0

    inp = keras.Input(shape=(8, 8, 1))
    masked = keras.Model(inp, digits_model(Round16()(inp)))
    target = KerasTarget(masked, name="masked")
    x, y = digits.x_test[:48], digits.y_test[:48]
    report = run_suite(target, x, y, SuiteConfig(suite=["pgd", "square"], eps=[16 / 255],
                                                 params={"pgd": {"steps": 5}, "square": {"max_iter": 50}})).report
    checks = {c["name"]: c for c in report["masking"]["checks"]}
    assert report["masking"]["flagged"]
    assert checks["zero_gradients"]["flagged"] and checks["zero_gradients"]["zero_sample_share"] == 1.0


def test_eot_samples_quantizers_but_keeps_batchnorm_in_inference(tfk, digits):
    from tinyharden.attacks.suite import plan_eot
    from tinyharden.attacks.target import KerasTarget
    from tinyharden.models import build_model

    tf, _ = tfk
    model = build_model("mlp", (8, 8, 1), 10, "stq")
    target = KerasTarget(model)
    x = digits.x_test[:16]
    bn = model.get_layer("bn1")
    before = [w.numpy().copy() for w in bn.weights]
    with target.sampling_mode():
        a, b = target.logits(x, training=True).numpy(), target.logits(x, training=True).numpy()
    assert not np.allclose(a, b)  # the stochastic ternary weights were sampled
    for w, v in zip(bn.weights, before):
        np.testing.assert_array_equal(w.numpy(), v)  # moving statistics untouched
    assert bn.trainable  # restored
    np.testing.assert_array_equal(target.predict(x), target.predict(x))  # deterministic at inference
    assert plan_eot(target, x, 4)[0] == 4
    assert plan_eot(KerasTarget(build_model("mlp", (8, 8, 1), 10, "float")), x, 4)[0] == 1


def test_a_model_random_at_inference_is_always_attacked_with_eot(tfk, digits_model, digits):
    from tinyharden.attacks.suite import DEFAULT_EOT, SuiteConfig, plan_eot, run_suite
    from tinyharden.attacks.target import KerasTarget

    tf, keras = tfk

    class AlwaysNoisy(keras.layers.Layer):
        def call(self, x):
            return x + tf.random.normal(tf.shape(x), stddev=0.02)

    inp = keras.Input(shape=(8, 8, 1))
    target = KerasTarget(keras.Model(inp, digits_model(AlwaysNoisy()(inp))), name="noisy")
    x, y = digits.x_test[:16], digits.y_test[:16]
    eot, reason = plan_eot(target, x, None)
    assert eot == DEFAULT_EOT and "stochastic at inference" in reason
    report = run_suite(target, x, y, SuiteConfig(suite=["pgd"], eps=[EPS], params={"pgd": {"steps": 2}},
                                                 checks=False)).report
    assert report["config"]["eot"] == DEFAULT_EOT and report["attacks"][0]["eot"] == DEFAULT_EOT


def test_waveform_space_differentiates_through_the_mfcc_front_end(tfk):
    from tinyharden.attacks.target import KerasTarget
    from tinyharden.attacks.loading import frontend_model as _frontend_model
    from tinyharden.data import frontend

    tf, keras = tfk
    kws = _mlp(keras, frontend.FEATURE_SHAPE, classes=12, units=8)
    target = KerasTarget(_frontend_model(kws, keras))
    assert target.input_shape == (frontend.CLIP_SAMPLES,)
    w = tf.constant(np.random.default_rng(0).uniform(0.3, 0.7, (2, frontend.CLIP_SAMPLES)).astype(np.float32))
    with tf.GradientTape() as tape:
        tape.watch(w)
        loss = tf.reduce_sum(target.logits(w))
    g = tape.gradient(loss, w).numpy()
    assert np.isfinite(g).all() and np.abs(g).max() > 0


# --------------------------------------------------------------------------- CLI

def _cli(args, tmp_path):
    from typer.testing import CliRunner

    from tinyharden.cli.app import app

    return CliRunner().invoke(app, ["-w", str(tmp_path / "ws"), "attack", *args])


def test_cli_fail_under_gates_on_the_suite_robust_accuracy(model_file, tmp_path):
    base = [str(model_file), "--data", "digits", "-s", "fgsm,pgd", "--eps", "8/255,16/255", "-n", "40",
            "-p", "pgd.steps=5", "--no-save-examples"]
    first = _cli(base + ["--json"], tmp_path)
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    assert report["schema_version"] == 1 and report["data"]["n"] == 40
    assert report["config"]["eps"] == pytest.approx([8 / 255, 16 / 255])
    assert report["attacks"][1]["params"]["steps"] == 5
    acc = report["suite"]["robust_accuracy"]["value"]
    written = Path(report["target"]["path"])
    assert written == model_file
    runs = list((tmp_path / "ws").glob("attack-digits_mlp*/attack.json"))
    assert len(runs) == 1 and json.loads(runs[0].read_text())["suite"] == report["suite"]

    below = _cli(base + ["--fail-under", f"{acc + 0.05:.4f}"], tmp_path)
    assert below.exit_code == 3, below.output
    assert "below --fail-under" in below.stderr
    above = _cli(base + ["--fail-under", f"{100 * max(acc - 0.05, 0):.2f}%"], tmp_path)
    assert above.exit_code == 0, above.output
    assert "worst case" in above.stdout


def test_cli_attacks_a_run_folder_and_writes_into_it(model_file, tmp_path):
    import shutil

    from tinyharden.recipe import Recipe, dump_recipe

    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(model_file, run / "model.h5")
    recipe = Recipe.model_validate({"data": {"dataset": "digits"},
                                    "attack": {"suite": "pgd", "eps": "4/255", "n": 24, "params": {"pgd": {"steps": 3}}}})
    (run / "recipe.yaml").write_text(dump_recipe(recipe))
    res = _cli([str(run), "--eps", "8/255"], tmp_path)  # the flag beats the recipe's eps
    assert res.exit_code == 0, res.output
    report = json.loads((run / "attack.json").read_text())
    assert report["config"]["suite"] == ["pgd"] and report["data"]["n"] == 24
    assert report["config"]["eps"] == [pytest.approx(8 / 255)] and report["attacks"][0]["params"]["steps"] == 3
    with np.load(run / "attack_examples.npz") as z:
        assert set(z.files) == {"x", "y", "pgd_eps0"} and z["pgd_eps0"].shape == (24, 8, 8, 1)


@pytest.mark.parametrize("case", ["missing", "corrupt", "unknown-data", "wrong-shape", "no-data", "bad-eps", "bad-attack"])
def test_cli_bad_input_is_a_one_line_error(case, model_file, tmp_path, tfk):
    _, keras = tfk
    args = {
        "missing": [str(tmp_path / "nope.h5"), "--data", "digits"],
        "unknown-data": [str(model_file), "--data", "mnist"],
        "no-data": [str(model_file)],
        "bad-eps": [str(model_file), "--data", "digits", "--eps", "8/two"],
        "bad-attack": [str(model_file), "--data", "digits", "-s", "pgd,sqare"],
    }.get(case)
    if case == "corrupt":
        bad = tmp_path / "corrupt.h5"
        bad.write_bytes(b"\x89HDF\r\n\x1a\nthis is not a model")
        args = [str(bad), "--data", "digits"]
    if case == "wrong-shape":
        other = tmp_path / "six.h5"
        _mlp(keras, (6, 6, 1)).save(other)
        args = [str(other), "--data", "digits", "-n", "4"]
    res = _cli(args + ["--no-checks"], tmp_path)
    assert res.exit_code == 2, (res.exit_code, res.output)
    lines = [line for line in res.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), res.stderr
    assert "Traceback" not in res.output
