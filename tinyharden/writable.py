"""Checking that a workspace or run folder can be written, before any work starts.

    >>> check_writable("runs", what="workspace")

A read-only workspace, or a workspace path that is a file, would otherwise surface as a
traceback from the first write, after the training or the attack has run. The check
writes and removes a probe file, so it sees what permissions, read-only mounts and
root alike allow (os.access does not, for root).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from tinyharden.errors import UserError


def check_writable(folder: str | os.PathLike, *, what: str = "workspace", create: bool = True) -> Path:
    """`folder`; a one-line `UserError` if it (or, when `create`, the ancestor it would be made in)
    is a file or cannot be written. Nothing is created."""
    folder = Path(folder)
    flag = "another workspace" if what == "workspace" else "another folder"
    existing = next((p for p in (folder, *folder.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        raise UserError(f"{what} '{folder}': '{existing}' is a file, not a folder; choose {flag}")
    if existing != folder and not create:
        raise UserError(f"{what} '{folder}' does not exist; choose {flag}")
    try:
        # Probe the folder, or the ancestor it would be created in: nothing is left behind.
        fd, probe = tempfile.mkstemp(prefix=".write-probe.", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UserError(f"{what} '{folder}' is not writable ({exc.strerror or type(exc).__name__}); "
                        f"fix its permissions or choose {flag}") from None
    return folder
