"""The application layer: the registry, run-folder artifacts and their versions, attack history, `jobs.run`."""
from __future__ import annotations

import json

import numpy as np
import pytest
from pydantic import Field
from typer.testing import CliRunner

from tinyharden.artifacts import MODELS, ArtifactError, read_artifact, validate_artifact
from tinyharden.cli.app import app
from tinyharden.dataspec import DataSpec
from tinyharden.errors import UserError
from tinyharden.recipe import validate
from tinyharden.registry import DATASETS
from tinyharden.workspace import RunFolder

runner = CliRunner()


# --------------------------------------------------------------------------- registry

class ToySpec(DataSpec):
    """The toy dataset's own `data:` key (module level, so a recipe holding it pickles)."""

    invert_every: int = Field(1, ge=1)


def _load_toy(spec, seed):
    from tinyharden.data.base import Dataset

    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (40, 4, 4, 1)).astype(np.float32)
    y = (x.mean(axis=(1, 2, 3)) > 0.5).astype(np.int64)
    return Dataset("toyset", x[:24], y[:24], x[24:30], y[24:30], x[30:], y[30:], num_classes=2)


@pytest.fixture
def toyset():
    DATASETS.register("toyset", _load_toy, embedded="made up by a test")
    yield "toyset"
    DATASETS.unregister("toyset")


def test_a_registered_dataset_appears_in_validation_help_and_doctor(toyset):
    recipe = validate({"data": {"dataset": toyset}})
    from tinyharden.data import load_dataset

    assert recipe.data.dataset == toyset and load_dataset(recipe.data).name == toyset
    with pytest.raises(UserError, match="did you mean 'toyset'"):
        validate({"data": {"dataset": "toyst"}})
    for command in ("attack", "export", "quantize"):
        r = runner.invoke(app, [command, "--help"], terminal_width=200)
        assert r.exit_code == 0 and toyset in r.output, (command, r.output)
    r = runner.invoke(app, ["doctor"], terminal_width=200)
    assert r.exit_code == 0 and toyset in r.output and "made up by a test" in r.output
    DATASETS.unregister(toyset)
    with pytest.raises(UserError, match="Input should be 'cifar10', 'speech_commands', 'digits' or 'synthetic'"):
        validate({"data": {"dataset": toyset}})


def test_a_registered_dataset_brings_its_own_spec_and_augmentation(toyset, tmp_path):
    import copy
    import pickle

    from tinyharden.data.augment import Augmentation
    from tinyharden.training import run

    seen = []

    class Invert(Augmentation):  # a per-epoch hook the trainer calls without knowing the dataset
        def __init__(self, spec):
            self.spec = spec

        def epoch_inputs(self, x_train, epoch):
            seen.append(epoch)
            return 1.0 - x_train if epoch % self.spec.invert_every == 0 else x_train

    DATASETS.meta(toyset).update(spec=ToySpec, augment=lambda ds, spec, aug, seed: Invert(spec))
    toy = {"data": {"dataset": toyset, "invert_every": 2}, "model": {"name": "mlp"}, "quantization": {"preset": "float"},
           "train": {"epochs": 2, "batch_size": 8}}
    recipe = validate(toy)
    assert type(recipe.data) is ToySpec and recipe.data.invert_every == 2
    assert all(c.data == recipe.data for c in (copy.deepcopy(recipe), pickle.loads(pickle.dumps(recipe))))
    run.start(recipe, tmp_path).fit()
    assert seen == [0, 1]
    with pytest.raises(UserError, match="unknown key 'data.invert_every' for dataset digits: it belongs to toyset"):
        validate({"data": {"dataset": "digits", "invert_every": 2}})
    del DATASETS.meta(toyset)["augment"]
    with pytest.raises(UserError, match="train.augment.crop is set but toyset has no training augmentation"):
        run.start(validate({**toy, "train": {"augment": {"crop": 2}}}), tmp_path)


def test_registry_names_a_typo_and_its_fix():
    from tinyharden.registry import ATTACKS, MODELS as ZOO, PRESETS

    assert "pgd" in ATTACKS and "resnet8" in ZOO.names() and PRESETS.get("stq").kernel.startswith("stochastic_ternary")
    with pytest.raises(UserError) as exc:
        ATTACKS.check("sqare")
    assert str(exc.value) == ("unknown attack 'sqare' (choose from fgsm, pgd, cw, apgd, apgd-art, square, square-art, boundary, zoo, "
                              "transfer, autoattack, autoattack-rand); did you mean 'square'?")


# --------------------------------------------------------------------------- artifacts

@pytest.mark.parametrize("kind", sorted(MODELS))
def test_old_version_or_foreign_json_is_a_one_line_error(kind, tmp_path):
    file = MODELS[kind][0]
    for doc, expected in (({"schema_version": 2}, "lacks"), ({"hello": "world"}, "lacks"), ([1, 2], "not a JSON object")):
        (tmp_path / file).write_text(json.dumps(doc))
        with pytest.raises(ArtifactError) as exc:
            read_artifact(tmp_path, kind)
        msg = str(exc.value)
        assert expected in msg and file in msg and "re-run tinyharden" in msg and "\n" not in msg


