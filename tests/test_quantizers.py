"""STQ really samples while training and is deterministic at inference; the incremental schedule."""
from __future__ import annotations

import numpy as np
import pytest

from tinyharden._tf import keras, tf
from tinyharden.models import build_model
from tinyharden.quantization import incremental
from tinyharden.quantization.quantizers import make_quantizer


@pytest.mark.parametrize("preset,max_values", [("stq", 3), ("stochastic_binary", 2)])
def test_stochastic_quantizers_sample_in_training_and_not_at_inference(preset, max_values):
    model = build_model("cnn", quantization=preset)
    x = tf.random.uniform([8, 8, 8, 1], seed=1)
    t1, t2 = model(x, training=True), model(x, training=True)
    assert float(tf.reduce_max(tf.abs(t1 - t2))) > 1e-3, "training-mode passes must differ (sampling)"

    @tf.function
    def compiled(z):
        return model(z, training=True)

    assert float(tf.reduce_max(tf.abs(compiled(x) - compiled(x)))) > 1e-3, "sampling must survive tf.function"
    i1, i2 = model(x, training=False), model(x)
    np.testing.assert_array_equal(i1.numpy(), i2.numpy())
    # predict() runs a compiled graph: equal up to float reordering, far below sampling noise
    np.testing.assert_allclose(i1.numpy(), model.predict(x, verbose=0), atol=1e-5)
    layer = model.get_layer("conv2")
    w = layer.kernel_quantizer_internal(layer.kernel).numpy()
    for c in range(w.shape[-1]):
        # the straight-through form x + (q - x) leaves ~1e-8 float noise on the levels:
        # compare levels relative to the channel's largest one
        wc = w[..., c]
        assert len(np.unique(np.round(wc / np.abs(wc).max(), 3))) <= max_values


def test_qkeras_alone_would_not_sample():
    """The trap this module exists for: QKeras' own stochastic_ternary ignores training=True."""
    import qkeras

    inp = keras.Input((4, 4, 2))
    layer = qkeras.QConv2D(4, 3, kernel_quantizer=qkeras.stochastic_ternary(alpha="auto"))
    model = keras.Model(inp, layer(inp))
    x = tf.random.uniform([2, 4, 4, 2])
    np.testing.assert_array_equal(model(x, training=True).numpy(), model(x, training=True).numpy())


def test_ternary_inference_values():
    q = make_quantizer("stochastic_ternary(alpha='auto')")
    w = tf.random.normal([3, 3, 4, 6], seed=2)
    out = q(w).numpy()  # called outside any layer: inference
    for c in range(6):
        vals = np.unique(out[..., c])
        assert len(vals) <= 3 and np.allclose(vals, -vals[::-1]) or 0 in vals


@pytest.mark.parametrize("ratio", [0.5, 0.75, 0.875, 1.0])
def test_incremental_stage_quantizes_the_stated_share(ratio):
    model = build_model("stq_cnn", quantization="stq", width=0.5)
    incremental.attach_masks(model)
    shares = incremental.apply_stage(model, ratio, np.random.default_rng(0))
    for name, share in shares.items():
        channels = model.get_layer(name).kernel.shape[-1]
        assert share == pytest.approx(round(ratio * channels) / channels), name
    assert incremental.quantized_share(model) == pytest.approx(ratio, abs=0.02)
    # weights outside the mask stay full precision: the layer kernel passes through unchanged there
    layer = model.get_layer("s2_conv1")
    q = layer.kernel_quantizer_internal
    w = layer.kernel.numpy()
    out = q(tf.constant(w)).numpy()
    mask = np.broadcast_to(q.incremental_mask.numpy(), w.shape).astype(bool)
    np.testing.assert_array_equal(out[~mask], w[~mask])
    if ratio < 1:
        assert not np.allclose(out[mask], w[mask])


def test_incremental_prefers_channels_with_small_error():
    errors = np.array([0.01, 0.01, 10.0, 10.0])
    picks = np.array([incremental.choose_channels(errors, 0.5, np.random.default_rng(s)) for s in range(200)])
    assert picks[:, :2].mean() > 0.9 and picks[:, 2:].mean() < 0.1
    assert (picks.sum(1) == 2).all()


