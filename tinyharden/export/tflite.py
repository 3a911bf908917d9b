"""QKeras model -> full-integer int8 TensorFlow Lite flatbuffer.

The model goes through its float twin (quantized weights baked in, see `twin`), then the
TFLite converter quantizes weights per channel and calibrates every activation on a few
hundred training inputs. Inputs and outputs are int8 too, so the model runs on a
microcontroller with no float code at all.
"""
from __future__ import annotations

import warnings

import numpy as np

from tinyharden._tf import tf
from tinyharden.errors import UserError
from tinyharden.export.capture import captured_fd
from tinyharden.export.twin import quantized_twin


def convert_int8(keras_model, calib_inputs: np.ndarray) -> bytes:
    """Convert a plain-Keras model to int8 TFLite, calibrated on `calib_inputs` (model units)."""
    calib_inputs = np.asarray(calib_inputs, dtype=np.float32)
    if len(calib_inputs) == 0:
        raise UserError("no calibration inputs; the training split is empty (raise data.limit_train or the calibration count)")

    def representative():
        for i in range(len(calib_inputs)):
            yield [calib_inputs[i:i + 1]]

    converter = tf.lite.TFLiteConverter.from_keras_model(keras_model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    try:
        # The converter prints progress lines on the C++ stderr and warns about input
        # statistics it then takes from the representative data: neither helps a user.
        with captured_fd(2), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return bytes(converter.convert())
    except Exception as exc:  # the converter raises ConverterError, RuntimeError, ValueError...
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        detail = next((ln for ln in lines if "error" in ln.lower()), lines[0] if lines else type(exc).__name__)
        raise UserError(
            f"TFLite int8 conversion of '{keras_model.name}' failed: {detail[:200]}; "
            "the model must use TFLite int8 builtin ops only") from None


def export_tflite(model, calib_inputs: np.ndarray) -> tuple[bytes, object]:
    """(int8 flatbuffer, float twin) of a QKeras or plain Keras model."""
    twin = quantized_twin(model)
    return convert_int8(twin, calib_inputs), twin
