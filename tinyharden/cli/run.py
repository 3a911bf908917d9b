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
from tinyharden.jobs.run import RunEvents

Opt = typer.Option


class _Render(RunEvents):
    """Draws the stages of `run` as `train`, `attack` and `export` draw themselves."""

    def __init__(self, *, quiet_stdout: bool = False) -> None:
        from tinyharden.cli.progress import AttackProgress, TrainProgress

        self.train_bar = TrainProgress()
        self.attack_bar = AttackProgress()
        self._training = False
        self.quiet_stdout = quiet_stdout  # --json: stdout holds the one JSON document only

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
        if not self.quiet_stdout:
            out.print(metrics_table(metrics))

    def attack_progress(self, label: str, done: int, total: int) -> None:
        self.attack_bar.update(label, done, total)

    def attacked(self, outcome) -> None:
        from tinyharden.cli.attack import notes, show

        self.attack_bar.__exit__(None, None, None)
        if self.quiet_stdout:
            notes(outcome)
        else:
            show(outcome)

    def exported(self, result: dict) -> None:
        from pathlib import Path

        from tinyharden.cli.export import show, warn_short_split

        if not self.quiet_stdout:
            show(result, result["footprint"], Path(result["out_dir"]), brief=True)
        warn_short_split(result["parity"], "-n")


@handle_errors
def run_recipe(
    recipe: Annotated[Path, typer.Argument(help="YAML recipe, e.g. recipes/quickstart.yaml.", show_default=False)],
    overrides: Annotated[Optional[List[str]], typer.Argument(help="Dotted overrides such as train.epochs=2 attack.n=200.")] = None,
    n: Annotated[Optional[int], Opt("-n", "--n", help="Test samples for the export's parity check on TFLM (one at a time). Default: the whole test split. The attack's count is attack.n=N.")] = None,
    limit: Annotated[Optional[int], Opt("--limit", hidden=True, help="Old name of -n.")] = None,
    data_path: Annotated[Optional[Path], Opt("--data-path", help="Folder holding the dataset (replaces the recipe's data.path).")] = None,
    min_clean: Annotated[Optional[str], Opt("--min-clean", metavar="ACC", help="Report gate: clean accuracy at least this (0.9 or 90%).")] = None,
    min_robust: Annotated[Optional[str], Opt("--min-robust", metavar="ACC", help="Report gate: worst-case robust accuracy at least this.")] = None,
    max_flash: Annotated[Optional[str], Opt("--max-flash", metavar="SIZE", help="Report gate: flash at most this many bytes (65536, 64K, 1M).")] = None,
    max_ram: Annotated[Optional[str], Opt("--max-ram", metavar="SIZE", help="Report gate: RAM (TFLM arena) at most this many bytes (65536, 64K, 1M).")] = None,
    json_out: Annotated[bool, Opt("--json", help="Print every stage's document and the report as one JSON document instead of the tables.")] = False,
) -> None:
    """Run a recipe end to end into one run folder: train, attack, export, report.

    Example: tinyharden run recipes/quickstart.yaml train.epochs=2 --min-clean 80%

    The attack and export stages run when the recipe has `attack:` and `export:` sections.

    Writes what train, attack and export write, plus report.html, report.json and report_*.png.

    Exit codes: 0 ok; 2 bad recipe or input; 3 an export or report gate failed (everything written); 130 interrupted.
    """
    from tinyharden.cli.parsing import sample_count
    from tinyharden.cli.report import bars_from_flags, finish, write_report
    from tinyharden.jobs.run import run
    from tinyharden.recipe import load_recipe, with_data_path

    bars = bars_from_flags(min_clean, min_robust, max_flash, max_ram)
    count = sample_count(n, limit)
    events = _Render(quiet_stdout=json_out)
    try:
        result = run(with_data_path(load_recipe(recipe, overrides or []), data_path), state.workspace, bars=bars,
                     limit=count, events=events)
    finally:
        events._end_training()
    report = result.report
    if json_out:
        _print_json(result)
    else:
        write_report(report.doc, "table", None, report.plot_files)
    exports = tuple(f"export gate {g['gate']} failed ({g['value']:,} > {g['limit']:,} {g.get('unit', '')})".rstrip()
                    + f"; artifacts and report written to {result.run_dir}" for g in result.export_failed)
    finish(report.doc, report.plot_files, extra=exports)


def _print_json(result) -> None:
    from tinyharden.artifacts import RunOutput
    from tinyharden.cli.jsonout import print_json

    print_json(RunOutput(run_dir=str(result.run_dir), metrics=result.metrics,
                         attack=result.attack.report if result.attack else None,
                         export={k: v for k, v in result.export.items() if k not in ("footprint",)} if result.export else None,
                         report=result.report.doc, failed_gates=result.failed_gates))
