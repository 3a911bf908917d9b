"""The report's JSON: a versioned, validated schema (what `tinyharden report --json` prints).

CI scripts read this, so its shape is a contract: every object forbids unknown keys,
and a change that is not purely additive must bump SCHEMA_VERSION. `validate()` checks a
document before it is printed or written, and the tests check the output against it.

Units: accuracies are fractions in [0, 1] with a Wilson 95% interval (`ci95`, null for
published figures); eps in [0, 1] data units; sizes in bytes; deltas against the
baseline in percentage points (accuracies) or as ratios (sizes).
"""
from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

SCHEMA_VERSION = 1

UNITS = {
    "accuracy": "fraction in [0, 1]; ci95 is the Wilson 95% interval, null for published figures",
    "eps": "[0, 1] data units: (x - lo) / (hi - lo) of the dataset's input range",
    "bytes": "packed_bytes: weights at their quantized width; flash_bytes: the .tflite flatbuffer; "
             "ram_bytes: the TFLM tensor arena",
    "delta": "against the baseline row: *_points in percentage points, *_ratio as row / baseline",
}
DEFINITIONS = {
    "clean": "test accuracy from metrics.json (the whole test split); for a bare-model attack folder, "
             "attack.json's accuracy on the attacked samples",
    "attacks": "robust accuracy per attack at the headline eps: a sample counts only if correct and it "
               "resisted the attack at that eps and every smaller one",
    "worst_case": "the suite's worst case at the headline eps: correct clean and under every attack",
    "headline_eps": "the eps the attack columns show; null means the largest eps of each run's sweep",
    "sweeps": "robust accuracy against eps per attack and input space; eps 0 is clean accuracy on the attacked "
              "samples; label is the eps as the attack command was given it",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Proportion(_Strict):
    value: float = Field(ge=0, le=1)
    ci95: Optional[list[float]] = None
    n: Optional[int] = Field(None, ge=0)
    k: Optional[int] = Field(None, ge=0)

    @field_validator("ci95")
    @classmethod
    def _interval(cls, v):
        if v is not None and (len(v) != 2 or not 0 <= v[0] <= v[1] <= 1):
            raise ValueError("ci95 must be [lo, hi] with 0 <= lo <= hi <= 1")
        return v


class Clean(Proportion):
    source: Optional[Literal["metrics.json", "attack.json"]] = None


class AttackCell(Proportion):
    name: str
    kind: Optional[str]
    eps: Optional[float]
    norm: Optional[str]
    params: dict[str, Any]
    eot: Optional[int]
    budget: str


class WorstCase(Proportion):
    eps: float
    norm: Optional[str]
    strongest_attack: Optional[str]
    attacks: list[str]
    budget: str


class SweepPoint(Proportion):
    eps: float = Field(ge=0)
    label: Optional[str] = None  # the eps as the user wrote it (8/255, 0.5step, -40dB)


class Sweep(_Strict):
    attack: str
    space: Optional[str] = None  # the attacked input space: features (images, MFCCs) or waveform
    points: list[SweepPoint]


class Export(_Strict):
    keras_accuracy: Optional[float]
    int8: Optional[Proportion]
    drop_points: Optional[float]
    agreement: Optional[float]
    samples: Optional[int]
    max_drop_points: Optional[float]
    interpreter: Optional[str]


class Flag(_Strict):
    code: str
    message: str


class Delta(_Strict):
    clean_points: Optional[float]
    worst_case_points: Optional[float]
    attacks_points: dict[str, Optional[float]]
    parameters_ratio: Optional[float]
    packed_bytes_ratio: Optional[float]
    flash_bytes_ratio: Optional[float]
    ram_bytes_ratio: Optional[float]


class Row(_Strict):
    id: str
    label: Optional[str]
    kind: Literal["measured", "published"]
    path: Optional[str]
    baseline: bool
    dataset: Optional[str]
    model: Optional[str]
    quantization: Optional[str]
    defense: Optional[str]
    parameters: Optional[int]
    packed_bytes: Optional[int]
    flash_bytes: Optional[int]
    ram_bytes: Optional[int]
    macs: Optional[int]
    clean: Optional[Clean]
    attacks: list[AttackCell]
    worst_case: Optional[WorstCase]
    export: Optional[Export]
    sweeps: list[Sweep]
    flags: list[Flag]
    missing: list[str]
    source: Optional[str]
    display: dict[str, str]
    delta: Optional[Delta]


class GateResult(_Strict):
    run: str
    gate: Literal["min_clean", "min_robust", "max_flash", "max_ram"]
    bar: float
    value: Optional[float]
    unit: Literal["fraction", "bytes"]
    passed: bool
    message: str


class Gates(_Strict):
    bars: dict[str, Optional[float]]
    results: list[GateResult]
    passed: bool


class Report(_Strict):
    schema_version: Literal[1]
    kind: Literal["tinyharden report"] = "tinyharden report"  # added later: older report.json files lack it
    tool: Literal["tinyharden report"]
    created: str
    headline_eps: Optional[float]
    attack_columns: list[str]
    baseline: Optional[str]
    rows: list[Row]
    gates: Gates
    plots: list[str]
    units: dict[str, str]
    definitions: dict[str, str]


def validate(doc: dict[str, Any]) -> Report:
    """Check `doc` against the schema; a mismatch is a ValueError naming the first bad field."""
    try:
        return Report.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        more = len(exc.errors()) - 1
        raise ValueError(f"report JSON does not match schema {SCHEMA_VERSION}: {where}: {first['msg']}"
                         + (f" (and {more} more)" if more else "")) from None

