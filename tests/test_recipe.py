"""Recipe validation: a good recipe, many malformed ones with their messages, overrides."""
from __future__ import annotations

from pathlib import Path

import pytest

from tinyharden.errors import UserError
from tinyharden.recipe import apply_overrides, dump_recipe, load_recipe

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


def write(tmp_path: Path, text: str, name: str = "r.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize("name", sorted(p.name for p in RECIPES.glob("*.yaml")))
def test_shipped_recipes_validate(name):
    r = load_recipe(RECIPES / name)
    assert r.name and r.train.epochs > 0


def test_good_recipe_resolves_defaults_and_fractions(tmp_path):
    r = load_recipe(write(tmp_path, """
name: t
data: {dataset: synthetic, shape: [4, 4, 1]}
robustness:
  jacobian: {layers: [logits, {name: act1, lambda: 0.5}], lambda: 0.02}
  adversarial: {method: pgd, eps: 8/255, steps: 3}
attack: {suite: "pgd,square", eps: "1/255"}
"""))
    assert r.robustness.adversarial.eps == pytest.approx(8 / 255)
    assert r.attack.suite == ["pgd", "square"] and r.attack.eps == [pytest.approx(1 / 255)]
    layers = r.robustness.jacobian.layers
    assert [l.name for l in layers] == ["logits", "act1"] and layers[1].lam == 0.5
    assert r.robustness.jacobian.lambdas() == [0.02, 0.5]
    text = dump_recipe(r)
    assert "lambda: 0.5" in text and "val_fraction" in text  # defaults are written out
    # A run folder's recipe.yaml is what --resume reads: it must give the same lambdas.
    again = load_recipe(write(tmp_path, text, "again.yaml"))
    assert again.robustness.jacobian.lambdas() == [0.02, 0.5]


def test_jacobian_scale_multiplies_every_lambda_and_zero_trains_without_the_penalty(tmp_path):
    from tinyharden.training.steps import StepConfig
    from tinyharden.training.trainer import defense_label

    text = """
name: t
data: {dataset: synthetic, shape: [4, 4, 1]}
robustness:
  jacobian: {layers: [logits, {name: act1, lambda: 0.5}], lambda: 0.02, scale: SCALE}
"""
    scaled = load_recipe(write(tmp_path, text.replace("SCALE", "4")))
    assert scaled.robustness.jacobian.lambdas() == [pytest.approx(0.08), pytest.approx(2.0)]
    assert StepConfig.from_recipe(scaled, 10, (0.0, 1.0)).jr_lambdas == pytest.approx((0.08, 2.0))
    off = load_recipe(write(tmp_path, text.replace("SCALE", "0"), "off.yaml"))
    assert StepConfig.from_recipe(off, 10, (0.0, 1.0)).jr_layers == ()
    assert (defense_label(off), defense_label(scaled)) == ("none", "JR(logits,act1)")


MALFORMED = [
    ("trian:\n  epochs: 2\n", "r.yaml:1: unknown key 'trian'; did you mean 'train'?"),
    ("train:\n  epoch: 2\n", "r.yaml:2: unknown key 'train.epoch'; did you mean 'epochs'?"),
    ("train:\n  epochs: -1\n", "r.yaml:2: train.epochs: Input should be greater than 0"),
    ("train:\n  epochs: lots\n", "train.epochs: Input should be a valid integer"),
    ("data:\n  dataset: imagenet\n", "r.yaml:2: data.dataset: Input should be 'cifar10', 'speech_commands', 'digits' or 'synthetic'"),
    ("quantization:\n  preset: stqq\n", "unknown preset 'stqq'"),
    ("quantization:\n  preset: stqq\n", "did you mean 'stq'?"),
    ("quantization:\n  layers:\n    conv1:\n      preset: stqq\n",
     "r.yaml:4: quantization.layers.conv1.preset: unknown preset 'stqq'"),
    ("quantization:\n  layers:\n    conv1: {preset: stqq}\n", "did you mean 'stq'?"),
    ("robustness:\n  adversarial:\n    eps: 8/0\n", "r.yaml:3: robustness.adversarial.eps: expected a number or a fraction"),
    ("robustness:\n  jacobian:\n    layers: [logits]\n    projection: 2\n", "r.yaml:4: unknown key 'robustness.jacobian.projection'; did you mean 'projections'?"),
    ("quantization:\n  incremental:\n    ratios: [0.5, 0.25]\n", "ratios must increase"),
    ("train: [1, 2]\n", "train: Input should be a valid dictionary"),
    ("- a\n- b\n", "a recipe must be a mapping"),
    ("train:\n  epochs: 2\n bad: indent\n", "r.yaml:3"),
    ("export:\n  formats: [tflite, onnx]\n", "export.formats.1: Input should be 'tflite' or 'c'"),
    ("attack:\n  n: 0\n", "attack.n: Input should be greater than 0"),
]


@pytest.mark.parametrize("text,message", MALFORMED)
def test_malformed_recipes_give_one_line_messages(tmp_path, text, message):
    with pytest.raises(UserError) as exc:
        load_recipe(write(tmp_path, text))
    msg = str(exc.value)
    assert message in msg
    assert "\n" not in msg


def test_missing_recipe_file(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_recipe(tmp_path / "nope.yaml")


def test_overrides_are_validated_like_the_file(tmp_path):
    p = write(tmp_path, "name: t\n")
    r = load_recipe(p, ["train.epochs=2", "data.dataset=synthetic", "robustness.adversarial.eps=4/255"])
    assert r.train.epochs == 2 and r.data.dataset == "synthetic"
    assert r.robustness.adversarial.eps == pytest.approx(4 / 255)
    with pytest.raises(UserError, match="unknown key 'train.epoch'; did you mean 'epochs'"):
        load_recipe(p, ["train.epoch=2"])
    with pytest.raises(UserError, match="must look like section.key=value"):
        load_recipe(p, ["train.epochs"])
    with pytest.raises(UserError, match="is a value, not a section"):
        apply_overrides({"name": "x"}, ["name.first=1"])


def test_an_override_error_names_the_override_not_a_line_of_the_file(tmp_path):
    p = write(tmp_path, "name: t\nseed: 0\ntrain:\n  epochs: 3\n")
    with pytest.raises(UserError) as info:
        load_recipe(p, ["seed=1", "train.epochs=-1"])
    message = str(info.value)
    assert message.startswith(f"{p}: override 'train.epochs=-1': train.epochs:"), message
    assert "seed=1" not in message and f"{p}:4" not in message


def test_per_layer_quantizers_resolve_by_name_and_glob():
    from tinyharden.quantization.presets import PRESETS, resolve
    from tinyharden.recipe import QuantizationSpec

    spec = QuantizationSpec(preset="stq", layers={"stem": {"preset": "int8"}, "s*_conv2": {"kernel": "ternary(alpha='auto')"},
                                                 "logits": {"kernel": "float", "bias": "float"}})
    assert resolve(spec, "stem") == PRESETS["int8"]
    assert resolve(spec, "s2_conv2").kernel == "ternary(alpha='auto')"
    assert resolve(spec, "s2_conv2").activation == PRESETS["stq"].activation
    assert resolve(spec, "s1_conv1") == PRESETS["stq"]
    assert resolve(spec, "logits").kernel is None


# --------------------------------------------------------------------------- data: one spec per dataset

ROOT = RECIPES.parent
OLD_RECIPES = sorted([*RECIPES.glob("*.yaml"), *(ROOT / "tinyharden" / "pretrained").glob("*/recipe.yaml")])


@pytest.mark.parametrize("path", OLD_RECIPES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shipped_recipe_loads_unchanged_into_its_datasets_spec(path, tmp_path):
    from tinyharden.dataspec import spec_class
    from tinyharden.safe_yaml import load_bounded

    r = load_recipe(path)
    raw = load_bounded(path.read_text(), source=str(path))[0]["data"]
    assert type(r.data) is spec_class(r.data.dataset) and r.data.dataset == raw["dataset"]
    own = r.data.model_dump()
    # every key the file sets for its dataset keeps its value; the resolved recipe reads back the same
    assert all(own[k] == v for k, v in raw.items() if k in own)
    assert load_recipe(write(tmp_path, dump_recipe(r))).resolved() == r.resolved()


def test_shipped_sweeps_expand():
    from tinyharden.recipe import validate
    from tinyharden.sweep.grid import expand

    for path in sorted((ROOT / "sweeps").glob("*.yaml")):
        sweep = expand(path)
        recipes = [validate(c.recipe) for c in sweep.cells]
        assert recipes, path
        if "data.fold" in sweep.spec.grid:  # a cross-validation: every cell scores its own fold
            assert sorted(r.data.fold for r in recipes) == sorted(sweep.spec.grid["data.fold"]), path
        for cell in sweep.cells:  # every grid value reaches its own cell's recipe
            for key, value in cell.values.items():
                node = cell.recipe
                for part in key.split("."):
                    node = node[part]
                assert node == value, (path, cell.id, key)


def test_each_dataset_gets_its_own_data_spec():
    from tinyharden.data.digits import DigitsSpec
    from tinyharden.data.speech_commands import SpeechCommandsSpec
    from tinyharden.recipe import DataSpec, validate

    assert type(validate({}).data) is DigitsSpec
    speech = validate({"data": {"dataset": "speech_commands", "space": "waveform", "fold": 1}}).data
    assert isinstance(speech, SpeechCommandsSpec) and (speech.space, speech.fold) == ("waveform", 1)
    assert type(DataSpec(dataset="speech_commands", test_path="t")) is SpeechCommandsSpec
    cifar = validate({"data": {"dataset": "cifar10"}}).resolved()["data"]
    assert not {"space", "test_path", "fold", "folds", "shape", "samples", "num_classes"} & cifar.keys()


@pytest.mark.parametrize("data,message", [
    ("{dataset: cifar10, space: waveform}", "r.yaml:2: unknown key 'data.space' for dataset cifar10: it belongs to speech_commands"),
    ("{dataset: cifar10, test_path: t}", "unknown key 'data.test_path' for dataset cifar10: it belongs to speech_commands"),
    ("{dataset: cifar10, fold: 1}", "unknown key 'data.fold' for dataset cifar10: it belongs to speech_commands and digits"),
    ("{dataset: digits, samples: 9}", "unknown key 'data.samples' for dataset digits: it belongs to synthetic"),
    ("{dataset: speech_commands, spaec: waveform}", "r.yaml:2: unknown key 'data.spaec'; did you mean 'space'?"),
    ("{dataset: speech_commands, space: mfcc}", "data.space: Input should be 'features' or 'waveform'"),
    ("{dataset: speach_commands}", "data.dataset: Input should be 'cifar10', 'speech_commands', 'digits' or 'synthetic'; did you mean 'speech_commands'?"),
])
def test_a_key_of_another_dataset_names_the_dataset_it_belongs_to(tmp_path, data, message):
    with pytest.raises(UserError) as exc:
        load_recipe(write(tmp_path, f"name: r\ndata: {data}\n"))
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_an_old_resolved_recipe_drops_only_the_flat_defaults_of_other_datasets(tmp_path):
    flat = ("dataset: cifar10\n  path: null\n  val_fraction: 0.1\n  limit_train: null\n  limit_test: null\n"
            "  test_path: null\n  fold: null\n  folds: 5\n  space: {space}\n  shape: [8, 8, 1]\n  num_classes: 10\n"
            "  samples: 512\n")
    assert load_recipe(write(tmp_path, "data:\n  " + flat.format(space="features"))).data.dataset == "cifar10"
    with pytest.raises(UserError, match="unknown key 'data.space' for dataset cifar10"):
        load_recipe(write(tmp_path, "data:\n  " + flat.format(space="waveform")))


def test_a_speech_key_in_an_override_names_its_dataset(tmp_path):
    with pytest.raises(UserError, match="override 'data.space=waveform': unknown key 'data.space' for dataset digits"):
        load_recipe(write(tmp_path, "name: r\n"), ["data.space=waveform"])
    assert load_recipe(write(tmp_path, "name: r\n"), ["data.dataset=speech_commands", "data.space=waveform"]).data.space == "waveform"


def test_recipe_sizes_take_64K_like_the_cli(tmp_path):
    """export.max_flash / max_ram read sizes as the CLI's --max-flash does (tinyharden.units)."""
    from tinyharden.recipe import load_recipe

    r = load_recipe(ROOT / "recipes/quickstart.yaml", ["export.max_flash=64K", "export.max_ram=1MiB"])
    assert (r.export.max_flash, r.export.max_ram) == (65536, 1048576)
    assert load_recipe(ROOT / "recipes/quickstart.yaml", ["export.max_flash=70000"]).export.max_flash == 70000
    with pytest.raises(UserError, match="max_flash: a size in bytes such as 65536, 64K"):
        load_recipe(ROOT / "recipes/quickstart.yaml", ["export.max_flash=64Q"])
