"""`--suite autoattack` and `autoattack-rand`: the sequence, its scoring and its flags, on digits.

A small MLP on the 8x8 digits, budgets cut to a few iterations: the module takes well
under a minute on two shared cores.
"""
from __future__ import annotations

import numpy as np
import pytest

from tinyharden.errors import UserError

SMALL = {"steps": 10, "targets": 3, "fab_steps": 10, "square_queries": 200}


@pytest.fixture(scope="module")
def tfk():
    from tinyharden._tf import keras, tf

    keras.utils.set_random_seed(0)
    return tf, keras


@pytest.fixture(scope="module")
def mlp(tfk, digits):
    _, keras = tfk
    inp = keras.Input(shape=(8, 8, 1))
    h = keras.layers.Dense(64, activation="relu")(keras.layers.Flatten()(inp))
    model = keras.Model(inp, keras.layers.Dense(10)(h), name="mlp")
    model.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(digits.x_train, digits.y_train, epochs=15, batch_size=64, verbose=0)
    return model


@pytest.fixture(scope="module")
def xy(digits):
    return digits.x_test[:48].astype(np.float32), digits.y_test[:48].astype(np.int64)


def _wrap(keras, layer, model):
    inp = keras.Input(shape=(8, 8, 1))
    return keras.Model(inp, model(layer(inp)))


def _suite(target, x, y, eps, suite=("autoattack",), params=None, checks=True):
    from tinyharden.attacks.suite import SuiteConfig, run_suite

    return run_suite(target, x, y, SuiteConfig(suite=list(suite), eps=[eps], params=params or {"autoattack": SMALL},
                                               sanity_n=32, checks=checks)).report


def test_apgd_checkpoints_are_autoattacks():
    from tinyharden.attacks.apgd_graph import checkpoints

    assert checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]


def test_fab_projection_reaches_the_hyperplane_inside_the_box(tfk):
    from tinyharden.attacks.fab_graph import FABEngine

    tf, _ = tfk
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, (6, 50)).astype(np.float32)
    w = rng.normal(0, 1, (6, 50)).astype(np.float32)
    r = rng.normal(0, 2, 6).astype(np.float32)
    for norm in ("linf", "l2"):
        d = FABEngine(None, norm=norm).project(tf.constant(p), tf.constant(w), tf.constant(r)).numpy()
        assert np.abs(r + (w * d).sum(1)).max() < 1e-3 * np.abs(r).max()  # on the hyperplane
        assert (p + d >= -1e-6).all() and (p + d <= 1 + 1e-6).all()  # inside [0, 1]
        lower = np.abs(r) / (np.abs(w).sum(1) if norm == "linf" else np.linalg.norm(w, axis=1))
        n = np.abs(d).max(1) if norm == "linf" else np.linalg.norm(d, axis=1)
        assert (n >= lower * (1 - 1e-4)).all()  # never below the unconstrained minimum


@pytest.mark.slow
def test_autoattack_at_a_large_eps_drives_an_undefended_model_to_zero(mlp, xy):
    from tinyharden.attacks.target import KerasTarget

    report = _suite(KerasTarget(mlp), *xy, eps=0.3)
    assert report["clean"]["accuracy"]["value"] > 0.85
    assert report["suite"]["robust_accuracy"]["value"] <= 0.02
    rec = report["attacks"][0]
    assert rec["implementation"]["library"] == "tinyharden" and rec["params"]["square_queries"] == 200
    assert not report["masking"]["flagged"], report["masking"]


@pytest.mark.slow
def test_worst_case_is_never_above_any_component(mlp, xy):
    from tinyharden.attacks.autoattack import AutoAttack, run_sequence
    from tinyharden.attacks.target import KerasTarget

    target, (x, y), eps = KerasTarget(mlp), xy, 0.06
    report = _suite(target, x, y, eps, checks=False)
    final = report["attacks"][0]["results"][0]
    comps = final["components"]
    assert [c["name"] for c in comps] == ["apgd-ce", "apgd-t", "fab-t", "square"]
    robust = np.array(report["per_sample"]["suite_robust"])
    correct = np.array(report["per_sample"]["clean_correct"])
    assert int(correct.sum()) - sum(c["fooled"] for c in comps) == int(robust.sum())  # the sequence accounts
    ok = np.flatnonzero(correct)
    for name, fn in AutoAttack(**SMALL).components(target, x[ok]):  # each component alone, on every sample
        alone = run_sequence([(name, fn)], target, x[ok], y[ok], eps=eps, norm="linf", seed=0, eot=1, batch_size=256)
        alone_robust = alone.info["components"][0]["robust_after"]["k"]
        assert robust.sum() <= alone_robust, name
        if name == "apgd-ce":  # same seed, same samples: the same examples, so robust under all => under it
            fooled_alone = np.argmax(target.predict(alone.x_adv), -1) != y[ok]
            assert not (robust[ok] & fooled_alone).any()
    assert 0 < robust.mean() < correct.mean()  # a budget that breaks some samples and not all


