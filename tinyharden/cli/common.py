"""Shared CLI plumbing: global options, one-line errors, consoles."""
from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from pathlib import Path

import typer
from rich.console import Console
from typer.models import OptionInfo

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


def handle_errors(fn):
    """Turn user errors into one red line and an exit code; never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            fail(str(exc), exc.code)
        except KeyboardInterrupt:
            err.print("[yellow]interrupted[/]; partial results were not written (use --resume where offered)")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except MemoryError:
            fail("out of memory; lower the batch size (train.batch_size=...) or the sample count (-n)", 1)

    return wrapper


def warn(message: str) -> None:
    err.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)


def progress_enabled() -> bool:
    return sys.stderr.isatty()


def wide(renderable) -> None:
    """Print a table on stdout; piped or captured output has no width to respect, so give it room."""
    if out.is_terminal:
        out.print(renderable)
        return
    width = out.width
    out.width = max(width, 120)
    try:
        out.print(renderable)
    finally:
        out.width = width


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
