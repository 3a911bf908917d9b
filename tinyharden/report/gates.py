"""CI gates over report rows: minimum clean and robust accuracy, maximum flash and RAM.

Each gate applies to every measured row (published rows are context, never gated). A
figure the run does not have fails its gate: CI must not pass a model whose robustness
or footprint was never measured. `tinyharden report` exits with code 3 (GateFailed) when
any gate fails, after printing the report and listing each failure.
"""
from __future__ import annotations

from typing import Any

from tinyharden.formatting import pct

GATES = ("min_clean", "min_robust", "max_flash", "max_ram")


def _value(row: dict[str, Any], gate: str) -> tuple[float | None, str]:
    """(value, why it is missing) for one gate."""
    if gate == "min_clean":
        clean = row.get("clean")
        return (clean["value"], "") if clean else (None, "no clean accuracy (metrics.json missing)")
    if gate == "min_robust":
        wc = row.get("worst_case")
        if wc:
            return wc["value"], ""
        return None, ("no attack.json: run tinyharden attack on it" if "attack.json" in row.get("missing", [])
                      else "attack.json has no worst case at the headline eps")
    key = "flash_bytes" if gate == "max_flash" else "ram_bytes"
    if row.get(key) is not None:
        return row[key], ""
    return None, "not exported: run tinyharden export on it"


def check(rows: list[dict[str, Any]], bars: dict[str, float | None]) -> list[dict[str, Any]]:
    """One result per measured row and set bar, in row order; see schema.GateResult."""
    results = []
    for row in rows:
        if row["kind"] != "measured":
            continue
        for gate in GATES:
            bar = bars.get(gate)
            if bar is None:
                continue
            value, why = _value(row, gate)
            is_min = gate.startswith("min_")
            unit = "fraction" if is_min else "bytes"
            what = {"min_clean": "clean accuracy", "min_robust": "worst-case robust accuracy",
                    "max_flash": "flash", "max_ram": "RAM (arena)"}[gate]
            if value is None:
                passed, msg = False, f"{row['id']}: {gate}: {why} (bar {pct(bar) if is_min else f'{int(bar):,} B'})"
            elif is_min:
                passed = value >= bar
                msg = f"{row['id']}: {gate}: {what} {pct(value)} {'>=' if passed else 'is below'} bar {pct(bar)}"
            else:
                passed = value <= bar
                msg = f"{row['id']}: {gate}: {what} {int(value):,} B {'<=' if passed else 'exceeds'} bar {int(bar):,} B"
            results.append({"run": row["id"], "gate": gate, "bar": float(bar), "value": value, "unit": unit,
                            "passed": passed, "message": msg})
    return results
