"""`tinyharden doctor`: versions of the stack and which dataset folders are found."""
from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from tinyharden.cli.common import handle_errors, out


def _datasets() -> list[dict[str, Any]]:
    """Each dataset (and the MLPerf Tiny reference models): its folder, or None when not found, or built in."""
    from tinyharden.data.base import find_data_dir
    from tinyharden.registry import DATASETS

    rows = []
    for name in DATASETS.names():
        meta = DATASETS.meta(name)
        if "folder" in meta:
            folder = find_data_dir(meta["folder"])
            rows.append({"name": name, "folder": str(folder) if folder else None, "found": folder is not None})
        else:
            rows.append({"name": name, "folder": None, "found": True, "embedded": meta.get("embedded", "built in")})
    folder = find_data_dir("mlperf_tiny")  # the MLPerf Tiny reference models, not a dataset
    rows.append({"name": "mlperf_tiny (models)", "folder": str(folder) if folder else None, "found": folder is not None})
    return rows


@handle_errors
def doctor(
    json_out: Annotated[bool, typer.Option("--json", help="Print the versions and dataset folders as one JSON document.")] = False,
) -> None:
    """Print the versions of Python, TensorFlow, tf-keras, QKeras, foolbox, ART, NumPy and where the datasets are.

    Example: tinyharden doctor --json
    """
    from tinyharden.workspace import package_versions

    versions, datasets = package_versions(), _datasets()
    if json_out:
        from tinyharden.artifacts import DoctorOutput
        from tinyharden.cli.jsonout import print_json

        return print_json(DoctorOutput(versions=versions, datasets=datasets))
    table = Table(title="tinyharden doctor: stack")
    table.add_column("package")
    table.add_column("version")
    for name, v in versions.items():
        table.add_row(name, v or "[red]not installed[/]")
    out.print(table)
    data = Table(title="datasets")
    data.add_column("dataset")
    data.add_column("folder")
    missing = "[yellow]not found[/] (set $TINYHARDEN_DATA or data.path)"
    for d in datasets:
        data.add_row(d["name"], d["folder"] or d.get("embedded") or missing)
    out.print(data)
