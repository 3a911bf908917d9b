"""The export job: convert, check parity on the MCU interpreter, measure, write, gate.

    from tinyharden.jobs.export import ExportRequest, export
    result = export(ExportRequest(target=Path("runs/quickstart")), Path("runs"))

The artifacts (model.tflite, model_data.h/.cc, footprint.json, export.json) are always
written before any gate is judged, so a model over budget can still be inspected; the
caller raises on `result.failed`. Options left unset come from the run's recipe
(`export:` section), else the `ExportSpec` defaults.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Optional, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from tinyharden.data.base import Dataset, check_model_fits, stratified_limit
from tinyharden.errors import UserError
from tinyharden.interfaces import KerasModel
from tinyharden.workspace import RunFolder, atomic_write_bytes, atomic_write_json, resolve_model

TFLITE_FILE = RunFolder.TFLITE
C_STEM = RunFolder.C_STEM
FOOTPRINT_FILE = RunFolder.FOOTPRINT
EXPORT_FILE = RunFolder.EXPORT

# (stage, done, total) -> None; stages: "calibrate", "tflm".
Progress = Callable[[str, int, int], None]


def to_model_units(x: np.ndarray, data_range: Sequence[float], model_range: Sequence[float]) -> np.ndarray:
    """Map inputs from the dataset's range onto the range the model was trained on."""
    (dlo, dhi), (mlo, mhi) = data_range, model_range
    if (dlo, dhi) == (mlo, mhi):
        return np.asarray(x, np.float32)
    return (mlo + (np.asarray(x, np.float32) - dlo) / (dhi - dlo) * (mhi - mlo)).astype(np.float32)


