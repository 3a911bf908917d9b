"""The one place TensorFlow is imported.

QKeras 0.9 is written for Keras 2, and TensorFlow 2.21 ships Keras 3 as `tf.keras`
unless TF_USE_LEGACY_KERAS=1 is set *before* TensorFlow is first imported. Every
tinyharden module that needs TensorFlow imports it from here, so the variable is
always set in time. Importing this module costs seconds: the CLI imports it only
inside the commands that need it.
"""
import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # C++ info lines drown the CLI's own output

import warnings  # noqa: E402

VERBOSE_ENV = "TINYHARDEN_VERBOSE"


@contextlib.contextmanager
def quiet_native_logs() -> Iterator[None]:
    """Send what C++ code writes to file descriptor 2 to a scratch file while the block runs.

    Example: ``with quiet_native_logs(): converter.convert()``

    TensorFlow 2.21 logs through absl before it reads TF_CPP_MIN_LOG_LEVEL (oneDNN, cudart and cuInit lines on
    every start), so only the descriptor can be silenced. Set ``TINYHARDEN_VERBOSE=1`` (the CLI's verbose option)
    to keep them. If the block raises, what was captured is written back so a failing import still explains itself.
    """
    if os.environ.get(VERBOSE_ENV) == "1":
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            sink.seek(0)
            os.write(2, sink.read())
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)

# ART warns at import that PyTorch is absent; we never use its PyTorch parts.
warnings.filterwarnings("ignore", message="PyTorch not found")
# QKeras serializes quantizers through keras.constraints.serialize, which warns each time.
warnings.filterwarnings("ignore", message=".*keras.constraints.serialize.*")
warnings.filterwarnings("ignore", message=".*saving your model as an HDF5 file.*")

with quiet_native_logs():
    import tensorflow as tf  # noqa: E402
    import tf_keras as keras  # noqa: E402

    tf.config.list_physical_devices("GPU")  # the cuInit failure line is printed here, not at import

tf.get_logger().setLevel("ERROR")

if not tf.keras.__name__.startswith("tf_keras"):  # pragma: no cover - guards a broken install
    raise ImportError(
        "tensorflow was imported before tinyharden could set TF_USE_LEGACY_KERAS=1; "
        "import tinyharden first or set TF_USE_LEGACY_KERAS=1 in the environment"
    )


def _import_qkeras() -> None:
    """Import QKeras once, here, without the Keras 3 detour of its dependency.

    tensorflow_model_optimization (which QKeras imports) probes `from keras.src.engine import
    base_layer`: that imports all of Keras 3, scikit-learn and matplotlib.pyplot with it (about
    1.3 s of every process here) only to fail with ImportError, after which it falls back to
    None. With `keras` marked absent for that one import the probe fails at once and the same
    fallback is taken; the mark is removed afterwards, so a later `import keras` works.
    """
    if "qkeras" in sys.modules or "keras" in sys.modules:
        return
    sys.modules["keras"] = None  # type: ignore[assignment]
    try:
        import qkeras  # noqa: F401
    finally:
        if sys.modules.get("keras", 0) is None:
            del sys.modules["keras"]


_import_qkeras()

__all__ = ["tf", "keras", "quiet_native_logs", "VERBOSE_ENV"]
