"""One evaluation: a model (run folder, shipped name, model file or .tflite) on a split, scored.

    >>> from tinyharden.evaluation.job import run_evaluate
    >>> out = run_evaluate("kws-stq-jr", data_path=Path("../shared/data/speech_commands"), split="all")  # doctest: +SKIP
    >>> out.report["accuracy"], out.run_dir / out.report["confusion_png"]                              # doctest: +SKIP

Writes `evaluate-<split>.json` and `confusion-<split>.png` into the run folder, or into a new
`evaluate-<model>` folder of the workspace for a model file or a shipped model (the package's
own folders are never written to). TensorFlow is imported only once the arguments check out.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from tinyharden.errors import UserError

SCHEMA_VERSION = 1


@dataclass
class EvalOutcome:
    report: dict[str, Any]
    run_dir: Path


@dataclass
class ModelRef:
    """Where a model is, what kind it is, and the recipe that came with it (if any)."""

    path: Path
    kind: str  # keras | tflite
    run_dir: Optional[Path]
    recipe: Any
    label: str


def resolve_model(model: str | Path) -> ModelRef:
    """A run folder, a shipped model's name, a SavedModel folder, a .h5/.keras or .tflite file."""
    from tinyharden import pretrained
    from tinyharden.recipe import load_recipe

    path = pretrained.resolve(model)
    if not path.exists():
        names = ", ".join(m["name"] for m in pretrained.available()) or "none shipped"
        raise UserError(f"'{model}' not found; pass a run folder, a model file, a .tflite file or a shipped model ({names})")
    if path.is_dir() and (path / "model.h5").is_file():
        recipe = load_recipe(path / "recipe.yaml") if (path / "recipe.yaml").is_file() else None
        return ModelRef(path / "model.h5", "keras", path, recipe, path.name)
    if path.is_dir():
        if (path / "saved_model.pb").is_file():
            return ModelRef(path, "keras", None, None, path.name)
        raise UserError(f"'{path}' is neither a run folder (no model.h5) nor a SavedModel folder; "
                        "pass the folder `tinyharden train` created, or a model file")
    suffix = path.suffix.lower()
    if suffix not in (".tflite", ".h5", ".hdf5", ".keras"):
        raise UserError(f"'{path}' is not a model tinyharden can evaluate; pass a run folder, a .h5/.keras or a .tflite file")
    beside = path.parent / "recipe.yaml"
    recipe = load_recipe(beside) if beside.is_file() else None
    return ModelRef(path, "tflite" if suffix == ".tflite" else "keras", None, recipe, path.stem)


def data_spec(ref: ModelRef, *, data: Optional[str], data_path: Optional[Path]):
    """The DataSpec of the evaluation: `data`, else the model's recipe; `data_path` replaces its folder."""
    from tinyharden.recipe import DataSpec
    from tinyharden.registry import DATASETS

    if data is not None:
        dspec = DataSpec(dataset=DATASETS.check(data))
    elif ref.recipe is not None:
        dspec = ref.recipe.data.model_copy()
    else:
        raise UserError(f"'{ref.path.name}' is a bare model file: name its dataset ({', '.join(DATASETS.names())})",
                        option="dataset")
    if data_path is not None:
        if not Path(data_path).is_dir():
            raise UserError(f"data folder '{data_path}' is not a folder; point it at the folder holding the dataset's files",
                            option="data_path")
        # a folder given for scoring is the data itself: no second test folder, no fold
        dspec = dspec.with_folder(data_path)
    if dspec.dataset == "speech_commands" and dspec.space == "waveform":
        dspec = dspec.model_copy(update={"space": "features"})  # models take MFCC features
    return dspec


def _target(ref: ModelRef, input_range: tuple[float, float], *, unsafe: bool):
    if ref.kind == "tflite":
        from tinyharden.attacks.tflite_target import TFLiteTarget

        return TFLiteTarget(ref.path, input_range)
    from tinyharden.attacks.target import KerasTarget
    from tinyharden.models import load_model, logits_model

    return KerasTarget(logits_model(load_model(ref.path, unsafe=unsafe)), input_range=input_range, name=ref.label)


