"""Running an exported model with the TensorFlow Lite Micro interpreter (tflite-micro).

This is the interpreter a microcontroller runs (reference kernels), so its predictions
are what the device computes and its arena is what the device must reserve. The arena
figure is read from TFLM's RecordingMicroAllocator, which prints it on the C side's
stderr; we capture that file descriptor. TFLM crashes the process (not an exception)
when the arena given to it is too small, so the arena we hand it is an upper bound
computed from the flatbuffer's tensor sizes, never a guess to be retried.

This module imports no TensorFlow: tflite-micro is a package of its own.
"""
from __future__ import annotations

import re
from typing import Callable

import numpy as np

from tinyharden.errors import UserError
from tinyharden.export.capture import captured_fd

# TFLite schema TensorType -> bytes per element (unknown types count 8 to stay an upper bound).
_TYPE_BYTES = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 6: 1, 7: 2, 9: 1, 10: 8, 11: 16, 12: 8, 13: 1, 14: 8, 15: 4, 16: 2, 17: 1}


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype=np.int8) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.clip(np.round(np.asarray(x, np.float32) / scale) + zero_point, info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return ((q.astype(np.float32) - zero_point) * scale).astype(np.float32)


def _schema():
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema_fb

    return schema_fb


def safe_arena_size(model_bytes: bytes) -> int:
    """An arena certainly large enough: every tensor twice, plus per-op and per-tensor bookkeeping."""
    schema_fb = _schema()
    try:
        model = schema_fb.ModelT.InitFromObj(schema_fb.Model.GetRootAsModel(bytearray(model_bytes), 0))
    except Exception as exc:
        raise UserError(f"not a valid TFLite flatbuffer ({type(exc).__name__}); re-export the model") from None
    total, n_ops, n_tensors = 0, 0, 0
    for sg in model.subgraphs or []:
        n_ops += len(sg.operators or [])
        for t in sg.tensors or []:
            n_tensors += 1
            total += int(np.prod(t.shape)) * _TYPE_BYTES.get(t.type, 8) if t.shape is not None else 8
    return 2 * total + 512 * n_ops + 128 * n_tensors + 64 * 1024


def _details(d: dict) -> dict:
    qp = d.get("quantization_parameters", {})
    scales, zps = list(qp.get("scales", [])), list(qp.get("zero_points", []))
    return {
        "shape": [int(s) for s in d["shape"]],
        "dtype": np.dtype(d["dtype"]).name,
        "scale": float(scales[0]) if scales else 0.0,
        "zero_point": int(zps[0]) if zps else 0,
    }


class MicroModel:
    """One TFLM interpreter around an int8 flatbuffer with one input and one output."""

    def __init__(self, model_bytes: bytes, arena_size: int | None = None):
        from tflite_micro.python.tflite_micro import runtime

        self.model_bytes = bytes(model_bytes)
        self.arena_size = arena_size or safe_arena_size(self.model_bytes)
        try:
            self._interp = runtime.Interpreter.from_bytes(self.model_bytes, arena_size=self.arena_size)
        except Exception as exc:
            raise UserError(f"TensorFlow Lite Micro cannot load the model: {str(exc).strip()[:200]}") from None
        self.input = _details(self._interp.get_input_details(0))
        self.output = _details(self._interp.get_output_details(0))
        self._dtype = np.dtype(self.input["dtype"])

    def invoke_raw(self, xq: np.ndarray) -> np.ndarray:
        """One sample, already quantized, shape = the input tensor's; raw output tensor."""
        self._interp.set_input(xq.reshape(self.input["shape"]), 0)
        self._interp.invoke()
        return np.array(self._interp.get_output(0)).reshape(-1)

    def predict(self, x: np.ndarray, progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Dequantized outputs (N, classes) for float inputs in the model's own units."""
        x = np.asarray(x, np.float32)
        q = quantize(x, self.input["scale"], self.input["zero_point"], self._dtype) \
            if self._dtype.kind == "i" or self._dtype.kind == "u" else x
        out = np.empty((len(x), int(np.prod(self.output["shape"][1:]))), np.float32)
        for i in range(len(x)):
            raw = self.invoke_raw(q[i])
            out[i] = dequantize(raw, self.output["scale"], self.output["zero_point"]) \
                if raw.dtype.kind in "iu" else raw
            if progress is not None:
                progress(i + 1)
        return out

    def arena(self) -> dict[str, int]:
        """Arena bytes as recorded by TFLM after an inference: total, head (activations), tail (persistent)."""
        self.invoke_raw(np.zeros(self.input["shape"], self._dtype))
        with captured_fd(2) as text:
            self._interp.print_allocations()
        report = "".join(text)
        found = {k: int(v) for k, v in re.findall(r"Arena allocation (total|head|tail) (\d+) bytes", report)}
        if "total" not in found:
            raise RuntimeError(f"TFLM printed no arena figures (got {report[:200]!r})")
        return {"total": found["total"], "head": found.get("head", 0), "tail": found.get("tail", 0)}
