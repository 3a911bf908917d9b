"""The input pipeline: a deterministic per-epoch shuffle and the dataset's in-graph augmentation.

Each epoch's order comes from (seed, epoch), and each image's augmentation from
(seed, epoch, index) through stateless random ops, so a resumed run sees exactly the
batches it would have seen, and the same recipe + seed gives the same run. Augmentation
runs in parallel tf.data maps so both cores stay busy while the step computes.
"""
from __future__ import annotations

import numpy as np

from tinyharden._tf import tf
from tinyharden.data.augment import SampleMap


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(n)


def train_batches(x: np.ndarray, y: np.ndarray, *, batch_size: int, seed: int, epoch: int,
                  sample_map: SampleMap | None = None) -> tf.data.Dataset:
    """One epoch's batches in its (seed, epoch) order; `sample_map` (the dataset's in-graph
    augmentation, `Augmentation.sample_map()`) sees each example with its own seed pair."""
    order = epoch_order(len(y), seed, epoch)
    ds = tf.data.Dataset.from_tensor_slices((x[order], y[order].astype(np.int64)))
    if sample_map is not None:
        base = tf.constant([seed, epoch], tf.int64)

        def aug(i, xy):
            s = tf.stack([base[0] * 100003 + base[1], i])
            return sample_map(xy[0], s), xy[1]

        ds = ds.enumerate().map(aug, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def eval_batches(x: np.ndarray, y: np.ndarray, batch_size: int = 500) -> tf.data.Dataset:
    return tf.data.Dataset.from_tensor_slices((x, y.astype(np.int64))).batch(batch_size).prefetch(2)
