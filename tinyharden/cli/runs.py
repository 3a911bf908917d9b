"""`tinyharden runs [WORKSPACE]`: the run folders of a workspace, newest first.

Reads only the JSON artifacts (no TensorFlow). A sweep folder is one row (its cells and
the best grid point's means); unreadable or foreign folders are skipped and counted.
Exit codes: 0 ok; 2 bad arguments or a workspace that is not a folder.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from tinyharden.cli.common import choices_option, handle_errors, out, state, warn, wide
from tinyharden.registry import DATASETS


@handle_errors
def runs(
    workspace: Annotated[Optional[Path], typer.Argument(help="Workspace folder to list. Default: the global --workspace.", show_default=False)] = None,
    dataset: Annotated[Optional[str], choices_option("--dataset", "--data", registry=DATASETS, help="Only runs on this dataset: {choices}.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the list as one JSON document (schema_version, kind).")] = False,
) -> None:
    """List the run folders of a workspace: model, dataset, clean and robust accuracy, flash, age; newest first.

    Example: tinyharden runs --dataset digits

    Robust accuracy is the suite's worst case at the largest eps attacked (that eps in its own column). A sweep folder is one row: its cells and the best grid point's means; tinyharden report runs/SWEEP shows every point.
    """
    from tinyharden.jobs.runs import list_runs

    listing = list_runs(workspace or state.workspace, dataset=dataset)
    if json_out:
        from tinyharden.cli.jsonout import print_json

        print_json(listing)
    elif listing.runs:
        wide(runs_table(listing))
    else:
        out.print(f"no run folders in {listing.workspace}", highlight=False)
    if listing.skipped:
        warn(f"skipped {len(listing.skipped)} folder(s) that are not readable run folders: "
             + "; ".join(f"{Path(s['folder']).name} ({s['reason']})" for s in listing.skipped[:3])
             + (" ..." if len(listing.skipped) > 3 else ""))


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


def runs_table(listing):
    from rich.table import Table

    from tinyharden.formatting import fmt_eps, pct

    t = Table(title=f"runs in {listing.workspace}", title_justify="left")
    for col in ("name", "model", "dataset", "clean", "robust", "at eps", "flash", "age"):
        t.add_column(col, justify="left" if col in ("name", "model", "dataset") else "right", no_wrap=True)
    for r in listing.runs:
        name = r.name if r.type == "run" else f"{r.name} [dim](sweep, {r.cells_done}/{r.cells} cells)[/]"
        t.add_row(name, r.model or "-", r.dataset or "-", pct(r.clean_accuracy, missing="-"),
                  pct(r.robust_accuracy, missing="-"), fmt_eps(r.robust_eps) or "-",
                  f"{r.flash_bytes:,} B" if r.flash_bytes else "-", _age(r.age_seconds))
    return t
