"""The quantize job: float -> post-training quantized -> fine-tuned, measured at each step.

    from tinyharden.jobs.quantize import QuantizeRequest, quantize
    result = quantize(QuantizeRequest(model=Path("float.h5"), dataset="digits", preset="stq"), Path("runs"))

Accuracy and footprint are measured on the same test split three times: the float model,
its QKeras twin right after conversion (the post-training drop), and the twin after
quantization-aware fine-tuning with tinyharden's Trainer (the recipe's Jacobian
regularization, adversarial training and incremental schedule apply). The run folder
then holds what `train` writes (model.h5, recipe.yaml, metrics.json, env.json, and
checkpoints while fine-tuning), so `attack`, `export` and `report` take it as it is, plus
quantize.json. While fine-tuning, ptq_model.h5 holds the starting twin and the saved
recipe's model.path points at it, so resuming the train or quantize job rebuilds it;
with distillation and no teacher named, the float model is the teacher and is kept as
teacher.h5 for the same reason.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from pydantic import BaseModel, ConfigDict, Field

from tinyharden.artifacts import SCHEMA_VERSION
from tinyharden.data import Dataset
from tinyharden.data.base import check_model_fits
from tinyharden.errors import Interrupted, UserError
from tinyharden.interfaces import KerasModel
from tinyharden.models.convert import INPUT_SCALE, input_rescaling, quantize_model
from tinyharden.recipe import Recipe, apply_overrides, load_recipe, parse_override, validate
from tinyharden.safe_yaml import read_yaml_file
from tinyharden.registry import DATASETS, PRESETS
from tinyharden.stats import wilson_interval
from tinyharden.workspace import RunFolder, atomic_path, atomic_write_json

QUANTIZE_FILE = RunFolder.QUANTIZE
PTQ_FILE = RunFolder.PTQ_MODEL
TEACHER_FILE = RunFolder.TEACHER

# Fine-tuning starts from trained weights: a small lr keeps them, cosine settles them.
FINETUNE_TRAIN = {"optimizer": "adam", "lr": 5e-4, "schedule": "cosine", "batch_size": 128}
# Crop + flip suit natural images only: a flipped digit is another symbol.
FINETUNE_AUGMENT = {"cifar10": {"crop": 4, "flip": True}}
# What a run folder's own recipe passes on to the fine-tune of its model.
_INHERITED_TRAIN = ("batch_size", "augment", "label_smoothing", "weight_decay")


def _merge(base: dict, top: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in (top or {}).items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def read_quant_config(path: Path) -> dict:
    """A `quantization:` section from YAML: the section itself or a recipe holding one."""
    if not path.is_file():
        raise UserError(f"quantization config '{path}' not found; pass a YAML file with preset, activation and layers")
    data = read_yaml_file(path) or {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping (preset, activation, layers), got {type(data).__name__}")
    section = data.get("quantization", data)
    validate({"quantization": section}, source=str(path))  # one-line errors with 'did you mean'
    return section


def _raw_recipe(path: Path) -> dict:
    load_recipe(path)  # validates, so errors point at the file's lines
    data = read_yaml_file(path) or {}
    data.pop("model", None)  # the model is the one being quantized
    return data


def build_recipe(*, name: str, data: dict, quantization: dict, inherited: Recipe | None = None,
                 recipe_file: Path | None = None, overrides: list[str] | None = None,
                 finetune_epochs: int | None = None, distill: bool = False) -> tuple[Recipe, int]:
    """(recipe, fine-tune epochs) for a quantize run.

    Layers, lowest first: fine-tune defaults; the source run's recipe (seed, data, batch size, augmentation,
    robustness); `recipe_file` (all but model: and name:); `quantization` (a config file or a preset); dotted
    `overrides`; `finetune_epochs`; `distill` (turns on train.distill, from the float model unless a teacher is
    named). Without `finetune_epochs` the fine-tune runs only if the recipe file or an override sets train.epochs.
    """
    overrides = list(overrides or [])
    merged: dict[str, Any] = {"name": name, "data": data,
                              "train": {**FINETUNE_TRAIN, "augment": FINETUNE_AUGMENT.get(data.get("dataset"), {})}}
    if inherited is not None:
        old = inherited.resolved()
        merged = _merge(merged, {"seed": old["seed"], "data": old["data"], "robustness": old["robustness"],
                                 "train": {k: old["train"][k] for k in _INHERITED_TRAIN}})
    file_data = _raw_recipe(recipe_file) if recipe_file is not None else {}
    merged = {**_merge(merged, file_data), "name": name}  # named by the command (--name), not by a borrowed recipe
    merged["quantization"] = _merge(merged.get("quantization") or {}, quantization)
    merged = apply_overrides(merged, overrides)
    if distill and not merged["train"].get("distill"):
        merged["train"]["distill"] = {}
    if not (merged.get("data") or {}).get("dataset"):
        raise UserError(f"no dataset for the model; name the one it was trained on ({DATASETS.choices()}) "
                        "or a recipe with data.dataset")
    epochs_set = "epochs" in (file_data.get("train") or {}) or any(
        parse_override(o)[0] == ["train", "epochs"] for o in overrides)
    if finetune_epochs is None:
        finetune_epochs = int(merged["train"]["epochs"]) if epochs_set else 0
    if finetune_epochs > 0:
        merged["train"]["epochs"] = finetune_epochs
    else:
        if distill:
            raise UserError("distillation teaches the fine-tune; give the fine-tune a number of epochs",
                            option="finetune_epochs")
        for key in ("epochs", "distill"):  # no fine-tune: a borrowed recipe's length and teacher do not apply
            merged["train"].pop(key, None)
        if isinstance(merged["quantization"], dict):
            merged["quantization"].pop("incremental", None)  # a schedule needs epochs to run in
    source = "quantize options" + (f" with {recipe_file}" if recipe_file else "") + (f" and {' '.join(overrides)}" if overrides else "")
    recipe = validate(merged, source=source)
    if recipe.quantization.preset == "float" and not recipe.quantization.layers:
        raise UserError(f"no quantization chosen; choose a preset ({', '.join(p for p in PRESETS.names() if p != 'float')}) "
                        "or a quantization config with one", option="preset")
    return recipe, finetune_epochs


def _stage(model: KerasModel, ds: Dataset, footprint: dict) -> dict[str, Any]:
    from tinyharden.training.trainer import evaluate

    loss, acc = evaluate(model, ds.x_test, ds.y_test)
    n = len(ds.y_test)
    lo, hi = wilson_interval(round(acc * n), n)
    return {"accuracy": acc, "loss": loss, "n": n, "ci95": [lo, hi], "footprint": footprint["totals"]}


def _rescaling_name(twin) -> str:
    return next(layer.name for layer in twin.layers if layer.name.startswith(INPUT_SCALE))


def _save_model(model: KerasModel, path: Path) -> None:
    with atomic_path(path) as tmp:
        model.save(tmp, save_format="h5", include_optimizer=False)


def check_fits(model: KerasModel, ds: Dataset, source: str) -> None:
    check_model_fits(model.input_shape[1:], model.output_shape[-1], ds, source,
                     fix="pick the dataset the model was trained on")


def quantize(model: KerasModel, recipe: Recipe, ds: Dataset, workspace: Path, *, source: str, finetune_epochs: int,
             model_range: tuple[float, float] | None = None, on_progress: Callable | None = None,
             on_start: Callable[[Path], None] | None = None, on_epoch: Callable | None = None) -> dict[str, Any]:
    """Quantize float `model` under `recipe.quantization`, fine-tune, write the run folder; returns quantize.json."""
    from tinyharden.footprint import summarize
    from tinyharden.training import run

    data_range = tuple(float(v) for v in ds.input_range)
    rescale = input_rescaling(data_range, model_range) if model_range else None
    reference, _ = quantize_model(model, "float", rescale=rescale)  # the float model, as logits in data units
    check_fits(reference, ds, source)
    twin, plan = quantize_model(model, recipe.quantization, rescale=rescale)
    recipe = recipe.model_copy(deep=True)
    recipe.model.name = twin.name

    fp_float, fp_q = summarize(reference), summarize(twin)
    before = _stage(reference, ds, fp_float)
    ptq = _stage(twin, ds, fp_q)

    kd = recipe.train.distill
    own_teacher = finetune_epochs and kd is not None and not kd.teacher
    trainer = run.start(recipe, workspace, model=twin, dataset=ds, on_progress=on_progress, on_epoch=on_epoch,
                        teacher=reference if own_teacher else None)
    run_dir = trainer.run_dir
    if on_start:
        on_start(run_dir)
    start_model = run_dir / (PTQ_FILE if finetune_epochs else "model.h5")
    # Absolute, so a resume from any working directory finds the starting model.
    trainer.recipe.model.path = str(start_model.resolve())
    if finetune_epochs:
        _save_model(twin, start_model)
    if own_teacher:
        _save_model(reference, run_dir / TEACHER_FILE)
        trainer.recipe.train.distill.teacher = str((run_dir / TEACHER_FILE).resolve())
    trainer.write_start_files()
    result: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "kind": "tinyharden quantize",
        "status": "finetuning" if finetune_epochs else "done",
        "run": run_dir.name,
        "source": source,
        "dataset": ds.summary(),
        "input": {"data_range": list(data_range), "model_range": list(model_range or data_range),
                  "rescaling": None if rescale is None else {"layer": _rescaling_name(twin), "scale": rescale[0], "offset": rescale[1]}},
        "quantization": recipe.quantization.model_dump(mode="json", exclude_none=True),
        "layers": [p.as_dict() for p in plan],
        "stages": {"float": before, "post_training": ptq, "finetuned": None},
        "finetune": None,
        "drop_points": None,
        "footprint": fp_q,
        "files": [],
    }
    atomic_write_json(run_dir / QUANTIZE_FILE, _finalize(result, run_dir))
    if not finetune_epochs:
        trainer.finish(0.0)
        return _write(result, run_dir)
    return finish_finetune(trainer, result)


def finish_finetune(trainer, result: dict[str, Any]) -> dict[str, Any]:
    """Fine-tune (from the trainer's last checkpoint, if resumed) and complete quantize.json."""
    metrics = trainer.fit()
    return _complete(result, metrics, trainer.recipe, trainer.model, trainer.run_dir)


def _complete(result: dict[str, Any], metrics: dict, r: Recipe, model: KerasModel, run_dir: Path) -> dict[str, Any]:
    from tinyharden.footprint import summarize

    test = metrics["test"]
    result["stages"]["finetuned"] = {"accuracy": test["accuracy"], "loss": test["loss"], "n": test["n"],
                                     "ci95": test["ci95"], "footprint": summarize(model)["totals"]}
    result["finetune"] = {
        "epochs": metrics["epochs"], "train_seconds": metrics["train_seconds"],
        "optimizer": r.train.optimizer, "lr": r.train.lr, "schedule": r.train.schedule,
        "batch_size": r.train.batch_size, "augment": r.train.augment.model_dump(),
        "incremental": None if r.quantization.incremental is None else r.quantization.incremental.model_dump(),
        "distill": None if r.train.distill is None else r.train.distill.model_dump(),
        "defense": metrics["defense"],
    }
    result["status"] = "done"
    return _write(result, run_dir)


def _finalize(result: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    stages = result["stages"]
    base = stages["float"]["accuracy"]
    result["drop_points"] = {k: None if v is None else round(100 * (base - v["accuracy"]), 3)
                             for k, v in stages.items() if k != "float"}
    result["files"] = sorted(p.name for p in run_dir.iterdir() if p.is_file() and not p.name.startswith("."))
    return result


def _write(result: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    result = _finalize(result, run_dir)
    if QUANTIZE_FILE not in result["files"]:
        result["files"] = sorted(result["files"] + [QUANTIZE_FILE])
    atomic_write_json(run_dir / QUANTIZE_FILE, result)
    return result


def resume(run_dir: Path, *, on_progress: Callable | None = None,
           on_start: Callable[[Path], None] | None = None, on_epoch: Callable | None = None) -> dict[str, Any]:
    """Continue an interrupted fine-tune of a quantize run folder."""
    from tinyharden.training import run

    run_dir = Path(run_dir)
    record = run_dir / QUANTIZE_FILE
    if not record.is_file():
        raise UserError(f"'{run_dir}' is not a quantize run folder (no {QUANTIZE_FILE}); "
                        "pass the folder the quantize job created, or resume it as a training run")
    result = json.loads(record.read_text())
    if result.get("status") == "done":
        raise UserError(f"quantize run '{run_dir}' already finished; start a new one instead of resuming it")
    if (run_dir / "metrics.json").is_file():  # a resumed training finished the fine-tune: only the record is left
        from tinyharden.models import load_model

        metrics = json.loads((run_dir / "metrics.json").read_text())
        return _complete(result, metrics, load_recipe(run_dir / "recipe.yaml"), load_model(run_dir / "model.h5"), run_dir)
    trainer = run.resume(run_dir, on_progress=on_progress, on_epoch=on_epoch)
    if on_start:
        on_start(run_dir)
    return finish_finetune(trainer, result)


# --------------------------------------------------------------------------- the job

class QuantizeRequest(BaseModel):
    """A float model and how to quantize and fine-tune it (see `build_recipe` for the layering)."""

    model_config = ConfigDict(extra="forbid")

    model: Path
    overrides: list[str] = Field(default_factory=list, description="dotted recipe overrides, e.g. train.lr=1e-3")
    preset: Optional[str] = None
    config: Optional[Path] = Field(None, description="YAML quantization section")
    ends: Optional[str] = Field(None, description="preset of the first and last quantizable layers")
    finetune_epochs: Optional[int] = Field(None, ge=0)
    distill: bool = False
    recipe: Optional[Path] = None
    dataset: Optional[str] = None
    data_path: Optional[Path] = None
    input_range: Optional[tuple[float, float]] = None
    name: Optional[str] = None
    unsafe: bool = False


@dataclass
class QuantizeResult:
    record: dict[str, Any]  # quantize.json
    run_dir: Path


def check_preset(name: Optional[str], what: str) -> None:
    if name is not None and name not in PRESETS:
        raise UserError(f"{what} '{name}' is not a preset; choose from {PRESETS.choices()}{PRESETS.hint(name)}")


def _data_section(request: QuantizeRequest) -> dict:
    if request.dataset is not None and request.dataset not in DATASETS:
        raise UserError(f"unknown dataset '{request.dataset}'; choose one of {DATASETS.choices()}"
                        f"{DATASETS.hint(request.dataset)}", option="dataset")
    section: dict[str, Any] = {"dataset": request.dataset} if request.dataset else {}
    if request.data_path is not None:
        section["path"] = str(request.data_path)
    return section


def _quant_section(request: QuantizeRequest, float_model: KerasModel) -> dict:
    """`config`, then `ends` for the first and last quantizable layers, then `preset`."""
    from tinyharden.models.loading import logits_model
    from tinyharden.models.convert import weighted_layer_names

    quant = read_quant_config(request.config) if request.config is not None else {}
    if request.ends is not None:
        names = weighted_layer_names(logits_model(float_model))
        ends = {n: {"preset": request.ends} for n in dict.fromkeys([names[0], names[-1]])} if names else {}
        quant = {**quant, "layers": {**ends, **(quant.get("layers") or {})}}
    if request.preset is not None:
        quant = {**quant, "preset": request.preset}
    return quant


def quantize_job(request: QuantizeRequest, workspace: Path, *, on_progress: Callable | None = None,
                 on_start: Callable[[Path], None] | None = None, warn: Callable[[str], None] | None = None,
                 on_epoch: Callable | None = None) -> QuantizeResult:
    """Quantize `request.model` into a new run folder; cheap checks run before TensorFlow loads."""
    check_preset(request.preset, "preset")
    check_preset(request.ends, "ends")
    data_section = _data_section(request)
    for what, path in (("quantization config", request.config), ("recipe", request.recipe)):
        if path is not None and not path.is_file():
            raise UserError(f"{what} file '{path}' not found; pass the path of a YAML file")
    source = RunFolder(request.model)
    is_run = source.is_run()
    if not is_run and not data_section.get("dataset") and request.recipe is None:
        raise UserError(f"'{request.model}' is a bare model file: name its dataset ({DATASETS.choices()}) "
                        "or give a recipe with a data: section", option="dataset")
    from tinyharden.data import load_dataset
    from tinyharden.models.loading import load_model, logits_model
    from tinyharden.models.convert import check_supported

    inherited = None
    if is_run:
        if not source.model_file.is_file():
            raise UserError(f"run folder '{request.model}' has no {RunFolder.MODEL}; finish training it first "
                            "(resume its training)")
        inherited = source.recipe()
        if data_section.get("dataset") and warn:
            warn(f"the dataset given is ignored for run folder '{request.model}': its recipe names the dataset "
                 f"({inherited.data.dataset})")
        data_section = {}
    from tinyharden.quantization.dequantize import dequantize
    from tinyharden.writable import check_writable

    check_writable(workspace)  # before the model, data and fine-tune: not after
    float_model, requantized = dequantize(load_model(request.model, unsafe=request.unsafe))
    if requantized and warn:  # our own "float" runs are built from QKeras layers without quantizers
        warn(f"'{request.model}' has QKeras layers ({', '.join(requantized)}); they start from their float weights "
             "and take the new quantizers")
    check_supported(logits_model(float_model))  # before any data is loaded: the cheap failure first
    parsed, epochs = build_recipe(
        name=request.name or "quantize", data=data_section, quantization=_quant_section(request, float_model),
        inherited=inherited, recipe_file=request.recipe, overrides=request.overrides,
        finetune_epochs=request.finetune_epochs, distill=request.distill)
    if request.name is None:
        stem = request.model.name if is_run else request.model.stem
        parsed.name = f"quantize-{stem}-{parsed.quantization.preset}"
    ds = load_dataset(parsed.data, parsed.seed)
    started: list[Path] = []

    def start(run_dir: Path) -> None:
        started.append(run_dir)
        if on_start:
            on_start(run_dir)

    try:
        record = quantize(float_model, parsed, ds, workspace, source=str(request.model), finetune_epochs=epochs,
                          model_range=request.input_range, on_progress=on_progress, on_start=start,
                          on_epoch=on_epoch)
    except KeyboardInterrupt:
        if not started or not epochs:
            raise
        raise Interrupted(f"interrupted while fine-tuning; resume the quantize run {started[0]}") from None
    return QuantizeResult(record=record, run_dir=started[0])


def resume_job(run_dir: Path, *, on_progress: Callable | None = None,
               on_start: Callable[[Path], None] | None = None, on_epoch: Callable | None = None) -> QuantizeResult:
    try:
        record = resume(run_dir, on_progress=on_progress, on_start=on_start, on_epoch=on_epoch)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted while fine-tuning; resume the quantize run {run_dir}") from None
    return QuantizeResult(record=record, run_dir=Path(run_dir))
