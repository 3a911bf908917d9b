"""`tinyharden attack MODEL_OR_RUN`: attack a model with a suite and score it honestly.

MODEL_OR_RUN is a run folder written by `tinyharden train` (it supplies the model, the
dataset and the recipe; results are written into it, each attack kept under attacks/),
or a model file: Keras .h5/.keras or .tflite (which needs --data, or a recipe.yaml beside
it; results go to a new run folder in the workspace, or the one --name gives). Eps is
always in [0, 1] data units, whatever the model's own input range (--input-range 0,255
for the MLPerf Tiny ResNet-8).

Exit codes: 0 ok; 2 bad arguments or input files; 3 the suite's robust accuracy is below
--fail-under; 130 interrupted.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, List, Optional

import typer

from tinyharden.cli.common import choices_option, err, handle_errors, out, state, warn
from tinyharden.cli.parsing import parse_fraction, parse_list, parse_numbers, parse_params, parse_range
from tinyharden.errors import GateFailed, UserError
from tinyharden.registry import ATTACKS, DATASETS

Opt = typer.Option


@handle_errors
def attack(
    model: Annotated[Path, typer.Argument(help="Run folder, shipped model name (tinyharden pretrained), Keras model file (.h5/.keras), SavedModel folder or .tflite file.", show_default=False)],
    suite: Annotated[Optional[str], choices_option("--suite", "-s", registry=ATTACKS, help="Comma-separated attacks: {choices}. Default: the recipe's attack.suite, else fgsm,pgd.")] = None,
    eps: Annotated[Optional[str], Opt("--eps", help="Budget(s) in [0,1] data units; fractions and lists for a sweep: 8/255 or 1/255,2/255,4/255,8/255.")] = None,
    n: Annotated[Optional[int], Opt("-n", "--n", help="Attack the first N test samples (default: recipe attack.n, else 1000).")] = None,
    norm: Annotated[Optional[str], Opt("--norm", help="linf or l2 (default: recipe attack.norm, else linf).")] = None,
    data: Annotated[Optional[str], choices_option("--data", registry=DATASETS, help="Dataset for a bare model file: {choices}.")] = None,
    data_path: Annotated[Optional[Path], Opt("--data-path", help="Folder holding the dataset (default: $TINYHARDEN_DATA or ../shared/data).")] = None,
    split: Annotated[str, Opt("--split", help="'test' (the held-out split) or 'all' (every sample of the folder).")] = "test",
    input_range: Annotated[Optional[str], Opt("--input-range", help="The model's input range LO,HI when not the data's, e.g. 0,255 for raw pixels.")] = None,
    recipe: Annotated[Optional[Path], Opt("--recipe", help="Recipe whose attack: section (and, for a bare model, data:) to use.")] = None,
    param: Annotated[Optional[List[str]], Opt("--param", "-p", help="Attack budget, repeatable: -p pgd.steps=40 -p square.max_iter=5000.")] = None,
    eot: Annotated[Optional[int], Opt("--eot", help="Average gradients over N stochastic passes (stochastic quantizers sample).")] = None,
    precision: Annotated[Optional[str], Opt("--precision", help="What white-box attacks compute in: float32 or mixed_bfloat16 (1.5-1.8x faster for PGD on the MLPerf ResNet-8 with AVX-512 BF16); examples are always scored in float32. Default: recipe attack.precision, else float32.")] = None,
    source: Annotated[Optional[Path], Opt("--source", help="Model or run folder the transfer attack crafts its examples on (e.g. the float twin).")] = None,
    space: Annotated[Optional[str], Opt("--space", help="speech_commands only: attack the 'features' (default) or the raw 'waveform' through the MFCC front end.")] = None,
    seed: Annotated[Optional[int], Opt("--seed", help="Seed of the attacks' randomness (default: the recipe's seed).")] = None,
    policy: Annotated[str, Opt("--policy", help="An example outside the eps ball or [0,1]: 'clip' projects it back, 'reject' counts a failed attack.")] = "clip",
    batch_size: Annotated[int, Opt("--batch-size", min=1, help="Samples per attack batch.")] = 256,
    fail_under: Annotated[Optional[str], Opt("--fail-under", metavar="ACC", help="Exit with code 3 if the suite's robust accuracy is below this (0.45 or 45%).")] = None,
    name: Annotated[Optional[str], Opt("--name", help="Name of this attack in the run's history (attacks/NAME.json); for a model file, the run folder to write into (shared with export --name).")] = None,
    json_out: Annotated[bool, Opt("--json", help="Print attack.json (schema_version, kind) to stdout instead of the table.")] = False,
    save_examples: Annotated[bool, Opt("--save-examples/--no-save-examples", help="Write the adversarial examples as attack_examples.npz.")] = True,
    checks: Annotated[bool, Opt("--checks/--no-checks", help="Run the gradient-masking sanity checks.")] = True,
    unsafe: Annotated[bool, Opt("--unsafe", help="Allow model files with Lambda layers (their code runs on load).")] = False,
) -> None:
    """Attack a model with a suite of white-box, black-box and transfer attacks; writes attack.json.

    Example: tinyharden attack runs/quickstart --suite pgd,square --eps 1/255,8/255 -n 500

    Eps is in [0,1] data units (8/255) whatever the model's input range (--input-range 0,255 for a model fed raw pixels).

    Exit codes: 0 ok; 2 bad arguments or input files; 3 suite robust accuracy below --fail-under; 130 interrupted.
    """
    from tinyharden.jobs.attack import AttackRequest
    from tinyharden.jobs.attack import attack as attack_job

    # Everything cheap is checked before TensorFlow is imported.
    fields: dict[str, Any] = dict(
        model=model, suite=parse_list(suite), eps=parse_numbers(_units(eps, space), "--eps"), eps_text=parse_list(eps),
        n=_positive(n, "-n"),
        norm=_choice(norm, "--norm", ("linf", "l2")), eot=_positive(eot, "--eot"),
        precision=_choice(precision, "--precision", ("float32", "mixed_bfloat16")), params=parse_params(param or ()),
        dataset=data, data_path=data_path, split=_choice(split, "--split", ("test", "all")), input_range=parse_range(input_range) if input_range else None,
        recipe=recipe, source=source, space=_choice(space, "--space", ("features", "waveform")), seed=seed,
        policy=_choice(policy, "--policy", ("clip", "reject")), batch_size=batch_size,
        fail_under=parse_fraction(fail_under, "--fail-under"), save_examples=save_examples, checks=checks,
        unsafe=unsafe, name=name)
    if data is not None:
        DATASETS.check(data)
    from tinyharden.cli.progress import AttackProgress

    with AttackProgress() as prog:
        outcome = attack_job(AttackRequest(**fields), state.workspace, progress=prog.update)
    show(outcome, json_out=json_out)
    bar, run_dir = outcome.bar, outcome.run_dir
    if bar is not None and outcome.robust_accuracy < bar:
        raise GateFailed(f"suite robust accuracy {outcome.robust_accuracy:.4f} is below --fail-under {bar:g} "
                         f"(results in {run_dir / 'attack.json'})")


def _positive(value: Optional[int], flag: str) -> Optional[int]:
    if value is not None and value < 1:
        raise UserError(f"{flag} must be at least 1, got {value}")
    return value


def _choice(value: Optional[str], flag: str, choices: tuple[str, ...]) -> Optional[str]:
    if value is not None and value not in choices:
        raise UserError(f"{flag} must be {' or '.join(repr(c) for c in choices)}, got '{value}'")
    return value


def show(outcome, *, json_out: bool = False) -> None:
    """Print an attack's results: the table (or attack.json), then its notes and warnings on stderr."""
    report, run_dir = outcome.report, outcome.run_dir
    if json_out:
        from tinyharden.cli.jsonout import print_json

        print_json(report)
    else:
        from tinyharden.attacks.report import table

        out.print(table(report))
        out.print(f"results: {run_dir / 'attack.json'} (kept as {outcome.record.relative_to(run_dir)})", highlight=False)
    notes(outcome)


