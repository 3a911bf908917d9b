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

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tinyharden.errors import UserError

SCHEMA_VERSION = 1
Version = Literal[1]


class Artifact(BaseModel):
    """A versioned JSON artifact of a run folder; fields a later writer adds are kept."""

    model_config = ConfigDict(extra="allow")



class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Score(_Open):
    accuracy: float
    n: Optional[int] = None
    ci95: Optional[list[float]] = None


# int | float: a count stays an int (pydantic's smart union keeps the input's type).
Number = int | float


class Totals(_Open):
    params: Optional[Number] = None
    packed_bytes: Optional[Number] = None
    macs: Optional[Number] = None


class Deployed(_Open):
    flash_bytes: Optional[Number] = None
    arena_bytes: Optional[Number] = None


class MetricsArtifact(Artifact):
    """metrics.json (`train`, `quantize`): written last, it marks a finished run."""

    schema_version: Version
    test: Score
    run: Optional[str] = None
    model: Optional[str] = None
    dataset: Optional[dict[str, Any] | str] = None  # Dataset.summary(), or a bare name
    quantization: Optional[str] = None
    defense: Optional[str] = None
    parameters: Optional[Number] = None
    footprint: Optional[Totals] = None
    history: list[dict[str, Any]] = []

    def dataset_name(self) -> str | None:
        return self.dataset.get("name") if isinstance(self.dataset, dict) else self.dataset


class FootprintArtifact(Artifact):
    """footprint.json: per-layer cost; `export` adds the deployed bytes."""

    schema_version: Version = SCHEMA_VERSION
    totals: Totals
    layers: list[dict[str, Any]] = []
    deployed: Optional[Deployed] = None


class Parity(_Open):
    """Keras vs int8 accuracy in percent on `samples` inputs; `drop` in points."""

    samples: Optional[int] = None
    keras_accuracy: Optional[Number] = None
    tflite_accuracy: Optional[Number] = None
    drop: Optional[Number] = None
    agreement: Optional[Number] = None
    interpreter: Optional[str] = None


class Gate(_Open):
    """An export gate (gate, limit, value, unit) or the attack gate (fail_under, value)."""

    gate: Optional[str] = None
    limit: Optional[Number] = None
    fail_under: Optional[Number] = None
    value: Optional[Number] = None
    unit: Optional[str] = None
    passed: Optional[bool] = None


class ExportArtifact(Artifact):
    """export.json: int8 parity on the TFLM interpreter, deployed flash and arena, gates."""

    schema_version: Version = SCHEMA_VERSION
    parity: Parity
    deployed: Deployed = Deployed()
    gates: list[Gate] = []
    dataset: Optional[str] = None
    input_range: Optional[list[float]] = None


# An accuracy in attack.json: {value, n, k, ci95}, or a bare number in early files.
Accuracy = Any


class CleanScore(_Open):
    accuracy: Accuracy


class AttackResult(_Open):
    eps: Number
    robust_accuracy: Accuracy


class AttackRecord(_Open):
    name: str
    kind: Optional[str] = None
    results: list[AttackResult] = []
    params: Any = None
    eval_norm: Optional[str] = None
    eot: Optional[int] = None
    minimum_norm: Optional[bool] = False


class EpsResult(_Open):
    eps: Number
    robust_accuracy: Accuracy
    strongest_attack: Optional[str] = None


class SuiteSummary(_Open):
    per_eps: list[EpsResult] = []
    robust_accuracy: Accuracy = None


class AttackConfig(_Open):
    norm: Optional[str] = None
    eps: list[Number] = []
    eps_text: Optional[list[Any]] = None  # eps as the user wrote them (8/255, 0.5step, -40dB)
    eps_label: Optional[list[Any]] = None  # older files: eps in the space's unit
    suite: Optional[list[str]] = None


class AttackData(_Open):
    n: Optional[int] = None
    dataset: Optional[str] = None
    space: str = "features"  # or waveform: the report plots each space on its own axes


class AttackTarget(_Open):
    name: Optional[str] = None


class MaskingChecks(_Open):
    checks: list[dict[str, Any]] = []


