"""The faster library paths of ZOO, Boundary and C&W give what the libraries gave before.

Each change only reshapes how the library's queries reach the model (one call per query
array, a compiled forward/backward, a per-sample starting-point search), so each is
checked against the library called the old way on a tiny MLP over 8x8 digits.
"""
from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def mlp_target(digits):
    from tinyharden._tf import keras
    from tinyharden.attacks.target import KerasTarget

    keras.utils.set_random_seed(0)
    inp = keras.Input(shape=(8, 8, 1))
    h = keras.layers.Dense(32, activation="relu")(keras.layers.Flatten()(inp))
    model = keras.Model(inp, keras.layers.Dense(10)(h))
    model.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(digits.x_train, digits.y_train, epochs=10, batch_size=64, verbose=0)
    return KerasTarget(model, input_range=(0.0, 16.0), batch_size=64)


@pytest.fixture(scope="module")
def xy(digits, mlp_target):
    x, y = digits.x_test[:40].astype(np.float32), digits.y_test[:40].astype(np.int64)
    ok = np.argmax(mlp_target.predict(x), -1) == y
    return x[ok][:12], y[ok][:12]


class _Calls:
    """A predict function recording the size of every call."""

    def __init__(self, target):
        self.target, self.sizes = target, []

    def __call__(self, x):
        self.sizes.append(len(x))
        return self.target.predict(np.asarray(x, np.float32))


def test_whole_batch_blackbox_predicts_as_art_in_one_call(mlp_target, xy):
    from art.estimators.classification import BlackBoxClassifier

    from tinyharden.attacks._adapters import whole_batch_blackbox

    x, _ = xy
    old, new = _Calls(mlp_target), _Calls(mlp_target)
    art = BlackBoxClassifier(old, (8, 8, 1), 10, clip_values=(0.0, 1.0))
    ours = whole_batch_blackbox(new, mlp_target)
    np.testing.assert_allclose(ours.predict(x, batch_size=1), art.predict(x, batch_size=1), rtol=1e-5, atol=1e-5)
    assert old.sizes == [1] * len(x) and new.sizes == [len(x)]


def test_zoo_through_one_call_per_query_array_finds_what_art_found(mlp_target, xy):
    from art.attacks.evasion import ZooAttack
    from art.estimators.classification import BlackBoxClassifier

    from tinyharden.attacks._adapters import seed_numpy_and_random, whole_batch_blackbox

    x, y = xy[0][:3], xy[1][:3]
    kw = dict(max_iter=3, binary_search_steps=1, initial_const=1.0, use_resize=False, use_importance=False,
              nb_parallel=16, batch_size=1, verbose=False)
    outs = []
    for clf in (BlackBoxClassifier(_Calls(mlp_target), (8, 8, 1), 10, clip_values=(0.0, 1.0)),
                whole_batch_blackbox(_Calls(mlp_target), mlp_target)):
        seed_numpy_and_random(0)
        outs.append(ZooAttack(clf, **kw).generate(x=x, y=np.eye(10)[y]))
    np.testing.assert_allclose(outs[1], outs[0], atol=1e-5)


def test_zoo_budget_reaches_art(monkeypatch, mlp_target, xy):
    import art.attacks.evasion as evasion

    from tinyharden.attacks.base import make_attack

    seen = {}
    real = evasion.ZooAttack

    class Spy(real):
        def __init__(self, *args, **kwargs):
            seen.update(kwargs)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(evasion, "ZooAttack", Spy)
    attack = make_attack("zoo", {"max_iter": 2, "nb_parallel": 8, "binary_search_steps": 1})
    out = attack.run(mlp_target, xy[0][:2], xy[1][:2], eps=0.5, norm="l2", seed=0)
    assert (seen["max_iter"], seen["nb_parallel"], seen["binary_search_steps"], seen["batch_size"]) == (2, 8, 1, 1)
    assert out.queries >= 2 * 2 * 8


@pytest.mark.parametrize("chunk", [1, 7, 256])
def test_blended_noise_starts_are_foolboxs(mlp_target, xy, chunk):
    import foolbox as fb

    from tinyharden.attacks._adapters import QueryCounter, seed_numpy_and_random
    from tinyharden.attacks.boundary import blended_noise_starts

    x, y = xy
    seed_numpy_and_random(3)
    init = fb.attacks.LinearSearchBlendedUniformNoiseAttack(directions=50, steps=200)
    ref = np.asarray(init.run(fb.models.NumPyModel(QueryCounter(mlp_target), bounds=(0.0, 1.0)), x,
                              fb.criteria.Misclassification(y)), np.float32)
    seed_numpy_and_random(3)
    counter = QueryCounter(mlp_target)
    starts = blended_noise_starts(counter, x, y, directions=50, steps=200, chunk=chunk)
    np.testing.assert_array_equal(starts, ref)
    assert (np.argmax(mlp_target.predict(starts), -1) != y).all()


def test_blended_noise_search_asks_fewer_queries_than_foolbox(mlp_target, xy):
    import foolbox as fb

    from tinyharden.attacks._adapters import QueryCounter, seed_numpy_and_random
    from tinyharden.attacks.boundary import blended_noise_starts

    x, y = xy
    seed_numpy_and_random(0)
    theirs = QueryCounter(mlp_target)
    fb.attacks.LinearSearchBlendedUniformNoiseAttack(directions=50, steps=200).run(
        fb.models.NumPyModel(theirs, bounds=(0.0, 1.0)), x, fb.criteria.Misclassification(y))
    seed_numpy_and_random(0)
    ours = QueryCounter(mlp_target)
    blended_noise_starts(ours, x, y, directions=50, steps=200, chunk=1)
    assert ours.count <= theirs.count


def test_cw_through_the_compiled_model_matches_the_eager_keras_model(mlp_target, xy):
    import foolbox as fb

    from tinyharden._tf import tf
    from tinyharden.attacks._adapters import compiled_logits, foolbox_model

    x, y = xy
    attack = fb.attacks.L2CarliniWagnerAttack(binary_search_steps=2, steps=20, stepsize=0.01, initial_const=0.01)
    eager = fb.TensorFlowModel(mlp_target.data_model, bounds=(0.0, 1.0))
    ref, _, _ = attack(eager, tf.constant(x), tf.constant(y), epsilons=None)
    got, _, _ = attack(foolbox_model(mlp_target), tf.constant(x), tf.constant(y), epsilons=None)
    np.testing.assert_allclose(got.numpy(), ref.numpy(), atol=1e-4)
    np.testing.assert_allclose(compiled_logits(mlp_target)(tf.constant(x)).numpy(), mlp_target.predict(x), atol=1e-5)
