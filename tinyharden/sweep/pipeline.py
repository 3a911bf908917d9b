"""The adapter between a sweep cell and the `tinyharden run` pipeline.

    >>> from tinyharden.sweep.pipeline import run_pipeline  # doctest: +SKIP
    >>> run_pipeline(recipe, Path("runs/kws-lambda/lambda-0.001_fold-0_seed-0"), stages=["train", "attack"])

`run_pipeline` is the one place a cell calls the run pipeline: the same library calls
`tinyharden run` makes (train, then the recipe's attack and export sections, then the
run's report), stage by stage, so a cell folder is a normal run folder: the stages are
`tinyharden.jobs.run`'s own (`attack_stage`, `export_stage`, `report_stage`).

Each stage whose artifact is already in the folder is skipped (metrics.json, attack.json,
export.json are written last by their stage), and an unfinished training resumes from its
last checkpoint: that is what makes a killed sweep continue where it stopped.
"""
from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tinyharden.errors import UserError
from tinyharden.recipe import Recipe


def _train(recipe: Recipe, run_dir: Path) -> None:
    from tinyharden.training import run as training

    if (run_dir / "metrics.json").is_file():
        return
    if (run_dir / "recipe.yaml").is_file():
        trainer = training.resume(run_dir)
    else:
        if run_dir.exists():  # killed before the trainer wrote anything: nothing to keep
            shutil.rmtree(run_dir)
        trainer = training.start(recipe, run_dir.parent)
        if trainer.run_dir.resolve() != run_dir.resolve():
            raise UserError(f"cell folder {run_dir} was taken while the cell started; re-run the sweep")
    trainer.fit()


def run_pipeline(recipe: Recipe, run_dir: Path, *, stages: Sequence[str]) -> dict[str, Any]:
    """Run (or finish) `recipe`'s pipeline in `run_dir`; returns what each stage did and the export's failed gates."""
    from tinyharden.data import load_dataset
    from tinyharden.jobs.run import attack_stage, export_stage, report_stage

    run_dir = Path(run_dir)
    done: dict[str, Any] = {"stage_status": {}, "export_failed": []}
    _train(recipe, run_dir)
    done["stage_status"]["train"] = "done"
    if "attack" in stages and recipe.attack is not None:
        if not (run_dir / "attack.json").is_file():
            attack_stage(run_dir, run_dir.parent)
        done["stage_status"]["attack"] = "done"
    if "export" in stages and recipe.export is not None:
        if not (run_dir / "export.json").is_file():
            exported = export_stage(run_dir, recipe, load_dataset(recipe.data, recipe.seed))
            done["export_failed"] = exported["failed"]
        done["stage_status"]["export"] = "done"
    report_stage(run_dir)
    return done
