"""scikit-learn's 8x8 digits: shipped inside an installed package, the embedded default.

1,797 images, 10 classes; inputs (8, 8, 1) float32 in [0, 1] (pixel value / 16); a
stratified 20% test split and `val_fraction` of the rest for validation, from the seed.
"""
from __future__ import annotations

import numpy as np

from tinyharden.data.base import Dataset, split_indices


def load_digits(spec, seed: int) -> Dataset:
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    x = (d.images.astype(np.float32) / 16.0)[..., None]
    y = d.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    test_idx = np.concatenate([rng.permutation(np.flatnonzero(y == c))[: int(round(0.2 * np.sum(y == c)))] for c in range(10)])
    rest = np.setdiff1d(np.arange(len(y)), test_idx)
    keep, val = split_indices(len(rest), spec.val_fraction, seed + 1)
    tr, va = rest[keep], rest[val]
    test_idx = np.sort(test_idx)
    return Dataset("digits", x[tr], y[tr], x[va], y[va], x[test_idx], y[test_idx], num_classes=10,
                   input_range=(0.0, 1.0), class_names=[str(i) for i in range(10)], kind="image")
