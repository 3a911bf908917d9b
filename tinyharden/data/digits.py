"""scikit-learn's 8x8 digits: shipped inside an installed package, the embedded default.

1,797 images, 10 classes; inputs (8, 8, 1) float32 in [0, 1] (pixel value / 16); a
stratified 20% test split and `val_fraction` of the rest for validation, from the seed.

With `data.fold = k`, stratified fold k of `data.folds` is the test split (k-fold
cross-validation). scikit-learn's copy carries no writer ids, so there are no groups to
split by: the folds are plain stratified folds, dealt from the seed alone so that every
fold of one seed partitions the same images.
"""
from __future__ import annotations

from typing import Literal

import numpy as np

from tinyharden.data.base import Dataset, split_indices
from tinyharden.errors import UserError
from tinyharden.dataspec import KFoldSpec

TEST_FRACTION = 0.2


class DigitsSpec(KFoldSpec):
    """`data:` for digits: the common keys plus `fold` / `folds` (stratified folds)."""

    dataset: Literal["digits"] = "digits"


def stratified_fold_of(y: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """The fold (0..folds-1) of every sample: each class dealt round-robin after a seeded shuffle.

    >>> stratified_fold_of(np.array([0, 0, 1, 1]), 2, 0).tolist().count(0)
    2
    """
    rng = np.random.default_rng([seed, folds, 23])
    fold_of = np.empty(len(y), np.int64)
    offset = 0
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        # Start each class where the last one stopped, so the folds differ by at most one image.
        fold_of[members] = (np.arange(len(members)) + offset) % folds
        offset += len(members)
    return fold_of


def _test_indices(y: np.ndarray, spec: DigitsSpec, seed: int) -> np.ndarray:
    if spec.fold is None:
        rng = np.random.default_rng(seed)
        return np.concatenate([rng.permutation(np.flatnonzero(y == c))[: round(TEST_FRACTION * np.sum(y == c))]
                               for c in range(10)])
    if not 0 <= spec.fold < spec.folds:
        raise UserError(f"data.fold is {spec.fold} but data.folds is {spec.folds}; pick a fold in 0..{spec.folds - 1}")
    return np.flatnonzero(stratified_fold_of(y, spec.folds, seed) == spec.fold)


def load_digits(spec: DigitsSpec, seed: int) -> Dataset:
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    x = (d.images.astype(np.float32) / 16.0)[..., None]
    y = d.target.astype(np.int64)
    test_idx = _test_indices(y, spec, seed)
    rest = np.setdiff1d(np.arange(len(y)), test_idx)
    keep, val = split_indices(len(rest), spec.val_fraction, seed + 1)
    tr, va = rest[keep], rest[val]
    test_idx = np.sort(test_idx)
    meta = {} if spec.fold is None else {"fold": int(spec.fold), "folds": int(spec.folds)}
    return Dataset("digits", x[tr], y[tr], x[va], y[va], x[test_idx], y[test_idx], num_classes=10,
                   input_range=(0.0, 1.0), class_names=[str(i) for i in range(10)], kind="image", meta=meta)
