"""`tinyharden doctor`: versions of the stack and which dataset folders are found."""
from __future__ import annotations

from rich.table import Table

from tinyharden.cli.common import handle_errors, out


@handle_errors
def doctor() -> None:
    """Print the versions of Python, TensorFlow, tf-keras, QKeras, foolbox, ART, NumPy and where the datasets are.

    Example: tinyharden doctor
    """
    from tinyharden.data.base import find_data_dir
    from tinyharden.registry import DATASETS
    from tinyharden.workspace import package_versions

    versions = Table(title="tinyharden doctor: stack")
    versions.add_column("package")
    versions.add_column("version")
    for name, v in package_versions().items():
        versions.add_row(name, v or "[red]not installed[/]")
    out.print(versions)

    data = Table(title="datasets")
    data.add_column("dataset")
    data.add_column("folder")
    missing = "[yellow]not found[/] (set $TINYHARDEN_DATA or data.path)"
    for name in DATASETS.names():
        meta = DATASETS.meta(name)
        if "folder" in meta:
            folder = find_data_dir(meta["folder"])
            data.add_row(name, str(folder) if folder else missing)
        else:
            data.add_row(name, meta.get("embedded", "built in"))
    folder = find_data_dir("mlperf_tiny")  # the MLPerf Tiny reference models, not a dataset
    data.add_row("mlperf_tiny (models)", str(folder) if folder else missing)
    out.print(data)
