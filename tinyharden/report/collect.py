"""Read run folders into report rows (no TensorFlow).

A run folder holds some of:
- metrics.json (`tinyharden train`): written last, so it marks a finished training run;
- footprint.json: per-layer cost; `tinyharden export` rewrites it with the deployed bytes;
- export.json: int8 parity on the TFLM interpreter, deployed flash and arena;
- attack.json: the suite's robust accuracy per attack and eps, and the masking checks.

A training folder (recipe.yaml) without metrics.json is unfinished, which is an error;
a folder that `attack` or `export` wrote for a bare model file has no metrics.json and
reports what it has. A missing attack.json or export.json only leaves its cells empty.

Each file is first validated against its versioned model (tinyharden.artifacts): a
field this reader needs and does not find, or another schema_version, is a one-line
error naming the run, the file and the field.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinyharden.artifacts import (Artifact, ArtifactError, AttackArtifact, Deployed, ExportArtifact, FootprintArtifact,
                                  MetricsArtifact, validate_artifact)
from tinyharden.errors import UserError
from tinyharden.formatting import fmt_eps
from tinyharden.stats import wilson_interval
from tinyharden.workspace import RunFolder, read_json

METRICS, FOOTPRINT, EXPORT, ATTACK = RunFolder.METRICS, RunFolder.FOOTPRINT, RunFolder.EXPORT, RunFolder.ATTACK
ARTIFACTS = (METRICS, FOOTPRINT, EXPORT, ATTACK)
DEFAULT_MAX_DROP = 1.0  # points; the export's own default when its record names no gate
_HISTORY_KEYS = ("epoch", "loss", "ce", "train_acc", "val_loss", "val_acc")


@dataclass
class Entry:
    """One report row plus what only the plots need (kept out of the JSON)."""

    row: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)


class _Missing(Exception):
    """A file lacks a field this reader needs; turned into a UserError naming the run."""


def proportion(value: Any, n: Any = None, k: Any = None, ci: Any = None) -> dict[str, Any] | None:
    """{value, ci95, n, k}; the Wilson interval is computed when a file gave n but no interval."""
    if value is None:
        return None
    value = float(value)
    n = int(n) if n is not None else None
    if n is not None and k is None:
        k = round(value * n)
    k = int(k) if k is not None else None
    if not ci and n:
        ci = wilson_interval(k, n)
    ci95 = [float(c) for c in ci] if ci and not any(math.isnan(float(c)) for c in ci) else None
    return {"value": value, "ci95": ci95, "n": n, "k": k}


def _attack_proportion(d: Any) -> dict[str, Any] | None:
    if isinstance(d, (int, float)):
        return proportion(d)
    if not isinstance(d, dict) or "value" not in d:
        raise _Missing(f"{ATTACK} has an accuracy without 'value'")
    return proportion(d["value"], d.get("n"), d.get("k"), d.get("ci95"))


def same_eps(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)


def _scalar_params(params: Any) -> dict[str, Any]:
    if not isinstance(params, dict):
        return {}
    return {k: v for k, v in params.items() if isinstance(v, (str, int, float, bool)) or v is None}


def eps_names(att: AttackArtifact) -> dict[float, str]:
    """attack.json's eps by value, as the user wrote them (config.eps_text), else in the space's unit
    (config.eps_label: int8 steps, dB), else 8/255 style."""
    eps = [float(e) for e in att.config.eps]
    usable = [n if n is not None and len(n) == len(eps) and all(isinstance(t, str) for t in n) else [None] * len(eps)
              for n in (att.config.eps_text, att.config.eps_label)]
    # A recipe's eps reach attack.json as numbers, so eps_text then holds only their 8/255 spelling:
    # the space's own unit (0.25 int8 steps) says more, and is what the user meant by 1/1020.
    own = [t if t is not None and t != fmt_eps(e) else None for e, t in zip(eps, usable[0])]
    names = {e: o or u or t for e, o, u, t in zip(eps, own, usable[1], usable[0]) if o or u or t}
    return names if len(names) == len(eps) else {}


def eps_name(names: dict[float, str], eps: float) -> str:
    return next((t for e, t in names.items() if same_eps(e, eps)), None) or fmt_eps(eps)


def budget_text(eps: float | None, norm: str | None, n: int | None, params: dict, eot: int | None,
                minimum_norm: bool = False, eps_text: str | None = None) -> str:
    """One line naming the budget behind a robust accuracy: eps, norm, samples, steps..."""
    parts = [f"eps {eps_text or fmt_eps(eps)} {norm or ''}".strip()]
    if n:
        parts.append(f"n={n}")
    # Counts are the budget (steps, restarts, queries); flags, loss names and relative step
    # sizes are detail, kept in the JSON's params.
    parts += [f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()
              if isinstance(v, (int, float)) and not isinstance(v, bool) and not k.startswith("rel_")]
    if eot and eot > 1:
        parts.append(f"EOT {eot}")
    if minimum_norm:
        parts.append("min-norm")
    return ", ".join(parts)


# --------------------------------------------------------------------------- files

def _headline(sweep_eps: list[float], eps: float | None, flags: list[dict[str, str]]) -> float | None:
    """The eps the row's attack columns show: `eps` if the sweep has it, else the largest."""
    if eps is None:
        return sweep_eps[-1] if sweep_eps else None
    headline = next((e for e in sweep_eps if same_eps(e, eps)), None)
    if headline is None:
        flags.append({"code": "eps_missing", "message": f"no attack results at eps {fmt_eps(eps)} "
                      f"(attack.json has {', '.join(fmt_eps(e) for e in sweep_eps) or 'none'})"})
    return headline