def test_stq_under_mixed_bfloat16_samples_keeps_three_levels_and_an_exact_relu_grid():
    """train.precision=mixed_bfloat16: layers compute in bfloat16, quantizers stay correct."""
    from tinyharden.training import precision

    with precision.policy("mixed_bfloat16"):
        model = build_model("cnn", quantization={"preset": "stq", "activation": "quantized_relu(8,3)"})
    x = tf.random.uniform([8, 8, 8, 1], seed=3)
    t1, t2 = model(x, training=True), model(x, training=True)
    assert t1.dtype == tf.bfloat16
    assert float(tf.reduce_max(tf.abs(tf.cast(t1 - t2, tf.float32)))) > 1e-2, "STQ must still sample"
    np.testing.assert_array_equal(model(x).numpy(), model(x).numpy())
    layer = model.get_layer("conv2")
    w = tf.cast(layer.kernel_quantizer_internal(tf.cast(layer.kernel, tf.bfloat16)), tf.float32).numpy()
    for c in range(w.shape[-1]):
        assert len(np.unique(w[..., c])) <= 3
    relu = make_quantizer("quantized_relu(8,3)")
    a = tf.random.uniform([1000], 0, 9, seed=4)
    np.testing.assert_array_equal(tf.cast(relu(tf.cast(a, tf.bfloat16)), tf.float32).numpy(),
                                  relu(tf.cast(tf.cast(a, tf.bfloat16), tf.float32)).numpy())


def test_temperature_scale_sharpens_sampling_inside_a_traced_step():
    """quantization.temperature_growth: a traced step reads the current scale (a variable, not a constant)."""
    from tinyharden.quantization.quantizers import temperature_scale

    model = build_model("cnn", quantization="stq")
    x = tf.random.uniform([16, 8, 8, 1], seed=2)
    compiled = tf.function(lambda z: model(z, training=True))

    def spread(scale):  # how much two sampled training passes differ
        with temperature_scale(scale):
            return float(tf.reduce_mean(tf.abs(compiled(x) - compiled(x))))

    low = spread(1.0)
    high = spread(64.0)
    assert low > 1e-3, low
    assert high < low / 4, (low, high)
    assert spread(1.0) > high * 2  # the block restored nothing permanent: the same trace samples again
    assert compiled.experimental_get_tracing_count() == 1


@pytest.mark.parametrize("dist", ["normal", "laplace", "uniform"])
def test_stq_sampling_sharpens_onto_the_inference_ternary(dist):
    """At a high temperature STQ must sample the very weights it runs with at inference.

    QKeras samples around half the final scale but its inference ternary cuts at half the
    previous unroll's scale; annealing then trains the wrong weights (see _ternary_sample).
    """
    from tinyharden.quantization.quantizers import _ternary_sample, temperature_scale

    rng = np.random.default_rng(3)
    w = tf.constant(getattr(rng, dist)(size=(3, 3, 32, 64)).astype("float32"))
    q = make_quantizer("stochastic_ternary(alpha='auto')")
    inference = q(w).numpy()  # not training: deterministic
    with temperature_scale(1e4):
        sampled = _ternary_sample(q, w).numpy()
    assert np.mean(np.sign(sampled) != np.sign(inference)) < 1e-3
    np.testing.assert_allclose(np.abs(sampled).max(axis=(0, 1, 2)), np.abs(inference).max(axis=(0, 1, 2)), rtol=1e-5)


@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
@pytest.mark.parametrize("spec", ["quantized_relu(8,3)", "quantized_relu(4,2)", "quantized_relu(1,0)"])
def test_fused_training_relu_equals_qkeras_bit_for_bit(spec, dtype):
    """Training calls take the XLA-fused grid ReLU, inference QKeras' float32 graph: same values, same
    gradients, on every finite bfloat16 below 2^110 (QKeras itself turns NaN where x * 2^bits overflows)."""
    import tinyharden.quantization.quantizers as tq

    q = make_quantizer(spec)
    xs = (np.arange(65536, dtype=np.uint32) << 16).view(np.float32)
    finite = xs[np.isfinite(xs) & (np.abs(xs) < 2.0 ** 110)]
    reps = -(-tq._FUSE_MIN_ELEMENTS // len(finite))  # enough copies to be worth fusing
    x = tf.cast(tf.constant(np.tile(finite, reps)), dtype)
    dy = tf.cast(tf.random.stateless_normal(x.shape, seed=[1, 2]), dtype)
    results = []
    for training in (True, False):
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = keras.layers.Lambda(q, dtype=dtype)(x, training=training)
        results.append([out.numpy().astype(np.float32), tape.gradient(out, x, output_gradients=dy).numpy().astype(np.float32)])
    assert any(key[:2] == (q.bits, q.integer) for key in tq._FUSED), "the training call must take the fused path"
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])


def test_a_small_activation_keeps_qkeras_graph_in_training():
    import tinyharden.quantization.quantizers as tq

    tq._FUSED.clear()
    q = make_quantizer("quantized_relu(8,3)")
    small = tf.random.stateless_normal([64, 8, 8, 32], seed=[3, 4])  # a digits CNN's activation: 131k elements
    keras.layers.Lambda(q)(small, training=True)
    assert not tq._FUSED  # compiling would cost more than the fused op saves at this size

