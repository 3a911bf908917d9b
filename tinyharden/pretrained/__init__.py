"""Models shipped inside the package: `tinyharden/pretrained/<name>/`, usable by name.

    >>> from tinyharden import pretrained
    >>> [m["name"] for m in pretrained.available()]          # doctest: +SKIP
    ['kws-dscnn-float', 'kws-stq-jr']
    >>> pretrained.resolve("kws-stq-jr")                      # doctest: +SKIP
    PosixPath('.../tinyharden/pretrained/kws-stq-jr')

Each folder is a run folder (model.h5, the resolved recipe.yaml, metrics.json and, when
measured, attack.json, footprint.json, model.tflite), so every command that takes a run
folder takes the name. Commands never write into these folders: their results go to a
new folder in the workspace. No TensorFlow.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent


def available() -> list[dict[str, Any]]:
    """One entry per shipped model: name, path, files, test accuracy, its split and the dataset."""
    out = []
    for d in sorted(p for p in ROOT.iterdir() if p.is_dir() and (p / "model.h5").is_file()):
        entry: dict[str, Any] = {"name": d.name, "path": str(d), "files": sorted(f.name for f in d.iterdir() if f.is_file())}
        try:
            metrics = json.loads((d / "metrics.json").read_text())
            entry["test_accuracy"] = (metrics.get("test") or {}).get("accuracy")
        except (OSError, ValueError):
            entry["test_accuracy"] = None
        out.append(entry)
    return out


def is_pretrained(path: str | Path) -> bool:
    """True if `path` is (inside) one of the shipped model folders."""
    try:
        return Path(path).resolve().is_relative_to(ROOT)
    except OSError:
        return False


def resolve(model: str | Path) -> Path:
    """`model` as a path: an existing path stays itself; a shipped model's name becomes its folder.

    Anything else is returned unchanged, so the caller's own 'not found' message applies.
    """
    p = Path(model)
    if p.exists() or p.name != str(model):
        return p
    shipped = ROOT / str(model)
    return shipped if (shipped / "model.h5").is_file() else p
