"""A sweep's aggregate as a Rich table, Markdown or one self-contained HTML page, and its gates.

    >>> from tinyharden.sweep.render import render  # doctest: +SKIP
    >>> print(render(doc, "md", []))

One row per grid point: its swept values, finished cells, then per metric "mean +/- std
[95% interval]" over folds and seeds. Attack columns are at the headline eps (the
largest of the suite's budget); sweep.json keeps every eps. Gates apply to the means.
"""
from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from tinyharden.report import gates as report_gates


def _columns(doc: dict[str, Any]) -> list[dict[str, Any]]:
    eps = doc.get("headline_eps")
    return [m for m in doc["metrics"] if m["kind"] not in ("robust", "worst") or m.get("eps") == eps]


def fmt_stat(s: dict[str, Any] | None, unit: str) -> str:
    if not s or s.get("mean") is None:
        return ""
    if unit == "fraction":
        text = f"{100 * s['mean']:.2f}%"
        if s.get("std") is not None:
            lo, hi = s["ci95"]
            text += f" ± {100 * s['std']:.2f} [{100 * lo:.1f}–{100 * hi:.1f}]"
        return text
    text = f"{s['mean']:,.0f}"
    return text + (f" ± {s['std']:,.0f}" if s.get("std") else "")


def headers(doc: dict[str, Any]) -> list[str]:
    swept = doc["swept"] or ["grid point"]
    return [*swept, "cells"] + [m["label"] for m in _columns(doc)]


def rows(doc: dict[str, Any]) -> list[list[str]]:
    out = []
    for p in doc["points"]:
        values = [str(p["values"].get(k, "")) for k in doc["swept"]] or [p["id"]]
        cells = f"{p['done']}/{len(p['cells'])}" + (f" ({p['failed']} failed)" if p["failed"] else "")
        out.append([*values, cells] + [fmt_stat(p["stats"].get(m["key"]), m["unit"]) for m in _columns(doc)])
    return out


def caption(doc: dict[str, Any]) -> str:
    over = " and ".join("folds" if o == "data.fold" else "seeds" for o in doc["over"])
    s = doc["summary"]
    return (f"sweep {doc['name']}: mean ± std [95% t interval] over {over}; {s['done']} cells done, "
            f"{s['failed']} failed, {s['pending']} pending")


def render_table(doc: dict[str, Any]):
    from rich.table import Table

    table = Table(title=caption(doc), title_justify="left")
    for h in headers(doc):
        table.add_column(h, overflow="fold")
    for r in rows(doc):
        table.add_row(*r)
    return table


def render_md(doc: dict[str, Any]) -> str:
    hs = headers(doc)
    lines = [f"**{caption(doc)}**", "", "| " + " | ".join(hs) + " |", "|" + "---|" * len(hs)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows(doc)]
    lines += [f"- {c['id']}: failed: {c['error']}" for c in doc["cells"] if c["status"] == "failed"]
    return "\n".join(lines) + "\n"


def render_html(doc: dict[str, Any], plot_files: list[Path]) -> str:
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in headers(doc))
    body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in rows(doc))
    imgs = "".join(f'<p><img alt="{e(p.name)}" src="data:image/png;base64,'
                   f'{base64.b64encode(Path(p).read_bytes()).decode()}"></p>' for p in plot_files)
    failed = "".join(f"<li>{e(c['id'])}: {e(c['error'] or '')}</li>" for c in doc["cells"] if c["status"] == "failed")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{e(doc['name'])}</title><style>"
            "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}</style></head><body>"
            f"<h1>sweep {e(doc['name'])}</h1><p>{e(caption(doc))}</p><table><tr>{head}</tr>{body}</table>"
            f"{'<h2>failed cells</h2><ul>' + failed + '</ul>' if failed else ''}{imgs}</body></html>\n")


def render(doc: dict[str, Any], fmt: str, plot_files: list[Path]) -> str:
    from tinyharden.workspace import to_json

    if fmt == "md":
        return render_md(doc)
    if fmt == "html":
        return render_html(doc, plot_files)
    if fmt == "json":
        return to_json(doc)
    import io

    from rich.console import Console

    console = Console(width=200, file=io.StringIO(), highlight=False)
    console.print(render_table(doc))
    return console.file.getvalue()


def check_gates(doc: dict[str, Any], bars: dict[str, float | None]) -> list[dict[str, Any]]:
    """The report's gates on each grid point's means; stored in doc["gates"], failures returned."""
    eps = doc.get("headline_eps")
    pseudo = []
    for p in doc["points"]:
        stat = p["stats"]
        worst = _mean(stat, f"worst@{_eps_key(eps)}") if eps is not None else None
        pseudo.append({"id": p["id"], "kind": "measured", "missing": [] if eps is not None else ["attack.json"],
                       "clean": None if _mean(stat, "clean") is None else {"value": _mean(stat, "clean")},
                       "worst_case": None if worst is None else {"value": worst},
                       "flash_bytes": _mean(stat, "flash_bytes"), "ram_bytes": _mean(stat, "ram_bytes")})
    results = report_gates.check(pseudo, bars)
    doc["gates"] = {"bars": {k: v for k, v in bars.items() if v is not None}, "on": "means over folds and seeds",
                    "results": results}
    return [r for r in results if not r["passed"]]


def _mean(stat: dict[str, Any], key: str) -> float | None:
    return (stat.get(key) or {}).get("mean")


def _eps_key(eps: float) -> str:
    from tinyharden.report.collect import fmt_eps

    return fmt_eps(eps)
