"""Shared CLI plumbing: global options, one-line errors, consoles."""
from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from pathlib import Path

import typer
from rich.console import Console

from tinyharden.errors import EXIT_INTERRUPTED, UserError

out = Console()  # tables and results: stdout
err = Console(stderr=True)  # progress, warnings, errors: stderr


@dataclass
class State:
    workspace: Path = Path("runs")


state = State()


def fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


_SIGINT = {"seen": False}


def _on_sigint(signum, frame):
    # Remembered, because TensorFlow may turn the KeyboardInterrupt raised inside one of its
    # calls into an error of its own; that error is then reported as the interruption it is.
    _SIGINT["seen"] = True
    raise KeyboardInterrupt


def handle_errors(fn):
    """Turn user errors into one red line and an exit code; never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, _on_sigint)
        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            fail(str(exc), exc.code)
        except KeyboardInterrupt:
            err.print("[yellow]interrupted[/]; partial results were not written (use --resume where offered)")
            raise typer.Exit(EXIT_INTERRUPTED)
        except Exception:
            if not _SIGINT["seen"]:
                raise
            err.print("[yellow]interrupted[/]; partial results were not written (use --resume where offered)")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except MemoryError:
            fail("out of memory; lower the batch size (train.batch_size=...) or the sample count (-n)", 1)

    return wrapper


def warn(message: str) -> None:
    err.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)


def progress_enabled() -> bool:
    return sys.stderr.isatty()
