"""One cell, executed: the same function whichever engine runs it, in a fresh process.

    >>> from tinyharden.sweep.cell import execute_cell  # doctest: +SKIP
    >>> execute_cell(task)["status"]
    'done'

A task is plain data (picklable, JSON-able): the cell's id, resolved recipe, run folder,
stages and CPU count. `execute_cell` pins TensorFlow's thread pools to the cell's CPUs
before TensorFlow is imported (thread counts change the order of float sums, and so the
metrics; pinned, the local engine and a Ray worker give the same numbers), runs the
pipeline and writes `cell.json` into the run folder last: status done, or failed with its
one-line error. A Ctrl-C is not a failure: the cell is left unfinished, to be resumed.
"""
from __future__ import annotations

import os
import time
import traceback
from pathlib import Path
from typing import Any

CELL_FILE = "cell.json"
SCHEMA_VERSION = 1


def task_for(cell, run_dir: Path, *, stages: list[str], cpus: int) -> dict[str, Any]:
    return {"id": cell.id, "values": cell.values, "seed": cell.seed, "recipe": cell.recipe,
            "run_dir": str(Path(run_dir).resolve()), "stages": list(stages), "cpus": int(cpus)}


def read_status(run_dir: Path) -> dict[str, Any] | None:
    """The cell.json of a run folder, or None when the cell never finished (or failed)."""
    import json

    try:
        doc = json.loads((Path(run_dir) / CELL_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("schema_version") == SCHEMA_VERSION else None


def is_done(run_dir: Path, task: dict[str, Any]) -> bool:
    """True when the cell finished with the same recipe and at least the same stages."""
    doc = read_status(run_dir)
    return bool(doc and doc.get("status") == "done" and doc.get("recipe") == task["recipe"]
                and set(task["stages"]) <= set(doc.get("stages") or []))


def pin_threads(cpus: int) -> None:
    os.environ["OMP_NUM_THREADS"] = str(cpus)
    os.environ["TF_NUM_INTRAOP_THREADS"] = str(cpus)
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"
    from tinyharden._tf import tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(cpus)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TensorFlow already ran an op in this process: keep its pools
        pass


def _check_same_recipe(run_dir: Path, recipe) -> None:
    """A cell folder trained from another recipe (the sweep file changed) must not be resumed silently."""
    from tinyharden.errors import UserError
    from tinyharden.recipe import load_recipe

    saved = run_dir / "recipe.yaml"
    if not saved.is_file():
        return
    old = load_recipe(saved).resolved()
    new = recipe.resolved()
    if old != new:
        key = next(k for k in new if old.get(k) != new.get(k))
        raise UserError(f"cell folder {run_dir} was trained with another recipe (section '{key}' differs); "
                        "delete the folder or give the sweep another name")


def _record(run_dir: Path, task: dict[str, Any], status: str, error: str | None, seconds: float,
            extra: dict[str, Any]) -> dict[str, Any]:
    from tinyharden.workspace import atomic_write_json

    doc = {"schema_version": SCHEMA_VERSION, "cell": task["id"], "status": status, "error": error,
           "values": task["values"], "seed": task["seed"], "stages": task["stages"], "cpus": task["cpus"],
           "seconds": round(seconds, 3), "pid": os.getpid(), "recipe": task["recipe"], **extra}
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run_dir / CELL_FILE, doc)
    return doc


def execute_cell(task: dict[str, Any]) -> dict[str, Any]:
    """Run one cell to its end; returns its cell.json record (KeyboardInterrupt propagates)."""
    from tinyharden.errors import UserError

    run_dir = Path(task["run_dir"])
    t0 = time.perf_counter()
    try:
        pin_threads(task["cpus"])
        from tinyharden.recipe import validate
        from tinyharden.sweep.pipeline import run_pipeline

        recipe = validate(task["recipe"], source=f"cell {task['id']}")
        _check_same_recipe(run_dir, recipe)
        outcome = run_pipeline(recipe, run_dir, stages=task["stages"])
    except UserError as exc:
        return _record(run_dir, task, "failed", str(exc), time.perf_counter() - t0, {})
    except MemoryError:
        return _record(run_dir, task, "failed", "out of memory; lower train.batch_size or attack.n",
                       time.perf_counter() - t0, {})
    except Exception as exc:  # noqa: BLE001 - one bad cell must not stop the sweep; its trace goes to the log
        traceback.print_exc()
        line = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")
        return _record(run_dir, task, "failed", f"{line} (traceback in the cell's log)", time.perf_counter() - t0, {})
    return _record(run_dir, task, "done", None, time.perf_counter() - t0, outcome)
