"""A whole sweep: expand, skip finished cells, run the rest on an engine, aggregate.

    >>> from tinyharden.sweep.runner import run_sweep  # doctest: +SKIP
    >>> doc = run_sweep(Path("sweeps/digits-cv.yaml"), storage=Path("runs"), jobs=2)
    >>> doc["summary"]
    {'done': 5, 'failed': 0, 'pending': 0}

Cells live in `<storage>/<sweep name>/<cell id>/`; `sweep.yaml` (the file as given) and
`sweep.json` (the aggregate, rewritten after every cell, atomically) sit beside them, so a
sweep interrupted at any moment leaves a valid aggregate of what finished, and the next
`tinyharden sweep` skips every cell whose cell.json says done with the same recipe.
"""
from __future__ import annotations

from collections.abc import Sequence

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinyharden.errors import UserError
from tinyharden.sweep.aggregate import SWEEP_FILE, aggregate
from tinyharden.sweep.cell import is_done, read_status, task_for
from tinyharden.sweep.grid import Sweep, expand
from tinyharden.workspace import atomic_write_json, atomic_write_text

Event = Callable[[str, dict[str, Any]], None]  # ("skip" | "start" | "done" | "failed", cell record or task)


@dataclass
class Engine:
    """Where cells run: `address` None is this machine with `jobs` processes."""

    jobs: int = 1
    address: str | None = None

    @property
    def name(self) -> str:
        return f"ray ({self.address})" if self.address else f"local ({self.jobs} process{'es' if self.jobs > 1 else ''})"


def sweep_dir_for(sweep: Sweep, storage: Path) -> Path:
    if "://" in str(storage):
        raise UserError(f"storage '{storage}' is a URL; object storage is not supported yet: mount it "
                        "(s3fs, gcsfuse) and pass the mounted folder")
    return Path(storage).expanduser().resolve() / sweep.spec.name


def _write_state(sweep: Sweep, sweep_dir: Path, records: dict[str, dict[str, Any]]) -> dict[str, Any]:
    doc = aggregate(sweep, sweep_dir, records)
    atomic_write_json(sweep_dir / SWEEP_FILE, doc)
    return doc


def _dispatch(engine: Engine, tasks: list[dict[str, Any]], logs: Path, sweep: Sweep,
              on_result: Callable[[dict[str, Any]], None], on_start: Callable[[dict[str, Any]], None]) -> None:
    if engine.address:
        from tinyharden.sweep.ray_engine import run_ray

        res = sweep.spec.resources
        run_ray(tasks, address=engine.address, cpus=res.cpus, gpus=res.gpus, on_result=on_result, on_start=on_start)
    else:
        from tinyharden.sweep.local import run_local

        run_local(tasks, jobs=engine.jobs, logs=logs, on_result=on_result, on_start=on_start)


def run_sweep(path: Path, *, storage: Path, engine: Engine, on_event: Event | None = None,
              overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Run every unfinished cell of the sweep file at `path` (plus fixed `overrides`); returns the final sweep.json."""
    sweep = expand(path, overrides=overrides)
    sweep_dir = sweep_dir_for(sweep, storage)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(sweep_dir / "sweep.yaml", Path(path).read_text(encoding="utf-8"))
    emit = on_event or (lambda kind, data: None)
    records: dict[str, dict[str, Any]] = {}
    tasks = []
    for cell in sweep.cells:
        task = task_for(cell, sweep_dir / cell.id, stages=sweep.spec.stages, cpus=sweep.spec.resources.cpus)
        if is_done(sweep_dir / cell.id, task):
            records[cell.id] = read_status(sweep_dir / cell.id)
            emit("skip", records[cell.id])
        else:
            tasks.append(task)

    def on_result(record: dict[str, Any]) -> None:
        records[record["cell"]] = record
        _write_state(sweep, sweep_dir, records)
        emit(record["status"], record)

    _write_state(sweep, sweep_dir, records)
    if tasks:
        _dispatch(engine, tasks, sweep_dir / "logs", sweep, on_result, lambda task: emit("start", task))
    return _write_state(sweep, sweep_dir, records)


def engine_from(jobs: int | None, address: str | None) -> Engine:
    """The engine the options ask for; RAY_ADDRESS stands in for `address`."""
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address and jobs is not None:
        raise UserError("a job count is for the local engine; on a Ray cluster each cell asks for resources.cpus "
                        "and the cluster runs as many as fit (drop the job count, or the address and RAY_ADDRESS)",
                        option="jobs")
    return Engine(jobs=jobs or 1, address=address)