@pytest.mark.slow
def test_rounding_without_ste_is_flagged_and_square_still_breaks_it(tfk, mlp, xy):
    from tinyharden.attacks.target import KerasTarget

    tf, keras = tfk

    class Round16(keras.layers.Layer):  # digits are multiples of 1/16: clean inputs unchanged, no gradient
        def call(self, x):
            return tf.round(x * 16.0) / 16.0

    report = _suite(KerasTarget(_wrap(keras, Round16(), mlp), name="masked"), *xy, eps=0.3)
    checks = {c["name"]: c for c in report["masking"]["checks"]}
    assert report["masking"]["flagged"]
    assert checks["zero_gradients"]["flagged"] and checks["aa_square_beats_whitebox"]["flagged"]
    comps = {c["name"]: c for c in report["attacks"][0]["results"][0]["components"]}
    white = comps["apgd-ce"]["fooled"] + comps["apgd-t"]["fooled"] + comps["fab-t"]["fooled"]  # random starts only
    assert comps["square"]["fooled"] > 2 * white and report["suite"]["robust_accuracy"]["value"] <= 0.1


def test_straight_through_gradient_that_disagrees_with_the_forward_pass_is_flagged(tfk, mlp, xy):
    from tinyharden.attacks.autoattack_checks import ste_forward_agreement
    from tinyharden.attacks.target import KerasTarget

    tf, keras = tfk

    class CoarseSTE(keras.layers.Layer):
        # Forward: 3 levels, thresholds at 0.2 and 0.7, over 1/80 from any digit pixel (k/16),
        # so a step of eps/4 moves nothing; backward: identity (straight-through).
        def call(self, x):
            return x + tf.stop_gradient(tf.round(x * 2.0 + 0.1) / 2.0 - x)

    x, y = xy
    coarse = ste_forward_agreement(KerasTarget(_wrap(keras, CoarseSTE(), mlp)), x, y, eps=8 / 255, norm="linf")
    smooth = ste_forward_agreement(KerasTarget(mlp), x, y, eps=8 / 255, norm="linf")
    assert coarse["flagged"] and coarse["agreement"] < 0.5
    assert not smooth["flagged"] and smooth["agreement"] > 0.9


def test_a_model_random_at_inference_is_refused_with_a_pointer_to_autoattack_rand(tfk, mlp, xy):
    from tinyharden.attacks.target import KerasTarget

    tf, keras = tfk

    class AlwaysNoisy(keras.layers.Layer):
        def call(self, x):
            return x + tf.random.normal(tf.shape(x), stddev=0.02)

    target = KerasTarget(_wrap(keras, AlwaysNoisy(), mlp), name="noisy")
    x, y = xy
    with pytest.raises(UserError, match="random at inference.*attack with autoattack-rand") as exc:
        _suite(target, x, y, 0.3)
    assert "\n" not in str(exc.value)
    report = _suite(target, x[:16], y[:16], 0.3, suite=["autoattack-rand"],
                    params={"autoattack-rand": {"steps": 5, "eot_iter": 2}})
    comps = report["attacks"][0]["results"][0]["components"]
    assert [c["name"] for c in comps] == ["apgd-ce", "apgd-dlr"]
    assert report["suite"]["robust_accuracy"]["value"] <= 0.1
    note = next(c for c in report["masking"]["checks"] if c["name"] == "aa_randomness_at_inference")
    assert note["random"] is True


@pytest.mark.slow
@pytest.mark.parametrize("norm,eps", [("linf", 8 / 255), ("l2", 0.5)])
def test_every_stage_stays_in_the_ball_and_the_range(tfk, norm, eps):
    """On 16x16x3 images (ART's L2 Square needs >= 10 pixels): raw stage outputs, before any re-check."""
    from tinyharden.attacks.autoattack import AutoAttack
    from tinyharden.attacks.evaluation import norms
    from tinyharden.attacks.target import KerasTarget

    _, keras = tfk
    rng = np.random.default_rng(0)
    protos = 0.5 + rng.uniform(-0.05, 0.05, (10, 16, 16, 3))
    y = rng.integers(0, 10, 256)
    x = np.clip(protos[y] + rng.normal(0, 0.08, (256, 16, 16, 3)), 0, 1).astype(np.float32)
    inp = keras.Input(shape=(16, 16, 3))
    model = keras.Model(inp, keras.layers.Dense(10)(keras.layers.Flatten()(inp)))
    model.compile(keras.optimizers.Adam(3e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=10, batch_size=64, verbose=0)
    target, xs, ys = KerasTarget(model), x[:12], y[:12].astype(np.int64)
    for name, fn in AutoAttack(**{**SMALL, "square_queries": 20}).components(target, xs):
        cand, _ = fn(target, xs, ys, eps=eps, norm=norm, seed=0, eot=1, batch_size=8)
        assert cand.shape == xs.shape and np.isfinite(cand).all(), name
        assert cand.min() >= -1e-6 and cand.max() <= 1 + 1e-6, name
        assert norms(cand - xs, norm).max() <= eps * (1 + 1e-4) + 1e-6, name
