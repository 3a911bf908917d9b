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
) -> None:
    """Train the recipe's model; writes model.h5, metrics.json and checkpoints to a run folder.

    Example: tinyharden train recipes/quickstart.yaml train.epochs=2
    """
    from tinyharden.cli.progress import TrainProgress
    from tinyharden.cli.render import metrics_table
    from tinyharden.jobs import train as jobs
    from tinyharden.recipe import load_recipe

    if resume is None and recipe is None:
        fail("give a recipe (tinyharden train recipes/quickstart.yaml) or --resume RUN_DIR")
    if resume is not None and (recipe is not None or overrides):
        fail("--resume takes its recipe from the run folder; drop the recipe and overrides")
    started = lambda d: err.print(f"run folder: {d}", highlight=False)  # noqa: E731
    with TrainProgress() as progress:
        if resume is not None:
            result = jobs.resume(resume, on_progress=progress.update, on_start=started, warn=warn,
                                 on_epoch=progress.epoch_end)
        else:
            result = jobs.train(load_recipe(recipe, overrides or []), state.workspace, on_progress=progress.update,
                                on_start=started, on_epoch=progress.epoch_end)
    out.print(metrics_table(result.metrics))
    from tinyharden.footprint import render_table
    from tinyharden.workspace import RunFolder, read_json

    folder = RunFolder(result.run_dir)
    out.print(render_table(read_json(folder.file(RunFolder.FOOTPRINT))))
    out.print(f"model: {folder.model_file}", highlight=False)
