"""Inspecting a model file's architecture before Keras deserialises any of it.

    >>> from tinyharden.models.safe_load import check_model_file
    >>> check_model_file("runs/quickstart/model.h5", unsafe=False)  # raises UserError if unsafe

Loading a Keras model builds every layer from its config, and some configs carry code: a
`Lambda` layer stores Python bytecode, a `TFOpLambda` names any TensorFlow function
(including file writes), an unknown class makes Keras fall back to the traced graph, and
a `.keras` config may name any Python module to import. So before `keras.models.load_model`
sees a file, its config is read as plain data for every format: the `model_config`
attribute of an `.h5`, `config.json` inside a `.keras` zip, and the object metadata of a
SavedModel (`keras_metadata.pb`, or inside `saved_model.pb` for older files), parsed as
protobuf messages. Every object the config names must be a known Keras/QKeras/tinyharden
class, every quantizer string a known quantizer (`tinyharden.quantizer_expr`), every
activation a known one; otherwise the file is refused unless the user passes `--unsafe`.
"""
from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tinyharden.errors import UserError

_CODE_CLASSES = {"Lambda", "TensorFlowOpLayer", "__lambda__"}
_OP_LAYERS = {"TFOpLambda", "SlicingOpLambda"}
# TFOpLambda functions without side effects that functional models commonly record.
_SAFE_OP_PREFIXES = ("math.", "nn.", "__operators__.", "linalg.", "image.resize", "compat.v1.transpose")
_SAFE_OPS = {"reshape", "transpose", "concat", "stack", "squeeze", "expand_dims", "cast", "clip_by_value",
             "identity", "split", "pad", "tile", "shape", "gather", "reduce_mean", "reduce_sum", "reduce_max",
             "maximum", "minimum", "multiply", "add", "subtract", "abs", "sigmoid", "tanh", "where", "ones_like",
             "zeros_like", "broadcast_to"}
_SAFE_MODULE_PREFIXES = ("keras", "tf_keras", "qkeras", "tinyharden")
_SKIPPED_KEYS = {"training_config"}  # losses/metrics/optimizer: never deserialised with compile=False
_MAX_PROTO_BYTES = 1 << 30
_FIX = "allow unsafe loading only if you trust the file"


@functools.lru_cache(maxsize=1)
def known_classes() -> frozenset[str]:
    """Class names a model config may name without carrying code."""
    import inspect

    from tinyharden._tf import keras
    from tinyharden.quantization import quantizers as tq

    names = {"Functional", "Sequential", "Model", "function", "__tuple__", "TensorShape", "InputSpec"}  # last three: plain data
    for module, base in ((keras.layers, keras.layers.Layer), (keras.initializers, keras.initializers.Initializer),
                         (keras.regularizers, keras.regularizers.Regularizer),
                         (keras.constraints, keras.constraints.Constraint), (keras.metrics, keras.metrics.Metric)):
        names.update(n for n, v in vars(module).items() if inspect.isclass(v) and issubclass(v, base))
    names.update(tq.custom_objects())
    names.update(k.split(">", 1)[1] for k in tq.custom_objects() if ">" in k)
    return frozenset(names - _CODE_CLASSES - _OP_LAYERS)


@functools.lru_cache(maxsize=1)
def _activation_names() -> frozenset[str]:
    from tinyharden._tf import keras

    return frozenset(n for n, v in vars(keras.activations).items() if callable(v) and not n.startswith("_"))


# --------------------------------------------------------------------------- reading configs

def _read_h5(path: Path) -> list[Any]:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            cfg = f.attrs.get("model_config")
    except OSError as exc:
        raise UserError(f"'{path}' is not a readable HDF5 model file ({str(exc)[:120]}); re-save it with model.save('model.h5')") from None
    if cfg is None:
        raise UserError(f"'{path}' holds weights only, no model; save the whole model with model.save()")
    return [_json(cfg.decode("utf-8", "replace") if isinstance(cfg, bytes) else str(cfg), path)]


def _read_keras_zip(path: Path) -> list[Any]:
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            info = z.getinfo("config.json")
            if info.file_size > _MAX_PROTO_BYTES:
                raise UserError(f"'{path}': config.json is {info.file_size} bytes, not a model config")
            text = z.read("config.json").decode("utf-8", "replace")
    except (zipfile.BadZipFile, KeyError, OSError, EOFError) as exc:
        raise UserError(f"'{path}' is not a valid .keras archive ({str(exc)[:120]}); re-save it with model.save('model.keras')") from None
    return [_json(text, path)]


def _read_proto(path: Path, message):
    from google.protobuf.message import DecodeError

    if path.stat().st_size > _MAX_PROTO_BYTES:
        raise UserError(f"'{path}' is larger than {_MAX_PROTO_BYTES >> 20} MB; not a model tinyharden loads")
    try:
        message.ParseFromString(path.read_bytes())
    except (DecodeError, OSError, RuntimeError) as exc:
        raise UserError(f"'{path}' is not a readable protobuf ({str(exc)[:100]}); re-save the SavedModel") from None
    return message


