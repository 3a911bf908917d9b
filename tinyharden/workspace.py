"""Run folders and atomic writes.

    folder = RunFolder(Path("runs/quickstart"))
    metrics = folder.read("metrics")          # a validated, versioned artifact model
    located = resolve_model(Path("runs/quickstart"), what="attack")

Every command writes into `<workspace>/<name>/`; a name already taken gets the next free
number (`name-2`, `name-3`, ...) so a run never overwrites another. `RunFolder` owns the
artifact file names, and `resolve_model` the one "run folder or model file" decision
every command makes. All files are written to a temporary file in the same folder and
renamed into place, so an interrupted run never leaves a half-written artifact behind.
"""
from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
import os
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from tinyharden import __version__


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.is_file():  # mkstemp makes 0600 files; artifacts get the usual umask mode
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def to_json(obj: Any) -> str:
    return json.dumps(obj, indent=2, default=_json_default, allow_nan=False) + "\n"


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON artifact; a missing or damaged file is a one-line UserError."""
    from tinyharden.errors import UserError

    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"'{path}' is missing; run the command that writes it first") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"'{path}' is not valid JSON ({exc}); delete it and re-run the command that writes it") from None


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, to_json(obj))


def atomic_save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> Path:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
    return Path(path)


_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def new_run_dir(workspace: str | os.PathLike, name: str) -> Path:
    """Create and return a fresh run folder; never reuses an existing one."""
    from tinyharden.writable import check_writable

    base = check_writable(workspace)
    base.mkdir(parents=True, exist_ok=True)
    safe = _SAFE_NAME.sub("-", name).strip("-.") or "run"
    n = 1
    while True:
        candidate = base / (safe if n == 1 else f"{safe}-{n}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            n += 1


def git_commit(cwd: str | os.PathLike | None = None) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd or Path(__file__).parent,
            capture_output=True, text=True, timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def package_versions() -> dict[str, str | None]:
    """Versions of the stack, read from package metadata (imports nothing heavy)."""
    from importlib import metadata

    names = {
        "tensorflow": "tensorflow", "tf-keras": "tf-keras", "qkeras": "qkeras",
        "foolbox": "foolbox", "adversarial-robustness-toolbox": "adversarial-robustness-toolbox",
        "numpy": "numpy", "tflite-micro": "tflite-micro",
    }
    versions: dict[str, str | None] = {"python": platform.python_version(), "tinyharden": __version__}
    for key, dist in names.items():
        try:
            versions[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[key] = None
    return versions


def env_info(seed: int | None = None) -> dict[str, Any]:
    return {
        "versions": package_versions(),
        "seed": seed,
        "command": sys.argv,
        "git_commit": git_commit(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
    }


def write_env(run_dir: str | os.PathLike, seed: int | None = None) -> Path:
    return RunFolder(run_dir).write_env(seed)


def utc_now() -> str:
    """The current UTC time, ISO 8601 to the second (the `created` field of artifacts)."""
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# --------------------------------------------------------------------------- run folders

class RunFolder:
    """One run folder and the names of its artifacts; the only place those names live.

        folder = RunFolder(Path("runs/quickstart"))
        folder.model_file          # runs/quickstart/model.h5
        folder.attack_history()    # {"pgd": Path("runs/quickstart/attacks/pgd.json"), ...}
    """

    MODEL = "model.h5"
    RECIPE = "recipe.yaml"
    ENV = "env.json"
    METRICS = "metrics.json"
    TRAIN_LOG = "train.log"
    CHECKPOINTS = "checkpoints"
    ATTACK = "attack.json"  # the latest attack; every one is kept under ATTACKS
    ATTACKS = "attacks"
    EXAMPLES = "attack_examples.npz"
    EXPORT = "export.json"
    FOOTPRINT = "footprint.json"
    TFLITE = "model.tflite"
    C_STEM = "model_data"
    QUANTIZE = "quantize.json"
    PTQ_MODEL = "ptq_model.h5"
    TEACHER = "teacher.h5"
    REPORT_JSON = "report.json"
    REPORT_HTML = "report.html"

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def model_file(self) -> Path:
        return self.path / self.MODEL

    @property
    def recipe_file(self) -> Path:
        return self.path / self.RECIPE

    def is_run(self) -> bool:
        """A folder `train` (or `quantize`) created: it holds a recipe.yaml."""
        return self.path.is_dir() and self.recipe_file.is_file()

    def recipe(self):
        from tinyharden.recipe import load_recipe

        return load_recipe(self.recipe_file)

    def read(self, artifact: str):
        """The artifact `artifact` ("metrics", "attack", ...) validated against its versioned model."""
        from tinyharden.artifacts import read_artifact

        return read_artifact(self.path, artifact)

    def write_env(self, seed: int | None = None) -> Path:
        return atomic_write_json(self.path / self.ENV, env_info(seed))

    # ------------------------------------------------------------------ attacks

    def attack_history(self) -> dict[str, Path]:
        """Every kept attack record by name, oldest first."""
        folder = self.path / self.ATTACKS
        files = sorted(folder.glob("*.json"), key=lambda p: (p.stat().st_mtime_ns, p.name)) if folder.is_dir() else []
        return {p.stem: p for p in files}

    def _attack_name(self, report: dict[str, Any], name: str | None) -> str:
        if name is not None:
            return _SAFE_NAME.sub("-", name).strip("-.") or "attack"
        base = "+".join(report.get("config", {}).get("suite") or ["attack"])
        taken, n = set(self.attack_history()), 1
        while (candidate := base if n == 1 else f"{base}-{n}") in taken:
            n += 1
        return candidate

    def write_attack(self, report: dict[str, Any], *, name: str | None = None) -> Path:
        """Keep `report` as attacks/<name>.json (a default name never overwrites) and as attack.json."""
        name = self._attack_name(report, name)
        report["name"] = name
        kept = atomic_write_json(self.path / self.ATTACKS / f"{name}.json", report)
        atomic_write_json(self.path / self.ATTACK, report)
        return kept

    def save_examples(self, arrays: dict[str, np.ndarray]) -> Path:
        return atomic_save_npz(self.path / self.EXAMPLES, **arrays)

    def export_input_range(self) -> tuple[float, float] | None:
        """The model input range export.json recorded, if this folder holds an export."""
        record = self.path / self.EXPORT
        try:
            rng = json.loads(record.read_text()).get("input_range") if record.is_file() else None
            return (float(rng[0]), float(rng[1])) if rng else None
        except (ValueError, OSError, TypeError, IndexError, AttributeError):
            return None

    # ------------------------------------------------------------------ creating

    @classmethod
    def create(cls, workspace: str | os.PathLike, name: str) -> "RunFolder":
        return cls(new_run_dir(workspace, name))

    @classmethod
    def for_model_file(cls, workspace: str | os.PathLike, name: str, *, seed: int | None = None,
                       named: bool = False) -> "RunFolder":
        """The folder a command on a bare model file writes into.

        `named`: the user chose `name`, so a later command (attack, then export, of the same
        file) writes into the same folder and `report` shows one row for the model.
        """
        if named:
            safe = _SAFE_NAME.sub("-", name).strip("-.") or "run"
            folder = cls(Path(workspace) / safe)
            if folder.is_run():
                from tinyharden.errors import UserError

                raise UserError(f"'{folder.path}' is a training run folder; pass it as the model instead of naming "
                                f"the run '{name}', or choose another name", option="name")
            folder.path.mkdir(parents=True, exist_ok=True)
        else:
            folder = cls.create(workspace, name)
        if not (folder.path / cls.ENV).is_file():
            folder.write_env(seed)
        return folder


@dataclass
class LocatedModel:
    """What a command was pointed at: a run folder's model, or a model file (with a recipe beside it?)."""

    model_file: Path
    kind: str  # "keras" | "tflite"
    run: RunFolder | None = None
    recipe_beside: Path | None = None


