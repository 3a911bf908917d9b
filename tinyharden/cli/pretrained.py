"""`tinyharden pretrained`: the models shipped in the package, usable by name in every command."""
from __future__ import annotations

from typing import Annotated

import typer

from tinyharden.cli.common import handle_errors, out


@handle_errors
def pretrained(
    json_out: Annotated[bool, typer.Option("--json", help="Print the list as one JSON document (schema_version, kind).")] = False,
) -> None:
    """List the shipped models (tinyharden/pretrained/<name>/).

    Example: tinyharden pretrained && tinyharden evaluate kws-stq-jr --data-path DIR --split all
    """
    from tinyharden import pretrained as shipped

    models = shipped.available()
    if json_out:
        from tinyharden.artifacts import PretrainedOutput
        from tinyharden.cli.jsonout import print_json

        return print_json(PretrainedOutput(models=models))
    from rich.table import Table

    t = Table(title="shipped models (use the name in place of a run folder)")
    for col in ("name", "test accuracy", "files"):
        t.add_column(col)
    for m in models:
        acc = "-" if m["test_accuracy"] is None else f"{100 * m['test_accuracy']:.2f}%"
        t.add_row(m["name"], acc, ", ".join(m["files"]))
    out.print(t if models else "no shipped models")
