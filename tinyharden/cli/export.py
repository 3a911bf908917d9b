"""`tinyharden export`: int8 TFLite + C source, parity on TFLM, footprint and budgets."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from tinyharden.cli.common import err, handle_errors, out, progress_enabled, state, warn
from tinyharden.parsing import parse_range
from tinyharden.errors import GateFailed, UserError

_FORMATS = ("tflite", "c")


def _parse_formats(text: str) -> list[str]:
    formats = [f.strip().lower() for f in text.split(",") if f.strip()]
    bad = [f for f in formats if f not in _FORMATS]
    if bad or not formats:
        raise UserError(f"unknown export format {', '.join(repr(b) for b in bad) or repr(text)}; use --format tflite,c")
    return formats


def _dataset(spec, seed: int, data_path: Optional[Path], split: str):
    """The dataset of `spec`, from --data-path if given; --split all makes every sample the test split."""
    from tinyharden.data.base import load_dataset
    from tinyharden.evaluation.data import with_split

    if data_path is not None:
        spec = spec.model_copy(update={"path": str(data_path), "test_path": None})
    return with_split(load_dataset(spec, seed), spec, seed=seed, split=split)


def _bare_spec(data: Optional[str], model_path: Path):
    from pydantic import ValidationError

    from tinyharden.recipe import DataSpec

    choices = DataSpec.model_fields["dataset"].annotation.__args__
    if data is None:
        raise UserError(f"'{model_path}' is a bare model file: pass --data ({', '.join(choices)}) "
                        "for calibration and the parity check")
    try:
        return DataSpec(dataset=data)
    except ValidationError:
        raise UserError(f"unknown dataset '{data}'; --data takes one of {', '.join(choices)}") from None


def _progress():
    """A callback drawing a progress bar on stderr for the TFLM parity run (TTY only)."""
    if not progress_enabled():
        return None, None
    from rich.progress import Progress

    bar = Progress(console=err, transient=True)
    tasks: dict[str, int] = {}
    labels = {"calibrate": "converting to int8", "tflm": "TFLM parity"}

    def update(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task(labels.get(stage, stage), total=max(total, 1))
        bar.update(tasks[stage], completed=done)

    return bar, update


@handle_errors
def export(
    target: Path = typer.Argument(..., help="A run folder written by `tinyharden train`, a shipped model name (tinyharden pretrained), or a Keras model file (.h5/.keras) or SavedModel folder."),
    formats: Optional[str] = typer.Option(None, "--format", "-f", help="Artifacts to write, comma-separated: tflite, c. Default: the recipe's export.formats, else tflite,c."),
    calib: Optional[int] = typer.Option(None, "--calib", min=1, help="Training inputs that calibrate the int8 ranges. Default: export.calib, else 500."),
    data: Optional[str] = typer.Option(None, "--data", help="Dataset of a bare model file (cifar10, speech_commands, digits, synthetic); a run folder uses its recipe's."),
    data_path: Optional[Path] = typer.Option(None, "--data-path", help="Folder holding the dataset (replaces the recipe's data.path)."),
    split: str = typer.Option("test", "--split", help="Parity check on 'test' (the held-out split) or 'all' (every sample of the folder)."),
    input_range: Optional[str] = typer.Option(None, "--input-range", help="LO,HI the model's inputs span for data in [0,1], e.g. 0,255 for raw pixels. Default: the dataset's range."),
    limit: Optional[int] = typer.Option(None, "--limit", "-n", min=1, help="Test samples for the parity check (TFLM runs one at a time). Default: the whole test split."),
    max_drop: Optional[float] = typer.Option(None, "--max-drop", min=0.0, help="Largest accuracy drop in points, Keras -> int8. Default: export.max_drop, else 1."),
    allow_drop: bool = typer.Option(False, "--allow-drop", help="Report a larger accuracy drop without failing."),
    max_flash: Optional[int] = typer.Option(None, "--max-flash", min=1, help="Flash budget in bytes (the .tflite flatbuffer). Default: export.max_flash."),
    max_ram: Optional[int] = typer.Option(None, "--max-ram", min=1, help="RAM budget in bytes (the TFLM tensor arena). Default: export.max_ram."),
    unsafe: bool = typer.Option(False, "--unsafe", help="Load a model file with Lambda layers (runs code stored in the file)."),
) -> None:
    """Export a trained model to full-integer int8 TFLite and C source for TensorFlow Lite Micro.

    Runs the int8 model on the TFLM interpreter to check its accuracy against the Keras model.

    Prints the per-layer footprint; writes model.tflite, model_data.h/.cc, footprint.json, export.json.

    Writes into the run folder; for a bare model file, into a new folder of the workspace.

    Exit codes: 0 ok; 2 bad input; 3 a gate failed (accuracy drop, --max-flash, --max-ram), artifacts written.
    """
    fmt_flag = _parse_formats(formats) if formats is not None else None
    model_range = parse_range(input_range) if input_range is not None else None

    from tinyharden import pretrained
    from tinyharden.export.pipeline import check_compatible, export_model
    from tinyharden.footprint import render_table
    from tinyharden.models.loading import load_model
    from tinyharden.recipe import ExportSpec, load_recipe
    from tinyharden.workspace import new_run_dir, write_env

    target = pretrained.resolve(target)
    is_run = target.is_dir() and (target / "recipe.yaml").is_file()
    if is_run:
        recipe = load_recipe(target / "recipe.yaml")
        if not (target / "model.h5").is_file():
            raise UserError(f"run folder '{target}' has no model.h5; finish training it first (tinyharden train)")
        if data is not None:
            warn(f"--data is ignored for run folder '{target}': its recipe names the dataset ({recipe.data.dataset})")
        spec, seed = recipe.export or ExportSpec(), recipe.seed
        err.print(f"loading run [bold]{target}[/]", highlight=False)
        model = load_model(target / "model.h5", unsafe=unsafe)
        dataset = _dataset(recipe.data, recipe.seed, data_path, split)
        out_dir = None if pretrained.is_pretrained(target) else target  # shipped folders are read-only
    else:
        spec, seed = ExportSpec(), 0
        model = load_model(target, unsafe=unsafe)
        dataset = _dataset(_bare_spec(data, target), 0, data_path, split)
        out_dir = None  # created only once the model and data are known to fit
    fmt = fmt_flag or list(spec.formats)
    check_compatible(model, dataset)
    if out_dir is None:
        out_dir = new_run_dir(state.workspace, f"export-{target.stem or target.name}")
        write_env(out_dir, seed)

    bar, update = _progress()
    if bar is not None:
        bar.start()
    try:
        result = export_model(
            model, dataset, out_dir, model_range=model_range, formats=fmt,
            calib=calib or spec.calib, limit=limit, seed=seed,
            max_drop=spec.max_drop if max_drop is None else max_drop, allow_drop=allow_drop,
            max_flash=max_flash or spec.max_flash, max_ram=max_ram or spec.max_ram,
            source=str(target), progress=update)
    finally:
        if bar is not None:
            bar.stop()

    # Piped or captured output has no terminal width to respect: give the table room.
    out.print(render_table(result["footprint"]), width=None if out.is_terminal else max(out.width, 120))
    p = result["parity"]
    out.print(f"parity on {p['samples']:,} test samples ({p['interpreter']}): Keras {p['keras_accuracy']:.2f}%, "
              f"int8 {p['tflite_accuracy']:.2f}% (drop {p['drop']:+.2f} points), top-1 agreement {p['agreement']:.2f}%",
              highlight=False)
    q_in, q_out = result["input"], result["output"]
    out.print(f"input {q_in['dtype']} scale {q_in['scale']:.6g} zero point {q_in['zero_point']} "
              f"(model range {result['input_range'][0]:g}..{result['input_range'][1]:g}); "
              f"output scale {q_out['scale']:.6g} zero point {q_out['zero_point']}", highlight=False)
    out.print(f"wrote {', '.join(result['files'])} to {out_dir}", highlight=False)
    for g in result["gates"]:
        if g.get("waived"):
            warn(f"accuracy drop {g['value']:.2f} points exceeds max_drop {g['limit']:g}; allowed by --allow-drop")
    if result["failed"]:
        raise GateFailed("; ".join(_gate_message(g) for g in result["failed"]) + f" (artifacts written to {out_dir})")


def _gate_message(g: dict) -> str:
    if g["gate"] == "max_drop":
        return (f"accuracy drop {g['value']:.2f} points exceeds max_drop {g['limit']:g} "
                "(raise --max-drop or pass --allow-drop)")
    what = "flash (.tflite)" if g["gate"] == "max_flash" else "RAM (TFLM arena)"
    return f"{what} {g['value']:,} B exceeds {g['gate']} {g['limit']:,} B"