def _attack_cells(att: AttackArtifact, headline: float | None, clean: dict) -> tuple[list[dict], list[dict]]:
    """(cells at the headline eps, one sweep of points per attack, each point labelled as the user wrote it)."""
    names, space = eps_names(att), att.data.space
    cells, sweeps = [], []
    for a in att.attacks:
        params = _scalar_params(a.params)
        a_norm = a.eval_norm or att.config.norm
        points = [{"eps": 0.0, "label": "0", **clean}]
        for r in a.results:
            points.append({"eps": float(r.eps), "label": eps_name(names, float(r.eps)), **_attack_proportion(r.robust_accuracy)})
        sweeps.append({"attack": a.name, "space": space, "points": points})
        hit = next((r for r in a.results if headline is not None and same_eps(float(r.eps), headline)), None)
        if hit is None:
            continue
        cells.append({**_attack_proportion(hit.robust_accuracy), "name": a.name, "kind": a.kind,
                      "eps": float(hit.eps), "norm": a_norm, "params": params, "eot": a.eot,
                      "budget": budget_text(float(hit.eps), a_norm, att.data.n, params, a.eot, bool(a.minimum_norm),
                                            eps_name(names, float(hit.eps)))})
    return cells, sweeps


def _worst_case(att: AttackArtifact, headline: float | None, sweep_eps: list[float], cells: list[dict],
                clean: dict, sweeps: list[dict]) -> dict[str, Any] | None:
    """The suite's worst case at the headline eps (and its sweep, appended to `sweeps`)."""
    names = eps_names(att)
    per_eps = att.suite.per_eps if att.suite is not None else []
    if per_eps:
        sweeps.append({"attack": "worst case", "space": att.data.space, "points": [{"eps": 0.0, "label": "0", **clean}] + [
            {"eps": float(p.eps), "label": eps_name(names, float(p.eps)), **_attack_proportion(p.robust_accuracy)}
            for p in per_eps]})
    hit = next((p for p in per_eps if headline is not None and same_eps(float(p.eps), headline)), None)
    if hit is not None:
        at, accuracy, strongest = float(hit.eps), hit.robust_accuracy, hit.strongest_attack
    elif headline is not None and len(sweep_eps) == 1 and att.suite is not None and att.suite.robust_accuracy:
        at, accuracy, strongest = headline, att.suite.robust_accuracy, None  # a file without per_eps
    else:
        return None
    suite = att.config.suite if att.config.suite is not None else [c["name"] for c in cells]
    norm = att.config.norm
    return {**_attack_proportion(accuracy), "eps": at, "norm": norm, "strongest_attack": strongest,
            "attacks": list(suite), "budget": budget_text(at, norm, att.data.n, {}, None, eps_text=eps_name(names, at))
            + f", {len(suite)} attacks"}


