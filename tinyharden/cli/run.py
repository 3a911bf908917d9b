"""`tinyharden run RECIPE [key=value ...]`: a recipe's whole pipeline into one run folder.

Parses, calls `tinyharden.jobs.run.run` and renders each stage as its own command does.
Exit codes: 0 ok; 2 bad recipe or input; 3 an export or report gate failed (everything
is written first); 130 interrupted.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional

import typer

from tinyharden.cli.common import err, handle_errors, out, state
from tinyharden.errors import GateFailed
from tinyharden.jobs.run import RunEvents

Opt = typer.Option


class _Render(RunEvents):
    """Draws the stages of `run` as `train`, `attack` and `export` draw themselves."""

    def __init__(self) -> None:
        from tinyharden.cli.progress import AttackProgress, TrainProgress

        self.train_bar = TrainProgress()
        self.attack_bar = AttackProgress()
        self._training = False

    def _end_training(self) -> None:
        if self._training:
            self._training = False
            self.train_bar.__exit__(None, None, None)

    def stage(self, name: str, detail: str = "") -> None:
        self._end_training()
        err.print(f"[bold]== {name}[/] {detail}".rstrip(), highlight=False)
        if name == "train":
            self._training = True
            self.train_bar.__enter__()

    def train_progress(self, *args, **kwargs) -> None:
        self.train_bar.update(*args, **kwargs)

    def train_epoch(self, log) -> None:
        self.train_bar.epoch_end(log)

    def started(self, run_dir: Path) -> None:
        err.print(f"run folder: {run_dir}", highlight=False)

    def trained(self, metrics: dict) -> None:
        from tinyharden.cli.render import metrics_table

        self._end_training()
        out.print(metrics_table(metrics))

    def attack_progress(self, label: str, done: int, total: int) -> None:
        self.attack_bar.update(label, done, total)

    def attacked(self, outcome) -> None:
        from tinyharden.cli.attack import show

        self.attack_bar.__exit__(None, None, None)
        show(outcome)

    def exported(self, result: dict) -> None:
        from pathlib import Path

        from tinyharden.cli.export import show

        show(result, result["footprint"], Path(result["out_dir"]), brief=True)


@handle_errors
def run_recipe(
    recipe: Annotated[Path, typer.Argument(help="YAML recipe, e.g. recipes/quickstart.yaml.", show_default=False)],
    overrides: Annotated[Optional[List[str]], typer.Argument(help="Dotted overrides such as train.epochs=2 attack.n=200.")] = None,
    limit: Annotated[Optional[int], Opt("--limit", "-n", min=1, help="Test samples for the export's parity check on TFLM (one at a time). Default: the whole test split.")] = None,
    min_clean: Annotated[Optional[str], Opt("--min-clean", help="Report gate: clean accuracy at least this (0.9 or 90%).")] = None,
    min_robust: Annotated[Optional[str], Opt("--min-robust", help="Report gate: worst-case robust accuracy at least this.")] = None,
    max_flash: Annotated[Optional[str], Opt("--max-flash", help="Report gate: flash at most this many bytes (65536, 64K).")] = None,
    max_ram: Annotated[Optional[str], Opt("--max-ram", help="Report gate: RAM (TFLM arena) at most this many bytes.")] = None,
) -> None:
    """Run a recipe end to end into one run folder: train, attack, export, report.

    Example: tinyharden run recipes/quickstart.yaml train.epochs=2 --min-clean 80%

    The attack and export stages run when the recipe has `attack:` and `export:` sections.

    Writes what train, attack and export write, plus report.html, report.json and report_*.png.

    Exit codes: 0 ok; 2 bad recipe or input; 3 an export or report gate failed (everything written); 130 interrupted.
    """
    from tinyharden.cli.report import bars_from_flags, finish, write_report
    from tinyharden.jobs.run import run
    from tinyharden.recipe import load_recipe

    bars = bars_from_flags(min_clean, min_robust, max_flash, max_ram)
    events = _Render()
    try:
        result = run(load_recipe(recipe, overrides or []), state.workspace, bars=bars, limit=limit, events=events)
    finally:
        events._end_training()
    report = result.report
    write_report(report.doc, "table", None, report.plot_files)
    try:
        finish(report.doc, report.plot_files)
    finally:
        if result.export_failed:
            err.print("[bold red]export gate failed:[/] " + "; ".join(
                f"{g['gate']} {g['value']:,} > {g['limit']:,} {g.get('unit', '')}".rstrip() for g in result.export_failed),
                highlight=False)
    if result.export_failed:
        raise GateFailed(f"{len(result.export_failed)} export gate(s) failed "
                         f"({', '.join(g['gate'] for g in result.export_failed)}); artifacts and report written to "
                         f"{result.run_dir}")
