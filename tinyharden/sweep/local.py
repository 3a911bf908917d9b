"""The local engine: cells one after another, or `jobs` at a time, each in a fresh process.

    >>> from tinyharden.sweep.local import run_local  # doctest: +SKIP
    >>> run_local(tasks, jobs=2, logs=Path("runs/digits-cv/logs"), on_result=print)

Every cell runs `python -m tinyharden.sweep.worker` (its output in `logs/<cell>.log`), so a
cell starts from the same clean process as on a Ray worker and a crash (out of memory, a
segfault in a native library) takes down that cell only. On Ctrl-C the running cells get
SIGINT (their last checkpoint stays), then KeyboardInterrupt is re-raised.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tinyharden.sweep.cell import read_status
from tinyharden.workspace import atomic_write_text

OnResult = Callable[[dict[str, Any]], None]
_GRACE_SECONDS = 20.0


def _start(task: dict[str, Any], logs: Path) -> subprocess.Popen:
    task_file = logs / f"{task['id']}.task.json"
    atomic_write_text(task_file, json.dumps(task))
    with open(logs / f"{task['id']}.log", "ab") as log:  # the child keeps its own descriptor
        return subprocess.Popen([sys.executable, "-m", "tinyharden.sweep.worker", str(task_file)],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def _outcome(task: dict[str, Any], code: int, log: Path) -> dict[str, Any]:
    record = read_status(Path(task["run_dir"]))
    if code == 0 and record is not None:
        return record
    # The process died before writing its record (killed, out of memory, a native crash).
    why = f"the cell's process exited with code {code}" if code >= 0 else f"the cell's process was killed by signal {-code}"
    return {"cell": task["id"], "status": "failed", "error": f"{why}; see {log}", "values": task["values"],
            "seed": task["seed"], "seconds": None}


def _stop(running: dict[subprocess.Popen, dict[str, Any]]) -> None:
    for proc in running:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + _GRACE_SECONDS
    for proc in running:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_local(tasks: list[dict[str, Any]], *, jobs: int, logs: Path, on_result: OnResult,
              on_start: Callable[[dict[str, Any]], None] | None = None) -> None:
    """Run `tasks` with at most `jobs` processes; `on_result` gets each cell's record as it ends."""
    logs.mkdir(parents=True, exist_ok=True)
    pending = list(tasks)
    running: dict[subprocess.Popen, dict[str, Any]] = {}
    try:
        while pending or running:
            while pending and len(running) < jobs:
                task = pending.pop(0)
                running[_start(task, logs)] = task
                if on_start:
                    on_start(task)
            for proc in [p for p in running if p.poll() is not None]:
                task = running.pop(proc)
                if proc.returncode == 130:
                    raise KeyboardInterrupt  # a cell was interrupted (Ctrl-C reached it first)
                on_result(_outcome(task, proc.returncode, logs / f"{task['id']}.log"))
            time.sleep(0.2)
    except KeyboardInterrupt:
        _stop(running)
        raise
