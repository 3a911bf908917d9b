"""Versioned models of the JSON artifacts in a run folder, and the one schema-version policy.

    from tinyharden.artifacts import read_artifact
    metrics = read_artifact(Path("runs/quickstart"), "metrics")   # MetricsArtifact
    metrics.test.accuracy

Policy: every artifact carries `schema_version`; a change that is not purely additive
bumps SCHEMA_VERSION, and a reader refuses any other version with a one-line error
naming the file and the fix (re-run the command that writes it). Fields a writer adds
later are allowed (`extra="allow"`); the fields the report relies on are required.
footprint.json and export.json were written before they carried a version: a file
without one is read as version 1.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, ValidationError

from tinyharden.errors import UserError

SCHEMA_VERSION = 1
Version = Literal[1]


class _Artifact(BaseModel):
    model_config = ConfigDict(extra="allow")


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Score(_Open):
    accuracy: float
    n: Optional[int] = None
    ci95: Optional[list[float]] = None


class MetricsArtifact(_Artifact):
    """metrics.json (`train`, `quantize`): written last, it marks a finished run."""

    schema_version: Version
    test: Score
    run: Optional[str] = None
    model: Optional[str] = None
    history: list[dict[str, Any]] = []


class FootprintArtifact(_Artifact):
    """footprint.json: per-layer cost; `export` adds the deployed bytes."""

    schema_version: Version = SCHEMA_VERSION
    totals: dict[str, Any]
    layers: list[dict[str, Any]] = []
    deployed: Optional[dict[str, Any]] = None


class ExportArtifact(_Artifact):
    """export.json: int8 parity on the TFLM interpreter, deployed flash and arena, gates."""

    schema_version: Version = SCHEMA_VERSION
    parity: dict[str, Any]
    deployed: dict[str, Any] = {}
    gates: list[dict[str, Any]] = []
    dataset: Optional[str] = None
    input_range: Optional[list[float]] = None


class CleanScore(_Open):
    accuracy: Any


class AttackRecord(_Open):
    name: str
    results: list[dict[str, Any]] = []


class AttackArtifact(_Artifact):
    """attack.json and attacks/<name>.json (`attack`): the suite per attack and eps."""

    schema_version: Version
    tool: Literal["tinyharden attack"] = "tinyharden attack"
    attacks: list[AttackRecord]
    clean: CleanScore
    config: dict[str, Any] = {}
    data: dict[str, Any] = {}
    target: dict[str, Any] = {}
    name: Optional[str] = None


class QuantizeArtifact(_Artifact):
    """quantize.json (`quantize`): float, post-training and fine-tuned stages."""

    schema_version: Version
    status: Literal["finetuning", "done"]
    stages: dict[str, Optional[dict[str, Any]]]
    layers: list[dict[str, Any]]
    footprint: dict[str, Any]


MODELS: dict[str, tuple[str, type[_Artifact]]] = {
    "metrics": ("metrics.json", MetricsArtifact),
    "footprint": ("footprint.json", FootprintArtifact),
    "export": ("export.json", ExportArtifact),
    "attack": ("attack.json", AttackArtifact),
    "quantize": ("quantize.json", QuantizeArtifact),
}
WRITERS = {"metrics": "tinyharden train", "footprint": "tinyharden export", "export": "tinyharden export",
           "attack": "tinyharden attack", "quantize": "tinyharden quantize"}


class ArtifactError(UserError):
    """A JSON artifact that does not match its model; the message names the file and the field."""


def _message(file: str, exc: ValidationError) -> str:
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "missing")  # a missing field says most
    e = errors[0]
    dotted = ".".join(str(p) for p in e["loc"])
    if e["type"] == "missing":
        return f"{file} lacks '{dotted}'"
    return f"{file} has {dotted}={e.get('input')!r}: {e['msg']}"


def validate_artifact(kind: str, doc: Any, *, file: str | None = None) -> _Artifact:
    """`doc` as the model of artifact `kind`; raises ArtifactError with a one-line message."""
    name, model = MODELS[kind]
    file = file or name
    if not isinstance(doc, dict):
        raise ArtifactError(f"{file} is not a JSON object")
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        raise ArtifactError(_message(file, exc)) from None


def read_artifact(run_dir: str | Path, kind: str, *, file: str | None = None) -> _Artifact:
    """Read and validate artifact `kind` of a run folder (or `file` inside it); see `RunFolder.read`."""
    import json

    name, _ = MODELS[kind]
    path = Path(run_dir) / (file or name)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactError(f"'{path}' is missing; run {WRITERS[kind]} first") from None
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"'{path}' is not valid JSON ({exc}); re-run {WRITERS[kind]} to write it again") from None
    try:
        return validate_artifact(kind, doc, file=file or name)
    except ArtifactError as exc:
        raise ArtifactError(f"'{path}': {exc}, a format this version does not read; re-run {WRITERS[kind]} "
                            "to write it again") from None
