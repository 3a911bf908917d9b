"""The runs job: what a workspace holds, one row per run folder, newest first (no TensorFlow).

    from tinyharden.jobs.runs import list_runs
    listing = list_runs(Path("runs"), dataset="digits")
    listing.runs[0].name, listing.runs[0].robust_accuracy, listing.skipped

A run folder is read through `RunFolder` and the versioned artifact models: the clean
accuracy of metrics.json (else the attack's clean accuracy), the suite's worst case at
the largest eps of attack.json, the deployed flash of export.json (else footprint.json).
A sweep folder (sweep.json) is one row: its cells, and the best grid point's mean clean
and worst-case accuracy (`tinyharden report runs/<sweep>` shows every point). A folder
whose artifacts do not read, or that no tinyharden command wrote, is skipped and named
in `skipped`; hidden folders are ignored.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

from tinyharden.artifacts import RunRow, RunsOutput
from tinyharden.errors import UserError
from tinyharden.workspace import RunFolder, read_json

# The files whose presence makes a folder a run folder; the newest of them dates it.
_MARKERS = (RunFolder.RECIPE, RunFolder.METRICS, RunFolder.ATTACK, RunFolder.EXPORT, RunFolder.FOOTPRINT,
            RunFolder.QUANTIZE, RunFolder.MODEL)
SWEEP_FILE = "sweep.json"  # tinyharden.sweep.aggregate.SWEEP_FILE; sweep imports the report, not jobs


def list_runs(workspace: Path, *, dataset: Optional[str] = None, now: Optional[float] = None) -> RunsOutput:
    """list_runs(Path("runs")).runs[0].name: every run folder of `workspace` as a `RunRow`, newest first.

    `dataset` keeps that dataset's runs only; `now` (seconds since the epoch) dates the ages.
    """
    from tinyharden.registry import DATASETS

    if dataset is not None:
        dataset = DATASETS.check(dataset)
    if not workspace.is_dir():
        raise UserError(f"workspace '{workspace}' is not a folder; pass the folder your runs went to "
                        "(the global workspace option, default runs)")
    now = time.time() if now is None else now
    rows: list[RunRow] = []
    skipped: list[dict[str, str]] = []
    for folder in sorted(p for p in workspace.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            row = _sweep_row(folder, now) if (folder / SWEEP_FILE).is_file() else _run_row(folder, now)
        except (UserError, OSError, ValueError, TypeError, KeyError) as exc:
            skipped.append({"folder": str(folder), "reason": _one_line(exc)})
            continue
        if row is None:
            skipped.append({"folder": str(folder), "reason": "no tinyharden artifacts"})
        elif dataset is None or row.dataset == dataset:
            rows.append(row)
    rows.sort(key=lambda r: (r.age_seconds, r.name))
    return RunsOutput(workspace=str(workspace), runs=rows, skipped=skipped)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _dated(files: list[Path], folder: Path, now: float) -> dict[str, Any]:
    stamp = max((f.stat().st_mtime for f in files), default=folder.stat().st_mtime)
    return {"modified": datetime.fromtimestamp(stamp, timezone.utc).isoformat(timespec="seconds"),
            "age_seconds": max(now - stamp, 0.0)}


def _value(score: Any) -> Optional[float]:
    """An accuracy stored as a number or as a proportion {"value": ...}."""
    if isinstance(score, dict):
        score = score.get("value")
    return float(score) if isinstance(score, (int, float)) else None


def _run_row(folder: Path, now: float) -> Optional[RunRow]:
    run = RunFolder(folder)
    present = [run.file(name) for name in _MARKERS if run.file(name).is_file()]
    if not present:
        return None
    recipe = run.recipe() if run.is_run() else None
    metrics = run.read("metrics") if run.file(RunFolder.METRICS).is_file() else None
    attack = run.read("attack") if run.file(RunFolder.ATTACK).is_file() else None
    export = run.read("export") if run.file(RunFolder.EXPORT).is_file() else None
    footprint = run.read("footprint") if run.file(RunFolder.FOOTPRINT).is_file() else None
    extra = (metrics.model_extra or {}) if metrics is not None else {}
    row: dict[str, Any] = {
        "name": folder.name, "path": str(folder),
        "model": (metrics.model if metrics else None) or (recipe.model.name if recipe else None)
        or (attack.target.name if attack else None),
        "dataset": (recipe.data.dataset if recipe else None) or (extra.get("dataset") or {}).get("name")
        or (attack.data.dataset if attack else None) or (export.dataset if export else None),
        "clean_accuracy": metrics.test.accuracy if metrics else _value(attack.clean.accuracy) if attack else None,
    }
    per_eps = attack.suite.per_eps if attack is not None and attack.suite is not None else []
    if per_eps:
        largest = max(per_eps, key=lambda p: float(p.eps))
        row.update(robust_accuracy=_value(largest.robust_accuracy), robust_eps=float(largest.eps))
    flashes = [d.flash_bytes for d in (export.deployed if export else None, footprint.deployed if footprint else None)
               if d is not None and d.flash_bytes is not None]
    row["flash_bytes"] = flashes[0] if flashes else None  # export.json first, else footprint.json
    return RunRow(**row, **_dated(present, folder, now))


def _sweep_row(folder: Path, now: float) -> RunRow:
    doc = read_json(folder / SWEEP_FILE)
    if not isinstance(doc, dict) or doc.get("kind") != "tinyharden sweep" or doc.get("schema_version") != 1:
        raise UserError(f"{SWEEP_FILE} is not a sweep this version reads (schema_version 1)")
    cells = doc.get("cells") or []
    first = next((RunFolder(folder / c["id"]) for c in cells if RunFolder(folder / c["id"]).is_run()), None)
    recipe = first.recipe() if first is not None else None
    metrics = doc.get("metrics") or []
    eps = doc.get("headline_eps")
    clean_key = next((m["key"] for m in metrics if m.get("kind") == "clean"), None)
    worst_key = next((m["key"] for m in metrics if m.get("kind") == "worst" and m.get("eps") == eps), None)
    return RunRow(name=folder.name, path=str(folder), type="sweep", model=recipe.model.name if recipe else None,
                  dataset=recipe.data.dataset if recipe else None,
                  clean_accuracy=_best_mean(doc, clean_key), robust_accuracy=_best_mean(doc, worst_key),
                  robust_eps=eps if worst_key else None, cells=len(cells),
                  cells_done=sum(c.get("status") == "done" for c in cells), **_dated([folder / SWEEP_FILE], folder, now))


def _best_mean(doc: dict, key: Optional[str]) -> Optional[float]:
    if key is None:
        return None
    means = [((p.get("stats") or {}).get(key) or {}).get("mean") for p in doc.get("points") or []]
    means = [m for m in means if isinstance(m, (int, float))]
    return max(means) if means else None
