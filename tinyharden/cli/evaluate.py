"""`tinyharden evaluate MODEL_OR_RUN`: accuracy with its Wilson interval, per class, and the confusion matrix.

    tinyharden evaluate kws-stq-jr --data-path ../shared/data/speech_commands --split all

Exit codes: 0 ok; 2 bad arguments or input files; 130 interrupted.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from tinyharden.cli.common import choices_option, handle_errors, out, state, warn
from tinyharden.registry import DATASETS


@handle_errors
def evaluate(
    model: Annotated[str, typer.Argument(help="Run folder, shipped model name (tinyharden pretrained), Keras file, SavedModel folder or .tflite.", show_default=False)],
    data: Annotated[Optional[str], choices_option("--data", registry=DATASETS, help="Dataset of a bare model file: {choices}.")] = None,
    data_path: Annotated[Optional[Path], typer.Option("--data-path", help="Folder holding the dataset (replaces the recipe's data.path).")] = None,
    split: Annotated[str, typer.Option("--split", help="'test' (the held-out split) or 'all' (every sample in the folder).")] = "test",
    n: Annotated[Optional[int], typer.Option("-n", "--n", min=1, help="Score the first N samples of the split. Default: all of them.")] = None,
    input_range: Annotated[Optional[str], typer.Option("--input-range", help="The model's input range LO,HI when not the data's, e.g. 0,255.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as one JSON document (schema_version, kind) instead of the tables.")] = False,
    unsafe: Annotated[bool, typer.Option("--unsafe", help="Allow model files with Lambda layers (their code runs on load).")] = False,
) -> None:
    """Score a model: accuracy (Wilson 95% interval), per-class accuracy, confusion matrix (table and PNG).

    Example: tinyharden evaluate runs/speech-stq-jr --data-path /data/speech_commands_test --split all
    """
    from tinyharden.cli.parsing import parse_range
    from tinyharden.evaluation.job import run_evaluate

    rng = parse_range(input_range) if input_range else None
    outcome = run_evaluate(model, data=data, data_path=data_path, split=split, input_range=rng,
                           unsafe=unsafe, workspace=state.workspace, n=n)
    report = outcome.report
    if json_out:
        from tinyharden.artifacts import EvaluateOutput
        from tinyharden.cli.jsonout import print_json

        print_json(EvaluateOutput(run_dir=str(outcome.run_dir), evaluation=report))
    else:
        from tinyharden.cli.render_eval import confusion_table, summary_table

        out.print(summary_table(report))
        out.print(confusion_table(report))
        out.print(f"results: {outcome.run_dir / f'evaluate-{split}.json'}, {outcome.run_dir / report['confusion_png']}",
                  highlight=False)
    if n is not None and n > report["n"]:
        warn(f"-n {n} is more than the {report['dataset']} {split} split holds: scored all {report['n']} samples")