_KERAS_SUFFIXES = (".h5", ".hdf5", ".keras")


def resolve_model(path: str | os.PathLike, *, what: str, tflite: bool = False,
                  saved_model: bool = False) -> LocatedModel:
    """Decide whether `path` is a run folder or a model file; every problem is a one-line UserError.

        resolve_model(Path("runs/quickstart"), what="attack").run   # RunFolder('runs/quickstart')

    `tflite`: a .tflite file is accepted (black-box attacks); `saved_model`: a folder
    without recipe.yaml is taken as a TensorFlow SavedModel.
    """
    from tinyharden import pretrained
    from tinyharden.errors import UserError

    path = pretrained.resolve(path)  # a shipped model's name is its folder
    kinds = "a .h5/.keras model file" + (" or a .tflite file" if tflite else "")
    if not path.exists():
        raise UserError(f"'{path}' not found; pass a run folder, {kinds}")
    folder = RunFolder(path)
    if path.is_dir() and (folder.is_run() or not saved_model):
        if not folder.is_run():
            raise UserError(f"'{path}' is not a run folder (no {RunFolder.RECIPE}); pass the folder a training run "
                            "created, or a model file")
        if not folder.model_file.is_file():
            raise UserError(f"run folder '{path}' has no {RunFolder.MODEL} (training unfinished?); resume its "
                            "training first")
        return LocatedModel(folder.model_file, "keras", run=folder)
    suffix = path.suffix.lower()
    if path.is_dir() or suffix in _KERAS_SUFFIXES:
        kind = "keras"
    elif tflite and suffix == ".tflite":
        kind = "tflite"
    else:
        raise UserError(f"'{path}' is not a model tinyharden can {what}; pass a run folder, {kinds}")
    beside = path.parent / RunFolder.RECIPE
    return LocatedModel(path, kind, recipe_beside=beside if beside.is_file() else None)
