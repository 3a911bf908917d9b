"""The Dataset container, data-folder discovery and the dispatcher."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tinyharden.errors import UserError
from tinyharden.dataspec import DataSpec


@dataclass
class Dataset:
    """Arrays of one dataset, split. Inputs are float32 in `input_range`, labels int64."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    input_range: tuple[float, float] = (0.0, 1.0)
    class_names: list[str] = field(default_factory=list)
    kind: str = "image"  # image | audio_features | tabular
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name, "kind": self.kind, "input_shape": list(self.input_shape),
            "input_range": list(self.input_range), "num_classes": self.num_classes,
            "train": len(self.y_train), "val": len(self.y_val), "test": len(self.y_test),
            **{k: v for k, v in self.meta.items() if isinstance(v, (str, int, float, bool))},
        }


def _repo_shared() -> Path:
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


def data_roots() -> list[Path]:
    roots = []
    env = os.environ.get("TINYHARDEN_DATA")
    if env:
        roots.append(Path(env))
    roots += [Path.cwd().parent / "shared" / "data", Path.cwd() / "data", _repo_shared()]
    seen, out = set(), []
    for r in roots:
        key = str(r.resolve()) if r.exists() else str(r)
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def find_data_dir(name: str, path: str | None = None) -> Path | None:
    """The folder for dataset `name`: the one given, else $TINYHARDEN_DATA/<name>, ../shared/data/<name>."""
    if path:
        p = Path(path).expanduser()
        if not p.exists():
            raise UserError(f"data folder '{p}' for {name} does not exist; point data.path at the folder holding the {name} files")
        return p
    for root in data_roots():
        if (root / name).is_dir():
            return root / name
    return None


def split_indices(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic (keep, held_out) index split; `fraction` of n is held out."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    k = int(round(n * fraction))
    return np.sort(perm[k:]), np.sort(perm[:k])


def check_model_fits(input_shape: tuple, num_classes: int | None, dataset: Dataset, source: str, *,
                     fix: str = "pass the dataset the model was trained on") -> None:
    """Raise a UserError unless a model of this input shape (and class count) fits `dataset`.

        check_model_fits((8, 8, 1), 10, load_dataset(DataSpec(dataset="digits")), "m.h5")
    """
    if tuple(input_shape) != tuple(dataset.input_shape):
        raise UserError(f"model '{source}' takes inputs of shape {tuple(input_shape)} but {dataset.name} has "
                        f"{tuple(dataset.input_shape)}; {fix}")
    if num_classes is not None and int(num_classes) != dataset.num_classes:
        raise UserError(f"model '{source}' outputs {num_classes} classes but {dataset.name} has "
                        f"{dataset.num_classes}; {fix}")


def stratified_limit(y: np.ndarray, limit: int | None, seed: int) -> np.ndarray:
    """Sorted indices of a seeded random subset of at most `limit` samples (not stratified by class:
    on the shuffled splits used here a random subset keeps the classes balanced to within a few samples)."""
    idx = np.arange(len(y))
    if limit is None or limit >= len(y):
        return idx
    rng = np.random.default_rng(seed)
    return np.sort(rng.permutation(len(y))[:limit])


def load_dataset(spec: DataSpec, seed: int = 0) -> Dataset:
    """Load the dataset a recipe's `data:` section describes.

        load_dataset(DataSpec(dataset="digits"), seed=0).input_shape   # (8, 8, 1)
    """
    from tinyharden.registry import DATASETS

    ds = DATASETS.get(spec.dataset)(spec, seed)
    if spec.limit_train:
        keep = stratified_limit(ds.y_train, spec.limit_train, seed)
        ds.x_train, ds.y_train = ds.x_train[keep], ds.y_train[keep]
        ds.meta["train_kept"] = keep  # lets per-sample side data (e.g. raw audio) follow the limit
    if spec.limit_test:
        keep = stratified_limit(ds.y_test, spec.limit_test, seed + 1)
        ds.x_test, ds.y_test = ds.x_test[keep], ds.y_test[keep]
    from tinyharden.data.validate import check_dataset

    check_dataset(ds, source=f"{spec.dataset} ({spec.path})" if spec.path else spec.dataset)
    return ds
