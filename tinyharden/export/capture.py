"""Capturing what C++ code prints on a file descriptor.

TFLM reports its arena only by printing it, and the TFLite converter prints progress
lines straight to the process' stderr; Python's sys.stderr sees neither.
"""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from typing import Iterator


@contextlib.contextmanager
def captured_fd(fd: int = 2) -> Iterator[list[str]]:
    """Redirect `fd` to a temporary file; the yielded list holds its text after the block."""
    sink: list[str] = []
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), fd)
        try:
            yield sink
        finally:
            os.dup2(saved, fd)
            os.close(saved)
            tmp.seek(0)
            sink.append(tmp.read().decode("utf-8", "replace"))
