"""`python -m tinyharden.sweep.worker TASK.json`: one cell in a fresh process (the local engine).

    python -m tinyharden.sweep.worker runs/digits-cv/logs/fold-0_seed-0.task.json

Exit code 0 whether the cell finished or failed (its cell.json says which), 130 when
interrupted: the cell is then unfinished and the next sweep resumes it.
"""
from __future__ import annotations

import json
import sys


def main(argv: list[str]) -> int:
    from tinyharden.sweep.cell import execute_cell

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
