"""Training augmentation: the hook a dataset's registry entry names (`augment=`).

    aug = augmentation_for(ds, recipe.data, recipe.train.augment, seed=0)
    x_epoch = aug.epoch_inputs(ds.x_train, epoch=3)   # whole-split, numpy side (e.g. audio re-augmented)
    per_example = aug.sample_map()                    # in-graph (x, seed) -> x, or None

The trainer asks only these two questions, so a dataset brings its own augmentation beside
its loader and the trainer has no branch per dataset. A factory takes (dataset, its `data:`
spec, `train.augment`, seed) and refuses the settings that do not apply to that dataset.
Importing this module does not import TensorFlow.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from tinyharden.data.base import Dataset
from tinyharden.errors import UserError
from tinyharden.recipe import AugmentSpec, DataSpec

# (one example, its stateless seed pair) -> the augmented example, all tf.Tensors
SampleMap = Callable[..., object]
AugmentationFactory = Callable[[Dataset, DataSpec, AugmentSpec, int], "Augmentation"]


class Augmentation:
    """No augmentation: the stored inputs every epoch, no per-example map."""

    def epoch_inputs(self, x_train: np.ndarray, epoch: int) -> np.ndarray:
        return x_train

    def sample_map(self) -> SampleMap | None:
        return None


@dataclass
class ImageAugmentation(Augmentation):
    """Pad-and-crop by `crop` pixels and a left-right flip, drawn per example from its seed."""

    crop: int
    flip: bool

    def sample_map(self) -> SampleMap | None:
        if not (self.crop or self.flip):
            return None
        return lambda x, seed: augment_image(x, seed, self.crop, self.flip)


def augment_image(x, seed, crop: int, flip: bool):
    """One image, reflect-padded by `crop` and cropped back, then maybe flipped; stateless in `seed`."""
    from tinyharden._tf import tf

    if crop:
        h, w = x.shape[0], x.shape[1]
        padded = tf.pad(x, [[crop, crop], [crop, crop], [0, 0]], mode="REFLECT")
        x = tf.image.stateless_random_crop(padded, [h, w, x.shape[2]], seed=seed)
    if flip:
        x = tf.image.stateless_random_flip_left_right(x, seed=seed + 1)
    return x


def refuse_image_settings(ds: Dataset, aug: AugmentSpec) -> None:
    if ds.kind != "image" and (aug.crop or aug.flip):
        raise UserError(f"train.augment.crop/flip are image augmentations, but {ds.name} is {ds.kind}; remove them")


def refuse_audio_settings(ds: Dataset, aug: AugmentSpec) -> None:
    if aug.noise or aug.shift_ms:
        raise UserError(f"train.augment.noise/shift_ms augment audio features, but {ds.name} is "
                        f"{ds.kind}; remove them (waveform-space training is not supported)")


def image_augmentation(ds: Dataset, spec: DataSpec, aug: AugmentSpec, seed: int) -> Augmentation:
    """The image datasets' hook: train.augment.crop / flip."""
    refuse_image_settings(ds, aug)
    refuse_audio_settings(ds, aug)
    return ImageAugmentation(aug.crop, aug.flip)


def augmentation_for(ds: Dataset, spec: DataSpec, aug: AugmentSpec, seed: int) -> Augmentation:
    """The augmentation the dataset's registry entry provides; a dataset without one takes no settings."""
    from tinyharden.registry import DATASETS

    factory: AugmentationFactory | None = DATASETS.attribute(ds.name, "augment") if ds.name in DATASETS else None
    if factory is not None:
        return factory(ds, spec, aug, seed)
    chosen = [k for k, v in aug.model_dump().items() if v != AugmentSpec.model_fields[k].default and k != "noise_volume"]
    if chosen:
        raise UserError(f"train.augment.{'/'.join(chosen)} is set but {ds.name} has no training augmentation; remove it")
    return Augmentation()