def notes(outcome) -> None:
    """stderr only: the EOT note, a sample count cut to the split, chance-level accuracy, masking warnings."""
    report = outcome.report
    if report["config"]["eot"] > 1:
        err.print(f"EOT: {report['config']['eot_reason']}", highlight=False)
    data = report["data"]
    if (data.get("requested_n") or 0) > data["n"]:
        warn(f"-n {data['requested_n']} is more than the {data['dataset']} {data['split']} split holds: "
             f"attacked all {data['n']} samples")
    for flag in report.get("flags", []):
        if flag["code"] == "near_chance":
            warn(f"{flag['message']}: {_range_hint(flag.get('input_range'), data.get('input_range'))}")
    for check in report["masking"]["checks"]:
        if check["flagged"]:
            warn(f"gradient masking? {check['message']}")


# --------------------------------------------------------------------------- helpers

def _range_hint(fed, data_range) -> str:
    lo, hi = fed or data_range or (0.0, 1.0)
    if data_range is None or [float(v) for v in (lo, hi)] == [float(v) for v in data_range]:
        return (f"it was fed the data's own range {lo:g}..{hi:g}; if it was trained on another, pass that with "
                "--input-range LO,HI (e.g. 0,255 for raw pixels)")
    return f"--input-range fed it {lo:g}..{hi:g}; is that the range it was trained on?"


def _units(eps: Optional[str], space: Optional[str]) -> Optional[str]:
    """--eps with int8 steps (0.5step) or dB re. the clip's peak (-40dB) in [0,1] data units."""
    from tinyharden.attacks.budgets import to_data_units

    return None if eps is None else to_data_units(eps, space=space or "features")
