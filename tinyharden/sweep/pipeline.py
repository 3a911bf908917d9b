"""The adapter between a sweep cell and the `tinyharden run` pipeline.

    >>> from tinyharden.sweep.pipeline import run_pipeline  # doctest: +SKIP
    >>> run_pipeline(recipe, Path("runs/kws-lambda/lambda-0.001_fold-0_seed-0"), stages=["train", "attack"])

`run_pipeline` is the one place a cell calls the run pipeline: the same library calls
`tinyharden run` makes (train, then the recipe's attack and export sections, then the
run's report), stage by stage, so a cell folder is a normal run folder. Issue 12 moves
that pipeline to `tinyharden.jobs.run(recipe, workspace)`; switching to it is a change of
this function's body only.

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


def _export(recipe: Recipe, run_dir: Path) -> list[dict[str, Any]]:
    from tinyharden.data import load_dataset
    from tinyharden.export.pipeline import export_model
    from tinyharden.models import load_model

    spec = recipe.export
    model = load_model(run_dir / "model.h5")  # the saved artifact, as `tinyharden run` exports it
    dataset = load_dataset(recipe.data, recipe.seed)
    result = export_model(model, dataset, run_dir, formats=list(spec.formats), calib=spec.calib, seed=recipe.seed,
                          max_drop=spec.max_drop, max_flash=spec.max_flash, max_ram=spec.max_ram,
                          source=str(run_dir))
    return result["failed"]


def _report(run_dir: Path) -> None:
    from tinyharden.report.build import generate
    from tinyharden.report.render import render
    from tinyharden.workspace import atomic_write_json, atomic_write_text

    doc, _, plot_files = generate([run_dir], plots_dir=run_dir)
    atomic_write_text(run_dir / "report.html", render(doc, "html", plot_files))
    atomic_write_json(run_dir / "report.json", doc)


def run_pipeline(recipe: Recipe, run_dir: Path, *, stages: Sequence[str]) -> dict[str, Any]:
    """Run (or finish) `recipe`'s pipeline in `run_dir`; returns what each stage did and the export's failed gates."""
    from tinyharden.attacks.job import run_attack

    run_dir = Path(run_dir)
    done: dict[str, Any] = {"stage_status": {}, "export_failed": []}
    _train(recipe, run_dir)
    done["stage_status"]["train"] = "done"
    if "attack" in stages and recipe.attack is not None:
        if not (run_dir / "attack.json").is_file():
            run_attack(run_dir, workspace=run_dir.parent)
        done["stage_status"]["attack"] = "done"
    if "export" in stages and recipe.export is not None:
        if not (run_dir / "export.json").is_file():
            done["export_failed"] = _export(recipe, run_dir)
        done["stage_status"]["export"] = "done"
    _report(run_dir)
    return done