def _read_saved_model(folder: Path) -> list[Any]:
    """Every Keras object's metadata in a SavedModel folder, read as protobuf (nothing restored)."""
    from tensorflow.core.protobuf import saved_model_pb2
    from tf_keras.protobuf import saved_metadata_pb2

    from tinyharden._tf import tf  # noqa: F401 - the protobuf modules ship with TensorFlow

    if not (folder / "saved_model.pb").is_file():
        raise UserError(f"'{folder}' is a folder but neither a SavedModel (no saved_model.pb) nor a run folder "
                        "(no model.h5); pass a model file, a SavedModel folder or a run folder")
    nodes: list[tuple[str, str]] = []
    if (folder / "keras_metadata.pb").is_file():
        meta = _read_proto(folder / "keras_metadata.pb", saved_metadata_pb2.SavedMetadata())
        nodes = [(n.identifier, n.metadata) for n in meta.nodes]
    else:  # TF < 2.5 kept the metadata inside the object graph
        sm = _read_proto(folder / "saved_model.pb", saved_model_pb2.SavedModel())
        for graph in sm.meta_graphs:
            for node in graph.object_graph_def.nodes:
                if node.WhichOneof("kind") == "user_object" and node.user_object.identifier.startswith("_tf_keras"):
                    nodes.append((node.user_object.identifier, node.user_object.metadata))
    if not nodes:
        raise UserError(f"'{folder}' is a TensorFlow SavedModel without Keras metadata; tinyharden loads Keras "
                        "models: re-save it from Keras with model.save()")
    configs = []
    for identifier, text in nodes:
        data = _json(text, folder) if text else {}
        is_layer = identifier.startswith("_tf_keras") and identifier != "_tf_keras_metric"
        if is_layer and not isinstance(data, dict) or is_layer and "config" not in data:
            # Keras would rebuild such a layer from its traced graph, whose ops we cannot vet.
            name = data.get("class_name", identifier) if isinstance(data, dict) else identifier
            raise UserError(f"'{folder}': layer '{name}' has no config, so Keras would run its saved graph; {_FIX}")
        configs.append(data)
    return configs


def _json(text: str, path: Path) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise UserError(f"'{path}': the model config is not valid JSON; re-save the model with model.save()") from None


def read_configs(path: Path) -> list[Any]:
    """The architecture config(s) of the model at `path` (a file or SavedModel folder), as plain data."""
    if path.is_dir():
        return _read_saved_model(path)
    if path.suffix in (".h5", ".hdf5"):
        return _read_h5(path)
    if path.suffix == ".keras":
        return _read_keras_zip(path)
    raise UserError(f"'{path}' is not a Keras model file; tinyharden loads .h5, .keras files and SavedModel folders")


# --------------------------------------------------------------------------- vetting

def _objects(node: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    """(key, value) of every dict entry below `node`, skipping never-deserialised sections."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k in _SKIPPED_KEYS:
                continue
            yield k, v
            yield from _objects(v, k)
    elif isinstance(node, list):
        for v in node:
            yield key, v
            yield from _objects(v, key)


def _layer_name(obj: dict) -> str:
    cfg = obj.get("config")
    return str(cfg.get("name", "?")) if isinstance(cfg, dict) else str(obj.get("name", "?"))


def problems(config: Any) -> list[str]:
    """What in `config` would run code or is unknown, one phrase each (empty: safe)."""
    from tinyharden.quantizer_expr import parse_quantizer

    found: list[str] = []
    known = known_classes()
    for key, value in [("", config), *_objects(config)]:
        if isinstance(value, dict) and "class_name" in value:
            cls = value["class_name"]
            module = value.get("module")
            if cls in _CODE_CLASSES:
                found.append(f"{cls} layer '{_layer_name(value)}' (its code would run on load)")
            elif cls in _OP_LAYERS:
                fn = str((value.get("config") or {}).get("function", "?"))
                if not (fn.startswith(_SAFE_OP_PREFIXES) or fn in _SAFE_OPS):
                    found.append(f"{cls} layer '{_layer_name(value)}' calling tf.{fn}")
            elif not isinstance(cls, str) or cls not in known:
                found.append(f"unknown class '{cls}' (Keras would run its code or its saved graph)")
            if module is not None and not str(module).startswith(_SAFE_MODULE_PREFIXES):
                found.append(f"module '{module}' (Keras would import it)")
            if cls == "function" and value.get("config") not in _activation_names():
                found.append(f"function '{value.get('config')}'")
        elif isinstance(value, str) and (key.endswith("quantizer") or key == "activation"):
            if key == "activation" and value in _activation_names():
                continue
            try:
                parse_quantizer(value)
            except UserError:
                found.append(f"{key} '{value[:60]}' (neither a Keras activation nor a known quantizer)")
    return found


def check_model_file(path: str | Path, *, unsafe: bool) -> None:
    """Refuse (`UserError`) the model at `path` if its config carries code, unless `unsafe`."""
    path = Path(path)
    configs = read_configs(path)
    if unsafe:
        return
    found = list(dict.fromkeys(p for cfg in configs for p in problems(cfg)))
    if found:
        more = f" and {len(found) - 1} more" if len(found) > 1 else ""
        raise UserError(f"'{path}' contains {found[0]}{more}; tinyharden refuses models that can run code on load; {_FIX}")
