"""Model zoo parameter counts, quantized builds, user-model loading and its safety checks."""
from __future__ import annotations

import numpy as np
import pytest

from tinyharden.errors import UserError
from tinyharden.models import build_model, load_model, logits_model

RESNET = "mlperf_tiny/image_classification/trained_models/pretrainedResnet.h5"


@pytest.mark.parametrize("name,params", [("resnet8", 78_666), ("dscnn", 24_908)])
def test_mlperf_reference_parameter_counts(name, params):
    assert build_model(name).count_params() == params


@pytest.mark.parametrize("preset", ["float", "stq", "ternary", "binary", "stochastic_binary", "int8", "int4"])
def test_every_preset_builds_every_model_with_qkeras_layers(preset):
    for name in ("resnet8", "dscnn", "stq_cnn", "cnn", "mlp"):
        m = build_model(name, quantization=preset)
        kinds = {type(l).__name__ for l in m.layers}
        if preset == "float":
            assert not any(k.startswith("Q") for k in kinds)
        else:
            assert kinds & {"QConv2D", "QDense"}, (name, kinds)
        assert m.output_shape[-1] == (12 if name == "dscnn" else 10)


def test_stq_cnn_stays_well_under_the_study_size():
    m = build_model("stq_cnn", quantization="stq")
    assert m.count_params() < 260_000  # int8 flatbuffer ~1 byte/weight: well under ~322 KB


def test_unknown_model_and_unused_layer_override():
    with pytest.raises(UserError, match="did you mean 'resnet8'"):
        build_model("resnet9")
    with pytest.raises(UserError, match="'conv9'.*match no layer"):
        build_model("cnn", quantization={"preset": "stq", "layers": {"conv9": {"preset": "int8"}}})


def test_bad_quantizer_expression_is_a_user_error():
    with pytest.raises(UserError, match="'quantized_bitz'.* is not a quantizer; did you mean 'quantized_bits'"):
        build_model("cnn", quantization={"preset": "stq", "layers": {"conv1": {"kernel": "quantized_bitz(8)"}}})


def test_user_model_with_lambda_is_refused_unless_unsafe(tmp_path):
    from tinyharden._tf import keras

    inp = keras.Input((4,))
    out = keras.layers.Dense(2)(keras.layers.Lambda(lambda t: t * 2.0, name="double")(inp))
    path = tmp_path / "lam.h5"
    keras.Model(inp, out).save(path)
    with pytest.raises(UserError, match="Lambda layer 'double'.*allow unsafe loading"):
        load_model(path)
    assert load_model(path, unsafe=True).count_params() == 10


def test_corrupt_and_foreign_model_files(tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not an hdf5 file at all")
    with pytest.raises(UserError, match="not a readable HDF5 model file"):
        load_model(bad)
    with pytest.raises(UserError, match="not found"):
        load_model(tmp_path / "missing.h5")
    txt = tmp_path / "model.txt"
    txt.write_text("x")
    with pytest.raises(UserError, match="not a Keras model file"):
        load_model(txt)


def test_saved_stq_model_reloads_with_training_aware_quantizers(tmp_path):
    from tinyharden._tf import tf
    from tinyharden.quantization import quantizers as tq

    m = build_model("cnn", quantization="stq")
    m.save(tmp_path / "m.h5")
    back = load_model(tmp_path / "m.h5")
    assert isinstance(back.get_layer("conv2").kernel_quantizer_internal, tq.stochastic_ternary)
    x = tf.random.uniform([4, 8, 8, 1])
    np.testing.assert_allclose(back(x).numpy(), m(x).numpy(), rtol=1e-5, atol=1e-5)


def test_mlperf_resnet8_scores_its_published_accuracy(shared):
    """The MLPerf Tiny ResNet-8 as a user model, inputs in 0..255: 87.19% on CIFAR-10 test."""
    from tinyharden.data import load_dataset
    from tinyharden.recipe import DataSpec

    model = logits_model(load_model(shared / RESNET))
    assert model.layers[-1].get_config()["activation"] == "linear"
    ds = load_dataset(DataSpec(dataset="cifar10", val_fraction=0.0), seed=0)
    pred = np.concatenate([np.argmax(model(ds.x_test[i:i + 1000] * 255.0, training=False), -1)
                           for i in range(0, 10000, 1000)])
    assert len(pred) == 10000
    assert np.mean(pred == ds.y_test) == pytest.approx(0.8719, abs=5e-5)
