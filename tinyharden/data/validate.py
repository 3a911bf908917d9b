"""Checking dataset files and arrays before anything trains or a run folder is made.

    >>> import numpy as np
    >>> check_pair("d.npz", "x", np.zeros((2, 4), np.float32), "y", np.array([0, 1]), num_classes=2)

Every loader reads npz members through `open_npz` / `read_member`, which turn a
truncated, zero-byte or foreign file into a one-line `UserError` naming the file and the
member, and checks each (inputs, labels) pair with `check_pair`. `check_dataset` then
checks the assembled splits (shapes agree, labels in range, lengths match, values
finite), so no loader can hand the trainer or an attack data that would crash late or
give a silently wrong figure.
"""
from __future__ import annotations

import contextlib
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from tinyharden.errors import UserError

# What numpy raises for damaged npz files: a zero-byte file is EOFError, a truncated one
# BadZipFile or zlib.error, a member of the wrong format ValueError.
NPZ_ERRORS = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error, RuntimeError)


@contextlib.contextmanager
def open_npz(path: Path, *, fix: str) -> Iterator[np.lib.npyio.NpzFile]:
    """The npz file at `path`, opened without pickles; damage is a `UserError` ending in `fix`."""
    path = Path(path)
    if path.is_file() and path.stat().st_size == 0:
        raise UserError(f"'{path}' is empty (0 bytes); {fix}")
    try:
        z = np.load(path, allow_pickle=False)
    except NPZ_ERRORS as exc:
        raise UserError(f"'{path}' is not a readable npz file ({type(exc).__name__}: {str(exc)[:100]}); {fix}") from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise UserError(f"'{path}' is a single .npy array, not an npz archive of named members; {fix}")
    with z:
        yield z


def read_member(z, path: Path, key: str, *, fix: str) -> np.ndarray:
    """Member `key` of the open npz `z`, fully read (so truncation shows here, not mid-training)."""
    if key not in z.files:
        raise UserError(f"'{path}' has no member '{key}' (has {', '.join(z.files) or 'none'}); {fix}")
    try:
        return np.asarray(z[key])
    except NPZ_ERRORS as exc:
        raise UserError(f"'{path}': member '{key}' is damaged ({type(exc).__name__}: {str(exc)[:100]}); {fix}") from None


def _finite(x: np.ndarray) -> bool:
    # NaN and inf propagate through a float64 sum: one pass, no boolean copy of the array.
    return bool(np.isfinite(np.sum(x, dtype=np.float64)))


def _labels(where: str, y: np.ndarray, num_classes: int | None) -> None:
    if y.ndim == 2 and y.shape[1] == 1:
        y = y.reshape(-1)
    if y.ndim != 1:
        raise UserError(f"{where} has shape {list(y.shape)}; labels must be one integer class per sample, shape (N,)")
    if y.dtype.kind not in "iuf" and y.dtype != bool:
        raise UserError(f"{where} holds {y.dtype} values; labels must be integers")
    if y.dtype.kind == "f" and (not np.all(np.isfinite(y)) or np.any(y != np.round(y))):
        raise UserError(f"{where} holds non-integer values; labels must be integer class indices")
    if len(y) and num_classes is not None and (y.min() < 0 or y.max() >= num_classes):
        raise UserError(f"{where} has labels from {int(y.min())} to {int(y.max())}, outside 0..{num_classes - 1}; "
                        f"relabel the classes to 0..{num_classes - 1}")


def check_pair(path, x_key: str, x: np.ndarray, y_key: str, y: np.ndarray, *, num_classes: int | None,
               shape: Sequence[int] | None = None, dtypes: str = "iuf", min_samples: int = 1) -> None:
    """Inputs `x` and labels `y` read from `path` (members `x_key`, `y_key`) fit together."""
    if x.dtype.kind not in dtypes:
        kinds = {"u": "unsigned integers such as uint8 pixels", "iuf": "numbers"}.get(dtypes, f"numpy kind {dtypes}")
        raise UserError(f"'{path}': member '{x_key}' holds {x.dtype} values; the inputs must be {kinds}")
    if x.ndim < 2:
        raise UserError(f"'{path}': member '{x_key}' has shape {list(x.shape)}; inputs need a sample axis and a feature axis")
    if shape is not None and tuple(x.shape[1:]) != tuple(shape):
        raise UserError(f"'{path}': member '{x_key}' has samples of shape {list(x.shape[1:])}, expected {list(shape)}")
    if len(x) != len(y):
        raise UserError(f"'{path}': member '{x_key}' has {len(x)} samples but '{y_key}' has {len(y)} labels; "
                        "they must have one label per sample")
    if len(x) < min_samples:
        raise UserError(f"'{path}': member '{x_key}' has no samples; restore the file")
    _labels(f"'{path}': member '{y_key}'", np.asarray(y), num_classes)
    if x.dtype.kind == "f" and not _finite(x):
        raise UserError(f"'{path}': member '{x_key}' contains NaN or infinite values; clean the data")


def check_dataset(ds, *, source: str) -> None:
    """Every split of the assembled `Dataset` `ds` (read from `source`) is usable."""
    shape = tuple(ds.x_train.shape[1:])
    for split in ("train", "val", "test"):
        x, y = getattr(ds, f"x_{split}"), getattr(ds, f"y_{split}")
        where = f"{source}: the {split} split"
        if not isinstance(x, np.ndarray) or not isinstance(y, np.ndarray):
            raise UserError(f"{where} is not an array; the loader returned {type(x).__name__}")
        if split != "val" and len(x) == 0:
            raise UserError(f"{where} is empty; the dataset needs train and test samples")
        if tuple(x.shape[1:]) != shape:
            raise UserError(f"{where} has samples of shape {list(x.shape[1:])} but the train split {list(shape)}; "
                            "every split must have the same input shape")
        if len(x) != len(y):
            raise UserError(f"{where} has {len(x)} inputs but {len(y)} labels; they must have one label per sample")
        _labels(f"{where}'s labels", y, ds.num_classes)
        if x.dtype.kind == "f" and len(x) and not _finite(x):
            raise UserError(f"{where} contains NaN or infinite inputs; clean the data")
