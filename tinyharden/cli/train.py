"""`tinyharden train RECIPE [key=value ...]`: quantization-aware, robust training."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional

import typer

from tinyharden.cli.common import err, fail, handle_errors, out, state, warn


@handle_errors
def train(
    recipe: Annotated[Optional[Path], typer.Argument(help="YAML recipe, e.g. recipes/quickstart.yaml.")] = None,
    overrides: Annotated[Optional[List[str]], typer.Argument(help="Dotted overrides such as train.epochs=2.")] = None,
    resume: Annotated[Optional[Path], typer.Option("--resume", help="Continue the run in this folder from its last checkpoint.")] = None,
    data_path: Annotated[Optional[Path], typer.Option("--data-path", help="Folder holding the dataset (replaces the recipe's data.path).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the run folder, metrics.json and footprint.json as one JSON document instead of the tables.")] = False,
) -> None:
    """Train the recipe's model; writes model.h5, metrics.json and checkpoints to a run folder.

    Example: tinyharden train recipes/quickstart.yaml train.epochs=2
    """
    from tinyharden.cli.progress import TrainProgress
    from tinyharden.jobs import train as jobs
    from tinyharden.recipe import load_recipe, with_data_path

    if resume is None and recipe is None:
        fail("give a recipe (tinyharden train recipes/quickstart.yaml) or --resume RUN_DIR")
    if resume is not None and (recipe is not None or overrides or data_path is not None):
        fail("--resume takes its recipe (and data path) from the run folder; drop the recipe, overrides and --data-path")
    started = lambda d: err.print(f"run folder: {d}", highlight=False)  # noqa: E731
    with TrainProgress() as progress:
        if resume is not None:
            result = jobs.resume(resume, on_progress=progress.update, on_start=started, warn=warn,
                                 on_epoch=progress.epoch_end)
        else:
            spec = with_data_path(load_recipe(recipe, overrides or []), data_path)
            result = jobs.train(spec, state.workspace, on_progress=progress.update, on_start=started,
                                on_epoch=progress.epoch_end)
    _show(result, json_out)


def _show(result, json_out: bool) -> None:
    from tinyharden.workspace import RunFolder, read_json

    folder = RunFolder(result.run_dir)
    footprint = read_json(folder.file(RunFolder.FOOTPRINT))
    if json_out:
        from tinyharden.artifacts import TrainOutput
        from tinyharden.cli.jsonout import print_json

        return print_json(TrainOutput(run_dir=str(folder.path), metrics=result.metrics, footprint=footprint))
    from tinyharden.cli.render import metrics_table
    from tinyharden.footprint import render_table

    out.print(metrics_table(result.metrics))
    out.print(render_table(footprint))
    out.print(f"model: {folder.model_file}", highlight=False)
