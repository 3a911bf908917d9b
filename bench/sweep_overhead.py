"""Per-cell overhead of each sweep engine: a cell's wall time vs the same run alone.

"Alone" is `tinyharden run RECIPE <the cell's overrides>` in a fresh process, once per
cell (what a user types by hand). "local" is `tinyharden sweep` with --jobs 1, "ray" the
same sweep on a one-node loopback Ray cluster (started before the clock starts, as a
cluster that already exists would be). The cells are the digits quickstart over
`--folds` folds, trained and attacked (no export: the run alone is told export=null).
Per-cell overhead = (engine wall - sum of the alone walls) / cells. Prints a table and
writes bench/results/sweep_overhead.json.

    python bench/sweep_overhead.py [--folds 2] [--epochs 2] [--no-ray]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tinyharden.workspace import atomic_write_json, package_versions

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "bench" / "results" / "sweep_overhead.json"


def _overrides(epochs: int, folds: int) -> list[str]:
    return [f"data.folds={max(folds, 2)}", f"train.epochs={epochs}", "attack.suite=[fgsm,pgd]", "attack.n=100",
            "attack.eps=[8/255]"]


def _timed(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=3600, check=False)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:6])} ... failed ({done.returncode}): {done.stderr[-1500:]}")
    return wall


def _sweep_file(folder: Path, name: str, overrides: list[str], folds: int) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(f"name: {name}\nrecipe: {ROOT / 'recipes' / 'quickstart.yaml'}\n"
                    f"grid:\n  data.fold: {list(range(folds))}\nstages: [train, attack]\n"
                    f"overrides: {json.dumps(overrides)}\n")
    return path


def _cell_seconds(sweep_dir: Path) -> list[float]:
    return [json.loads(p.read_text())["seconds"] for p in sorted(sweep_dir.glob("*/cell.json"))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--folds", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--no-ray", action="store_true")
    args = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    py = [sys.executable, "-m", "tinyharden"]
    over = _overrides(args.epochs, args.folds)
    work = Path(tempfile.mkdtemp(prefix="sweep-bench-"))
    alone = [_timed(py + ["-w", str(work / "alone"), "run", str(ROOT / "recipes" / "quickstart.yaml"), *over,
                          f"data.fold={k}", "export=null"], env) for k in range(args.folds)]
    engines: dict[str, dict] = {}
    wall = _timed(py + ["-w", str(work / "local"), "sweep", str(_sweep_file(work, "local", over, args.folds))], env)
    engines["local"] = {"wall_s": wall, "cell_s": _cell_seconds(work / "local" / "local")}
    if not args.no_ray:
        from tinyharden.sweep.loopback import loopback_cluster

        with loopback_cluster(num_cpus=1, env={"PYTHONPATH": str(ROOT)}) as address:
            wall = _timed(py + ["sweep", str(_sweep_file(work, "ray", over, args.folds)), "--address", address,
                                "--storage", str(work / "ray")], env)
        engines["ray"] = {"wall_s": wall, "cell_s": _cell_seconds(work / "ray" / "ray")}
    for e in engines.values():
        e["overhead_per_cell_s"] = (e["wall_s"] - sum(alone)) / args.folds
        e["overhead_per_cell_pct"] = 100 * (e["wall_s"] - sum(alone)) / sum(alone)
    doc = {"what": "per-cell overhead of tinyharden sweep's engines vs the same runs alone (tinyharden run)",
           "cells": args.folds, "overrides": over, "alone_s": alone, "engines": engines,
           "cpu_count": os.cpu_count(), "load_average": os.getloadavg(), "versions": package_versions()}
    atomic_write_json(RESULT, doc)
    print(f"{args.folds} cells, alone {sum(alone):.1f} s in total ({', '.join(f'{a:.1f}' for a in alone)})")
    for name, e in engines.items():
        print(f"{name:>6}: wall {e['wall_s']:.1f} s, overhead {e['overhead_per_cell_s']:+.1f} s per cell "
              f"({e['overhead_per_cell_pct']:+.1f}%)")
    print(f"written: {RESULT}")


if __name__ == "__main__":
    main()