class AttackArtifact(Artifact):
    """attack.json and attacks/<name>.json (`attack`): the suite per attack and eps."""

    schema_version: Version
    kind: Literal["tinyharden attack"] = "tinyharden attack"  # files before `kind` name it in `tool` only
    tool: Literal["tinyharden attack"] = "tinyharden attack"
    attacks: list[AttackRecord]
    clean: CleanScore
    config: AttackConfig = AttackConfig()
    data: AttackData = AttackData()
    target: AttackTarget = AttackTarget()
    suite: Optional[SuiteSummary] = None
    masking: Optional[MaskingChecks] = None
    gate: Optional[Gate] = None
    flags: list[dict[str, Any]] = []  # e.g. near_chance (a wrong input range?)
    name: Optional[str] = None


class QuantizeArtifact(Artifact):
    """quantize.json (`quantize`): float, post-training and fine-tuned stages."""

    schema_version: Version
    kind: Literal["tinyharden quantize"] = "tinyharden quantize"
    status: Literal["finetuning", "done"]
    stages: dict[str, Optional[dict[str, Any]]]
    layers: list[dict[str, Any]]
    footprint: dict[str, Any]


# --------------------------------------------------------------------------- what `--json` prints
# Every command's --json prints one document with `schema_version` and `kind` ("tinyharden <command>").
# attack, quantize, report and sweep print the artifact they write (it carries both); the others print one
# of these envelopes, versioned by the same policy.


class CommandOutput(Artifact):
    schema_version: Version = SCHEMA_VERSION
    kind: str


class TrainOutput(CommandOutput):
    """`train --json`: the run folder, metrics.json and footprint.json."""

    kind: Literal["tinyharden train"] = "tinyharden train"
    run_dir: str
    metrics: dict[str, Any]
    footprint: Optional[dict[str, Any]] = None


class ExportOutput(CommandOutput):
    """`export --json`: export.json's record, the footprint and the gates that failed."""

    kind: Literal["tinyharden export"] = "tinyharden export"
    run_dir: str
    export: dict[str, Any]
    footprint: dict[str, Any]
    failed_gates: list[dict[str, Any]] = []


class EvaluateOutput(CommandOutput):
    """`evaluate --json`: where evaluate-<split>.json went, and its document."""

    kind: Literal["tinyharden evaluate"] = "tinyharden evaluate"
    run_dir: str
    evaluation: dict[str, Any]


class RunOutput(CommandOutput):
    """`run --json`: each stage's document, the report and every failed gate (report first)."""

    kind: Literal["tinyharden run"] = "tinyharden run"
    run_dir: str
    metrics: dict[str, Any]
    attack: Optional[dict[str, Any]] = None
    export: Optional[dict[str, Any]] = None
    report: dict[str, Any]
    failed_gates: list[dict[str, Any]] = []


class DoctorOutput(CommandOutput):
    kind: Literal["tinyharden doctor"] = "tinyharden doctor"
    versions: dict[str, Optional[str]]
    datasets: list[dict[str, Any]]


class PretrainedOutput(CommandOutput):
    kind: Literal["tinyharden pretrained"] = "tinyharden pretrained"
    models: list[dict[str, Any]]


class RunRow(_Open):
    """One line of `tinyharden runs`: a run folder, or a sweep folder as a whole."""

    name: str
    path: str
    type: Literal["run", "sweep"] = "run"
    model: Optional[str] = None
    dataset: Optional[str] = None
    clean_accuracy: Optional[float] = None
    robust_accuracy: Optional[float] = Field(None, description="the suite's worst case at the largest eps")
    robust_eps: Optional[float] = None
    flash_bytes: Optional[int] = None
    modified: str = Field(description="ISO 8601 UTC time of the newest artifact")
    age_seconds: float
    cells: Optional[int] = Field(None, description="a sweep: its cells (done ones in cells_done)")
    cells_done: Optional[int] = None


class RunsOutput(CommandOutput):
    """`runs --json`: the workspace's run folders, newest first, and the folders skipped."""

    kind: Literal["tinyharden runs"] = "tinyharden runs"
    workspace: str
    runs: list[RunRow]
    skipped: list[dict[str, str]] = Field(default_factory=list, description="folder and why it was skipped")


MODELS: dict[str, tuple[str, type[Artifact]]] = {
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


def validate_artifact(kind: str, doc: Any, *, file: str | None = None) -> Artifact:
    """`doc` as the model of artifact `kind`; raises ArtifactError with a one-line message."""
    name, model = MODELS[kind]
    file = file or name
    if not isinstance(doc, dict):
        raise ArtifactError(f"{file} is not a JSON object")
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        raise ArtifactError(_message(file, exc)) from None


def read_artifact(run_dir: str | Path, kind: str, *, file: str | None = None) -> Artifact:
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
