"""`--json`: one JSON document on stdout, nothing else there (tables and notes go elsewhere or not at all).

    print_json(DoctorOutput(versions=..., datasets=...))   # {"schema_version": 1, "kind": "tinyharden doctor", ...}
"""
from __future__ import annotations

from typing import Any

import typer


def print_json(doc: Any) -> None:
    """`doc` (a dict carrying schema_version and kind, or a pydantic output model) as raw JSON on stdout."""
    from pydantic import BaseModel

    from tinyharden.workspace import to_json

    if isinstance(doc, BaseModel):
        doc = doc.model_dump(mode="json")
    typer.echo(to_json(doc), nl=False)  # raw: no Rich markup or wrapping in machine output
