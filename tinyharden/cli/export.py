"""`tinyharden export`: int8 TFLite + C source, parity on TFLM, footprint and budgets."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from tinyharden.cli.common import choices_option, err, handle_errors, out, progress_enabled, state, warn, wide
from tinyharden.cli.parsing import parse_bytes, parse_list, parse_range, sample_count
from tinyharden.errors import GateFailed, UserError
from tinyharden.registry import DATASETS

Opt = typer.Option
_FORMATS = ("tflite", "c")


def _parse_formats(text: str) -> list[str]:
    formats = [f.lower() for f in parse_list(text) or []]
    bad = [f for f in formats if f not in _FORMATS]
    if bad or not formats:
        raise UserError(f"unknown export format {', '.join(repr(b) for b in bad) or repr(text)}; use --format tflite,c")
    return formats


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
    target: Annotated[Path, typer.Argument(help="A run folder written by `tinyharden train`, or a Keras model file (.h5/.keras) or SavedModel folder.")],
    formats: Annotated[Optional[str], Opt("--format", "-f", help="Artifacts to write, comma-separated: tflite, c. Default: the recipe's export.formats, else tflite,c.")] = None,
    calib: Annotated[Optional[int], Opt("--calib", min=1, help="Training inputs that calibrate the int8 ranges. Default: export.calib, else 500.")] = None,
    data: Annotated[Optional[str], choices_option("--data", registry=DATASETS, help="Dataset of a bare model file ({choices}); a run folder uses its recipe's.")] = None,
    input_range: Annotated[Optional[str], Opt("--input-range", help="LO,HI the model's inputs span for data in [0,1], e.g. 0,255 for raw pixels. Default: the dataset's range.")] = None,
    data_path: Annotated[Optional[Path], Opt("--data-path", help="Folder holding the dataset (replaces the recipe's data.path).")] = None,
    split: Annotated[str, Opt("--split", help="Parity check on 'test' (the held-out split) or 'all' (every sample of the folder).")] = "test",
    n: Annotated[Optional[int], Opt("-n", "--n", help="Test samples for the parity check (TFLM runs one at a time). Default: the whole test split.")] = None,
    limit: Annotated[Optional[int], Opt("--limit", hidden=True, help="Old name of -n.")] = None,
    max_drop: Annotated[Optional[float], Opt("--max-drop", min=0.0, help="Largest accuracy drop in points, Keras -> int8. Default: export.max_drop, else 1.")] = None,
    allow_drop: Annotated[bool, Opt("--allow-drop", help="Report a larger accuracy drop without failing.")] = False,
    max_flash: Annotated[Optional[str], Opt("--max-flash", metavar="SIZE", help="Flash budget (the .tflite flatbuffer): 65536, 64K or 1M. Default: export.max_flash.")] = None,
    max_ram: Annotated[Optional[str], Opt("--max-ram", metavar="SIZE", help="RAM budget (the TFLM tensor arena): 65536, 64K or 1M. Default: export.max_ram.")] = None,
    name: Annotated[Optional[str], Opt("--name", help="For a model file: the run folder to write into (shared with attack --name, so report shows one row).")] = None,
    unsafe: Annotated[bool, Opt("--unsafe", help="Load a model file with Lambda layers (runs code stored in the file).")] = False,
    json_out: Annotated[bool, Opt("--json", help="Print export.json's record, the footprint and failed gates as one JSON document instead of the tables.")] = False,
) -> None:
    """Export a trained model to full-integer int8 TFLite and C source for TensorFlow Lite Micro.

    Example: tinyharden export runs/quickstart --format tflite,c --calib 500 --max-flash 64K

    Runs the int8 model on the TFLM interpreter to check its accuracy against the Keras model.

    Prints the per-layer footprint; writes model.tflite, model_data.h/.cc, footprint.json, export.json.

    Writes into the run folder; for a bare model file, into a new folder of the workspace (or --name).

    Exit codes: 0 ok; 2 bad input; 3 a gate failed (accuracy drop, --max-flash, --max-ram), artifacts written.
    """
    from tinyharden.jobs.export import ExportRequest
    from tinyharden.jobs.export import export as export_job
    from tinyharden.workspace import RunFolder

    from tinyharden.evaluation.data import check_split

    check_split(split)
    request = ExportRequest(target=target, formats=_parse_formats(formats) if formats is not None else None,
                            calib=calib, dataset=data, data_path=data_path, split=split, input_range=parse_range(input_range) if input_range else None,
                            limit=sample_count(n, limit), max_drop=max_drop, allow_drop=allow_drop,
                            max_flash=parse_bytes(max_flash, "--max-flash"), max_ram=parse_bytes(max_ram, "--max-ram"),
                            name=name, unsafe=unsafe)
    if data is not None and RunFolder(target).is_run():
        warn(f"--data is ignored for run folder '{target}': its recipe names the dataset "
             f"({RunFolder(target).recipe().data.dataset})")
    bar, update = _progress()
    if bar is not None:
        bar.start()
    try:
        result = export_job(request, state.workspace, progress=update,
                            on_load=lambda d: err.print(f"loading run [bold]{d}[/]", highlight=False))
    finally:
        if bar is not None:
            bar.stop()
    if json_out:
        from tinyharden.artifacts import ExportOutput
        from tinyharden.cli.jsonout import print_json

        print_json(ExportOutput(run_dir=str(result.out_dir), export=result.record, footprint=result.footprint,
                                failed_gates=result.failed))
    else:
        show(result.record, result.footprint, result.out_dir)
    warn_short_split(result.record["parity"], "-n")
    if result.failed:
        raise GateFailed("; ".join(_gate_message(g) for g in result.failed) + f" (artifacts written to {result.out_dir})")


def show(record: dict, footprint: dict, out_dir: Path, *, brief: bool = False) -> None:
    """The footprint table, the parity line and (unless `brief`) the quantization and files."""
    from tinyharden.footprint import render_table

    wide(render_table(footprint))
    p = record["parity"]
    agreement = "" if brief else f", top-1 agreement {p['agreement']:.2f}%"
    out.print(f"parity on {p['samples']:,} test samples ({p['interpreter']}): Keras {p['keras_accuracy']:.2f}%, "
              f"int8 {p['tflite_accuracy']:.2f}% (drop {p['drop']:+.2f} points){agreement}", highlight=False)
    if brief:
        return
    q_in, q_out = record["input"], record["output"]
    out.print(f"input {q_in['dtype']} scale {q_in['scale']:.6g} zero point {q_in['zero_point']} "
              f"(model range {record['input_range'][0]:g}..{record['input_range'][1]:g}); "
              f"output scale {q_out['scale']:.6g} zero point {q_out['zero_point']}", highlight=False)
    out.print(f"wrote {', '.join(record['files'])} to {out_dir}", highlight=False)
    for g in record["gates"]:
        if g.get("waived"):
            warn(f"accuracy drop {g['value']:.2f} points exceeds max_drop {g['limit']:g}; allowed by --allow-drop")


def warn_short_split(parity: dict, flag: str) -> None:
    """-n larger than the split is cut to the split: say so (with the count that ran)."""
    asked = parity.get("requested")
    if asked is not None and asked > parity["samples"]:
        warn(f"{flag} {asked} is more than the split holds: the parity check ran on all {parity['samples']:,} samples")


def _gate_message(g: dict) -> str:
    if g["gate"] == "max_drop":
        return (f"accuracy drop {g['value']:.2f} points exceeds max_drop {g['limit']:g} "
                "(raise --max-drop or pass --allow-drop)")
    what = "flash (.tflite)" if g["gate"] == "max_flash" else "RAM (TFLM arena)"
    return f"{what} {g['value']:,} B exceeds {g['gate']} {g['limit']:,} B"
