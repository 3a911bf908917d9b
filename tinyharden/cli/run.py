"""`tinyharden run RECIPE [key=value ...]`: a recipe's whole pipeline into one run folder.

Train, then the recipe's `attack` and `export` sections when it has them, then the
report (report.html, report.json and plots in the run folder, the table on stdout). Each
stage calls the same code as its own command, in this process: no shelling out.

Exit codes: 0 ok; 2 bad recipe or input; 3 an export or report gate failed (everything
is written first); 130 interrupted.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from tinyharden.cli.common import err, handle_errors, out, progress_enabled, state
from tinyharden.errors import GateFailed, UserError


def _stage(name: str, detail: str = "") -> None:
    err.print(f"[bold]== {name}[/] {detail}".rstrip(), highlight=False)


def _train(recipe):
    from tinyharden.cli.render import TrainProgress
    from tinyharden.training import run as training

    progress = TrainProgress(enabled=progress_enabled())
    with progress:
        trainer = training.start(recipe, state.workspace, on_progress=progress.update)
        err.print(f"run folder: {trainer.run_dir}", highlight=False)
        try:
            return trainer, trainer.fit()
        except KeyboardInterrupt:
            raise UserError(f"interrupted; checkpointed through epoch {trainer.checkpointed_epoch}; resume the training with: "
                            f"tinyharden train --resume {trainer.run_dir}", code=130) from None


def _attack(run_dir: Path) -> None:
    # run_attack is the one place that turns a run folder into attack.json (suite, report
    # layout, examples), and `show` prints it for `tinyharden attack` too; calling them keeps
    # `run` and `attack` byte-for-byte alike.
    from tinyharden.attacks.job import run_attack
    from tinyharden.cli.attack import AttackProgress, show

    @handle_errors  # as `tinyharden attack RUN`: the one-line error first, then the hint below
    def attack_run_folder() -> None:
        with AttackProgress(enabled=progress_enabled()) as prog:
            outcome = run_attack(run_dir, workspace=state.workspace, progress=prog.update)
        show(outcome)

    try:
        attack_run_folder()
    except typer.Exit as exc:
        if exc.exit_code:
            err.print(f"the trained model is kept in {run_dir}; re-run the attack with: tinyharden attack {run_dir}",
                      highlight=False)
        raise


def _export(run_dir: Path, recipe, dataset, limit: Optional[int]) -> list[dict]:
    from tinyharden.export.pipeline import export_model
    from tinyharden.footprint import render_table
    from tinyharden.models import load_model

    spec = recipe.export
    model = load_model(run_dir / "model.h5")  # the saved artifact, exactly as `tinyharden export RUN` sees it
    result = export_model(model, dataset, run_dir, formats=list(spec.formats), calib=spec.calib, limit=limit,
                          seed=recipe.seed, max_drop=spec.max_drop, max_flash=spec.max_flash, max_ram=spec.max_ram,
                          source=str(run_dir))
    out.print(render_table(result["footprint"]), width=None if out.is_terminal else max(out.width, 120))
    p = result["parity"]
    out.print(f"parity on {p['samples']:,} test samples ({p['interpreter']}): Keras {p['keras_accuracy']:.2f}%, "
              f"int8 {p['tflite_accuracy']:.2f}% (drop {p['drop']:+.2f} points)", highlight=False)
    return result["failed"]


@handle_errors
def run_recipe(
    recipe: Path = typer.Argument(..., help="YAML recipe, e.g. recipes/quickstart.yaml.", show_default=False),
    overrides: Optional[List[str]] = typer.Argument(None, help="Dotted overrides such as train.epochs=2 attack.n=200."),
    limit: Optional[int] = typer.Option(None, "--limit", "-n", min=1, help="Test samples for the export's parity check on TFLM (one at a time). Default: the whole test split."),
    min_clean: Optional[str] = typer.Option(None, "--min-clean", help="Report gate: clean accuracy at least this (0.9 or 90%)."),
    min_robust: Optional[str] = typer.Option(None, "--min-robust", help="Report gate: worst-case robust accuracy at least this."),
    max_flash: Optional[str] = typer.Option(None, "--max-flash", help="Report gate: flash at most this many bytes (65536, 64K)."),
    max_ram: Optional[str] = typer.Option(None, "--max-ram", help="Report gate: RAM (TFLM arena) at most this many bytes."),
) -> None:
    """Run a recipe end to end into one run folder: train, attack, export, report.

    The attack and export stages run when the recipe has `attack:` and `export:` sections.

    Writes what train, attack and export write, plus report.html, report.json and report_*.png.

    Exit codes: 0 ok; 2 bad recipe or input; 3 an export or report gate failed (everything written); 130 interrupted.
    """
    from tinyharden.parsing import parse_bytes, parse_fraction

    bars = {"min_clean": parse_fraction(min_clean, "--min-clean"), "min_robust": parse_fraction(min_robust, "--min-robust"),
            "max_flash": parse_bytes(max_flash, "--max-flash"), "max_ram": parse_bytes(max_ram, "--max-ram")}

    from tinyharden.cli.render import metrics_table
    from tinyharden.recipe import load_recipe

    parsed = load_recipe(recipe, overrides or [])
    _stage("train", f"{parsed.name}: {parsed.model.name} on {parsed.data.dataset}, {parsed.train.epochs} epochs")
    trainer, metrics = _train(parsed)
    run_dir = trainer.run_dir
    out.print(metrics_table(metrics))

    if parsed.attack is not None:
        _stage("attack", f"{', '.join(parsed.attack.suite)} on {parsed.attack.n} test samples")
        _attack(run_dir)
    else:
        _stage("attack", "skipped: the recipe has no attack section")

    export_failed: list[dict] = []
    if parsed.export is not None:
        _stage("export", ", ".join(parsed.export.formats))
        export_failed = _export(run_dir, parsed, trainer.ds, limit)
    else:
        _stage("export", "skipped: the recipe has no export section")

    _stage("report")
    from tinyharden.cli.report import finish, write_report
    from tinyharden.report.build import generate
    from tinyharden.workspace import atomic_write_json

    doc, _, plot_files = generate([run_dir], bars=bars, plots_dir=run_dir)
    write_report(doc, "html", run_dir / "report.html", plot_files)
    atomic_write_json(run_dir / "report.json", doc)
    write_report(doc, "table", None, plot_files)
    try:
        finish(doc, plot_files)
    finally:
        if export_failed:
            err.print("[bold red]export gate failed:[/] " + "; ".join(
                f"{g['gate']} {g['value']:,} > {g['limit']:,} {g.get('unit', '')}".rstrip() for g in export_failed),
                highlight=False)
    if export_failed:
        raise GateFailed(f"{len(export_failed)} export gate(s) failed ({', '.join(g['gate'] for g in export_failed)}); "
                         f"artifacts and report written to {run_dir}")
