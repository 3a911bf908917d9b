"""Mixed bfloat16 training: convolutions in bfloat16, quantizers and the shipped model in float32.

On CPUs with AVX-512 BF16 the `mixed_bfloat16` policy speeds up our convolutions
(bench/train_throughput.py: the STQ+JR step of `stq_cnn` at 2.25x a plain float32 `model.fit`, 1.13x
a plain fit under the same policy). The policy only changes what a layer
*computes* in: variables stay float32, and tinyharden's quantizers do their arithmetic in
float32 and hand the layer a bfloat16 copy (`quantization.quantizers`), so ternary weights
keep their three levels. The model that is evaluated for the test figure and saved is a
float32 twin carrying the trained weights: export, attack and report never see bfloat16.
"""
from __future__ import annotations

import contextlib
from collections.abc import Collection

from tinyharden._tf import keras

POLICIES = ("float32", "mixed_bfloat16")


@contextlib.contextmanager
def policy(name: str):
    """Layers built inside this block compute under the Keras dtype policy `name`."""
    before = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(before)


def recast(model, name: str, *, keep_float32: Collection[str] = ()):
    """A copy of `model` with its weights whose layers compute under the dtype policy `name`.

    For ready models (a loaded file, a `quantize` twin) that no recipe can rebuild: their
    layers carry the dtype they were built with, so a global policy alone would not reach
    them. Inputs keep their dtype; quantizers are tinyharden's (float32 arithmetic). The
    layers named in `keep_float32` keep computing in float32.
    """
    from tinyharden.models.loading import adopt_quantizers
    from tinyharden.quantization.quantizers import custom_objects

    def clone(layer):
        config = layer.get_config()
        config["dtype"] = "float32" if layer.name in keep_float32 else name
        return type(layer).from_config(config)

    with keras.utils.custom_object_scope(custom_objects()):
        twin = keras.models.clone_model(model, clone_function=clone)
    twin.set_weights(model.get_weights())
    adopt_quantizers(twin)
    return twin
