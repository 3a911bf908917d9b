"""The train job: a recipe into a new run folder, or the resume of an unfinished one.

    from tinyharden.jobs.train import train
    result = train(load_recipe("recipes/quickstart.yaml"), Path("runs"))
    result.metrics["test"]["accuracy"]
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from tinyharden.errors import Interrupted
from tinyharden.recipe import Recipe


@dataclass
class TrainResult:
    run_dir: Path
    metrics: dict[str, Any]  # metrics.json
    dataset: Any  # the loaded Dataset, reused by `run`'s later stages


def _fit(trainer, on_start: Callable[[Path], None] | None) -> TrainResult:
    if on_start:
        on_start(trainer.run_dir)
    try:
        metrics = trainer.fit()
    except KeyboardInterrupt:
        # The epoch counter runs ahead of the last checkpoint: name only what a resume will find.
        raise Interrupted(f"interrupted; checkpointed through epoch {trainer.checkpointed_epoch}; resume the training "
                          f"run {trainer.run_dir}") from None
    return TrainResult(run_dir=trainer.run_dir, metrics=metrics, dataset=trainer.ds)


def train(recipe: Recipe, workspace: Path, *, on_progress: Callable | None = None,
          on_start: Callable[[Path], None] | None = None, on_epoch: Callable | None = None) -> TrainResult:
    """Train `recipe` into a new run folder under `workspace`.

    `on_progress(epoch, step, steps, stats)` hears every step, `on_epoch(EpochLog)` every
    finished epoch (with its validation accuracy): the caller draws them, the job never prints.
    """
    from tinyharden.training import run

    return _fit(run.start(recipe, workspace, on_progress=on_progress, on_epoch=on_epoch), on_start)


def resume(run_dir: Path, *, on_progress: Callable | None = None, on_start: Callable[[Path], None] | None = None,
           warn: Callable[[str], None] | None = None, on_epoch: Callable | None = None) -> TrainResult:
    """Continue the training in `run_dir` from its last verified checkpoint (`warn` hears of damaged ones)."""
    from tinyharden.training import run

    return _fit(run.resume(run_dir, on_progress=on_progress, on_epoch=on_epoch, warn=warn or (lambda _: None)),
                on_start)
