"""One attack job: a model (run folder or file) plus recipe and options in, attack.json out.

The core of `tinyharden attack` (and of `tinyharden run`'s attack stage): resolve the
model, recipe, data and attack spec (run-folder recipe < --recipe < flags), load the data
and the target, run the suite, and write attack.json, attack_examples.npz and, for a new
run folder, env.json. Eps is always in [0, 1] data units, whatever the model's own input
range. TensorFlow is imported inside the functions that need it, after the cheap checks.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

from tinyharden.errors import UserError


@dataclass
class AttackOutcome:
    """What `run_attack` wrote: the attack.json document, where, and the --fail-under bar."""

    report: dict[str, Any]
    run_dir: Path
    robust_accuracy: float
    bar: Optional[float]


def validate_options(*, fail_under: Optional[str] = None, input_range: Optional[str] = None, policy: str = "clip",
                     space: Optional[str] = None, eot: Optional[int] = None,
                     n: Optional[int] = None) -> tuple[Optional[float], Optional[tuple[float, float]]]:
    """The cheap argument checks (no TensorFlow); returns (fail-under bar, model input range)."""
    from tinyharden.parsing import parse_fraction, parse_range

    bar = parse_fraction(fail_under, "--fail-under")
    model_range = parse_range(input_range) if input_range else None
    if policy not in ("clip", "reject"):
        raise UserError(f"--policy must be 'clip' or 'reject', got '{policy}'")
    if space not in (None, "features", "waveform"):
        raise UserError(f"--space must be 'features' or 'waveform', got '{space}'")
    if eot is not None and eot < 1:
        raise UserError(f"--eot must be a positive number of passes, got {eot}")
    if n is not None and n < 1:
        raise UserError(f"-n must be at least 1, got {n}")
    return bar, model_range


def run_attack(
    model: Path,
    *,
    suite: Optional[str] = None,
    eps: Optional[str] = None,
    n: Optional[int] = None,
    norm: Optional[str] = None,
    data: Optional[str] = None,
    data_path: Optional[Path] = None,
    split: str = "test",
    input_range: Optional[str] = None,
    recipe: Optional[Path] = None,
    params: Iterable[str] = (),
    eot: Optional[int] = None,
    source: Optional[Path] = None,
    space: Optional[str] = None,
    seed: Optional[int] = None,
    policy: str = "clip",
    batch_size: int = 256,
    fail_under: Optional[str] = None,
    save_examples: bool = True,
    checks: bool = True,
    unsafe: bool = False,
    workspace: Path = Path("runs"),
    progress: Optional[Callable[[str, int, int], None]] = None,
) -> AttackOutcome:
    """Attack `model` (a run folder, .h5/.keras or .tflite file) and write attack.json.

    The options are the `tinyharden attack` flags (strings as typed: "8/255,16/255",
    "0,255", "45%"); `params` holds ATTACK.KEY=VALUE items. Results go into the run
    folder, or into a new `attack-*` folder under `workspace` for a model file. Raises
    UserError for anything the user can fix; the --fail-under gate is reported in
    attack.json and `bar`, and left to the caller to enforce.
    """
    # Everything cheap is validated before TensorFlow is imported.
    bar, model_range = validate_options(fail_under=fail_under, input_range=input_range, policy=policy, space=space,
                                        eot=eot, n=n)
    from tinyharden import pretrained
    from tinyharden.evaluation.data import check_split

    check_split(split)
    model = pretrained.resolve(model)

    job = _resolve(model, recipe=recipe, data=data, data_path=data_path, space=space, suite=suite, eps=eps, n=n,
                   norm=norm, eot=eot, params=list(params or ()), seed=seed, source=source)

    from tinyharden.attacks.report import SCHEMA_VERSION
    from tinyharden.attacks.suite import SuiteConfig, run_suite
    from tinyharden.workspace import atomic_save_npz, atomic_write_json, package_versions, write_env

    ds = _load_data(job, split)
    spec = job["attack"]
    lo, hi = (float(v) for v in ds.input_range)
    x = ((ds.x_test[: spec.n] - lo) / (hi - lo)).astype("float32")
    y = ds.y_test[: spec.n].astype("int64")
    if len(x) == 0:
        raise UserError(f"the {ds.name} {split} split is empty; check the dataset (--data, --data-path)")
    target, target_info = _build_target(job, ds, model_range, unsafe=unsafe)
    src = None
    source_path = job["source"]
    if source_path is not None:
        src = _build_source(Path(source_path), ds, model_range, job, unsafe=unsafe)
        spec.params.setdefault("transfer", {})["source"] = str(source_path)

    config = SuiteConfig(suite=list(spec.suite), eps=list(spec.eps), norm=spec.norm, eot=spec.eot,
                         params={k: dict(v) for k, v in spec.params.items()}, seed=job["seed"], policy=policy,
                         batch_size=batch_size, checks=checks)
    result = run_suite(target, x, y, config, source=src, progress=progress)

    run_dir = job["run_dir"]
    if run_dir is not None and pretrained.is_pretrained(run_dir):
        run_dir = None  # a shipped model's folder is read-only: results go to the workspace
    if run_dir is None:
        run_dir = job["run_dir"] = new_run_dir_for(model, workspace)
        write_env(run_dir, job["seed"])
    report: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "tool": "tinyharden attack",
        "created": _now(),
        "target": target_info,
        "data": {"dataset": ds.name, "split": split, "path": job["data_spec"].path, "n": int(len(x)), "first_n": True, "data_seed": job["data_seed"],
                 "input_range": [lo, hi], "space": job["space"], "units": "eps and norms are in [0,1] data units: "
                 "(x - lo) / (hi - lo) of the dataset's input_range"},
        **result.report,
    }
    report["config"]["eps_abs"] = [e * (hi - lo) for e in report["config"]["eps"]]
    if ds.name == "speech_commands":
        from tinyharden.attacks.budgets import label
        report["config"]["eps_label"] = [label(e, space=job["space"]) for e in report["config"]["eps"]]
    report["config"]["recipe"] = job["recipe_sources"]
    report["config"]["source"] = str(source_path) if src is not None else None
    report["gate"] = None if bar is None else {"fail_under": bar, "value": result.robust_accuracy,
                                               "passed": result.robust_accuracy >= bar}
    if save_examples:
        arrays = {"x": ds.x_test[: spec.n], "y": y}
        arrays.update({k: (lo + v * (hi - lo)).astype("float32") for k, v in result.examples.items()})
        atomic_save_npz(run_dir / "attack_examples.npz", **arrays)
        report["examples"] = {"file": "attack_examples.npz", "units": f"the dataset's own range [{lo:g}, {hi:g}]",
                              "keys": {"x": "clean inputs", "y": "labels",
                                       **{k: ("minimum-norm examples, unclipped to any eps" if "_eps" not in k else
                                              f"examples at eps {report['config']['eps'][int(k.rsplit('_eps', 1)[1])]:.6g}")
                                          for k in result.examples}}}
    else:
        report["examples"] = None
    if ds.name == "speech_commands" and job["space"] == "waveform":  # clips to listen to, spectrograms to look at
        from tinyharden.attacks.listening import write_listening_examples
        report["listening"] = write_listening_examples(run_dir, report, x, result.examples, class_names=ds.class_names)
    report["versions"] = package_versions()
    atomic_write_json(run_dir / "attack.json", report)
    return AttackOutcome(report=report, run_dir=run_dir, robust_accuracy=result.robust_accuracy, bar=bar)


# --------------------------------------------------------------------------- helpers

def _parse_params(items: list[str]) -> dict[str, dict[str, Any]]:
    import yaml

    params: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        name, dot, field = key.strip().partition(".")
        if not sep or not dot or not name or not field:
            raise UserError(f"--param '{item}' must look like ATTACK.KEY=VALUE, e.g. pgd.steps=40")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        params.setdefault(name, {})[field] = value
    return params


def _resolve(model: Path, *, recipe, data, data_path, space, suite, eps, n, norm, eot, params, seed,
             source) -> dict[str, Any]:
    """Work out model, recipe, data and the attack spec from the arguments (no TF yet)."""
    from tinyharden.recipe import AttackSpec, DataSpec, Recipe, load_recipe

    model = Path(model)
    if not model.exists():
        raise UserError(f"'{model}' not found; pass a run folder, a .h5/.keras model file or a .tflite file")
    run_recipe: Recipe | None = None
    run_dir: Path | None = None
    sources: list[str] = []
    if model.is_dir():
        if not (model / "recipe.yaml").is_file():
            raise UserError(f"'{model}' is not a run folder (no recipe.yaml); pass the folder `tinyharden train` created, or a model file")
        if not (model / "model.h5").is_file():
            raise UserError(f"run folder '{model}' has no model.h5 (training unfinished?); finish it with tinyharden train --resume {model}")
        run_recipe = load_recipe(model / "recipe.yaml")
        run_dir = model
        sources.append(str(model / "recipe.yaml"))
        kind = "keras"
        path = model / "model.h5"
    else:
        suffix = model.suffix.lower()
        if suffix == ".tflite":
            kind = "tflite"
        elif suffix in (".h5", ".hdf5", ".keras"):
            kind = "keras"
        else:
            raise UserError(f"'{model}' is not a model tinyharden can attack; pass a run folder, a .h5/.keras or a .tflite file")
        path = model
        beside = model.parent / "recipe.yaml"
        if recipe is None and data is None and beside.is_file():
            run_recipe = load_recipe(beside)  # e.g. runs/x/model.tflite: the run's data
            sources.append(str(beside))
    user_recipe = load_recipe(recipe) if recipe is not None else None
    if user_recipe is not None:
        sources.append(str(recipe))

    # Data: --data, else the recipe's (run folder, or --recipe for a bare model).
    if data is not None:
        try:
            dspec = DataSpec(dataset=data)
        except Exception:
            from typing import get_args

            choices = get_args(DataSpec.model_fields["dataset"].annotation)
            raise UserError(f"unknown dataset '{data}' for --data; choose from {', '.join(choices)}") from None
    elif run_recipe is not None:
        dspec = run_recipe.data.model_copy()
    elif user_recipe is not None and "data" in user_recipe.model_fields_set:
        dspec = user_recipe.data.model_copy()
    else:
        raise UserError(f"'{model.name}' is a bare model file: pass --data DATASET (cifar10, speech_commands, digits, "
                        "synthetic) and, if its inputs are not in [0,1], --input-range LO,HI")
    if data_path is not None:
        dspec = dspec.model_copy(update={"path": str(data_path), "test_path": None})
    if space is not None:
        if dspec.dataset != "speech_commands":
            raise UserError(f"--space applies to speech_commands only; {dspec.dataset} has a single input space")
    eff_space = space or ("features" if dspec.dataset != "speech_commands" else dspec.space)

    # Attack spec: run recipe < --recipe < flags.
    base = {}
    for r in (run_recipe, user_recipe):
        if r is not None and r.attack is not None:
            base.update(r.attack.model_dump(exclude_unset=True))
    flags: dict[str, Any] = {}
    if suite is not None:
        flags["suite"] = suite
    if eps is not None:
        from tinyharden.attacks.budgets import to_data_units
        flags["eps"] = to_data_units(eps, space=eff_space)  # 1step, -40dB -> [0,1] units
    if n is not None:
        flags["n"] = n
    if norm is not None:
        flags["norm"] = norm
    if eot is not None:
        flags["eot"] = eot
    merged_params = {k: dict(v) for k, v in base.get("params", {}).items()}
    for name, kv in _parse_params(params).items():
        merged_params.setdefault(name, {}).update(kv)
    try:
        spec = AttackSpec.model_validate({**base, **flags, "params": merged_params})
    except Exception as exc:
        errs = getattr(exc, "errors", lambda: [])()
        if errs:
            e = errs[0]
            loc = ".".join(str(p) for p in e["loc"] if not isinstance(p, int))
            flag = {"suite": "--suite", "eps": "--eps", "n": "-n", "norm": "--norm", "eot": "--eot"}.get(loc.split(".")[0], loc)
            raise UserError(f"{flag}: {e['msg'].removeprefix('Value error, ')}") from None
        raise
    from tinyharden.attacks.base import attack_class, make_attack

    # Unknown attacks and budget keys fail here, with a 'did you mean', before any work.
    for name in spec.params:
        attack_class(name)
    for name in spec.suite:
        make_attack(name, spec.params.get(name))
    source_path = source or spec.params.get("transfer", {}).get("source")
    if "transfer" not in spec.suite:
        source_path = None
    elif source_path is None:
        raise UserError("the suite includes 'transfer' but no source model; pass --source MODEL (e.g. the float twin's run folder)")
    elif not Path(source_path).exists():
        raise UserError(f"transfer source '{source_path}' not found; pass a run folder or a .h5/.keras model file to --source")
    seed_data = run_recipe.seed if run_recipe is not None else (user_recipe.seed if user_recipe is not None else 0)
    return {"model": model, "path": path, "kind": kind, "run_dir": run_dir, "data_spec": dspec, "space": eff_space,
            "attack": spec, "data_seed": seed_data, "seed": seed if seed is not None else seed_data,
            "recipe_sources": sources, "source": source_path}


def _load_data(job, split: str = "test"):
    """The dataset; with split "all" its test arrays are every sample of the folder."""
    from tinyharden.data import load_dataset
    from tinyharden.evaluation.data import with_split

    dspec = job["data_spec"]
    if dspec.dataset == "speech_commands" and job["space"] == "waveform":
        dspec = dspec.model_copy(update={"space": "waveform"})
    return with_split(load_dataset(dspec, job["data_seed"]), dspec, seed=job["data_seed"], split=split)


def _frontend_model(model, keras):
    """Waveform in [0,1] units -> [-1,1] -> MFCC features -> `model`, one graph."""
    from tinyharden.data import frontend

    class MFCC(keras.layers.Layer):
        def call(self, w):
            return frontend.mfcc(w)

    inp = keras.Input(shape=(frontend.CLIP_SAMPLES,), name="waveform01")
    w = keras.layers.Rescaling(2.0, offset=-1.0, name="to_pcm")(inp)
    return keras.Model(inp, model(MFCC(name="mfcc")(w)), name=f"{model.name}_waveform")


def _load_keras(path: Path, unsafe: bool):
    from tinyharden.models import load_model, logits_model

    return logits_model(load_model(path, unsafe=unsafe))


def _build_target(job, ds, model_range, *, unsafe: bool):
    path, kind = job["path"], job["kind"]
    info: dict[str, Any] = {"path": str(path), "kind": kind, "run_dir": str(job["run_dir"]) if job["run_dir"] else None}
    data_range = tuple(float(v) for v in ds.input_range)
    if kind == "tflite":
        try:
            from tinyharden.export.tflite_target import TFLiteTarget, recorded_input_range
        except ImportError as exc:
            raise UserError(f".tflite targets need tinyharden.export ({exc}); attack the Keras model instead") from None
        rng = model_range or recorded_input_range(path) or data_range
        target = TFLiteTarget(path, rng)
        info["input_range"] = list(rng)
    else:
        from tinyharden._tf import keras

        from tinyharden.attacks.target import KerasTarget

        m = _load_keras(path, unsafe)
        rng = model_range or data_range
        if job["space"] == "waveform":
            from tinyharden.data import frontend

            if tuple(m.input_shape[1:]) == frontend.FEATURE_SHAPE:
                m = _frontend_model(m, keras)
                rng = (0.0, 1.0)  # the wrapper maps [0,1] to [-1,1] itself
                info["frontend"] = "tinyharden.data.frontend.mfcc (differentiable), waveform [0,1] -> [-1,1]"
        target = KerasTarget(m, input_range=rng, name=path.parent.name if path.name == "model.h5" else path.name)
        info["input_range"] = list(rng)
    if tuple(target.input_shape) != tuple(ds.input_shape):
        raise UserError(f"model '{path}' takes inputs of shape {tuple(target.input_shape)} but {ds.name} has "
                        f"{tuple(ds.input_shape)}; pass the dataset the model was trained on (--data)")
    if target.num_classes != ds.num_classes:
        raise UserError(f"model '{path}' has {target.num_classes} outputs but {ds.name} has {ds.num_classes} classes; "
                        "pass the dataset the model was trained on (--data)")
    info.update(name=target.name, input_shape=list(target.input_shape), num_classes=target.num_classes,
                differentiable=bool(target.differentiable))
    if hasattr(target, "has_stochastic_quantizers"):
        info["stochastic_quantizers"] = target.has_stochastic_quantizers()
    return target, info


def _build_source(path: Path, ds, model_range, job, *, unsafe: bool):
    from tinyharden.attacks.target import KerasTarget

    if not path.exists():
        raise UserError(f"transfer source '{path}' not found; pass a run folder or a .h5/.keras model file to --source")
    if path.suffix.lower() == ".tflite":
        raise UserError("the transfer source must be a Keras model (its gradients are needed), not a .tflite file")
    if path.is_dir():
        rng = tuple(float(v) for v in ds.input_range)  # a run folder's model sees the dataset's own units
        path = path / "model.h5"
    else:
        rng = model_range or tuple(float(v) for v in ds.input_range)
    m = _load_keras(path, unsafe)
    if job["space"] == "waveform":
        from tinyharden._tf import keras
        from tinyharden.data import frontend

        if tuple(m.input_shape[1:]) == frontend.FEATURE_SHAPE:
            m, rng = _frontend_model(m, keras), (0.0, 1.0)
    return KerasTarget(m, input_range=rng, name=f"{path.parent.name}/{path.name}")


def new_run_dir_for(model: Path, workspace: Path) -> Path:
    from tinyharden.workspace import new_run_dir

    return new_run_dir(workspace, f"attack-{model.stem}")


def _now() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat(timespec="seconds")