def _attack_part(att: AttackArtifact, eps: float | None) -> dict[str, Any]:
    sweep_eps = sorted({float(r.eps) for a in att.attacks for r in a.results} | {float(e) for e in att.config.eps})
    flags: list[dict[str, str]] = []
    headline = _headline(sweep_eps, eps, flags)
    clean = _attack_proportion(att.clean.accuracy)
    cells, sweeps = _attack_cells(att, headline, clean)
    worst = _worst_case(att, headline, sweep_eps, cells, clean, sweeps)
    for check in att.masking.checks if att.masking is not None else []:
        if isinstance(check, dict) and check.get("flagged"):
            flags.append({"code": f"masking:{check.get('name', 'check')}",
                          "message": f"gradient masking? {check.get('message', check.get('name', ''))}"})
    for flag in att.flags:  # e.g. near_chance: clean accuracy at chance level (wrong input range?)
        if isinstance(flag, dict) and isinstance(flag.get("code"), str):
            flags.append({"code": flag["code"], "message": str(flag.get("message") or flag["code"])})
    gate = att.gate
    if gate is not None and gate.passed is False:
        flags.append({"code": "attack_gate", "message": f"attack gate failed: robust accuracy {gate.value} "
                      f"below the required {gate.fail_under}"})
    return {"cells": cells, "worst": worst, "sweeps": sweeps, "flags": flags, "clean": clean,
            "dataset": att.data.dataset, "model": att.target.name}


def _export_part(exp: ExportArtifact) -> dict[str, Any]:
    parity = exp.parity
    samples = parity.samples

    def pct(key: str) -> float | None:  # export.json is in percent
        value = getattr(parity, key)
        return None if value is None else float(value) / 100.0

    max_drop = next((g.limit for g in exp.gates if g.gate == "max_drop"), DEFAULT_MAX_DROP)
    drop = parity.drop
    record = {"keras_accuracy": pct("keras_accuracy"), "int8": proportion(pct("tflite_accuracy"), samples),
              "drop_points": drop, "agreement": pct("agreement"), "samples": samples,
              "max_drop_points": max_drop, "interpreter": parity.interpreter}
    flags = []
    if drop is not None and max_drop is not None and drop > max_drop:
        flags.append({"code": "export_drop", "message": f"accuracy drops {drop:.2f} points at export (Keras "
                      f"{parity.keras_accuracy or 0:.2f}% -> int8 {parity.tflite_accuracy or 0:.2f}% "
                      f"on {samples} samples; max_drop {max_drop:g})"})
    for g in exp.gates:
        if g.gate != "max_drop" and g.passed is False:
            flags.append({"code": "export_gate", "message": f"export gate {g.gate} failed: "
                          f"{g.value:,} > {g.limit:,} {g.unit or ''}".rstrip()})
    return {"record": record, "flags": flags, "flash": exp.deployed.flash_bytes,
            "ram": exp.deployed.arena_bytes, "dataset": exp.dataset}


def _fix_for(file: str, path: Path) -> str:
    return {METRICS: "re-train it (tinyharden train)", FOOTPRINT: f"re-export it (tinyharden export {path})",
            EXPORT: f"re-export it (tinyharden export {path})",
            ATTACK: f"re-attack it (tinyharden attack {path})"}[file]


def _validate(path: Path, name: str, doc: Any) -> Artifact:
    """`doc` as its versioned artifact model (tinyharden.artifacts)."""
    try:
        return validate_artifact(name.removesuffix(".json"), doc, file=name)
    except ArtifactError as exc:
        version = doc.get("schema_version") if isinstance(doc, dict) else None
        seen = f" (schema_version {version})" if version is not None else ""
        raise UserError(f"run '{path}': {exc}{seen}, a format this report does not read; "
                        f"{_fix_for(name, path)}") from None


def _read_docs(path: Path) -> tuple[dict[str, Any], dict[str, bool]]:
    """The run's JSON artifacts by file name, each as its validated model, and which files are present."""
    if not path.exists():
        raise UserError(f"run '{path}' not found; pass a run folder written by tinyharden train, attack or export")
    if not path.is_dir():
        raise UserError(f"'{path}' is a file, not a run folder; pass the folder that holds metrics.json")
    present = {name: (path / name).is_file() for name in ARTIFACTS}
    if not present[METRICS] and (path / "recipe.yaml").is_file():
        raise UserError(f"run '{path}' is missing metrics.json: its training did not finish; resume the training "
                        f"run {path}, or leave it out of the report")
    if not (present[METRICS] or present[ATTACK] or present[EXPORT]):
        raise UserError(f"run '{path}' has none of metrics.json, attack.json, export.json; pass a folder written "
                        "by tinyharden train, attack or export")
    docs = {name: _validate(path, name, read_json(path / name)) for name in ARTIFACTS if present[name]}
    return docs, present


