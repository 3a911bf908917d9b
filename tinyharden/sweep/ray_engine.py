"""The Ray engine: every cell a Ray task on an existing cluster (`--address` or RAY_ADDRESS).

    >>> from tinyharden.sweep.ray_engine import run_ray  # doctest: +SKIP
    >>> run_ray(tasks, address="127.0.0.1:6379", cpus=1, gpus=0, on_result=print)

Ray Core, not Tune: a cell is a function call with no trial scheduler to drive, and the
run folders (on the shared storage every node sees) already hold the state Tune would
checkpoint. Each task asks for the cell's CPUs and GPUs and runs in its own worker
process (`max_calls=1`), the same clean process the local engine starts, so the same seed
gives the same metrics. Ray is imported here only, when a cluster is used: `tinyharden
--help` and the local engine never pay its import.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tinyharden.errors import UserError

OnResult = Callable[[dict[str, Any]], None]


def _connect(address: str):
    try:
        import ray
    except ImportError:
        raise UserError("a Ray cluster address needs Ray; install it with pip install 'ray[default]'", option="address") from None
    try:
        # Cell records stream back through ray.wait; the workers' TensorFlow chatter stays in Ray's logs.
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False, logging_level="ERROR")
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot reach the Ray cluster at '{address}' ({first}); start one with "
                        "ray start --head, or drop the address (and RAY_ADDRESS) to run here", option="address") from None
    return ray


def _run_cell(task: dict[str, Any]) -> dict[str, Any]:
    from tinyharden.sweep.cell import execute_cell

    return execute_cell(task)


def _lost(task: dict[str, Any], exc: BaseException) -> dict[str, Any]:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return {"cell": task["id"], "status": "failed", "values": task["values"], "seed": task["seed"], "seconds": None,
            "error": f"the Ray task failed ({type(exc).__name__}{': ' + first if first else ''}); "
                     "see the worker logs (ray logs)"}


def run_ray(tasks: list[dict[str, Any]], *, address: str, cpus: int, gpus: float, on_result: OnResult,
            on_start: Callable[[dict[str, Any]], None] | None = None) -> None:
    """Submit every task, stream each record back as its task ends; Ctrl-C cancels the rest."""
    ray = _connect(address)
    remote = ray.remote(num_cpus=cpus, num_gpus=gpus, max_calls=1, max_retries=0)(_run_cell)
    refs: dict[Any, dict[str, Any]] = {}
    try:
        for task in tasks:
            refs[remote.remote(task)] = task
            if on_start:
                on_start(task)
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1, timeout=1.0)
            for ref in ready:
                task = refs.pop(ref)
                try:
                    on_result(ray.get(ref))
                except ray.exceptions.RayError as exc:
                    on_result(_lost(task, exc))
    except KeyboardInterrupt:
        for ref in refs:  # the worker gets KeyboardInterrupt: its last checkpoint stays
            ray.cancel(ref)
        raise
    finally:
        ray.shutdown()
