"""The run job: a recipe's whole pipeline in one run folder, callable from Python.

    from tinyharden.jobs.run import run
    result = run(load_recipe("recipes/quickstart.yaml"), Path("runs"))
    result.run_dir, result.report.doc["rows"][0]["clean"], result.failed_gates

Train; then attack and export when the recipe has `attack:` and `export:` sections; then
the report (report.html, report.json and plots in the run folder). Each stage is the
same job its own command runs, in this process. Gates are judged and returned, never
raised, so a caller (the CLI, a sweep) decides what a failed gate means. `RunEvents`
lets a caller watch the stages; its methods do nothing by default.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from tinyharden.errors import UserError
from tinyharden.jobs.attack import AttackOutcome
from tinyharden.jobs.report import Bars, ReportResult
from tinyharden.recipe import Recipe
from tinyharden.workspace import RunFolder


class RunEvents:
    """Callbacks of a run; subclass and override what you want to see."""

    def stage(self, name: str, detail: str = "") -> None: ...

    def train_progress(self, *args: Any, **kwargs: Any) -> None: ...

    def train_epoch(self, log: Any) -> None: ...  # a finished epoch (training.trainer.EpochLog)

    def started(self, run_dir: Path) -> None: ...

    def trained(self, metrics: dict[str, Any]) -> None: ...

    def attack_progress(self, label: str, done: int, total: int) -> None: ...  # done, total: samples

    def attacked(self, outcome: AttackOutcome) -> None: ...

    def exported(self, result: dict[str, Any]) -> None: ...


@dataclass
class RunResult:
    run_dir: Path
    metrics: dict[str, Any]
    attack: Optional[AttackOutcome]
    export: Optional[dict[str, Any]]
    report: ReportResult
    export_failed: list[dict[str, Any]] = field(default_factory=list)

    @property
    def failed_gates(self) -> list[dict[str, Any]]:
        """Report gates and export gates that failed, report first."""
        return list(self.report.failed) + list(self.export_failed)


def attack_stage(run_dir: Path, workspace: Path, events: RunEvents | None = None) -> AttackOutcome:
    """The recipe's attack section on the run's model, into its folder (`tinyharden attack RUN`)."""
    from tinyharden.jobs.attack import AttackRequest, attack

    events = events or RunEvents()
    try:
        return attack(AttackRequest(model=run_dir), workspace, progress=events.attack_progress)
    except UserError as exc:
        raise type(exc)(f"{exc}; the trained model is kept in {run_dir}, re-run the attack with: "
                        f"tinyharden attack {run_dir}", code=exc.code) from None


def export_stage(run_dir: Path, recipe: Recipe, dataset, limit: Optional[int] = None) -> dict[str, Any]:
    """The recipe's export section on the saved model, exactly as `tinyharden export RUN` sees it."""
    from tinyharden.jobs.export import export_model
    from tinyharden.models import load_model

    spec = recipe.export
    folder = RunFolder(run_dir)
    model = load_model(folder.model_file)  # the saved artifact, exactly as `tinyharden export RUN` sees it
    return export_model(model, dataset, run_dir, formats=list(spec.formats), calib=spec.calib, limit=limit,
                        seed=recipe.seed, max_drop=spec.max_drop, max_flash=spec.max_flash, max_ram=spec.max_ram,
                        source=str(run_dir))


def report_stage(run_dir: Path, bars: Bars | None = None) -> ReportResult:
    """report.html and report.json (with plots) of one run, in its folder."""
    from tinyharden.jobs.report import ReportRequest, report
    from tinyharden.report.render import render
    from tinyharden.workspace import atomic_write_json, atomic_write_text

    folder = RunFolder(run_dir)
    result = report(ReportRequest(runs=[run_dir], bars=bars or Bars(), plots_dir=run_dir))
    atomic_write_text(folder.file(RunFolder.REPORT_HTML), render(result.doc, "html", result.plot_files))
    atomic_write_json(folder.file(RunFolder.REPORT_JSON), result.doc)
    return result


def run(recipe: Recipe, workspace: Path, *, bars: Bars | None = None, limit: Optional[int] = None,
        events: RunEvents | None = None) -> RunResult:
    """Train, attack, export and report `recipe` into one new run folder under `workspace`.

    `limit`: test samples for the export's parity check on TFLM (default: the whole split).
    """
    from tinyharden.jobs.train import train

    events = events or RunEvents()
    events.stage("train", f"{recipe.name}: {recipe.model.name} on {recipe.data.dataset}, {recipe.train.epochs} epochs")
    trained = train(recipe, workspace, on_progress=events.train_progress, on_start=events.started,
                    on_epoch=events.train_epoch)
    run_dir = trained.run_dir
    events.trained(trained.metrics)

    outcome = None
    if recipe.attack is not None:
        events.stage("attack", f"{', '.join(recipe.attack.suite)} on {recipe.attack.n} test samples")
        outcome = attack_stage(run_dir, workspace, events)
        events.attacked(outcome)
    else:
        events.stage("attack", "skipped: the recipe has no attack section")

    exported = None
    if recipe.export is not None:
        events.stage("export", ", ".join(recipe.export.formats))
        exported = export_stage(run_dir, recipe, trained.dataset, limit)
        events.exported(exported)
    else:
        events.stage("export", "skipped: the recipe has no export section")

    events.stage("report")
    return RunResult(run_dir=run_dir, metrics=trained.metrics, attack=outcome, export=exported,
                     report=report_stage(run_dir, bars),
                     export_failed=exported["failed"] if exported else [])
