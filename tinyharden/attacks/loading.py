"""Model files -> attack `Target`s: Keras (.h5/.keras), .tflite, and speech waveforms.

    target, info = build_target(Path("runs/x/model.h5"), kind="keras", dataset=ds)

`info` is the attack.json `target` record. Every target is checked against the dataset
(input shape and class count) before any attack runs, so a model trained on other data
fails here with a one-line error instead of deep inside an attack.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from tinyharden.attacks.target import Target
from tinyharden.data.base import Dataset, check_model_fits
from tinyharden.errors import UserError

Range = tuple[float, float]


def frontend_model(model, keras):
    """Waveform in [0,1] units -> [-1,1] -> MFCC features -> `model`, one graph."""
    from tinyharden.data import frontend

    class MFCC(keras.layers.Layer):
        def call(self, w):
            return frontend.mfcc(w)

    inp = keras.Input(shape=(frontend.CLIP_SAMPLES,), name="waveform01")
    w = keras.layers.Rescaling(2.0, offset=-1.0, name="to_pcm")(inp)
    return keras.Model(inp, model(MFCC(name="mfcc")(w)), name=f"{model.name}_waveform")


def _load_keras(path: Path, unsafe: bool):
    from tinyharden.models import load_model, logits_model

    return logits_model(load_model(path, unsafe=unsafe))


def _waveform(model, rng: Range, info: dict[str, Any] | None = None):
    """`model` behind the differentiable front end when it takes MFCC features."""
    from tinyharden._tf import keras
    from tinyharden.data import frontend

    if tuple(model.input_shape[1:]) != frontend.FEATURE_SHAPE:
        return model, rng
    if info is not None:
        info["frontend"] = "tinyharden.data.frontend.mfcc (differentiable), waveform [0,1] -> [-1,1]"
    return frontend_model(model, keras), (0.0, 1.0)  # the wrapper maps [0,1] to [-1,1] itself


def build_target(path: Path, *, kind: str, dataset: Dataset, model_range: Range | None = None,
                 export_range: Range | None = None, space: str = "features", run_dir: Path | None = None,
                 unsafe: bool = False) -> tuple[Target, dict[str, Any]]:
    """The attack target for the model at `path` and its attack.json record."""
    info: dict[str, Any] = {"path": str(path), "kind": kind, "run_dir": str(run_dir) if run_dir else None}
    data_range = tuple(float(v) for v in dataset.input_range)
    if kind == "tflite":
        from tinyharden.attacks.tflite_target import TFLiteTarget

        rng = model_range or export_range or data_range
        target: Target = TFLiteTarget(path, rng)
    else:
        from tinyharden.attacks.target import KerasTarget

        m = _load_keras(path, unsafe)
        rng = model_range or data_range
        if space == "waveform":
            m, rng = _waveform(m, rng, info)
        target = KerasTarget(m, input_range=rng, name=path.parent.name if path.name == "model.h5" else path.name)
    info["input_range"] = list(rng)
    check_model_fits(tuple(target.input_shape), target.num_classes, dataset, str(path))
    info.update(name=target.name, input_shape=list(target.input_shape), num_classes=target.num_classes,
                differentiable=bool(target.differentiable))
    if hasattr(target, "has_stochastic_quantizers"):
        info["stochastic_quantizers"] = target.has_stochastic_quantizers()
    return target, info


def build_source(path: Path, *, dataset: Dataset, model_range: Range | None = None, space: str = "features",
                 unsafe: bool = False) -> Target:
    """The differentiable model a transfer attack crafts its examples on."""
    from tinyharden.attacks.target import KerasTarget

    if not path.exists():
        raise UserError(f"transfer source '{path}' not found; pass a run folder or a .h5/.keras model file as the source")
    if path.suffix.lower() == ".tflite":
        raise UserError("the transfer source must be a Keras model (its gradients are needed), not a .tflite file")
    data_range = tuple(float(v) for v in dataset.input_range)
    if path.is_dir():
        rng = data_range  # a run folder's model sees the dataset's own units
        path = path / "model.h5"
    else:
        rng = model_range or data_range
    m = _load_keras(path, unsafe)
    if space == "waveform":
        m, rng = _waveform(m, rng)
    return KerasTarget(m, input_range=rng, name=f"{path.parent.name}/{path.name}")
