"""Speech Commands' training augmentation hook: MLPerf's time shift and background noise.

    aug = speech_augmentation(ds, recipe.data, recipe.train.augment, seed=0)
    x_epoch = aug.epoch_inputs(ds.x_train, epoch=1)   # MFCCs of freshly shifted, noised clips

The clips are re-augmented every epoch on the raw waveforms and passed through the front
end again, as MLPerf's KWS training does; each epoch's draw comes from (seed, epoch), so a
resumed run sees the inputs it would have seen.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinyharden.data.augment import Augmentation, refuse_audio_settings, refuse_image_settings
from tinyharden.data.base import Dataset
from tinyharden.recipe import AugmentSpec, DataSpec


@dataclass
class SpeechAugmentation(Augmentation):
    """Training clips (in x_train's order) and noise recordings, re-augmented per epoch."""

    waveforms: np.ndarray
    noise: dict[str, np.ndarray]
    settings: AugmentSpec
    seed: int

    def epoch_inputs(self, x_train: np.ndarray, epoch: int) -> np.ndarray:
        from tinyharden.data import frontend
        from tinyharden.data.speech_commands import augment_waveforms

        s = self.settings
        noisy = augment_waveforms(self.waveforms, np.random.default_rng([self.seed, epoch, 7]), noise_prob=s.noise,
                                  noise_volume=s.noise_volume, shift_ms=s.shift_ms, noise_clips=self.noise)
        return frontend.mfcc_numpy(noisy)


def speech_augmentation(ds: Dataset, spec: DataSpec, aug: AugmentSpec, seed: int) -> Augmentation:
    """train.augment.noise / noise_volume / shift_ms for the feature space; no image settings."""
    refuse_image_settings(ds, aug)
    if not (aug.noise or aug.shift_ms):
        return Augmentation()
    if ds.kind != "audio_features":
        refuse_audio_settings(ds, aug)
    from tinyharden.data.speech_commands import train_waveforms

    wavs, noise = train_waveforms(spec, seed)
    if "train_kept" in ds.meta:  # data.limit_train kept these rows of x_train
        wavs = wavs[ds.meta["train_kept"]]
    return SpeechAugmentation(wavs, noise, aug, seed)
