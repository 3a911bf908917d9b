"""`tinyharden evaluate` and `tinyharden pretrained`: scoring, images, shipped-model names."""
from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from tinyharden.evaluation import score_predictions


def test_scores_are_exact():
    s = score_predictions(np.array([0, 0, 1, 1, 2]), np.array([0, 1, 1, 1, 0]), ["a", "b", "c"])
    assert (s["n"], s["correct"], s["accuracy"]) == (5, 3, 0.6)
    assert s["confusion"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert [c["accuracy"] for c in s["per_class"]] == [0.5, 1.0, 0.0]
    lo, hi = s["wilson95"]
    assert lo < 0.6 < hi and hi - lo > 0.5  # five samples: a wide interval
    empty = score_predictions(np.array([0]), np.array([0]), ["a", "b"])
    assert empty["per_class"][1] == {"name": "b", "n": 0, "correct": 0, "accuracy": None, "wilson95": None}


@pytest.fixture
def shipped(tmp_path, monkeypatch, digits):
    """A shipped-model folder (a digits MLP run folder) in a private pretrained root."""
    from tinyharden import pretrained
    from tinyharden._tf import keras

    root = tmp_path / "pretrained"
    d = root / "digits-mlp"
    d.mkdir(parents=True)
    inp = keras.Input((8, 8, 1))
    model = keras.Model(inp, keras.layers.Dense(10, name="logits")(keras.layers.Flatten()(inp)))
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(digits.x_train, digits.y_train, epochs=15, batch_size=128, verbose=0)
    model.save(d / "model.h5")
    (d / "recipe.yaml").write_text(yaml.safe_dump({"name": "digits-mlp", "data": {"dataset": "digits"}}))
    (d / "metrics.json").write_text(json.dumps({"test": {"accuracy": 0.9}}))
    monkeypatch.setattr(pretrained, "ROOT", root)
    return d


def _cli(tmp_path, *args):
    from tinyharden.cli.app import app

    return CliRunner().invoke(app, ["-w", str(tmp_path / "ws"), *args])


def test_evaluate_a_shipped_image_model_by_name(shipped, tmp_path, digits):
    r = _cli(tmp_path, "evaluate", "digits-mlp", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert (doc["schema_version"], doc["kind"], doc["run_dir"]) == (1, "tinyharden evaluate", str(tmp_path / "ws" / "evaluate-digits-mlp"))
    report = doc["evaluation"]
    assert report["n"] == len(digits.y_test) and report["dataset"] == "digits" and report["split"] == "test"
    assert report["accuracy"] > 0.8 and report["class_names"] == [str(i) for i in range(10)]
    assert sorted(p.name for p in shipped.iterdir()) == ["metrics.json", "model.h5", "recipe.yaml"]  # read-only
    out = tmp_path / "ws" / "evaluate-digits-mlp"
    assert (out / "evaluate-test.json").is_file() and (out / "confusion-test.png").is_file()
    every = _cli(tmp_path, "evaluate", "digits-mlp", "--split", "all", "--json")
    assert json.loads(every.stdout)["evaluation"]["n"] == len(digits.y_train) + len(digits.y_val) + len(digits.y_test)


def test_pretrained_lists_the_shipped_models(shipped, tmp_path):
    r = _cli(tmp_path, "pretrained", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert (doc["schema_version"], doc["kind"]) == (1, "tinyharden pretrained")
    assert [(m["name"], m["test_accuracy"]) for m in doc["models"]] == [("digits-mlp", 0.9)]


def test_a_shipped_name_loads_wherever_a_recipe_names_a_model(shipped):
    """model.path / model.init / train.distill.teacher all load through load_model: a name works there too."""
    import numpy as np

    from tinyharden.models import load_model

    by_name = load_model("digits-mlp")
    by_path = load_model(shipped / "model.h5")
    assert all(np.array_equal(a, b) for a, b in zip(by_name.get_weights(), by_path.get_weights()))


def test_shipped_recipes_name_only_models_that_resolve():
    """A shipped recipe that starts from another model names it by a shipped name, not a machine's path."""
    from tinyharden import pretrained
    from tinyharden.recipe import load_recipe

    for m in pretrained.available():
        r = load_recipe(pretrained.resolve(m["name"]) / "recipe.yaml")
        if r.model.init:
            assert pretrained.resolve(r.model.init).exists(), (m["name"], r.model.init)


def test_evaluate_bad_input_is_one_line(tmp_path):
    r = _cli(tmp_path, "evaluate", "no-such-model")
    assert r.exit_code == 2 and "not found" in r.output and "Traceback" not in r.output
    r = _cli(tmp_path, "evaluate", "no-such-model", "--split", "train")
    assert r.exit_code == 2 and "split" in r.output


def test_shipped_models_are_complete_run_folders():
    from tinyharden import pretrained
    from tinyharden.recipe import load_recipe

    shipped = pretrained.available()
    for m in shipped:
        d = pretrained.resolve(m["name"])
        assert d.is_dir() and pretrained.is_pretrained(d)
        assert {"model.h5", "recipe.yaml", "metrics.json", "footprint.json"} <= set(m["files"])
        assert 0.8 < m["test_accuracy"] < 1.0
        assert sum(p.stat().st_size for p in d.iterdir()) < 3 * 2 ** 20  # a few MB at most
        dataset = load_recipe(d / "recipe.yaml").data.dataset
        assert dataset in {"speech_commands", "cifar10"}
        if dataset == "speech_commands":  # the keyword spotters ship deployed and attacked
            assert {"model.tflite", "attack-features.json"} <= set(m["files"])
            assert (d / "model.tflite").stat().st_size <= 64 * 1024  # the int8 flash bound
    assert {"kws-dscnn-float", "kws-stq-jr", "cifar10-stq-cnn-float"} <= {m["name"] for m in shipped}
