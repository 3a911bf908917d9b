"""The one place TensorFlow is imported.

QKeras 0.9 is written for Keras 2, and TensorFlow 2.21 ships Keras 3 as `tf.keras`
unless TF_USE_LEGACY_KERAS=1 is set *before* TensorFlow is first imported. Every
tinyharden module that needs TensorFlow imports it from here, so the variable is
always set in time. Importing this module costs seconds: the CLI imports it only
inside the commands that need it.
"""
import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # C++ info lines drown the CLI's own output

import warnings  # noqa: E402

# ART warns at import that PyTorch is absent; we never use its PyTorch parts.
warnings.filterwarnings("ignore", message="PyTorch not found")
# QKeras serializes quantizers through keras.constraints.serialize, which warns each time.
warnings.filterwarnings("ignore", message=".*keras.constraints.serialize.*")
warnings.filterwarnings("ignore", message=".*saving your model as an HDF5 file.*")

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

tf.get_logger().setLevel("ERROR")

if not tf.keras.__name__.startswith("tf_keras"):  # pragma: no cover - guards a broken install
    raise ImportError(
        "tensorflow was imported before tinyharden could set TF_USE_LEGACY_KERAS=1; "
        "import tinyharden first or set TF_USE_LEGACY_KERAS=1 in the environment"
    )

__all__ = ["tf", "keras"]