def _model_range(ref: ModelRef, given: Optional[tuple[float, float]], data_range: tuple[float, float]):
    if given is not None:
        return given
    if ref.kind == "tflite":
        from tinyharden.attacks.tflite_target import recorded_input_range

        return recorded_input_range(ref.path) or data_range
    return data_range


def _output_dir(ref: ModelRef, workspace: Path) -> Path:
    from tinyharden import pretrained
    from tinyharden.workspace import new_run_dir

    if ref.run_dir is not None and not pretrained.is_pretrained(ref.run_dir):
        return ref.run_dir
    return new_run_dir(workspace, f"evaluate-{ref.label}")


def run_evaluate(model: str | Path, *, data: Optional[str] = None, data_path: Optional[Path] = None,
                 split: str = "test", input_range: Optional[tuple[float, float]] = None, batch_size: int = 256,
                 unsafe: bool = False, workspace: Path = Path("runs"), n: Optional[int] = None) -> EvalOutcome:
    """Score `model` on `split` of its dataset (its first `n` samples) and write the report and the confusion PNG."""
    from tinyharden.evaluation.data import check_split, evaluation_data

    check_split(split)
    given = input_range
    ref = resolve_model(model)
    dspec = data_spec(ref, data=data, data_path=data_path)
    seed = ref.recipe.seed if ref.recipe is not None else 0
    ev = evaluation_data(dspec, seed=seed, split=split)
    if n is not None:
        from dataclasses import replace

        ev = replace(ev, x=ev.x[:n], y=ev.y[:n], files=None if ev.files is None else ev.files[:n])
    if len(ev.y) == 0:
        raise UserError(f"the {split} split of {ev.name} is empty; score the 'all' split or another data folder")
    target = _target(ref, _model_range(ref, given, ev.input_range), unsafe=unsafe)
    if tuple(target.input_shape) != tuple(ev.x.shape[1:]) or target.num_classes != len(ev.class_names):
        raise UserError(f"model '{ref.path}' takes {tuple(target.input_shape)} -> {target.num_classes} classes but "
                        f"{ev.name} has {tuple(ev.x.shape[1:])} -> {len(ev.class_names)}; pass the model's dataset", option="dataset")
    return _score_and_write(ref, ev, target, dspec, split=split, batch_size=batch_size, workspace=workspace,
                            requested_n=n)


def _score_and_write(ref: ModelRef, ev, target, dspec, *, split: str, batch_size: int, workspace: Path,
                     requested_n: Optional[int] = None) -> EvalOutcome:
    import time

    from tinyharden.evaluation.plot import confusion_png
    from tinyharden.evaluation.scoring import score_predictions
    from tinyharden.workspace import atomic_write_json, package_versions

    lo, hi = ev.input_range
    t0 = time.perf_counter()
    preds = np.concatenate([np.argmax(target.predict((ev.x[i:i + batch_size] - lo) / (hi - lo)), axis=1)
                            for i in range(0, len(ev.y), batch_size)])
    seconds = time.perf_counter() - t0
    scores = score_predictions(ev.y, preds, ev.class_names)
    run_dir = _output_dir(ref, workspace)
    png = f"confusion-{split}.png"
    confusion_png(scores["confusion"], ev.class_names, run_dir / png,
                  title=f"{ref.label} on {ev.name} ({split}, n={scores['n']}): {scores['accuracy']:.2%}")
    report = {"schema_version": SCHEMA_VERSION, "model": str(ref.path), "kind": ref.kind, "dataset": ev.name,
              "split": split, "data_path": dspec.path, "test_path": getattr(dspec, "test_path", None),
              **scores, "requested_n": requested_n, "seconds": seconds, "confusion_png": png, "versions": package_versions()}
    if ev.files is not None:
        report["wrong"] = [{"file": ev.files[i], "true": ev.class_names[ev.y[i]], "predicted": ev.class_names[preds[i]]}
                           for i in np.flatnonzero(preds != ev.y)]
    atomic_write_json(run_dir / f"evaluate-{split}.json", report)
    return EvalOutcome(report, run_dir)
