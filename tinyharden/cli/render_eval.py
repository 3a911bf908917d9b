"""Rich tables of an evaluation report: per-class accuracy and the confusion matrix."""
from __future__ import annotations

from typing import Any

from rich.table import Table


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.2f}%"


def summary_table(report: dict[str, Any]) -> Table:
    lo, hi = report["wilson95"]
    t = Table(title=f"{report['dataset']} {report['split']}: {report['correct']}/{report['n']} = "
                    f"{_pct(report['accuracy'])} (95% CI {_pct(lo)}-{_pct(hi)})")
    for col in ("class", "n", "correct", "accuracy", "95% CI"):
        t.add_column(col, justify="left" if col == "class" else "right")
    for c in report["per_class"]:
        ci = "-" if c["wilson95"] is None else f"{_pct(c['wilson95'][0])}-{_pct(c['wilson95'][1])}"
        t.add_row(c["name"], str(c["n"]), str(c["correct"]), _pct(c["accuracy"]), ci)
    return t


def confusion_table(report: dict[str, Any]) -> Table:
    names = report["class_names"]
    t = Table(title="confusion (rows: true, columns: predicted)")
    t.add_column("true")
    for n in names:
        t.add_column(n[:7], justify="right")
    for name, row in zip(names, report["confusion"]):
        cells = [("[bold]" + str(v) + "[/]") if i == names.index(name) and v else (str(v) if v else ".")
                 for i, v in enumerate(row)]
        t.add_row(name, *cells)
    return t
