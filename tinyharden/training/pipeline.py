"""The input pipeline: a deterministic per-epoch shuffle and in-graph augmentation.

Each epoch's order comes from (seed, epoch), and each image's augmentation from
(seed, epoch, index) through stateless random ops, so a resumed run sees exactly the
batches it would have seen, and the same recipe + seed gives the same run. Augmentation
runs in parallel tf.data maps so both cores stay busy while the step computes.
"""
from __future__ import annotations

import numpy as np

from tinyharden._tf import tf


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(n)


def _augment_image(x, seed, crop: int, flip: bool):
    if crop:
        h, w = x.shape[0], x.shape[1]
        padded = tf.pad(x, [[crop, crop], [crop, crop], [0, 0]], mode="REFLECT")
        x = tf.image.stateless_random_crop(padded, [h, w, x.shape[2]], seed=seed)
    if flip:
        x = tf.image.stateless_random_flip_left_right(x, seed=seed + 1)
    return x


def train_batches(x: np.ndarray, y: np.ndarray, *, batch_size: int, seed: int, epoch: int, augment=None,
                  kind: str = "image") -> tf.data.Dataset:
    order = epoch_order(len(y), seed, epoch)
    ds = tf.data.Dataset.from_tensor_slices((x[order], y[order].astype(np.int64)))
    crop = getattr(augment, "crop", 0) if augment is not None and kind == "image" else 0
    flip = bool(getattr(augment, "flip", False)) if augment is not None and kind == "image" else False
    if crop or flip:
        base = tf.constant([seed, epoch], tf.int64)

        def aug(i, xy):
            s = tf.stack([base[0] * 100003 + base[1], i])
            return _augment_image(xy[0], s, crop, flip), xy[1]

        ds = ds.enumerate().map(aug, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def eval_batches(x: np.ndarray, y: np.ndarray, batch_size: int = 500) -> tf.data.Dataset:
    return tf.data.Dataset.from_tensor_slices((x, y.astype(np.int64))).batch(batch_size).prefetch(2)