def keras_outputs(model: KerasModel, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    # Eager calls, not model.predict: predict's graph optimizer logs spurious errors on
    # clipped ReLUs, and at inference the two compute the same thing.
    outs = [np.asarray(model(x[i:i + batch_size], training=False)) for i in range(0, len(x), batch_size)]
    return np.concatenate(outs) if outs else np.zeros((0,), np.float32)


def _accuracy(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(pred == y) * 100.0) if len(y) else 0.0


def _model_input_shape(model: KerasModel) -> tuple:
    shape = model.input_shape
    if isinstance(shape, list):
        if len(shape) != 1:
            raise UserError(f"model '{model.name}' has {len(shape)} inputs; tinyharden exports single-input models")
        shape = shape[0]
    return tuple(shape[1:])


def check_compatible(model: KerasModel, dataset: Dataset) -> None:
    """Raise a UserError unless `model` takes one input of the dataset's shape."""
    check_model_fits(_model_input_shape(model), None, dataset, model.name,
                     fix="pick the dataset the model was trained on")


def check_gates(parity: dict, deployed: dict, *, max_drop: float | None, allow_drop: bool,
                max_flash: int | None, max_ram: int | None) -> list[dict[str, Any]]:
    """Every gate with its limit, value and verdict; a gate without a limit is left out."""
    gates = []
    if max_drop is not None:
        gates.append({"gate": "max_drop", "limit": max_drop, "value": round(parity["drop"], 3), "unit": "points",
                      "passed": parity["drop"] <= max_drop or allow_drop, "waived": allow_drop and parity["drop"] > max_drop})
    if max_flash is not None:
        gates.append({"gate": "max_flash", "limit": max_flash, "value": deployed["flash_bytes"], "unit": "bytes",
                      "passed": deployed["flash_bytes"] <= max_flash})
    if max_ram is not None:
        gates.append({"gate": "max_ram", "limit": max_ram, "value": deployed["arena_bytes"], "unit": "bytes",
                      "passed": deployed["arena_bytes"] <= max_ram})
    return gates


def _parity(model: KerasModel, twin: KerasModel, micro, dataset: Dataset, data_range, model_range, *, limit: int | None, seed: int,
            progress: Progress | None) -> dict[str, Any]:
    """Keras vs its int8 twin vs the TFLM interpreter on (a subset of) the test split."""
    from tinyharden.workspace import package_versions

    keep = stratified_limit(dataset.y_test, limit, seed + 1)
    x_test = to_model_units(dataset.x_test[keep], data_range, model_range)
    y_test = np.asarray(dataset.y_test[keep])
    keras_pred = keras_outputs(model, x_test).argmax(-1)
    twin_pred = keras_outputs(twin, x_test).argmax(-1)
    tick = (lambda i: progress("tflm", i, len(x_test))) if progress else None
    micro_pred = micro.predict(x_test, progress=tick).argmax(-1)
    keras_acc, micro_acc = _accuracy(keras_pred, y_test), _accuracy(micro_pred, y_test)
    return {
        "samples": int(len(y_test)),
        "requested": limit,  # None: the whole split; more than `samples`: the split was shorter
        "keras_accuracy": round(keras_acc, 3),
        "twin_accuracy": round(_accuracy(twin_pred, y_test), 3),
        "tflite_accuracy": round(micro_acc, 3),
        "drop": round(keras_acc - micro_acc, 3),
        "agreement": round(float(np.mean(keras_pred == micro_pred) * 100.0) if len(y_test) else 0.0, 3),
        "interpreter": f"tflite-micro {package_versions().get('tflite-micro')}",
        "units": "percent; drop in points (keras - tflite)",
    }


def _convert(model: KerasModel, dataset: Dataset, data_range, model_range, *, calib: int, seed: int,
             progress: Progress | None) -> tuple[bytes, Any, int]:
    """(flatbuffer, float twin, calibration samples): int8 conversion calibrated on training inputs."""
    from tinyharden.export.tflite import export_tflite

    rng = np.random.default_rng(seed)
    n_calib = min(calib, len(dataset.x_train))
    calib_idx = np.sort(rng.choice(len(dataset.x_train), n_calib, replace=False)) if n_calib else np.array([], int)
    calib_x = to_model_units(dataset.x_train[calib_idx], data_range, model_range)
    if progress:
        progress("calibrate", 0, n_calib)
    tflite_bytes, twin = export_tflite(model, calib_x)
    if progress:
        progress("calibrate", n_calib, n_calib)
    return tflite_bytes, twin, n_calib


def _write_files(out_dir: Path, tflite_bytes: bytes, micro, footprint: dict, *, formats: Sequence[str],
                 source: str) -> list[str]:
    from tinyharden.export.c_source import write_c_files

    files = []
    if "tflite" in formats:
        files.append(atomic_write_bytes(out_dir / TFLITE_FILE, tflite_bytes).name)
    if "c" in formats:
        files += [p.name for p in write_c_files(out_dir, tflite_bytes, input_q=micro.input, output_q=micro.output,
                                                 stem=C_STEM, source=source)]
    atomic_write_json(out_dir / FOOTPRINT_FILE, footprint)
    return files + [FOOTPRINT_FILE]


def export_model(model: KerasModel, dataset: Dataset, out_dir: str | Path, *, model_range: Sequence[float] | None = None,
                 formats: Sequence[str] = ("tflite", "c"), calib: int = 500, limit: int | None = None,
                 seed: int = 0, max_drop: float | None = 1.0, allow_drop: bool = False,
                 max_flash: int | None = None, max_ram: int | None = None,
                 source: str = "", progress: Progress | None = None) -> dict[str, Any]:
    """Export `model` (trained on `dataset`, inputs in `model_range`) into `out_dir`.

    Returns the export record (also written as export.json) with the footprint under
    "footprint" and the failed gates under "failed".
    """
    from tinyharden.export.micro import MicroModel
    from tinyharden.footprint import summarize

    out_dir = Path(out_dir)
    data_range = tuple(float(v) for v in dataset.input_range)
    model_range = tuple(float(v) for v in (model_range or data_range))
    if model_range[1] <= model_range[0]:
        raise UserError(f"input range {model_range} is empty; give it as LO,HI with LO < HI, e.g. 0,255",
                        option="input_range")
    check_compatible(model, dataset)

    tflite_bytes, twin, n_calib = _convert(model, dataset, data_range, model_range, calib=calib, seed=seed,
                                           progress=progress)
    micro = MicroModel(tflite_bytes)
    arena = micro.arena()

    parity = _parity(model, twin, micro, dataset, data_range, model_range, limit=limit, seed=seed, progress=progress)
    deployed = {
        "flash_bytes": len(tflite_bytes),
        "arena_bytes": arena["total"],
        "arena_head_bytes": arena["head"],
        "arena_tail_bytes": arena["tail"],
        "tflite": TFLITE_FILE if "tflite" in formats else None,
        "note": "arena measured by the TFLM interpreter on this host (64-bit); the persistent part "
                "(tail) is somewhat smaller on a 32-bit MCU",
    }
    footprint = summarize(model)
    footprint["deployed"] = deployed

    files = _write_files(out_dir, tflite_bytes, micro, footprint, formats=formats, source=source)

    gates = check_gates(parity, deployed, max_drop=max_drop, allow_drop=allow_drop,
                        max_flash=max_flash, max_ram=max_ram)
    from tinyharden.artifacts import SCHEMA_VERSION

    record = {
        "schema_version": SCHEMA_VERSION,
        "source": source,
        "dataset": dataset.name,
        "input_range": list(model_range),
        "data_range": list(data_range),
        "calibration_samples": int(n_calib),
        "input": micro.input,
        "output": micro.output,
        "parity": parity,
        "deployed": deployed,
        "gates": gates,
        "files": files + [EXPORT_FILE],
    }
    atomic_write_json(out_dir / EXPORT_FILE, record)
    return {**record, "out_dir": str(out_dir), "footprint": footprint,
            "failed": [g for g in gates if not g["passed"]]}


# --------------------------------------------------------------------------- the job

class ExportRequest(BaseModel):
    """What to export and the budgets; None means the recipe's `export:` value, else the default."""

    model_config = ConfigDict(extra="forbid")

    target: Path
    formats: Optional[list[Literal["tflite", "c"]]] = None
    calib: Optional[int] = Field(None, gt=0)
    dataset: Optional[str] = Field(None, description="dataset of a bare model file")
    data_path: Optional[Path] = Field(None, description="folder holding the dataset (replaces the recipe's data.path)")
    split: Literal["test", "all"] = Field("test", description="parity check on the held-out split or every sample")
    input_range: Optional[tuple[float, float]] = None
    limit: Optional[int] = Field(None, gt=0)
    max_drop: Optional[float] = Field(None, ge=0)
    allow_drop: bool = False
    max_flash: Optional[int] = Field(None, gt=0)
    max_ram: Optional[int] = Field(None, gt=0)
    unsafe: bool = False
    name: Optional[str] = Field(None, description="run folder for a bare model file (shared with the attack job's `name`)")


@dataclass
class ExportResult:
    record: dict[str, Any]
    out_dir: Path
    footprint: dict[str, Any]
    failed: list[dict[str, Any]]


def _bare_spec(name: Optional[str], model_path: Path):
    from tinyharden.recipe import DataSpec
    from tinyharden.registry import DATASETS

    if name is None:
        raise UserError(f"'{model_path}' is a bare model file: name its dataset ({DATASETS.choices()}) "
                        "for calibration and the parity check", option="dataset")
    if name not in DATASETS:
        raise UserError(f"unknown dataset '{name}'; choose one of {DATASETS.choices()}{DATASETS.hint(name)}",
                        option="dataset")
    return DataSpec(dataset=name)


def _dataset(dspec, seed: int, request: "ExportRequest") -> Dataset:
    """The dataset, from `data_path` if given; split "all" makes every sample the parity split."""
    from tinyharden.data.base import load_dataset
    from tinyharden.evaluation.data import with_split

    if request.data_path is not None:
        dspec = dspec.with_folder(request.data_path)
    return with_split(load_dataset(dspec, seed), dspec, seed=seed, split=request.split)


def export(request: ExportRequest, workspace: Path, *, progress: Progress | None = None,
           on_load: Callable[[Path], None] | None = None) -> ExportResult:
    """Export a run folder's model (into it) or a model file (into a new or `request.name` folder)."""
    from tinyharden import pretrained
    from tinyharden.models.loading import load_model
    from tinyharden.recipe import ExportSpec

    from tinyharden.writable import check_writable

    located = resolve_model(request.target, what="export", saved_model=True)
    is_run = located.run is not None
    # Before loading anything: a folder that cannot take the artifacts would waste the whole conversion.
    check_writable(located.run.path if is_run else workspace, what="run folder" if is_run else "workspace",
                   create=not is_run)
    if located.run is not None:
        recipe = located.run.recipe()
        spec, seed = recipe.export or ExportSpec(), recipe.seed
        if on_load:
            on_load(located.run.path)
        model = load_model(located.model_file, unsafe=request.unsafe)
        dataset = _dataset(recipe.data, recipe.seed, request)
    else:
        spec, seed = ExportSpec(), 0
        model = load_model(located.model_file, unsafe=request.unsafe)
        dataset = _dataset(_bare_spec(request.dataset, request.target), 0, request)
    check_compatible(model, dataset)
    if located.run is not None and not pretrained.is_pretrained(located.run.path):  # shipped folders are read-only
        out_dir = located.run.path
    else:  # created only once the model and data are known to fit
        name = request.name or f"export-{request.target.stem or request.target.name}"
        out_dir = RunFolder.for_model_file(workspace, name, seed=seed, named=request.name is not None).path
    result = export_model(
        model, dataset, out_dir, model_range=request.input_range, formats=request.formats or list(spec.formats),
        calib=request.calib or spec.calib, limit=request.limit, seed=seed,
        max_drop=spec.max_drop if request.max_drop is None else request.max_drop, allow_drop=request.allow_drop,
        max_flash=request.max_flash or spec.max_flash, max_ram=request.max_ram or spec.max_ram,
        source=str(request.target), progress=progress)
    return ExportResult(record={k: v for k, v in result.items() if k not in ("footprint", "failed", "out_dir")},
                        out_dir=out_dir, footprint=result["footprint"], failed=result["failed"])
