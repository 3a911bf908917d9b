"""Published figures of the study tinyharden follows, shown beside measured runs.

They are not measured here: no interval, attack budget or sample count is known for
them, so those cells stay blank and every row says "published". A reference row is
shown when a measured run uses its dataset (`--references auto`), so a user sees where
their own model stands against the paper's numbers on the same task.
"""
from __future__ import annotations

import copy
from typing import Any

SOURCE = "published figure of the study tinyharden follows (see README); not measured here"
# The name of a published robust accuracy whose attack the study does not name. It gets no
# attack column of its own (a column headed "unspecified" compares with nothing); the
# tables show it under "worst case", marked as the study's figure.
UNNAMED_ATTACK = "unspecified"

# Accuracies are fractions, like every accuracy in the report.
_REFERENCES: list[dict[str, Any]] = [
    {
        "id": "published:cifar10-stq-jr",
        "label": "CIFAR-10, STQ + JR (study)",
        "dataset": "cifar10",
        "model": "DQNN (study)",
        "quantization": "stq",
        "defense": "JR",
        "clean": 0.8244,
        "attacks": {"pgd": 0.3359},
        # The paper gives the model's memory as ~322 KB; shown as flash, marked approximate.
        "flash_bytes": 322_000,
        "display": {"flash_bytes": "~322 KB"},
    },
    {
        "id": "published:mlperf-tiny-resnet8",
        "label": "CIFAR-10, MLPerf Tiny ResNet-8 baseline (study)",
        "dataset": "cifar10",
        "model": "resnet8 (MLPerf Tiny)",
        "quantization": None,
        "defense": "none",
        "clean": None,
        "attacks": {"pgd": 0.1254},
    },
    {
        "id": "published:speech-commands-stq-jr",
        "label": "Speech Commands, STQ + JR (study)",
        "dataset": "speech_commands",
        "model": "DQNN (study)",
        "quantization": "stq",
        "defense": "JR",
        "clean": 0.9164,
        # The summary gives "under attack" without naming the attack.
        "attacks": {UNNAMED_ATTACK: 0.8429},
    },
]


def _proportion(value: float | None) -> dict[str, Any] | None:
    if value is None:
        return None
    return {"value": value, "ci95": None, "n": None, "k": None}


def reference_rows(datasets: set[str] | None) -> list[dict[str, Any]]:
    """Report rows (schema.Row) of the published figures; `datasets=None` means all."""
    rows = []
    for ref in _REFERENCES:
        if datasets is not None and ref["dataset"] not in datasets:
            continue
        attacks = [{**_proportion(v), "name": name, "kind": None, "eps": None, "norm": None, "params": {},
                    "eot": None, "budget": "published" if name != UNNAMED_ATTACK else "published, attack not named"}
                   for name, v in ref["attacks"].items()]
        rows.append({
            "id": ref["id"], "label": ref["label"], "kind": "published", "path": None, "baseline": False,
            "dataset": ref["dataset"], "model": ref["model"], "quantization": ref["quantization"],
            "defense": ref["defense"], "parameters": None, "packed_bytes": None,
            "flash_bytes": ref.get("flash_bytes"), "ram_bytes": None, "macs": None,
            "clean": _proportion(ref["clean"]), "attacks": attacks, "worst_case": None, "export": None,
            "sweeps": [], "flags": [], "missing": [], "source": SOURCE,
            "display": copy.deepcopy(ref.get("display", {})), "delta": None,
        })
    return rows


def reference_ids() -> list[str]:
    return [r["id"] for r in _REFERENCES]
