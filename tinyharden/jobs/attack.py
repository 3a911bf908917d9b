"""The attack job: a model (run folder or file) and an `AttackRequest` in, attack.json out.

    from tinyharden.jobs.attack import AttackRequest, attack
    outcome = attack(AttackRequest(model=Path("runs/quickstart"), suite=["pgd"], eps=[8 / 255]), Path("runs"))

The core of `tinyharden attack` and of `run`'s attack stage: resolve the model, recipe,
data and attack spec (run-folder recipe < `request.recipe` < the request's own fields),
load the data and the target, run the suite, and write the attack record into the run
folder: `attacks/<name>.json` (every attack run is kept) and `attack.json` (the latest),
with attack_examples.npz. A bare model file gets a new run folder, or the one named by
`request.name`. Eps is always in [0, 1] data units, whatever the model's input range.
TensorFlow is imported inside the functions that need it, after the cheap checks.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from tinyharden.errors import UserError
from tinyharden.recipe import AttackSpec, DataSpec, Recipe, load_recipe
from tinyharden.workspace import RunFolder, resolve_model

Progress = Callable[[str, int, int], None]


class AttackRequest(BaseModel):
    """What to attack and how; unset fields come from the recipes (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    model: Path
    suite: Optional[list[str]] = None
    eps: Optional[list[float]] = None
    eps_text: Optional[list[str]] = Field(None, description="`eps` as the user wrote it (8/255, 0.5step, -40dB), "
                                                            "one per value: how progress and records name them")
    n: Optional[int] = Field(None, gt=0)
    norm: Optional[Literal["linf", "l2"]] = None
    eot: Optional[int] = Field(None, gt=0)
    precision: Optional[Literal["float32", "mixed_bfloat16"]] = Field(None, description="white-box attacks' compute precision")
    params: dict[str, dict[str, Any]] = Field(default_factory=dict, description="per-attack budgets, beat the recipes'")
    dataset: Optional[str] = Field(None, description="dataset of a bare model file")
    data_path: Optional[Path] = None
    split: Literal["test", "all"] = "test"
    input_range: Optional[tuple[float, float]] = Field(None, description="the model's input range, if not the data's")
    recipe: Optional[Path] = None
    source: Optional[Path] = Field(None, description="transfer source model")
    space: Optional[Literal["features", "waveform"]] = None
    seed: Optional[int] = None
    policy: Literal["clip", "reject"] = "clip"
    batch_size: int = Field(256, gt=0)
    fail_under: Optional[float] = Field(None, ge=0, le=1)
    save_examples: bool = True
    checks: bool = True
    unsafe: bool = False
    name: Optional[str] = Field(None, description="the attack's name in the history (attacks/<name>.json); for a bare "
                                                 "model file also the run folder to write into")


@dataclass
class AttackOutcome:
    """What `attack` wrote: the attack.json document, where, and the fail-under bar."""

    report: dict[str, Any]
    run_dir: Path
    robust_accuracy: float
    bar: Optional[float]
    record: Path


@dataclass
class _Plan:
    """The resolved job: everything known before TensorFlow loads."""

    path: Path
    kind: str
    run_dir: Optional[Path]
    data_spec: DataSpec
    space: str
    spec: AttackSpec
    data_seed: int
    seed: int
    recipe_sources: list[str]
    source: Optional[Path]


def attack(request: AttackRequest, workspace: Path, *, progress: Progress | None = None) -> AttackOutcome:
    """Attack `request.model` and write its attack record; raises UserError for anything fixable.

    The fail-under gate is recorded in attack.json and `bar`, and left to the caller to enforce.
    """
    plan = _plan(request)
    from tinyharden.attacks.suite import SuiteConfig, run_suite
    from tinyharden.writable import check_writable

    # Before the attack runs: a folder that cannot take attack.json would waste all of it.
    check_writable(plan.run_dir or workspace, what="run folder" if plan.run_dir else "workspace")

    ds = _load_data(plan, request.split)
    spec = plan.spec
    lo, hi = (float(v) for v in ds.input_range)
    x = ((ds.x_test[: spec.n] - lo) / (hi - lo)).astype("float32")
    y = ds.y_test[: spec.n].astype("int64")
    if len(x) == 0:
        raise UserError(f"the {ds.name} {request.split} split is empty; check the dataset and its path")
    target, target_info, src = _targets(plan, ds, request)
    config = SuiteConfig(suite=list(spec.suite), eps=list(spec.eps), norm=spec.norm, eot=spec.eot,
                         params={k: dict(v) for k, v in spec.params.items()}, seed=plan.seed, policy=request.policy,
                         batch_size=request.batch_size, checks=request.checks, eps_labels=_eps_labels(request),
                         precision=spec.precision)
    result = run_suite(target, x, y, config, source=src, progress=progress)

    folder = _output_folder(plan, request, workspace)
    report = _report(plan, request, ds, target_info, result, len(x), src is not None)
    report["examples"] = _save_examples(folder, ds, y, spec.n, result.examples, report) if request.save_examples else None
    if ds.name == "speech_commands" and plan.space == "waveform":  # clips to listen to, spectrograms to look at
        from tinyharden.attacks.listening import write_listening_examples
        report["listening"] = write_listening_examples(folder.path, report, x, result.examples, class_names=ds.class_names)
    # For a bare model file `name` names its run folder; the history entry keeps a default name.
    record = folder.write_attack(report, name=request.name if plan.run_dir is not None else None)
    return AttackOutcome(report=report, run_dir=folder.path, robust_accuracy=result.robust_accuracy,
                         bar=request.fail_under, record=record)


# --------------------------------------------------------------------------- resolving (no TF)

def _eps_labels(request: AttackRequest) -> dict[float, str]:
    """The request's eps by value, named as the user wrote them; eps from a recipe go unnamed (8/255 style)."""
    if request.eps is None or request.eps_text is None:
        return {}
    if len(request.eps_text) != len(request.eps):
        raise UserError(f"eps_text has {len(request.eps_text)} labels for {len(request.eps)} eps values; give one each")
    return {float(e): t.strip() for e, t in zip(request.eps, request.eps_text)}


def _plan(request: AttackRequest) -> _Plan:
    """Work out model, recipe, data and the attack spec from the request (no TF yet)."""
    located = resolve_model(request.model, what="attack", tflite=True, saved_model=True)
    run_recipe: Recipe | None = None
    sources: list[str] = []
    if located.run is not None:
        run_recipe = located.run.recipe()
        sources.append(str(located.run.recipe_file))
    elif request.recipe is None and request.dataset is None and located.recipe_beside is not None:
        run_recipe = load_recipe(located.recipe_beside)  # e.g. runs/x/model.tflite: the run's data
        sources.append(str(located.recipe_beside))
    user_recipe = load_recipe(request.recipe) if request.recipe is not None else None
    if user_recipe is not None:
        sources.append(str(request.recipe))
    dspec, space = _data_spec(request, run_recipe, user_recipe)
    spec = _attack_spec(request, run_recipe, user_recipe)
    seed_data = next((r.seed for r in (run_recipe, user_recipe) if r is not None), 0)
    return _Plan(path=located.model_file, kind=located.kind, run_dir=located.run.path if located.run else None,
                 data_spec=dspec, space=space, spec=spec, data_seed=seed_data,
                 seed=request.seed if request.seed is not None else seed_data, recipe_sources=sources,
                 source=_transfer_source(request, spec))


def _data_spec(request: AttackRequest, run_recipe: Recipe | None, user_recipe: Recipe | None) -> tuple[DataSpec, str]:
    """The request's dataset, else the recipe's (run folder, or the user's recipe for a bare model)."""
    from tinyharden.registry import DATASETS

    if request.dataset is not None:
        dspec = DataSpec(dataset=DATASETS.check(request.dataset))
    elif run_recipe is not None:
        dspec = run_recipe.data.model_copy()
    elif user_recipe is not None and "data" in user_recipe.model_fields_set:
        dspec = user_recipe.data.model_copy()
    else:
        raise UserError(f"'{request.model.name}' is a bare model file: name its dataset ({', '.join(DATASETS.names())}) "
                        "and, if its inputs are not in [0,1], its input range LO,HI", option="dataset")
    if request.data_path is not None:
        dspec = dspec.with_folder(request.data_path)
    # Datasets with more than one input space (features or raw waveform) say so in the registry.
    spaces = DATASETS.meta(dspec.dataset).get("spaces")
    if request.space is not None and not spaces:
        with_spaces = [n for n in DATASETS.names() if DATASETS.meta(n).get("spaces")]
        raise UserError(f"an input space applies to {', '.join(with_spaces)} only; {dspec.dataset} has a single one",
                        option="space")
    return dspec, request.space or (dspec.space if spaces else "features")


def _attack_spec(request: AttackRequest, run_recipe: Recipe | None, user_recipe: Recipe | None) -> AttackSpec:
    """Run recipe < user recipe < request; unknown attacks and budget keys fail here, before any work."""
    base: dict[str, Any] = {}
    for r in (run_recipe, user_recipe):
        if r is not None and r.attack is not None:
            base.update(r.attack.model_dump(exclude_unset=True))
    fields = {k: getattr(request, k) for k in ("suite", "eps", "n", "norm", "eot", "precision") if getattr(request, k) is not None}
    params = {k: dict(v) for k, v in base.get("params", {}).items()}
    for name, kv in request.params.items():
        params.setdefault(name, {}).update(kv)
    try:
        spec = AttackSpec.model_validate({**base, **fields, "params": params})
    except ValueError as exc:
        e = exc.errors()[0]  # type: ignore[attr-defined]
        loc = ".".join(str(p) for p in e["loc"] if not isinstance(p, int))
        raise UserError(f"attack.{loc}: {e['msg'].removeprefix('Value error, ')}") from None
    from tinyharden.attacks.base import attack_class, make_attack

    for name in spec.params:
        attack_class(name)
    for name in spec.suite:
        make_attack(name, spec.params.get(name))
    return spec


def _transfer_source(request: AttackRequest, spec: AttackSpec) -> Optional[Path]:
    if "transfer" not in spec.suite:
        return None
    source = request.source or spec.params.get("transfer", {}).get("source")
    if source is None:
        raise UserError("the suite includes 'transfer' but no source model; give one (e.g. the float twin's run folder)",
                        option="source")
    if not Path(source).exists():
        raise UserError(f"transfer source '{source}' not found; give a run folder or a .h5/.keras model file",
                        option="source")
    return Path(source)


# --------------------------------------------------------------------------- running

def _load_data(plan: _Plan, split: str = "test"):
    """The dataset; with split "all" its test arrays are every sample of the folder."""
    from tinyharden.data import load_dataset
    from tinyharden.evaluation.data import with_split

    dspec = plan.data_spec
    if plan.space == "waveform":
        dspec = dspec.model_copy(update={"space": "waveform"})
    return with_split(load_dataset(dspec, plan.data_seed), dspec, seed=plan.data_seed, split=split)


def _targets(plan: _Plan, ds, request: AttackRequest):
    from tinyharden.attacks.loading import build_source, build_target

    export_range = None
    if plan.kind == "tflite":
        export_range = RunFolder(plan.path.parent).export_input_range()
    target, info = build_target(plan.path, kind=plan.kind, dataset=ds, model_range=request.input_range,
                                export_range=export_range, space=plan.space, run_dir=plan.run_dir,
                                unsafe=request.unsafe)
    src = None
    if plan.source is not None:
        src = build_source(plan.source, dataset=ds, model_range=request.input_range, space=plan.space,
                           unsafe=request.unsafe)
        plan.spec.params.setdefault("transfer", {})["source"] = str(plan.source)
    return target, info, src


def _output_folder(plan: _Plan, request: AttackRequest, workspace: Path) -> RunFolder:
    from tinyharden import pretrained

    if plan.run_dir is not None and not pretrained.is_pretrained(plan.run_dir):  # shipped folders are read-only
        return RunFolder(plan.run_dir)
    return RunFolder.for_model_file(workspace, request.name or f"attack-{request.model.stem}", seed=plan.seed,
                                    named=request.name is not None)


def _report(plan: _Plan, request: AttackRequest, ds, target_info: dict, result, n: int, transfer: bool) -> dict:
    from tinyharden.attacks.report import SCHEMA_VERSION
    from tinyharden.workspace import package_versions, utc_now

    lo, hi = (float(v) for v in ds.input_range)
    report: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "kind": "tinyharden attack",
        "tool": "tinyharden attack",
        "created": utc_now(),
        "name": request.name,
        "target": target_info,
        "data": {"dataset": ds.name, "split": request.split, "path": plan.data_spec.path, "n": int(n),
                 "requested_n": plan.spec.n, "first_n": True, "data_seed": plan.data_seed,
                 "input_range": [lo, hi], "space": plan.space, "units": "eps and norms are in [0,1] data units: "
                 "(x - lo) / (hi - lo) of the dataset's input_range"},
        **result.report,
    }
    report["config"]["eps_abs"] = [e * (hi - lo) for e in report["config"]["eps"]]
    if ds.name == "speech_commands":
        from tinyharden.attacks.budgets import label
        report["config"]["eps_label"] = [label(e, space=plan.space) for e in report["config"]["eps"]]
    report["config"]["recipe"] = plan.recipe_sources
    report["config"]["source"] = str(plan.source) if transfer else None
    bar = request.fail_under
    report["gate"] = None if bar is None else {"fail_under": bar, "value": result.robust_accuracy,
                                               "passed": result.robust_accuracy >= bar}
    report["versions"] = package_versions()
    report["flags"] = _flags(report, target_info)
    return report


def _flags(report: dict, target_info: dict) -> list[dict]:
    """What makes the figures suspect beyond the masking checks: clean accuracy at chance level."""
    from tinyharden.attacks.evaluation import near_chance

    clean = report["clean"]["accuracy"]
    flag = near_chance(clean["value"], clean["n"], int(target_info.get("num_classes") or 0))
    if flag is not None:
        flag["input_range"] = target_info.get("input_range")
    return [flag] if flag else []


def _save_examples(folder: RunFolder, ds, y, n: int, examples: dict, report: dict) -> dict:
    lo, hi = (float(v) for v in ds.input_range)
    arrays = {"x": ds.x_test[:n], "y": y}
    arrays.update({k: (lo + v * (hi - lo)).astype("float32") for k, v in examples.items()})
    file = folder.save_examples(arrays)
    eps = report["config"]["eps"]
    keys = {k: ("minimum-norm examples, unclipped to any eps" if "_eps" not in k else
                f"examples at eps {eps[int(k.rsplit('_eps', 1)[1])]:.6g}") for k in examples}
    return {"file": file.name, "units": f"the dataset's own range [{lo:g}, {hi:g}]",
            "keys": {"x": "clean inputs", "y": "labels", **keys}}
