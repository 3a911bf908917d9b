"""`tinyharden train RECIPE [key=value ...]`: quantization-aware, robust training."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from tinyharden.cli.common import err, fail, handle_errors, out, progress_enabled, state, warn


@handle_errors
def train(
    recipe: Optional[Path] = typer.Argument(None, help="YAML recipe, e.g. recipes/quickstart.yaml."),
    overrides: Optional[List[str]] = typer.Argument(None, help="Dotted overrides such as train.epochs=2."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue the run in this folder from its last checkpoint."),
) -> None:
    """Train the recipe's model; writes model.h5, metrics.json and checkpoints to a run folder."""
    from tinyharden.cli.render import TrainProgress, metrics_table
    from tinyharden.recipe import load_recipe
    from tinyharden.training import run

    if resume is None and recipe is None:
        fail("give a recipe (tinyharden train recipes/quickstart.yaml) or --resume RUN_DIR")
    if resume is not None and (recipe is not None or overrides):
        fail("--resume takes its recipe from the run folder; drop the recipe and overrides")
    progress = TrainProgress(enabled=progress_enabled())
    with progress:
        if resume is not None:
            trainer = run.resume(resume, on_progress=progress.update, warn=warn)
        else:
            parsed = load_recipe(recipe, overrides or [])
            trainer = run.start(parsed, state.workspace, on_progress=progress.update)
        err.print(f"run folder: {trainer.run_dir}", highlight=False)
        try:
            metrics = trainer.fit()
        except KeyboardInterrupt:
            from tinyharden.errors import UserError

            raise UserError(f"interrupted; checkpointed through epoch {trainer.checkpointed_epoch}; resume with: "
                            f"tinyharden train --resume {trainer.run_dir}", code=130) from None
    out.print(metrics_table(metrics))
    from tinyharden.footprint import render_table
    from tinyharden.workspace import read_json

    out.print(render_table(read_json(trainer.run_dir / "footprint.json")))
    out.print(f"model: {trainer.run_dir / 'model.h5'}", highlight=False)
