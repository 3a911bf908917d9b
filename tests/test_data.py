"""Dataset loaders on small real slices of ../shared/data, and the safe CIFAR pickle reader."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from tinyharden.data import load_dataset
from tinyharden.data.cifar10 import _read_pickle_batch, load_cifar10_arrays
from tinyharden.errors import UserError
from tinyharden.recipe import DataSpec


def _cifar_slice(shared, n=50):
    with np.load(shared / "cifar10" / "cifar10_test.npz", allow_pickle=False) as z:
        return z["x_test"][:n], z["y_test"][:n]


def _write_npz_layout(folder, x, y):
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "cifar10_test.npz", x_test=x, y_test=y)
    for i in range(1, 6):
        np.savez(folder / f"cifar10_train_batch{i}.npz", x_train=x, y_train=y)


def _write_pickle_layout(folder, x, y):
    folder.mkdir(parents=True, exist_ok=True)
    flat = x.transpose(0, 3, 1, 2).reshape(len(x), -1)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": flat, b"labels": y.tolist()}, f)


def test_cifar10_npz_and_pickle_layouts_give_the_same_arrays(shared, tmp_path):
    x, y = _cifar_slice(shared)
    _write_npz_layout(tmp_path / "npz", x, y)
    _write_pickle_layout(tmp_path / "cifar-10-batches-py", x, y)
    a = load_cifar10_arrays(str(tmp_path / "npz"))
    b = load_cifar10_arrays(str(tmp_path / "cifar-10-batches-py"))
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    np.testing.assert_array_equal(a[2], x)
    assert a[2][0, 0, 0].tolist() == [158, 112, 49]  # the published first test pixel
    ds = load_dataset(DataSpec(dataset="cifar10", path=str(tmp_path / "npz"), val_fraction=0.1), seed=3)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert ds.x_train.min() >= 0 and ds.x_train.max() <= 1 and ds.input_range == (0.0, 1.0)
    assert len(ds.y_val) == 25 and len(ds.y_train) == 225
    again = load_dataset(DataSpec(dataset="cifar10", path=str(tmp_path / "npz"), val_fraction=0.1), seed=3)
    np.testing.assert_array_equal(ds.y_val, again.y_val)  # deterministic split


def test_cifar10_loads_real_data_and_caches(shared):
    ds = load_dataset(DataSpec(dataset="cifar10", val_fraction=0.02, limit_test=100), seed=0)
    assert ds.x_test.shape == (100, 32, 32, 3) and len(ds.y_train) == 49000
    assert ds.y_test.dtype == np.int64 and set(np.unique(ds.y_train)) == set(range(10))


def test_cifar_pickle_with_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    p = tmp_path / "data_batch_1"
    p.write_bytes(pickle.dumps({b"data": Evil(), b"labels": [1]}))
    with pytest.raises(UserError, match="refusing to load builtins.print"):
        _read_pickle_batch(p)


def test_missing_or_empty_data_folder(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_dataset(DataSpec(dataset="cifar10", path=str(tmp_path / "nothing")))
    with pytest.raises(UserError, match="no CIFAR-10 files"):
        load_dataset(DataSpec(dataset="cifar10", path=str(tmp_path)))


def test_digits_is_embedded_and_deterministic():
    a = load_dataset(DataSpec(dataset="digits"), seed=1)
    b = load_dataset(DataSpec(dataset="digits"), seed=1)
    c = load_dataset(DataSpec(dataset="digits"), seed=2)
    assert a.x_train.shape[1:] == (8, 8, 1) and a.x_train.max() <= 1.0
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.y_test, c.y_test)
    assert len(a.y_train) + len(a.y_val) + len(a.y_test) == 1797


def test_synthetic_has_any_shape_and_disjoint_test():
    ds = load_dataset(DataSpec(dataset="synthetic", shape=[5, 7, 2], num_classes=3, samples=100), seed=0)
    assert ds.x_train.shape[1:] == (5, 7, 2) and ds.num_classes == 3
    assert not any(np.array_equal(t, u) for t in ds.x_test[:10] for u in ds.x_train)


def test_cifar_pickle_with_object_array_is_refused(tmp_path):
    p = tmp_path / "data_batch_1"
    p.write_bytes(pickle.dumps({b"data": np.array([object()], dtype=object), b"labels": [1]}))
    with pytest.raises(UserError):
        _read_pickle_batch(p)
