"""Mixed bfloat16 training: convolutions in bfloat16, quantizers and the shipped model in float32.

On CPUs with AVX-512 BF16 the `mixed_bfloat16` policy speeds up our convolutions
(bench/train_throughput.py: the STQ+JR step of `stq_cnn` at 1.69x a plain float32 fit). The policy only changes what a layer
*computes* in: variables stay float32, and tinyharden's quantizers do their arithmetic in
float32 and hand the layer a bfloat16 copy (`quantization.quantizers`), so ternary weights
keep their three levels. The model that is evaluated for the test figure and saved is a
float32 twin carrying the trained weights: export, attack and report never see bfloat16.
"""
from __future__ import annotations

import contextlib

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


def float32_twin(model, build):
    """`build()` (under float32) with `model`'s weights: the same architecture, computing in float32."""
    with policy("float32"):
        twin = build()
    twin.set_weights(model.get_weights())
    return twin
