"""Datasets: each returns float32 inputs in a documented range and integer labels.

`load_dataset(spec, seed)` dispatches on `spec.dataset`; splits are deterministic given
the seed. Importing this package does not import TensorFlow.
"""
from tinyharden.data.base import Dataset, find_data_dir, load_dataset

__all__ = ["Dataset", "find_data_dir", "load_dataset"]
