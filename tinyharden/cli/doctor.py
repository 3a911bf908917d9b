"""`tinyharden doctor`: versions of the stack and which dataset folders are found."""
from __future__ import annotations

from rich.table import Table

from tinyharden.cli.common import handle_errors, out


@handle_errors
def doctor() -> None:
    """Print the versions of Python, TensorFlow, tf-keras, QKeras, foolbox, ART, NumPy and where the datasets are."""
    from tinyharden.data.base import find_data_dir
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
    for name in ("cifar10", "speech_commands", "mlperf_tiny"):
        folder = find_data_dir(name)
        data.add_row(name, str(folder) if folder else "[yellow]not found[/] (set $TINYHARDEN_DATA or data.path)")
    data.add_row("digits", "embedded (scikit-learn)")
    out.print(data)
