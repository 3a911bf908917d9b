"""The model type every layer passes around, as a protocol (imports no TensorFlow).

    from tinyharden.interfaces import KerasModel
    def footprint_of(model: KerasModel) -> int: return model.count_params()

tinyharden builds, loads, quantizes, trains and exports tf-keras functional or Sequential
models; jobs and domain code take and return them as `KerasModel`, the part of the Keras
model interface they rely on, so signatures say "a Keras model" without importing Keras.
A `keras.Model` satisfies it (checked in tests/test_style.py).
"""
from __future__ import annotations

from typing import Any, Protocol, Sequence, runtime_checkable


@runtime_checkable
class KerasModel(Protocol):
    """A built tf-keras model: named, shaped, layered, callable on a batch."""

    name: str

    @property
    def input_shape(self) -> Any: ...  # (None, *sample) or a list of those for several inputs

    @property
    def output_shape(self) -> Any: ...

    @property
    def layers(self) -> Sequence[Any]: ...

    @property
    def inputs(self) -> Sequence[Any]: ...

    @property
    def outputs(self) -> Sequence[Any]: ...

    def __call__(self, inputs: Any, *args: Any, **kwargs: Any) -> Any: ...

    def get_layer(self, name: str | None = None, index: int | None = None) -> Any: ...

    def count_params(self) -> int: ...

    def get_weights(self) -> list[Any]: ...

    def save(self, filepath: Any, *args: Any, **kwargs: Any) -> None: ...
