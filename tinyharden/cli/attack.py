"""`tinyharden attack MODEL_OR_RUN`: attack a model with a suite and score it honestly.

MODEL_OR_RUN is a run folder written by `tinyharden train` (it supplies the model, the
dataset and the recipe; results are written into it), or a model file: Keras .h5/.keras
or .tflite (which needs --data, or a recipe.yaml beside it; results go to a new run
folder in the workspace). Eps is always in [0, 1] data units, whatever the model's own
input range (--input-range 0,255 for the MLPerf Tiny ResNet-8).

Exit codes: 0 ok; 2 bad arguments or input files; 3 the suite's robust accuracy is below
--fail-under; 130 interrupted.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from tinyharden.cli.common import err, handle_errors, out, progress_enabled, state, warn
from tinyharden.errors import GateFailed

_HELP_SUITE = "Comma-separated attacks: fgsm, pgd, cw, apgd, square, boundary, zoo, transfer. Default: the recipe's attack.suite, else fgsm,pgd."


@handle_errors
def attack(
    model: Path = typer.Argument(..., help="Run folder, shipped model name (tinyharden pretrained), Keras model file (.h5/.keras) or .tflite file.", show_default=False),
    suite: Optional[str] = typer.Option(None, "--suite", "-s", help=_HELP_SUITE),
    eps: Optional[str] = typer.Option(None, "--eps", help="Budget(s) in [0,1] data units; fractions and lists for a sweep: 8/255 or 1/255,2/255,4/255,8/255."),
    n: Optional[int] = typer.Option(None, "-n", "--n", help="Attack the first N test samples (default: recipe attack.n, else 1000)."),
    norm: Optional[str] = typer.Option(None, "--norm", help="linf or l2 (default: recipe attack.norm, else linf)."),
    data: Optional[str] = typer.Option(None, "--data", help="Dataset for a bare model file: cifar10, speech_commands, digits, synthetic."),
    data_path: Optional[Path] = typer.Option(None, "--data-path", help="Folder holding the dataset (default: $TINYHARDEN_DATA or ../shared/data)."),
    split: str = typer.Option("test", "--split", help="'test' (the held-out split) or 'all' (every sample of the folder)."),
    input_range: Optional[str] = typer.Option(None, "--input-range", help="The model's input range LO,HI when not the data's, e.g. 0,255 for raw pixels."),
    recipe: Optional[Path] = typer.Option(None, "--recipe", help="Recipe whose attack: section (and, for a bare model, data:) to use."),
    param: Optional[List[str]] = typer.Option(None, "--param", "-p", help="Attack budget, repeatable: -p pgd.steps=40 -p square.max_iter=5000."),
    eot: Optional[int] = typer.Option(None, "--eot", help="Average gradients over N stochastic passes (stochastic quantizers sample)."),
    source: Optional[Path] = typer.Option(None, "--source", help="Model or run folder the transfer attack crafts its examples on (e.g. the float twin)."),
    space: Optional[str] = typer.Option(None, "--space", help="speech_commands only: attack the 'features' (default) or the raw 'waveform' through the MFCC front end."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of the attacks' randomness (default: the recipe's seed)."),
    policy: str = typer.Option("clip", "--policy", help="An example outside the eps ball or [0,1]: 'clip' projects it back, 'reject' counts a failed attack."),
    batch_size: int = typer.Option(256, "--batch-size", min=1, help="Samples per attack batch."),
    fail_under: Optional[str] = typer.Option(None, "--fail-under", help="Exit with code 3 if the suite's robust accuracy is below this (0.45 or 45%)."),
    json_out: bool = typer.Option(False, "--json", help="Print attack.json to stdout instead of the table."),
    save_examples: bool = typer.Option(True, "--save-examples/--no-save-examples", help="Write the adversarial examples as attack_examples.npz."),
    checks: bool = typer.Option(True, "--checks/--no-checks", help="Run the gradient-masking sanity checks."),
    unsafe: bool = typer.Option(False, "--unsafe", help="Allow model files with Lambda layers (their code runs on load)."),
) -> None:
    """Attack a model with a suite of white-box, black-box and transfer attacks; writes attack.json.

    Eps is in [0,1] data units (8/255) whatever the model's input range. Exit codes: 0 ok;
    2 bad arguments or input files; 3 suite robust accuracy below --fail-under; 130 interrupted.
    """
    from tinyharden.attacks.job import run_attack

    # run_attack validates everything cheap before TensorFlow is imported.
    with AttackProgress(enabled=progress_enabled()) as prog:
        outcome = run_attack(model, suite=suite, eps=eps, n=n, norm=norm, data=data, data_path=data_path, split=split,
                             input_range=input_range, recipe=recipe, params=param or (), eot=eot, source=source,
                             space=space, seed=seed, policy=policy, batch_size=batch_size, fail_under=fail_under,
                             save_examples=save_examples, checks=checks, unsafe=unsafe, workspace=state.workspace,
                             progress=prog.update)
    show(outcome, json_out=json_out)
    bar, run_dir = outcome.bar, outcome.run_dir
    if bar is not None and outcome.robust_accuracy < bar:
        raise GateFailed(f"suite robust accuracy {outcome.robust_accuracy:.4f} is below --fail-under {bar:g} "
                         f"(results in {run_dir / 'attack.json'})")


def show(outcome, *, json_out: bool = False) -> None:
    """Print an attack's results: the table (or attack.json), the EOT note, masking warnings."""
    report, run_dir = outcome.report, outcome.run_dir
    if json_out:
        from tinyharden.workspace import to_json

        typer.echo(to_json(report), nl=False)  # raw: no Rich markup or wrapping in machine output
    else:
        from tinyharden.attacks.report import table

        out.print(table(report))
        out.print(f"results: {run_dir / 'attack.json'}", highlight=False)
    eot_n = report["config"]["eot"]
    if eot_n > 1:
        err.print(f"EOT: {report['config']['eot_reason']}", highlight=False)
    for check in report["masking"]["checks"]:
        if check["flagged"]:
            warn(f"gradient masking? {check['message']}")


# --------------------------------------------------------------------------- helpers

class AttackProgress:
    """A progress bar on stderr when it is a terminal; silent otherwise."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self._p = None
        self._task = None

    def __enter__(self):
        return self

    def update(self, label: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self._p is None:  # started by the suite's first report, not while data and model load
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._p = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                               TimeElapsedColumn(), console=err, transient=True)
            self._p.__enter__()
        if self._task is None:
            self._task = self._p.add_task(label, total=total)
        self._p.update(self._task, description=f"attack: {label}", completed=done, total=total)

    def __exit__(self, *exc):
        if self._p is not None:
            self._p.__exit__(*exc)
        return False
