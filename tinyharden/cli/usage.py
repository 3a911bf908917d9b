"""Usage errors (unknown option, missing argument, bad value) as one line naming the fix.

    $ tinyharden train --workspace runs recipes/quickstart.yaml
    error: No such option: --workspace; it is a global option: put it before the command, as in tinyharden --workspace DIR train ...

Click prints usage errors as a usage line, a hint line and (with rich) a boxed message;
the CLI's promise is one line naming the problem and the fix, exit code 2.
"""
from __future__ import annotations

import contextlib
import os
import sys

import typer
from typer.core import TyperCommand, TyperGroup

try:  # typer >= 0.16 vendors its own click; its commands raise that copy's exceptions
    from typer._click import exceptions as click
except ImportError:  # pragma: no cover - older typer on the real click
    from click import exceptions as click

from tinyharden.errors import EXIT_INTERRUPTED, EXIT_USAGE

try:  # typer's vendored click keeps Abort in typer.exceptions, not beside the other exceptions
    from typer.exceptions import Abort
except ImportError:  # pragma: no cover - older typer on the real click
    from click.exceptions import Abort

_GLOBAL_OPTIONS = ("--workspace", "-w", "--version", "--quiet", "-q", "--verbose", "-v")


def one_line(exc: click.ClickException) -> str:
    """The error `exc` as one line: the problem, then where the usage is described."""
    problem = " ".join(exc.format_message().split()).rstrip(".")
    ctx = getattr(exc, "ctx", None)
    path = ctx.command_path if ctx is not None else "tinyharden"
    if isinstance(exc, click.NoSuchOption) and exc.option_name in _GLOBAL_OPTIONS:
        command = path.split()[-1] if len(path.split()) > 1 else "COMMAND"
        return (f"{problem}; it is a global option: put it before the command, as in "
                f"tinyharden {exc.option_name} ... {command} ...")
    return f"{problem}; see '{path} --help' for the usage and an example"


HELP_WIDTH = 120  # help piped or captured: no terminal to fit, so do not wrap at 80 or cut cells with an ellipsis


@contextlib.contextmanager
def _help_width():
    """Render help `HELP_WIDTH` wide off a terminal, unless $COLUMNS (or typer's $TERMINAL_WIDTH) says otherwise."""
    from typer import rich_utils

    saved = rich_utils.MAX_WIDTH
    if saved is None and not os.environ.get("COLUMNS") and not sys.stdout.isatty():
        rich_utils.MAX_WIDTH = HELP_WIDTH
    try:
        yield
    finally:
        rich_utils.MAX_WIDTH = saved


def _plain_flags(command, ctx) -> None:
    """A flag takes no value: show no `<bool>` type beside it."""
    for param in command.get_params(ctx):
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""


class Help(TyperCommand):
    """Every command's class: help without `<bool>` metavars, wide when piped."""

    def format_help(self, ctx, formatter) -> None:
        _plain_flags(self, ctx)
        with _help_width():
            super().format_help(ctx, formatter)


class OneLineErrors(TyperGroup):
    """The root command group: click's usage errors become one red line and exit 2."""

    def format_help(self, ctx, formatter) -> None:
        _plain_flags(self, ctx)
        with _help_width():
            super().format_help(ctx, formatter)

    def main(self, *args, standalone_mode: bool = True, **kwargs):
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except click.ClickException as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # bare `tinyharden`: the help is the answer
                exc.show()
                sys.exit(EXIT_USAGE)
            typer.echo(f"error: {one_line(exc)}", err=True)
            sys.exit(exc.exit_code if not isinstance(exc, click.UsageError) else EXIT_USAGE)
        except Abort:
            typer.echo("error: aborted; nothing was written", err=True)
            sys.exit(EXIT_INTERRUPTED)
        sys.exit(code if isinstance(code, int) else 0)
