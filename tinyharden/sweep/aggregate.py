"""Aggregation: the cells' run folders to `sweep.json`, mean +/- std and a 95% interval per grid point.

    >>> from tinyharden.sweep.aggregate import stats
    >>> stats([0.9, 0.92, 0.94])["mean"]
    0.92

Per grid point (the cells that differ only by fold and seed) and per metric: the mean,
the sample standard deviation (n - 1) and the 95% Student-t interval of the mean over the
finished cells (accuracies' intervals clipped to [0, 1]). Metrics: clean test accuracy,
each attack's robust accuracy at each eps, the suite's per-sample worst case, the int8
accuracy on TFLite Micro and the footprint.
A cell's numbers are read from its run folder by the report's own reader (no TensorFlow).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from tinyharden.report.collect import fmt_eps, load_run
from tinyharden.sweep.grid import FOLD_KEY, Sweep

SCHEMA_VERSION = 1
SWEEP_FILE = "sweep.json"
FOOTPRINT = (("parameters", "parameters", "count"), ("packed_bytes", "packed weights", "bytes"),
             ("flash_bytes", "flash", "bytes"), ("ram_bytes", "RAM (arena)", "bytes"))


def stats(values: list[float], bounds: tuple[float, float] | None = None) -> dict[str, Any]:
    """Mean, sample std and the 95% t interval of the mean (None where n is too small), clipped to `bounds`."""
    from scipy.stats import t

    n = len(values)
    if n == 0:
        return {"mean": None, "std": None, "ci95": None, "n": 0, "values": []}
    mean = math.fsum(values) / n
    if n == 1:
        return {"mean": mean, "std": None, "ci95": None, "n": 1, "values": list(values)}
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(t.ppf(0.975, n - 1)) * std / math.sqrt(n)
    lo, hi = mean - half, mean + half
    if bounds is not None:  # an accuracy's interval past 100% says nothing more than 100%
        lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
    return {"mean": mean, "std": std, "ci95": [lo, hi], "n": n, "values": list(values)}


def cell_metrics(run_dir: Path) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """({metric key: value}, metric definitions) of one finished cell's run folder."""
    row = load_run(run_dir).row
    values: dict[str, float] = {}
    defs: list[dict[str, Any]] = []

    def put(key: str, value: Any, **meta: Any) -> None:
        if value is not None:
            values[key] = float(value)
            defs.append({"key": key, **meta})

    put("clean", (row["clean"] or {}).get("value"), kind="clean", label="clean", unit="fraction")
    for sweep in row["sweeps"]:
        worst = sweep["attack"] == "worst case"
        for p in sweep["points"]:
            if p["eps"] > 0:
                name = "worst case" if worst else sweep["attack"]
                put(f"{'worst' if worst else sweep['attack']}@{fmt_eps(p['eps'])}", p["value"],
                    kind="worst" if worst else "robust", attack=None if worst else sweep["attack"], eps=p["eps"],
                    label=f"{name} {p.get('label') or fmt_eps(p['eps'])}", unit="fraction")
    if row["export"] and row["export"].get("int8"):
        put("int8", row["export"]["int8"]["value"], kind="int8", label="int8 on TFLM", unit="fraction")
    for key, label, unit in FOOTPRINT:
        put(key, row.get(key), kind="footprint", label=label, unit=unit)
    return values, defs


def _merge_defs(all_defs: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    order = {"clean": 0, "robust": 1, "worst": 2, "int8": 3, "footprint": 4}
    seen: dict[str, dict[str, Any]] = {}
    for defs in all_defs:
        for d in defs:
            seen.setdefault(d["key"], d)
    return sorted(seen.values(), key=lambda d: (order[d["kind"]], d.get("attack") or "", d.get("eps") or 0.0))


def point_label(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items()) or "all cells"


def _cell_entry(sweep_dir: Path, cell, record: dict[str, Any] | None) -> dict[str, Any]:
    status = (record or {}).get("status") or "pending"
    return {"id": cell.id, "values": cell.values, "fold": cell.fold, "seed": cell.seed, "path": cell.id,
            "status": status, "error": (record or {}).get("error"), "seconds": (record or {}).get("seconds"),
            "metrics": {}}


def aggregate(sweep: Sweep, sweep_dir: Path, records: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The sweep.json document for the cells' current state (`records`: cell id -> cell.json)."""
    cells, all_defs = [], []
    for cell in sweep.cells:
        entry = _cell_entry(sweep_dir, cell, records.get(cell.id))
        if entry["status"] == "done":
            entry["metrics"], defs = cell_metrics(sweep_dir / cell.id)
            all_defs.append(defs)
        cells.append(entry)
    metrics = _merge_defs(all_defs)
    points: dict[str, dict[str, Any]] = {}
    for cell, entry in zip(sweep.cells, cells):
        label = point_label(cell.point)
        p = points.setdefault(label, {"id": label, "values": cell.point, "cells": [], "done": 0, "failed": 0})
        p["cells"].append(cell.id)
        p["done"] += entry["status"] == "done"
        p["failed"] += entry["status"] == "failed"
    by_id = {c["id"]: c for c in cells}
    for p in points.values():
        done = [by_id[c] for c in p["cells"] if by_id[c]["status"] == "done"]
        p["stats"] = {m["key"]: stats([c["metrics"][m["key"]] for c in done if m["key"] in c["metrics"]],
                                      (0.0, 1.0) if m["unit"] == "fraction" else None)
                      for m in metrics}
    eps = [m["eps"] for m in metrics if m["kind"] == "worst"] or [m["eps"] for m in metrics if m["kind"] == "robust"]
    spec = sweep.spec
    return {"schema_version": SCHEMA_VERSION, "kind": "tinyharden sweep", "name": spec.name,
            "source": str(sweep.source), "recipe": str(sweep.recipe_file), "grid": spec.grid, "seeds": spec.seeds,
            "stages": spec.stages, "overrides": spec.overrides, "swept": sweep.swept,
            "over": ([FOLD_KEY] if FOLD_KEY in spec.grid else []) + ["seed"],
            "headline_eps": max(eps) if eps else None, "metrics": metrics,
            "summary": {s: sum(c["status"] == s for c in cells) for s in ("done", "failed", "pending")},
            "points": list(points.values()), "cells": cells, "gates": {"bars": {}, "results": []}}
