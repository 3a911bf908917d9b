"""`tinyharden`: the Typer application and its global options."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from tinyharden import __version__
from tinyharden.cli.attack import attack
from tinyharden.cli.common import set_verbosity, state
from tinyharden.cli.doctor import doctor
from tinyharden.cli.evaluate import evaluate
from tinyharden.cli.export import export
from tinyharden.cli.pretrained import pretrained
from tinyharden.cli.quantize import quantize
from tinyharden.cli.report import report
from tinyharden.cli.run import run_recipe
from tinyharden.cli.runs import runs
from tinyharden.cli.sweep import sweep
from tinyharden.cli.train import train
from tinyharden.cli.usage import Help, OneLineErrors

app = typer.Typer(
    name="tinyharden",
    help="Deeply quantized, adversarially robust tiny networks for microcontrollers.\n\n"
         "Example: tinyharden -w runs run recipes/quickstart.yaml && tinyharden -w runs runs\n\n"
         "Every command takes --json (one JSON document on stdout with schema_version and kind) and --help.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    cls=OneLineErrors,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tinyharden {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    workspace: Annotated[Path, typer.Option("--workspace", "-w", help="Folder that holds run folders.",
                                            envvar="TINYHARDEN_WORKSPACE")] = Path("runs"),
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only results, warnings and errors.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also TensorFlow's own C++ log lines.")] = False,
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True,
                                                    help="Print the version and exit.")] = None,
) -> None:
    """Example: tinyharden -w runs train recipes/quickstart.yaml"""
    state.workspace = workspace
    set_verbosity(quiet=quiet, verbose=verbose)


# One line per command, in the order a pipeline runs them; each lives in its own module under tinyharden/cli/.
for _name, _command in (("train", train), ("quantize", quantize), ("attack", attack), ("export", export),
                        ("evaluate", evaluate), ("report", report), ("run", run_recipe), ("sweep", sweep),
                        ("runs", runs), ("pretrained", pretrained), ("doctor", doctor)):
    app.command(name=_name, cls=Help)(_command)


def main() -> None:
    app()
