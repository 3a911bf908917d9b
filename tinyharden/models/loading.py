"""Loading models users bring (.h5 / .keras / SavedModel) and our own run folders.

Every format is vetted by `safe_load.check_model_file` before Keras deserialises anything:
a model whose config carries code (a Lambda layer, an unknown class, ...) is refused unless
the user passes `--unsafe`. Loaded QKeras stochastic quantizers are
swapped for tinyharden's training-aware ones, so a loaded STQ model samples when it is
fine-tuned and is deterministic at inference.
"""
from __future__ import annotations

from pathlib import Path

from tinyharden._tf import keras, tf
import numpy as np

from tinyharden.errors import UserError
from tinyharden.interfaces import KerasModel
from tinyharden.footprint.summary import WEIGHT_QUANTIZERS
from tinyharden.models.safe_load import check_model_file
from tinyharden.quantization import quantizers as tq

MODEL_SUFFIXES = (".h5", ".hdf5", ".keras")


def load_model(path: str | Path, *, unsafe: bool = False, compile: bool = False) -> KerasModel:
    """Load a Keras model file (or a run folder's model.h5) with QKeras custom objects.

        load_model("kws-dscnn-float")      # a shipped model's name (tinyharden pretrained) is its folder

    Every place a recipe names a model (`model.path`, `model.init`, `train.distill.teacher`) goes
    through here, so a shipped recipe can start from a shipped model on any machine.
    """
    from tinyharden import pretrained

    path = pretrained.resolve(path)
    if path.is_dir() and (path / "model.h5").is_file():
        path = path / "model.h5"
    if not path.exists():
        raise UserError(f"model '{path}' not found; pass a .h5/.keras file, a SavedModel folder or a run folder")
    if path.is_file() and path.suffix not in MODEL_SUFFIXES:
        raise UserError(f"'{path}' is not a Keras model file; tinyharden loads {', '.join(MODEL_SUFFIXES)} files and SavedModel folders")
    check_model_file(path, unsafe=unsafe)  # reads the config as data: nothing is deserialised yet
    try:
        with keras.utils.custom_object_scope(tq.custom_objects()):
            model = keras.models.load_model(path, compile=compile, safe_mode=not unsafe) if path.suffix == ".keras" \
                else keras.models.load_model(path, compile=compile)
    except UserError:
        raise
    except Exception as exc:  # Keras raises many types for corrupt or foreign files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot load model '{path}': {first[:200]}; check the file is a complete Keras model") from None
    if not isinstance(model, keras.Model):
        raise UserError(f"'{path}' loaded as {type(model).__name__}, not a Keras model; re-export it with model.save()")
    adopt_quantizers(model)
    return model


def adopt_quantizers(model: KerasModel) -> None:
    """Replace QKeras quantizers by tinyharden's training-aware equivalents, in place.

    Weight quantizers gain sampling from the Keras call context; activation quantizers
    (QActivation) compute in float32 under mixed precision.
    """
    for layer in model.layers:
        for attr in WEIGHT_QUANTIZERS.values():
            q = getattr(layer, attr, None)
            new = _ours(q)
            if new is None:
                continue
            setattr(layer, attr, new)
            if hasattr(layer, "quantizers"):
                layer.quantizers = [new if x is q else x for x in layer.quantizers]
        new = _ours(getattr(layer, "quantizer", None))
        if new is not None:
            layer.quantizer = new


def _ours(quantizer):
    """tinyharden's equivalent of a QKeras quantizer, or None if it has none or already is one."""
    ours = tq._OURS.get(type(quantizer).__name__)
    if quantizer is None or ours is None or isinstance(quantizer, ours):
        return None
    return ours.from_config(quantizer.get_config())


def logits_model(model: KerasModel) -> KerasModel:
    """A model that outputs logits: strips a final softmax (layer or activation) if present.

    Attacks and Jacobian regularization need logits; many user models (the MLPerf ones
    among them) end in softmax, whose saturation would mask gradients.
    """
    last = model.layers[-1]
    act = getattr(last, "activation", None)
    if isinstance(last, keras.layers.Softmax) or (isinstance(last, keras.layers.Activation) and act is keras.activations.softmax):
        return keras.Model(model.inputs, last.input, name=model.name + "_logits")
    if act is keras.activations.softmax:
        clone_cfg = last.get_config()
        clone_cfg["activation"] = "linear"
        clone = type(last).from_config(clone_cfg)
        out = clone(last.input)
        clone.set_weights(last.get_weights())
        return keras.Model(model.inputs, out, name=model.name + "_logits")
    return model


def is_stochastic_at_inference(model: KerasModel, x: np.ndarray) -> bool:
    """True if two inference-mode passes differ (a stochastic layer is active at inference)."""
    a = model(x, training=False)
    b = model(x, training=False)
    return not bool(tf.reduce_all(tf.equal(a, b)))
