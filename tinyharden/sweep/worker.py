"""`python -m tinyharden.sweep.worker TASK.json`: one cell in a fresh process (the local engine).

    python -m tinyharden.sweep.worker runs/digits-cv/logs/fold-0_seed-0.task.json

Exit code 0 whether the cell finished or failed (its cell.json says which), 130 when
interrupted: the cell is then unfinished and the next sweep resumes it.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time


def _stop_with_parent() -> None:
    """Interrupt this cell when the sweep that started it dies (even by SIGKILL).

    An orphaned cell would go on training, and the next sweep would run the same cell a
    second time beside it; interrupted, it keeps its last checkpoint for that sweep.
    """
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=watch, daemon=True, name="stop-with-parent").start()


def main(argv: list[str]) -> int:
    from tinyharden.sweep.cell import execute_cell

    _stop_with_parent()
    with open(argv[0], encoding="utf-8") as f:
        task = json.load(f)
    try:
        record = execute_cell(task)
    except KeyboardInterrupt:
        print(f"cell {task['id']}: interrupted; the next sweep resumes it", file=sys.stderr)
        return 130
    print(f"cell {task['id']}: {record['status']}" + (f": {record['error']}" if record["error"] else ""),
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
