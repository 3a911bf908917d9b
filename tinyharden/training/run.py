"""Entry points for training a recipe into a run folder (used by the CLI and `run`)."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

from tinyharden.data import load_dataset
from tinyharden.errors import UserError
from tinyharden.recipe import Recipe, load_recipe
from tinyharden.training.checkpoints import lock_run_dir
from tinyharden.writable import check_writable
from tinyharden.workspace import new_run_dir


def start(recipe: Recipe, workspace: Path, *, model=None, dataset=None, teacher=None, **callbacks: Callable):
    """Create a new run folder for `recipe` and return its ready Trainer.

    `model` (outputting logits), `dataset` and a distillation `teacher` replace the
    recipe's when given, e.g. to fine-tune a model `tinyharden quantize` produced.
    """
    from tinyharden.training.trainer import Trainer

    ds = dataset if dataset is not None else load_dataset(recipe.data, recipe.seed)
    run_dir = new_run_dir(workspace, recipe.name)
    try:
        lock_run_dir(run_dir)
        trainer = Trainer(recipe, ds, run_dir, model=model, teacher=teacher, **callbacks)
    except BaseException:  # a recipe the trainer refuses leaves no empty run folder behind
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    trainer.write_start_files()
    return trainer


def resume(run_dir: Path, *, warn: Callable[[str], None] = lambda _: None, **callbacks: Callable):
    """Rebuild the Trainer of an existing run folder and restore its last checkpoint."""
    from tinyharden.training.trainer import Trainer

    run_dir = Path(run_dir)
    recipe_file = run_dir / "recipe.yaml"
    if not recipe_file.is_file():
        raise UserError(f"'{run_dir}' is not a run folder (no recipe.yaml); pass the folder `tinyharden train` created")
    if (run_dir / "metrics.json").is_file():
        raise UserError(f"run '{run_dir}' already finished (metrics.json exists); start a new run instead of resuming it")
    check_writable(run_dir, what="run folder", create=False)
    lock_run_dir(run_dir)  # before reading anything: a second resume of the folder is refused
    recipe = load_recipe(recipe_file)
    ds = load_dataset(recipe.data, recipe.seed)
    trainer = Trainer(recipe, ds, run_dir, **callbacks)
    done = trainer.restore(warn=warn)
    if done == 0 and not (run_dir / "checkpoints").exists():
        trainer.write_start_files()
    return trainer
