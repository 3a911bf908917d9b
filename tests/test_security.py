"""Untrusted inputs: model files that carry code, YAML bombs, quantizer strings that are not quantizers."""
from __future__ import annotations

import inspect
import time
from pathlib import Path

import pytest

from tinyharden.errors import UserError


def _lambda_model(marker: Path):
    from tinyharden._tf import keras

    def touch(t, _path=str(marker)):
        import pathlib

        pathlib.Path(_path).write_text("code ran")
        return t

    inp = keras.Input((4,))
    return keras.Model(inp, keras.layers.Dense(2)(keras.layers.Lambda(touch, name="touch")(inp)))


@pytest.mark.slow
def test_lambda_that_writes_a_file_is_refused_in_every_format(tmp_path):
    from tinyharden.models.loading import load_model

    marker = tmp_path / "pwned.txt"
    model = _lambda_model(marker)
    model.save(tmp_path / "sm", save_format="tf")
    model.save(tmp_path / "m.h5")
    model.save(tmp_path / "m.keras")
    marker.unlink(missing_ok=True)  # saving traces the layer once
    for path in (tmp_path / "sm", tmp_path / "m.h5", tmp_path / "m.keras"):
        with pytest.raises(UserError, match="Lambda layer 'touch'.*allow unsafe loading"):
            load_model(path)
    assert not marker.exists()


def test_unknown_classes_and_code_bearing_configs_are_named():
    from tinyharden.models.safe_load import problems

    dense = {"class_name": "Dense", "config": {"name": "d", "activation": "relu",
                                               "kernel_initializer": {"class_name": "GlorotUniform", "config": {}}}}
    assert problems({"class_name": "Functional", "config": {"layers": [dense]}}) == []
    assert "unknown class 'Evil'" in problems({"class_name": "Functional", "config": {"layers": [
        {"class_name": "Evil", "config": {}}]}})[0]
    op = {"class_name": "TFOpLambda", "config": {"name": "w", "function": "io.write_file"}}
    assert "tf.io.write_file" in problems(op)[0]
    assert problems({"class_name": "TFOpLambda", "config": {"name": "a", "function": "math.add"}}) == []
    assert "module 'os'" in " ".join(problems({"class_name": "Dense", "module": "os", "config": {}}))
    q = {"class_name": "QActivation", "config": {"name": "q", "activation": "get_quantizer('x')"}}
    assert "neither a Keras activation nor a known quantizer" in problems(q)[0]
    assert problems({"class_name": "QActivation", "config": {"name": "q", "activation": "quantized_relu(4,2)"}}) == []


@pytest.mark.slow
def test_mlperf_dscnn_savedmodel_loads_safely(shared):
    from tinyharden.models.loading import load_model

    model = load_model(shared / "mlperf_tiny/keyword_spotting/trained_models/kws_ref_model")
    assert model.input_shape == (None, 49, 10, 1)


def test_non_keras_savedmodel_folder_is_refused(tmp_path):
    from tinyharden.models.loading import load_model

    (tmp_path / "saved_model.pb").write_bytes(b"\x00garbage\xff" * 10)
    with pytest.raises(UserError, match="saved_model.pb"):
        load_model(tmp_path)


BOMB = "".join(f"{c}: &{c} [{', '.join([f'*{p}'] * 9) if p else ', '.join(['lol'] * 9)}]\n"
               for p, c in zip([None, *"abcdefgh"], "abcdefghi"))


def test_alias_bomb_recipe_is_refused_in_under_a_second(tmp_path):
    from tinyharden.recipe import load_recipe

    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    start = time.perf_counter()
    with pytest.raises(UserError, match="bomb.yaml: the YAML expands to more than"):
        load_recipe(path)
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize("text, message", [
    ("a: &a [*a]\n", "alias to itself"),
    ("x: " + "[" * 200 + "]" * 200 + "\n", "nested deeper"),
    ("seed: " + "9" * 5000 + "\n", "unreadable YAML value"),
    ("name: [unclosed\n", "fix the YAML syntax"),
])
def test_hostile_yaml_is_a_one_line_error(tmp_path, text, message):
    from tinyharden.recipe import load_recipe

    path = tmp_path / "r.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match=message) as err:
        load_recipe(path)
    assert "\n" not in str(err.value)


def test_override_alias_bomb_is_refused():
    from tinyharden.recipe import parse_override

    value = "[" + ", ".join(["&a [1,2,3,4,5,6,7,8,9]"] + ["*a"] * 300) + "]"
    with pytest.raises(UserError, match="aliases"):
        parse_override(f"train.step_epochs={value}")


@pytest.mark.parametrize("expr, message", [
    ("relu", "'relu' in quantizer 'relu' is not a quantizer"),
    ("get_quantizer('x')", "'get_quantizer' .* is not a quantizer"),
    ("quantized_bits(4,0,alpha=eval)", "'eval' is not a literal"),
    ("quantized_relu(4,2,negative_slope=quantized_bits(2),bits=3)", "'quantized_bits\\(2\\)' is not a literal"),
    ("quantized_relu(4, 2, alpha=1)", "has no argument 'alpha'"),
    ("quantized_bits(0)", "bits must be a number in \\[1, 32\\]"),
    ("__import__('os').system('x')", "must be one call"),
    ("quantized_bits(4, bits=4)", "given twice"),
])
def test_bad_quantizer_strings_are_refused_at_validation(expr, message):
    from tinyharden.recipe import validate

    with pytest.raises(UserError, match=message):
        validate({"quantization": {"preset": "stq", "layers": {"conv1": {"kernel": expr}}}})


def test_quantizer_arguments_after_a_literal_are_kept():
    from tinyharden.quantization.quantizers import make_quantizer

    q = make_quantizer("quantized_relu(4, 2, negative_slope=0.25)")
    assert (q.bits, q.integer, q.negative_slope) == (4, 2, 0.25)


def test_signature_table_matches_the_quantizer_classes():
    from qkeras import quantizers as qk

    from tinyharden.quantization import quantizers as tq
    from tinyharden.quantizer_expr import SIGNATURES

    for name, params in SIGNATURES.items():
        cls = tq._OURS.get(name) or getattr(qk, name)
        assert tuple(inspect.signature(cls.__init__).parameters)[1:] == params, name