def test_a_newer_schema_version_is_refused_even_when_complete():
    doc = {"schema_version": 2, "test": {"accuracy": 0.9}}
    assert validate_artifact("metrics", {**doc, "schema_version": 1}).test.accuracy == 0.9
    with pytest.raises(ArtifactError, match="schema_version=2"):
        validate_artifact("metrics", doc)


# --------------------------------------------------------------------------- attack history

@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A run folder holding a small float digits MLP (no training loop: fit in Keras, write the files)."""
    from tinyharden._tf import keras
    from tinyharden.data import load_dataset
    from tinyharden.recipe import DataSpec, Recipe, dump_recipe

    keras.utils.set_random_seed(0)
    ds = load_dataset(DataSpec(dataset="digits"), 0)
    inp = keras.Input(shape=(8, 8, 1))
    h = keras.layers.Dense(32, activation="relu")(keras.layers.Flatten()(inp))
    model = keras.Model(inp, keras.layers.Dense(10, name="logits")(h), name="mlp")
    model.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(ds.x_train, ds.y_train, epochs=15, batch_size=64, verbose=0)
    run = tmp_path_factory.mktemp("runs") / "digits-mlp"
    run.mkdir()
    model.save(run / "model.h5")
    (run / "recipe.yaml").write_text(dump_recipe(Recipe.model_validate({"data": {"dataset": "digits"}})))
    return run


def _attack(*args, ws):
    return runner.invoke(app, ["-w", str(ws), "attack", *args, "-n", "24", "-p", "pgd.steps=2", "--no-checks"])


def test_attacks_on_a_run_are_kept_and_attack_json_is_the_latest(digits_run, tmp_path):
    first = _attack(str(digits_run), "-s", "fgsm", ws=tmp_path)
    assert first.exit_code == 0, first.output
    second = _attack(str(digits_run), "-s", "pgd", "--eps", "4/255", "--name", "pgd-small", ws=tmp_path)
    assert second.exit_code == 0, second.output
    again = _attack(str(digits_run), "-s", "fgsm", ws=tmp_path)  # a default name never overwrites
    assert again.exit_code == 0, again.output
    history = RunFolder(digits_run).attack_history()
    assert list(history) == ["fgsm", "pgd-small", "fgsm-2"]
    kept = {name: json.loads(p.read_text()) for name, p in history.items()}
    assert kept["pgd-small"]["config"]["suite"] == ["pgd"] and kept["fgsm"]["config"]["suite"] == ["fgsm"]
    latest = json.loads((digits_run / "attack.json").read_text())
    assert latest == kept["fgsm-2"] and latest["name"] == "fgsm-2"
    for path in [digits_run / "attack.json", *history.values()]:
        assert validate_artifact("attack", json.loads(path.read_text())).attacks


def test_attack_of_a_bare_model_file_writes_into_the_named_folder(digits_run, tmp_path):
    args = [str(digits_run / "model.h5"), "--data", "digits", "-s", "fgsm"]
    assert _attack(*args, "--name", "mlp", ws=tmp_path).exit_code == 0
    assert _attack(*args, "--name", "mlp", "--eps", "2/255", ws=tmp_path).exit_code == 0
    folders = sorted(p.name for p in tmp_path.iterdir())
    assert folders == ["mlp"]  # one folder for the model, so `report` shows one row
    assert len(RunFolder(tmp_path / "mlp").attack_history()) == 2
    (tmp_path / "train-run").mkdir()
    (tmp_path / "train-run" / "recipe.yaml").write_text("name: x\n")
    r = _attack(*args, "--name", "train-run", ws=tmp_path)
    assert r.exit_code == 2 and "is a training run folder" in r.output


# --------------------------------------------------------------------------- jobs.run

@pytest.mark.slow
def test_run_job_from_python_writes_only_valid_artifacts(tmp_path):
    from tinyharden.jobs.report import Bars
    from tinyharden.jobs.run import RunResult, run

    recipe = validate({"name": "tiny", "data": {"dataset": "digits"}, "model": {"name": "mlp"},
                       "train": {"epochs": 1, "batch_size": 64},
                       "attack": {"suite": "fgsm", "n": 16}, "export": {"formats": ["tflite"], "calib": 32}})
    result = run(recipe, tmp_path, bars=Bars(min_clean=0.99), limit=16)
    assert isinstance(result, RunResult) and result.run_dir.parent == tmp_path
    folder = RunFolder(result.run_dir)
    for kind in ("metrics", "footprint", "export", "attack"):
        assert folder.read(kind).schema_version == 1
    assert list(folder.attack_history()) == ["fgsm"]
    assert (folder.path / RunFolder.REPORT_HTML).is_file() and (folder.path / RunFolder.TFLITE).is_file()
    doc = json.loads((folder.path / RunFolder.REPORT_JSON).read_text())
    assert doc == result.report.doc and doc["rows"][0]["id"] == "tiny"
    assert [g["gate"] for g in result.failed_gates] == ["min_clean"]  # judged, returned, not raised
