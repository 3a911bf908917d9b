"""`tinyharden sweep SWEEP.yaml`: every cell of a grid as a run folder, then the aggregate.

Exit codes: 0 every cell done; 1 some cells failed (each listed with its one-line error;
the others ran); 2 a bad sweep file or option; 130 interrupted (the next run continues).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tinyharden.cli.common import err, handle_errors, out, state
from tinyharden.errors import EXIT_INTERRUPTED, UserError

if TYPE_CHECKING:
    from tinyharden.jobs.report import Bars


def _progress(total: int):
    seen = {"n": 0}

    def on_event(kind: str, data: dict[str, Any]) -> None:
        if kind == "start":
            err.print(f"[dim]start[/] {data['id']}", highlight=False)
            return
        seen["n"] += 1
        what = {"skip": "[dim]skip (done)[/]", "done": "[green]done[/]", "failed": "[bold red]failed[/]"}[kind]
        took = f" in {data['seconds']:.1f} s" if kind == "done" and data.get("seconds") else ""
        why = f": {data['error']}" if kind == "failed" else ""
        err.print(f"[{seen['n']}/{total}] {what} {data['cell']}{took}{why}", highlight=False, soft_wrap=True)

    return on_event


@handle_errors
def sweep(
    sweep_file: Annotated[Path, typer.Argument(help="YAML sweep file: name, recipe, grid, seeds, stages.", show_default=False)],
    jobs: Annotated[int | None, typer.Option("--jobs", "-j", min=1, help="Cells run at once on this machine, each in its own process. Default 1.")] = None,
    address: Annotated[str | None, typer.Option("--address", envvar="RAY_ADDRESS", help="Run the cells as tasks on this Ray cluster (HOST:PORT or ray://HOST:PORT). Default: $RAY_ADDRESS, else this machine.")] = None,
    storage: Annotated[Path | None, typer.Option("--storage", help="Folder for runs/<sweep>/<cell>/, seen by every node. Default: the workspace.")] = None,
    data_path: Annotated[Path | None, typer.Option("--data-path", help="Folder holding the dataset, for every cell (the override data.path=DIR).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print sweep.json (schema_version, kind) to stdout instead of the table.")] = False,
) -> None:
    """Run a sweep: the cross product of a recipe's dotted overrides, folds and seeds.

    Example: tinyharden sweep sweeps/digits-cv.yaml --jobs 2

    Each cell is a normal run folder runs/<sweep>/<cell>/ (its own recipe.yaml); finished cells are skipped, unfinished ones resume from their checkpoint, a failing cell is recorded and the rest go on.

    sweep.json holds mean ± std and a 95% interval per grid point; tinyharden report runs/<sweep> renders it.

    Exit codes: 0 all cells done; 1 some cells failed; 2 bad sweep file; 130 interrupted.
    """
    from tinyharden.sweep.grid import expand
    from tinyharden.sweep.render import render_table
    from tinyharden.sweep.runner import engine_from, run_sweep, sweep_dir_for

    engine = engine_from(jobs, address)
    overrides = [f"data.path={data_path}"] if data_path is not None else []
    parsed = expand(sweep_file, overrides=overrides)  # validated before any engine starts
    where = sweep_dir_for(parsed, storage or state.workspace)
    err.print(f"[bold]sweep {parsed.spec.name}[/]: {len(parsed.cells)} cells on {engine.name} into {where}",
              highlight=False)
    try:
        doc = run_sweep(sweep_file, storage=storage or state.workspace, engine=engine,
                        on_event=_progress(len(parsed.cells)), overrides=overrides)
    except KeyboardInterrupt:
        raise UserError(f"interrupted; finished cells are kept in {where}; run the same command again to "
                        "continue (finished cells are skipped, unfinished ones resume)", code=EXIT_INTERRUPTED) from None
    if json_out:
        from tinyharden.cli.jsonout import print_json

        print_json(doc)
    else:
        out.print(render_table(doc))  # piped: COLUMNS or 200 wide, not squeezed to 80
    err.print(f"sweep.json: {where / 'sweep.json'}; render it with: tinyharden report {where}", highlight=False)
    failed = [c for c in doc["cells"] if c["status"] == "failed"]
    if failed:
        raise UserError(f"{len(failed)} of {len(doc['cells'])} cells failed ({', '.join(c['id'] for c in failed)}); "
                        "fix the cause and re-run: finished cells are skipped", code=1)


def report_sweep(sweep_dir: Path, *, fmt: str, dest: Path | None, plots: bool, bars: Bars) -> None:
    """`tinyharden report runs/<sweep>`: the aggregate in `fmt`, its plot, gates on the means (exit 3)."""
    from tinyharden.errors import GateFailed
    from tinyharden.sweep.plot import write_plot
    from tinyharden.sweep.render import check_gates, render, render_table
    from tinyharden.workspace import atomic_write_text, read_json

    doc = read_json(sweep_dir / "sweep.json")
    if not isinstance(doc, dict) or doc.get("kind") != "tinyharden sweep" or doc.get("schema_version") != 1:
        raise UserError(f"'{sweep_dir / 'sweep.json'}' is not a sweep.json this version reads (schema_version 1); "
                        "re-run tinyharden sweep to rewrite it")
    failed = check_gates(doc, bars.model_dump())
    if fmt == "csv":
        raise UserError("--format csv is per run; for a sweep use table, md, json or html (sweep.json holds every cell)")
    if dest is None and fmt == "html":
        dest = sweep_dir / "report.html"
    plot = write_plot(doc, dest.parent if dest is not None else sweep_dir) if plots else None
    plot_files = [plot] if plot else []
    if dest is None:
        if fmt == "table":
            out.print(render_table(doc))
        else:
            typer.echo(render(doc, fmt, plot_files), nl=False)
    else:
        atomic_write_text(dest, render(doc, fmt, plot_files))
        err.print(f"report: {dest}", highlight=False)
    if plot:
        err.print(f"plot: {plot}", highlight=False)
    if failed:  # each failed gate once, in the one-line error
        raise GateFailed(f"{len(failed)} of {len(doc['gates']['results'])} gates failed on the sweep's means: "
                         + "; ".join(g["message"] for g in failed))
