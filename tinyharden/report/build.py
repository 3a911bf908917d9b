"""Assemble the report document: rows, published references, baseline deltas, gates."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tinyharden.errors import UserError
from tinyharden.report import gates as gate_mod
from tinyharden.report.collect import Entry
from tinyharden.report.references import UNNAMED_ATTACK, reference_rows
from tinyharden.report.schema import DEFINITIONS, SCHEMA_VERSION, UNITS, validate

REFERENCE_MODES = ("auto", "all", "none")


def _points(a: dict | None, b: dict | None) -> float | None:
    if not a or not b:
        return None
    return round(100 * (a["value"] - b["value"]), 4)


def _ratio(a: Any, b: Any) -> float | None:
    if a is None or not b:
        return None
    return round(a / b, 4)


def apply_baseline(rows: list[dict[str, Any]], baseline: str) -> None:
    """Mark the row whose id is `baseline` and give every row on its dataset its deltas against it."""
    base = next((r for r in rows if r["id"] == baseline), None)
    if base is None:
        raise UserError(f"baseline '{baseline}' is not a row of this report; pass one of its run folders "
                        f"or a published row ({', '.join(r['id'] for r in rows)})")
    base_attacks = {c["name"]: c for c in base["attacks"]}
    for row in rows:
        row["baseline"] = row is base
        # Points and ratios across datasets mean nothing (digits vs CIFAR-10): no delta.
        if row is base or row["dataset"] != base["dataset"]:
            row["delta"] = None
            continue
        row["delta"] = {
            "clean_points": _points(row["clean"], base["clean"]),
            "worst_case_points": _points(row["worst_case"], base["worst_case"]),
            "attacks_points": {c["name"]: _points(c, base_attacks.get(c["name"])) for c in row["attacks"]},
            **{f"{key}_ratio": _ratio(row[key], base[key])
               for key in ("parameters", "packed_bytes", "flash_bytes", "ram_bytes")},
        }


def build(entries: list[Entry], *, headline_eps: float | None = None, baseline: str | None = None,
          bars: dict[str, float | None] | None = None, references: str = "auto",
          plots: list[str] | None = None) -> dict[str, Any]:
    """The report document (schema.Report), validated."""
    if references not in REFERENCE_MODES:
        raise UserError(f"references must be one of {', '.join(REFERENCE_MODES)}, got '{references}'", option="references")
    rows = [e.row for e in entries]
    if references != "none":
        datasets = None if references == "all" else {r["dataset"] for r in rows if r["dataset"]}
        rows = rows + reference_rows(datasets)
    if baseline is not None and baseline not in {r["id"] for r in rows}:
        # A published baseline is shown even when its dataset would not bring it in.
        rows = rows + [r for r in reference_rows(None) if r["id"] == baseline]
    if baseline is not None:
        apply_baseline(rows, baseline)
    columns: list[str] = []
    for row in rows:
        for cell in row["attacks"]:
            if cell["name"] not in columns and cell["name"] != UNNAMED_ATTACK:  # shown under worst case
                columns.append(cell["name"])
    bars = {g: (bars or {}).get(g) for g in gate_mod.GATES}
    results = gate_mod.check(rows, bars)
    doc = {
        "schema_version": SCHEMA_VERSION,
        "kind": "tinyharden report",
        "tool": "tinyharden report",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "headline_eps": headline_eps,
        "attack_columns": columns,
        "baseline": baseline,
        "rows": rows,
        "gates": {"bars": bars, "results": results, "passed": all(r["passed"] for r in results)},
        "plots": list(plots or []),
        "units": UNITS,
        "definitions": DEFINITIONS,
    }
    try:
        validate(doc)
    except ValueError as exc:  # only odd values in a run's files get here (e.g. an accuracy above 1)
        raise UserError(f"{exc}; check that row's run files") from None
    return doc


def failed_gates(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [g for g in doc["gates"]["results"] if not g["passed"]]


def generate(paths: list[Path], *, eps: float | None = None, baseline: str | None = None,
             bars: dict[str, float | None] | None = None, references: str = "auto",
             plots_dir: Path | None = None) -> tuple[dict[str, Any], list[Entry], list[Path]]:
    """Collect `paths`, build the document and (with `plots_dir`) write its plots.

    `baseline` is a run folder (added to the report if not among `paths`), a run's id, or
    a published row's id.
    """
    from tinyharden.report.collect import collect
    from tinyharden.report.references import reference_ids

    paths = [Path(p) for p in paths]
    base_path = None
    if baseline is not None and baseline not in reference_ids() and Path(baseline).is_dir():
        base_path = Path(baseline).resolve()
        if base_path not in [p.resolve() for p in paths]:
            paths = [Path(baseline)] + paths
    entries = collect(paths, eps=eps)
    base_id = baseline
    if base_path is not None:
        base_id = next(e.row["id"] for e in entries if Path(e.row["path"]).resolve() == base_path)
    doc = build(entries, headline_eps=eps, baseline=base_id, bars=bars, references=references)
    plot_files: list[Path] = []
    if plots_dir is not None:
        from tinyharden.report.plots import write_plots

        try:
            plot_files = write_plots(entries, doc["rows"], Path(plots_dir))
        except OSError as exc:
            raise UserError(f"cannot write plots to '{plots_dir}' ({exc.strerror or exc}); write the report "
                            "into a writable folder, or without plots", option="out") from None
        doc["plots"] = [str(p) for p in plot_files]
    return doc, entries, plot_files