def _metrics_part(row: dict[str, Any], metrics: MetricsArtifact) -> list[dict]:
    """Fill `row` from metrics.json; returns the per-epoch history for the plots."""
    test = metrics.test
    row["clean"] = proportion(test.accuracy, test.n, None, test.ci95)
    row["clean"]["source"] = METRICS
    row["dataset"] = metrics.dataset_name()
    row["model"] = metrics.model
    row["quantization"] = metrics.quantization
    row["defense"] = metrics.defense
    row["parameters"] = metrics.parameters
    row["packed_bytes"] = metrics.footprint.packed_bytes if metrics.footprint is not None else None
    return [{k: h.get(k) for k in _HISTORY_KEYS if k in h} for h in metrics.history if isinstance(h, dict)]


def _footprint_part(row: dict[str, Any], footprint: FootprintArtifact) -> None:
    totals = footprint.totals
    row["parameters"] = row["parameters"] if row["parameters"] is not None else totals.params
    row["packed_bytes"] = totals.packed_bytes if "packed_bytes" in totals.model_fields_set else row["packed_bytes"]
    row["macs"] = totals.macs
    deployed = footprint.deployed or Deployed()
    row["flash_bytes"], row["ram_bytes"] = deployed.flash_bytes, deployed.arena_bytes


def load_run(path: Path, *, eps: float | None = None, run_id: str | None = None) -> Entry:
    """One run folder as an Entry; every user-fixable problem is a one-line UserError."""
    path = Path(path)
    docs, present = _read_docs(path)
    current = METRICS
    try:
        metrics, footprint = docs.get(METRICS), docs.get(FOOTPRINT)
        row: dict[str, Any] = {
            "id": run_id or path.name, "label": None, "kind": "measured", "path": str(path), "baseline": False,
            "dataset": None, "model": None, "quantization": None, "defense": None,
            "parameters": None, "packed_bytes": None, "flash_bytes": None, "ram_bytes": None, "macs": None,
            "clean": None, "attacks": [], "worst_case": None, "export": None, "sweeps": [], "flags": [],
            "missing": [name for name in ARTIFACTS if not present[name]], "source": None, "display": {},
            "delta": None,
        }
        history: list[dict] = []
        if metrics is not None:
            history = _metrics_part(row, metrics)
        current = FOOTPRINT
        if footprint is not None:
            _footprint_part(row, footprint)
        current = EXPORT
        if EXPORT in docs:
            part = _export_part(docs[EXPORT])
            row["export"] = part["record"]
            row["flags"] += part["flags"]
            row["flash_bytes"] = part["flash"] if part["flash"] is not None else row["flash_bytes"]
            row["ram_bytes"] = part["ram"] if part["ram"] is not None else row["ram_bytes"]
            row["dataset"] = row["dataset"] or part["dataset"]
        current = ATTACK
        if ATTACK in docs:
            part = _attack_part(docs[ATTACK], eps)
            row["attacks"], row["worst_case"], row["sweeps"] = part["cells"], part["worst"], part["sweeps"]
            row["flags"] += part["flags"]
            row["dataset"] = row["dataset"] or part["dataset"]
            row["model"] = row["model"] or part["model"]
            if row["clean"] is None and part["clean"] is not None:
                # A bare-model attack folder: its clean accuracy is on the attacked samples only.
                row["clean"] = {**part["clean"], "source": ATTACK}
    except _Missing as exc:
        version = getattr(docs.get(current), "schema_version", None)
        seen = f" (schema_version {version})" if version is not None else ""
        raise UserError(f"run '{path}': {exc}{seen}, a format this report does not read; "
                        f"{_fix_for(current, path)}") from None
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise UserError(f"run '{path}': {current} is malformed ({type(exc).__name__}: {exc}); "
                        f"{_fix_for(current, path)}") from None
    return Entry(row, history)


def collect(paths: list[Path], *, eps: float | None = None) -> list[Entry]:
    """Entries for `paths` in order; folders that share a name are told apart by their parent."""
    unique: dict[Path, Path] = {}
    for p in map(Path, paths):
        unique.setdefault(p.resolve(), p)  # the same folder twice is one row
    paths = list(unique.values())
    names = [p.resolve().name for p in paths]
    seen: set[str] = set()
    entries = []
    for p, name in zip(paths, names):
        rid = name if names.count(name) == 1 else f"{p.resolve().parent.name}/{name}"
        while rid in seen:
            rid += "'"
        seen.add(rid)
        entries.append(load_run(p, eps=eps, run_id=rid))
    return entries
