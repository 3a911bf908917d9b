"""Shared CLI plumbing: global options, one-line errors, consoles."""
from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from pathlib import Path

import typer
from rich.console import Console, ConsoleDimensions
from typer.models import OptionInfo

from tinyharden.errors import EXIT_INTERRUPTED, UserError

PIPED_WIDTH = 200  # columns of stdout when it is a pipe or a file and COLUMNS is not set


class _ResultConsole(Console):
    """stdout: a terminal's own width; piped or captured, COLUMNS if set, else PIPED_WIDTH.

    Rich's 80-column default for a pipe squeezes wide tables (ResNet-8's footprint grew to
    ~120 lines): a file has no width to respect, and each row should stay one line for grep.
    """

    def _size(self) -> ConsoleDimensions:
        dims = Console.size.fget(self)  # type: ignore[attr-defined]
        if self._width is not None or self.is_terminal:
            return dims
        columns = self._environ.get("COLUMNS")
        return ConsoleDimensions(int(columns) if columns and columns.isdigit() else PIPED_WIDTH, dims.height)

    size = property(_size, Console.size.fset)  # type: ignore[attr-defined]


out = _ResultConsole()  # tables and results: stdout
err = Console(stderr=True)  # progress and info lines: stderr; silenced by --quiet
alerts = Console(stderr=True)  # warnings and errors: stderr, always shown


@dataclass
class State:
    workspace: Path = Path("runs")


def set_verbosity(*, quiet: bool, verbose: bool) -> None:
    """--quiet keeps stdout, warnings and errors; --verbose also lets TensorFlow's C++ start-up lines through."""
    import os

    err.quiet = quiet
    if verbose:
        os.environ["TINYHARDEN_VERBOSE"] = "1"  # read by tinyharden._tf, imported later by the commands


state = State()


def fail(message: str, code: int = 2) -> None:
    alerts.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
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
            fail(with_flag(str(exc), exc.option), exc.code)
        except KeyboardInterrupt:
            err.print("[yellow]interrupted[/]; partial results were not written (use --resume where offered)")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except MemoryError:
            fail("out of memory; lower the batch size (train.batch_size=...) or the sample count (-n)", 1)
        except Exception:
            if not _SIGINT["seen"]:
                raise
            err.print("[yellow]interrupted[/]; partial results were not written (use --resume where offered)")
            raise typer.Exit(EXIT_INTERRUPTED) from None

    return wrapper


# A job's option at fault (UserError.option) -> the flag the CLI spells it with, where not --<option>.
_FLAG_OF = {"dataset": "--data"}


def with_flag(message: str, option: str | None) -> str:
    """`message` ending with the flag the user types for `option` (jobs word their errors without flags)."""
    if not option:
        return message
    flag = _FLAG_OF.get(option, "--" + option.replace("_", "-"))
    return message if flag in message else f"{message} ({flag})"


def warn(message: str) -> None:
    alerts.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)


def progress_enabled() -> bool:
    return sys.stderr.isatty() and not err.quiet


def wide(renderable) -> None:
    """Print a table on stdout (piped output is already wide: see `_ResultConsole`)."""
    out.print(renderable)


class _ChoicesOption(OptionInfo):
    """An option whose help lists a registry's names as they are when the CLI is built."""

    @property  # type: ignore[override]
    def help(self) -> str:
        template = self.__dict__.get("_template") or ""
        registry = self.__dict__.get("_registry")
        return template.format(choices=registry.choices()) if registry is not None else template

    @help.setter
    def help(self, value: str) -> None:
        self.__dict__["_template"] = value


def choices_option(*names: str, registry, help: str, **kwargs) -> OptionInfo:
    """`typer.Option` whose `{choices}` in `help` is the registry's current list.

        data: Annotated[Optional[str], choices_option("--data", registry=DATASETS, help="One of {choices}.")] = None
    """
    info = typer.Option(*names, help=help, **kwargs)
    info.__class__ = _ChoicesOption
    info.__dict__["_template"] = help
    info.__dict__["_registry"] = registry
    return info
