"""Run folders and atomic writes.

Every command writes into `<workspace>/<name>/`; a name already taken gets the next free
number (`name-2`, `name-3`, ...) so a run never overwrites another. All files are written
to a temporary file in the same folder and renamed into place, so an interrupted run
never leaves a half-written artifact behind.
"""
from __future__ import annotations

import contextlib
import json
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
    return atomic_write_json(Path(run_dir) / "env.json", env_info(seed))
