"""CIFAR-10: 32x32x3 images as float32 in [0, 1], labels 0..9.

Sources, first found wins:
1. a folder with the npz layout of ../shared/data/cifar10 (`cifar10_test.npz`,
   `cifar10_train_batch{1..5}.npz`);
2. a folder holding the original `cifar-10-batches-py` pickles (or that folder itself),
   read with a restricted unpickler that accepts only plain dicts, lists, strings, bytes
   and numbers: a pickle that asks for any class or function is refused;
3. the Keras download, when no folder is found and the machine is online.
Decoded uint8 arrays are cached as .npy under $TINYHARDEN_CACHE (default
~/.cache/tinyharden) so later loads take a fraction of a second.
"""
from __future__ import annotations

import hashlib
import io
import os
import pickle
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from typing import Literal

import numpy as np

from tinyharden.data.base import Dataset, find_data_dir, split_indices
from tinyharden.errors import UserError
from tinyharden.dataspec import DataSpec

CLASS_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


# The original batches hold a dict of lists, bytes and one NumPy uint8 array; rebuilding
# that array needs exactly these globals. Anything else could run code and is refused.
_ARRAY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
}


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ARRAY_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only plain arrays are accepted")


def _read_pickle_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as f:
            d = _PlainUnpickler(io.BytesIO(f.read()), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise UserError(f"'{path}' is not a plain CIFAR-10 batch ({exc}); use the original cifar-10-batches-py files") from None
    if not isinstance(d, dict) or b"data" not in d or b"labels" not in d:
        raise UserError(f"'{path}' lacks the 'data' and 'labels' entries of a CIFAR-10 batch")
    data = d[b"data"]
    if not isinstance(data, (np.ndarray, bytes, bytearray)) or (isinstance(data, np.ndarray) and data.dtype != np.uint8):
        raise UserError(f"'{path}': 'data' is {type(data).__name__}, not the uint8 pixel array of a CIFAR-10 batch")
    data = np.frombuffer(data.tobytes() if isinstance(data, np.ndarray) else bytes(data), np.uint8)
    x = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    y = np.asarray(d[b"labels"], dtype=np.uint8)
    return x, y


def _npz_arrays(folder: Path):
    from tinyharden.data.validate import check_pair, open_npz, read_member

    fix = "restore it from ../shared/data/cifar10"

    def pair(path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
        with open_npz(path, fix=fix) as z:
            x, y = read_member(z, path, f"x_{split}", fix=fix), read_member(z, path, f"y_{split}", fix=fix)
        check_pair(path, f"x_{split}", x, f"y_{split}", y.reshape(-1) if y.ndim == 2 else y, num_classes=10,
                   shape=(32, 32, 3), dtypes="u")
        return x, y.reshape(-1)

    batches = [folder / f"cifar10_train_batch{i}.npz" for i in range(1, 6)]
    for p in batches:
        if not p.is_file():
            raise UserError(f"'{p}' is missing; the npz layout needs cifar10_test.npz and cifar10_train_batch1..5.npz")
    # The shared files are LZMA-compressed (about 3 s of decompression each) and lzma releases the GIL,
    # so the six files decompress side by side on a multi-core machine.
    with ThreadPoolExecutor(max_workers=min(6, os.cpu_count() or 1)) as pool:
        test = pool.submit(pair, folder / "cifar10_test.npz", "test")
        train = list(pool.map(pair, batches, ["train"] * len(batches)))
        x_test, y_test = test.result()
    return np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train]), x_test, y_test


def _pickle_arrays(folder: Path):
    xs, ys = zip(*[_read_pickle_batch(folder / f"data_batch_{i}") for i in range(1, 6)])
    x_test, y_test = _read_pickle_batch(folder / "test_batch")
    return np.concatenate(xs), np.concatenate(ys), x_test, y_test


def _source(folder: Path | None):
    if folder is not None:
        if (folder / "cifar10_test.npz").is_file():
            return "npz", folder
        for cand in (folder, folder / "cifar-10-batches-py"):
            if (cand / "test_batch").is_file():
                return "pickle", cand
        raise UserError(
            f"no CIFAR-10 files in '{folder}'; expected cifar10_test.npz + cifar10_train_batch1..5.npz "
            "or the cifar-10-batches-py folder")
    return "keras", None


def _cache_dir() -> Path:
    return Path(os.environ.get("TINYHARDEN_CACHE", Path.home() / ".cache" / "tinyharden"))


def _cache_key(kind: str, folder: Path | None) -> str:
    if folder is None:
        return "keras"
    stats = sorted((p.name, p.stat().st_size, int(p.stat().st_mtime)) for p in folder.iterdir() if p.is_file())
    return hashlib.sha1(repr((kind, str(folder.resolve()), stats)).encode()).hexdigest()[:16]


def load_cifar10_arrays(path: str | None = None):
    """(x_train, y_train, x_test, y_test) as uint8, from the first source found, cached."""
    folder = find_data_dir("cifar10", path)
    kind, folder = _source(folder)
    cache = _cache_dir() / "cifar10" / _cache_key(kind, folder)
    names = ("x_train", "y_train", "x_test", "y_test")
    if all((cache / f"{n}.npy").is_file() for n in names):
        try:
            return tuple(np.load(cache / f"{n}.npy", allow_pickle=False) for n in names)
        except (OSError, ValueError):
            pass  # a damaged cache is rebuilt below
    if kind == "npz":
        arrays = _npz_arrays(folder)
    elif kind == "pickle":
        arrays = _pickle_arrays(folder)
    else:
        try:
            from tinyharden._tf import keras

            (xtr, ytr), (xte, yte) = keras.datasets.cifar10.load_data()
        except Exception as exc:
            raise UserError(
                f"CIFAR-10 not found locally and the download failed ({type(exc).__name__}); "
                "set data.path (or $TINYHARDEN_DATA) to a folder holding cifar10/") from None
        arrays = (xtr, ytr.reshape(-1), xte, yte.reshape(-1))
    arrays = tuple(np.ascontiguousarray(a) for a in arrays)
    if arrays[0].shape[1:] != (32, 32, 3) or len(arrays[0]) != len(arrays[1]):
        raise UserError(f"CIFAR-10 arrays from {folder or 'the download'} have shape {arrays[0].shape}, expected (N, 32, 32, 3)")
    try:
        from tinyharden.workspace import atomic_path

        cache.mkdir(parents=True, exist_ok=True)
        for n, a in zip(names, arrays):
            with atomic_path(cache / f"{n}.npy") as tmp:
                with open(tmp, "wb") as f:
                    np.save(f, a)
    except OSError:
        pass  # caching is an optimization; a read-only home still works
    return arrays


class Cifar10Spec(DataSpec):
    """`data:` for CIFAR-10: the common keys (path, val_fraction, limits); its augmentation is train.augment.crop/flip."""

    dataset: Literal["cifar10"] = "cifar10"


def load_cifar10(spec: Cifar10Spec, seed: int) -> Dataset:
    xtr, ytr, xte, yte = load_cifar10_arrays(spec.path)
    keep, val = split_indices(len(ytr), spec.val_fraction, seed)

    def f(a):
        out = a.astype(np.float32)
        out /= 255.0  # in place: the same float32 division without a second 600 MB array
        return out

    return Dataset("cifar10", f(xtr[keep]), ytr[keep].astype(np.int64), f(xtr[val]), ytr[val].astype(np.int64),
                   f(xte), yte.astype(np.int64), num_classes=10, input_range=(0.0, 1.0),
                   class_names=CLASS_NAMES, kind="image")
