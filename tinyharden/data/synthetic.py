"""Generated data of any shape, for tests: learnable class prototypes plus noise, in [0, 1]."""
from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import Field

from tinyharden.data.base import Dataset, split_indices
from tinyharden.dataspec import DataSpec


class SyntheticSpec(DataSpec):
    """`data:` for generated data: its shape, class count and sample count."""

    dataset: Literal["synthetic"] = "synthetic"
    shape: list[Annotated[int, Field(gt=0, le=1024)]] = Field(default_factory=lambda: [8, 8, 1], min_length=1, max_length=4)
    num_classes: int = Field(10, ge=2, le=10_000)
    samples: int = Field(512, gt=0, le=1_000_000)


def make_synthetic(shape, num_classes: int, samples: int, seed: int, noise: float = 0.15):
    rng = np.random.default_rng(seed)
    protos = rng.uniform(0.2, 0.8, size=(num_classes, *shape)).astype(np.float32)
    y = rng.integers(0, num_classes, size=samples).astype(np.int64)
    x = protos[y] + rng.normal(0, noise, size=(samples, *shape)).astype(np.float32)
    return np.clip(x, 0.0, 1.0).astype(np.float32), y


def load_synthetic(spec: SyntheticSpec, seed: int) -> Dataset:
    n_test = max(64, spec.samples // 4)
    x, y = make_synthetic(tuple(spec.shape), spec.num_classes, spec.samples + n_test, seed)
    xt, yt = x[spec.samples:], y[spec.samples:]
    x, y = x[: spec.samples], y[: spec.samples]
    keep, val = split_indices(len(y), spec.val_fraction, seed)
    return Dataset("synthetic", x[keep], y[keep], x[val], y[val], xt, yt, num_classes=spec.num_classes,
                   input_range=(0.0, 1.0), class_names=[str(i) for i in range(spec.num_classes)], kind="image")
