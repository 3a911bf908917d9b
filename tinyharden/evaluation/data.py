"""The samples an evaluation scores: a dataset's test split, or every clip of a folder.

    >>> from tinyharden.recipe import DataSpec
    >>> d = evaluation_data(DataSpec(dataset="digits"), seed=0, split="test")   # doctest: +SKIP
    >>> d.x.shape[1:], d.input_range                                            # doctest: +SKIP
    ((8, 8, 1), (0.0, 1.0))

split "test" is the recipe's held-out split (for speech, speaker-disjoint or data.test_path);
split "all" is every sample: for speech_commands every clip in the folder, plus `_silence_`
clips only when the folder holds background noise to cut them from; for other datasets the
train, validation and test splits together.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinyharden.errors import UserError

SPLITS = ("test", "all")


@dataclass
class EvalData:
    """Inputs in the dataset's own units, labels, and the names of the samples when known."""

    name: str
    split: str
    x: np.ndarray
    y: np.ndarray
    class_names: list[str]
    input_range: tuple[float, float]
    files: list[str] | None = None


def _speech_all(dspec) -> EvalData:
    from tinyharden.data import frontend
    from tinyharden.data import speech_commands as sc

    waveform = dspec.space == "waveform"
    pool = sc.load_clips(dspec.path, features=not waveform)
    if waveform:
        x, rng = sc.peak_normalize(np.asarray(pool["wav"])), (-1.0, 1.0)
    else:
        x, rng = np.asarray(pool["features"]), tuple(float(v) for v in frontend.FEATURE_RANGE)
    return EvalData("speech_commands", "all", x, np.asarray(pool["y"], np.int64), list(sc.LABELS), rng,
                    [str(f) for f in pool["files"]])


def evaluation_data(dspec, *, seed: int, split: str) -> EvalData:
    """The samples of `split` ("test" or "all") of the dataset `dspec` describes."""
    check_split(split)
    if split == "all" and dspec.dataset == "speech_commands":
        return _speech_all(dspec)
    from tinyharden.data import load_dataset

    if split == "all":
        dspec = dspec.model_copy(update={"limit_train": None, "limit_test": None})
    ds = load_dataset(dspec, seed)
    rng = (float(ds.input_range[0]), float(ds.input_range[1]))
    if split == "test":
        files = ds.meta.get("files_test") if len(ds.meta.get("files_test", [])) == len(ds.y_test) else None
        return EvalData(ds.name, "test", ds.x_test, ds.y_test, list(ds.class_names), rng, files)
    x = np.concatenate([ds.x_train, ds.x_val, ds.x_test])
    y = np.concatenate([ds.y_train, ds.y_val, ds.y_test])
    return EvalData(ds.name, "all", x, y, list(ds.class_names), rng, None)


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise UserError(f"split must be one of {', '.join(SPLITS)}, got '{split}'", option="split")


def with_split(ds, dspec, *, seed: int, split: str):
    """`ds` with its test arrays replaced by every sample when split is "all" (for attack and export)."""
    check_split(split)
    if split == "all":
        every = evaluation_data(dspec, seed=seed, split="all")
        ds.x_test, ds.y_test = every.x, every.y
    return ds
