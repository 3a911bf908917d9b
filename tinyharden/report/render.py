"""The report document as a Rich table, Markdown, CSV, JSON or one self-contained HTML page.

Table, Markdown and HTML share one cell layout (`cells`): each cell is a main figure
and a smaller line under it (interval's sample count, attack budget, delta against the
baseline, "published"). CSV flattens the same figures into plain columns for
spreadsheets; JSON is the validated document itself (schema.py).
"""
from __future__ import annotations

import base64
import csv
import html
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinyharden import __version__
from tinyharden.formatting import fmt_eps, pct
from tinyharden.workspace import to_json

FORMATS = ("table", "md", "csv", "json", "html")


@dataclass
class Cell:
    """A figure (`main`), its interval, a detail line (budget, n) and its delta to the baseline."""

    main: str = ""
    sub: str = ""
    ci: str = ""
    delta: str = ""

    def head(self) -> str:
        return f"{self.main} {self.ci}".strip()

    def detail(self) -> str:
        return _join(self.sub, self.delta)


# --------------------------------------------------------------------------- figures as text

def ci_text(p: dict | None) -> str:
    ci = (p or {}).get("ci95")
    return f"[{100 * ci[0]:.1f}–{100 * ci[1]:.1f}]" if ci else ""


def size(b: int | None) -> str:
    if b is None:
        return ""
    return f"{b:,} B" if b < 1024 else f"{b / 1024:.1f} KiB"


def _delta_points(v: float | None) -> str:
    return "" if v is None else f"Δ {v:+.2f} pts"


def _delta_ratio(v: float | None) -> str:
    return "" if v is None else f"×{v:.2f}"


def _join(*parts: str) -> str:
    return ", ".join(p for p in parts if p)


def _accuracy(p: dict | None, sub: str = "", delta: str = "") -> Cell:
    return Cell() if not p else Cell(pct(p["value"]), sub, ci_text(p), delta)


def worst_figure(row: dict[str, Any]) -> dict[str, Any] | None:
    """The worst-case figure of a row: the suite's, or a published one whose attack the study does not name."""
    if row["worst_case"] is not None or row["kind"] != "published":
        return row["worst_case"]
    from tinyharden.report.references import UNNAMED_ATTACK

    return next((c for c in row["attacks"] if c["name"] == UNNAMED_ATTACK), None)


def headers(doc: dict[str, Any]) -> list[str]:
    return (["run", "dataset", "quant.", "defense", "params", "packed", "flash", "RAM (arena)", "clean"]
            + list(doc["attack_columns"]) + ["worst case", "int8 on TFLM", "flags"])


def row_cells(doc: dict[str, Any], row: dict[str, Any]) -> list[Cell]:
    published = row["kind"] == "published"
    d = row.get("delta") or {}
    shown = row.get("display") or {}
    tag = "published" if published else ""

    def bytes_cell(key: str) -> Cell:
        return Cell(shown.get(key) or size(row[key]), tag if row[key] is not None else "",
                    delta=_delta_ratio(d.get(f"{key}_ratio")))

    run = Cell(row["label"] or row["id"], _join("★ baseline" if row["baseline"] else "",
                                                "published, not measured here" if published else row["model"] or ""))
    clean = row["clean"]
    clean_sub = ""
    if clean:
        clean_sub = "published" if published else _join(
            f"n={clean['n']}" if clean.get("n") else "",
            "attacked samples" if clean.get("source") == "attack.json" else "")
    cells = [run, Cell(row["dataset"] or ""), Cell(row["quantization"] or ""), Cell(row["defense"] or ""),
             Cell("" if row["parameters"] is None else f"{row['parameters']:,}",
                  delta=_delta_ratio(d.get("parameters_ratio"))),
             bytes_cell("packed_bytes"), bytes_cell("flash_bytes"), bytes_cell("ram_bytes"),
             _accuracy(clean, clean_sub, _delta_points(d.get("clean_points")))]
    by_name = {c["name"]: c for c in row["attacks"]}
    for name in doc["attack_columns"]:
        c = by_name.get(name)
        cells.append(_accuracy(c, c and c["budget"], _delta_points((d.get("attacks_points") or {}).get(name))))
    wc = worst_figure(row)
    cells.append(_accuracy(wc, wc and _join(wc["budget"], f"strongest {wc['strongest_attack']}"
                                            if wc.get("strongest_attack") else ""),
                           _delta_points(d.get("worst_case_points"))))
    ex = row["export"] or {}
    drop = ex.get("drop_points")
    cells.append(_accuracy(ex.get("int8"), _join("" if drop is None else f"drop {drop:+.2f} pts",
                                                 f"n={ex['samples']}" if ex.get("samples") else "")))
    cells.append(Cell("\n".join(f["code"] for f in row["flags"])))
    return cells


def notes(doc: dict[str, Any]) -> list[str]:
    """Plain-text lines under the table: the eps shown, flags, missing files, gates, sources."""
    lines = []
    eps = doc["headline_eps"]
    if doc["attack_columns"]:
        lines.append(f"attack columns at eps {fmt_eps(eps)}" if eps is not None else
                     "attack columns at the largest eps of each run's sweep (the report's eps option picks one)")
    lines.append("accuracies with Wilson 95% intervals [lo–hi]; robust accuracy counts a sample only if it is "
                 "correct and resisted the attack at that eps and every smaller one")
    if doc["baseline"]:
        lines.append(f"baseline: {doc['baseline']}; Δ in percentage points, sizes as × the baseline")
    for row in doc["rows"]:
        for f in row["flags"]:
            lines.append(f"flag {row['id']}: {f['message']}")
    for row in doc["rows"]:
        missing = [m for m in row["missing"] if m != "footprint.json" or row["packed_bytes"] is None]
        if missing and row["kind"] == "measured":
            what = {"attack.json": "attack cells empty", "export.json": "flash, RAM and int8 empty",
                    "metrics.json": "no training record", "footprint.json": "packed size empty"}
            lines.append(f"missing in {row['id']}: " + "; ".join(f"{m} ({what.get(m, '')})" for m in missing))
    if any(r["kind"] == "published" for r in doc["rows"]):
        from tinyharden.report.references import SOURCE

        lines.append(f"published rows: {SOURCE}; no intervals or budgets are known for them")
    for g in doc["gates"]["results"]:
        lines.append(("gate passed: " if g["passed"] else "GATE FAILED: ") + g["message"])
    return lines


# --------------------------------------------------------------------------- formats

def compact_cells(doc: dict[str, Any], row: dict[str, Any]) -> list[Cell]:
    """Setup and footprint folded into one cell each, so the table fits a screen (terminal, HTML)."""
    c = row_cells(doc, row)
    run, dataset, quant, defense, params, packed, flash, ram = c[:8]
    setup = Cell(dataset.main, "\n".join(x for x in (quant.main, defense.main) if x))
    lines = []
    for label, cell in (("params", params), ("packed", packed), ("flash", flash), ("RAM", ram)):
        if cell.main:
            lines.append(f"{label} {cell.main}" + (f" ({cell.detail()})" if cell.detail() else ""))
    return [run, setup, Cell("\n".join(lines)), *c[8:]]


def compact_headers(doc: dict[str, Any]) -> list[str]:
    return ["run", "setup", "footprint", *headers(doc)[8:]]


def render_table(doc: dict[str, Any]):
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    t = Table(title="tinyharden report", title_justify="left", box=box.SIMPLE_HEAD, show_lines=True)
    for h in compact_headers(doc):
        t.add_column(h, justify="left" if h in ("run", "setup", "footprint", "flags") else "right",
                     overflow="fold", min_width=min(len(h), 10))
    for row in doc["rows"]:
        cells = [escape(c.head()) + (f"\n[dim]{escape(c.detail())}[/]" if c.detail() else "")
                 for c in compact_cells(doc, row)]
        style = "italic" if row["kind"] == "published" else ("bold" if row["baseline"] else None)
        t.add_row(*cells, style=style)
    t.caption = "\n".join(escape(n) for n in notes(doc))
    t.caption_justify = "left"
    return t


def render_text_table(doc: dict[str, Any], width: int = 200) -> str:
    from rich.console import Console

    console = Console(file=io.StringIO(), width=width, record=True, color_system=None)
    console.print(render_table(doc))
    return console.export_text()


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_md(doc: dict[str, Any]) -> str:
    hs = headers(doc)
    lines = ["# tinyharden report", "", "| " + " | ".join(hs) + " |", "|" + "|".join("---" for _ in hs) + "|"]
    for row in doc["rows"]:
        cells = [_md(c.head()) + (f"<br>{_md(c.detail())}" if c.detail() else "") for c in row_cells(doc, row)]
        if row["kind"] == "published":
            cells[0] = f"*{cells[0]}*"
        lines.append("| " + " | ".join(cells) + " |")
    lines += [""] + [f"- {_md(n)}" for n in notes(doc)]
    if doc["plots"]:
        lines += [""] + [f"![{Path(p).stem}]({Path(p).name})" for p in doc["plots"]]
    lines += ["", f"schema_version {doc['schema_version']}, generated {doc['created']} by tinyharden {__version__}", ""]
    return "\n".join(lines)


def render_csv(doc: dict[str, Any]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")

    def prop(prefix: str) -> list[str]:
        return [prefix, f"{prefix}_ci_lo", f"{prefix}_ci_hi", f"{prefix}_n"]

    header = ["id", "kind", "baseline", "label", "path", "dataset", "model", "quantization", "defense",
              "parameters", "packed_bytes", "flash_bytes", "ram_bytes", "macs", *prop("clean")]
    for a in doc["attack_columns"]:
        header += [*prop(a), f"{a}_eps", f"{a}_budget"]
    header += [*prop("worst_case"), "worst_case_eps", *prop("int8"), "export_drop_points",
               "delta_clean_points", "delta_worst_case_points", "delta_flash_bytes_ratio", "delta_ram_bytes_ratio",
               "flags", "missing", "source"]
    w.writerow(header)

    def values(p: dict | None) -> list[Any]:
        if not p:
            return ["", "", "", ""]
        ci = p.get("ci95") or ["", ""]
        return [p["value"], ci[0], ci[1], "" if p.get("n") is None else p["n"]]

    def blank(v: Any) -> Any:
        return "" if v is None else v

    for row in doc["rows"]:
        by_name = {c["name"]: c for c in row["attacks"]}
        d = row["delta"] or {}
        ex = row["export"] or {}
        line = [row["id"], row["kind"], row["baseline"], blank(row["label"]), blank(row["path"]),
                *(blank(row[k]) for k in ("dataset", "model", "quantization", "defense", "parameters",
                                          "packed_bytes", "flash_bytes", "ram_bytes", "macs")),
                *values(row["clean"])]
        for a in doc["attack_columns"]:
            c = by_name.get(a)
            line += [*values(c), blank(c and c["eps"]), c["budget"] if c else ""]
        wc = worst_figure(row)
        line += [*values(wc), blank(wc and wc["eps"]), *values(ex.get("int8")), blank(ex.get("drop_points")),
                 blank(d.get("clean_points")), blank(d.get("worst_case_points")),
                 blank(d.get("flash_bytes_ratio")), blank(d.get("ram_bytes_ratio")),
                 "; ".join(f"{f['code']}: {f['message']}" for f in row["flags"]), "; ".join(row["missing"]),
                 blank(row["source"])]
        w.writerow(line)
    return buf.getvalue()


def render_json(doc: dict[str, Any]) -> str:
    return to_json(doc)


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#1d2327;
margin:24px auto;max-width:1360px;padding:0 16px;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #dde3e8;padding-bottom:4px}
.meta{color:#5b6770;font-size:12.5px;margin-bottom:16px}
.scroll{overflow-x:auto}
table{border-collapse:collapse;font-variant-numeric:tabular-nums;width:100%}
th,td{padding:6px 8px;border-bottom:1px solid #e5e9ec;vertical-align:top;text-align:right;white-space:nowrap}
th{background:#f3f5f7;font-weight:600;font-size:12.5px;position:sticky;top:0}
th:nth-child(-n+3),td:nth-child(-n+3),td.flags,th.flags{text-align:left}
td .v{display:block;white-space:pre;font-weight:600}
td:first-child{min-width:11em;white-space:normal;position:sticky;left:0;background:#fff;z-index:1;box-shadow:1px 0 0 #e5e9ec}
th:first-child{left:0;z-index:2}td:first-child .v,td.flags .v{white-space:pre-line}
td .ci{display:block;color:#3d4a52;font-size:12px}
td .sub{display:block;color:#6b7780;font-size:11.5px;white-space:normal;min-width:7em;max-width:14em;margin-left:auto}
td .d{display:block;color:#1f5fa8;font-size:11.5px}
td:nth-child(-n+3) .sub{min-width:0;margin-left:0;white-space:pre-line}
tr.published td{background:#fbf8ef;font-style:italic;color:#58504a}
tr.baseline td{background:#eef5ff;font-weight:600}tr.baseline td .sub{font-weight:400}
td.flags{color:#a4470b;white-space:normal;min-width:7em;max-width:12em;overflow-wrap:break-word}
ul.notes{padding-left:18px;margin:6px 0}ul.notes li{margin:2px 0}
li.fail{color:#b3261e;font-weight:600}li.pass{color:#2e7d32}li.flag{color:#a4470b}
.gates{padding:8px 12px;border-radius:6px;margin:12px 0;font-weight:600}
.gates.ok{background:#e8f5e9;color:#1b5e20}.gates.bad{background:#fdecea;color:#b3261e}
figure{margin:16px 0;text-align:center}figure img{max-width:100%;border:1px solid #e5e9ec}
figcaption{color:#5b6770;font-size:12.5px}
dl{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px;font-size:13px}dt{font-weight:600}dd{margin:0}
footer{color:#8a959d;font-size:12px;margin-top:32px}
"""

PLOT_CAPTIONS = {
    "robust_vs_eps": "Robust accuracy against eps, per model and attack, one plot per input space (eps 0: clean "
                     "accuracy on the attacked samples); the band is the worst case's 95% interval.",
    "accuracy_vs_footprint": "Clean and worst-case robust accuracy against footprint; hollow markers are "
                             "published figures.",
    "training_curves": "Training curves from metrics.json: accuracy (train, validation) and loss per epoch.",
}


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def render_html(doc: dict[str, Any], plot_files: list[Path] | None = None) -> str:
    """One self-contained page: inline CSS, plots as data URIs, no external references."""
    hs = compact_headers(doc)
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           "<title>tinyharden report</title>", f"<style>{_CSS}</style></head><body>",
           "<h1>tinyharden report</h1>",
           f'<div class="meta">{len([r for r in doc["rows"] if r["kind"] == "measured"])} measured run(s); '
           f"generated {_e(doc['created'])} by tinyharden {_e(__version__)}; schema_version "
           f"{doc['schema_version']}</div>"]
    results = doc["gates"]["results"]
    if results:
        failed = [g for g in results if not g["passed"]]
        cls, text = (("bad", f"{len(failed)} of {len(results)} gates failed") if failed
                     else ("ok", f"all {len(results)} gates passed"))
        out.append(f'<div class="gates {cls}">{_e(text)}</div>')
    out.append('<div class="scroll"><table><thead><tr>')
    out += [f'<th{" class=flags" if h == "flags" else ""}>{_e(h)}</th>' for h in hs]
    out.append("</tr></thead><tbody>")
    for row in doc["rows"]:
        classes = " ".join(c for c in ("published" if row["kind"] == "published" else "",
                                       "baseline" if row["baseline"] else "") if c)
        out.append(f'<tr class="{classes}">' if classes else "<tr>")
        cells = compact_cells(doc, row)
        for i, c in enumerate(cells):
            cls = ' class="flags"' if i == len(cells) - 1 else ""
            main = _e(c.main) if not cls else re.sub(r"([:_])", r"\1<wbr>", _e(c.main))  # flag codes break at : and _
            parts = [f'<span class="v">{main}</span>' if c.main else ""]
            parts += [f'<span class="{k}">{_e(v)}</span>' for k, v in (("ci", c.ci), ("sub", c.sub), ("d", c.delta)) if v]
            out.append(f"<td{cls}>{''.join(parts)}</td>")
        out.append("</tr>")
    out.append("</tbody></table></div>")
    out.append('<h2>Notes</h2><ul class="notes">')
    for n in notes(doc):
        cls = ("fail" if n.startswith("GATE FAILED") else "pass" if n.startswith("gate passed")
               else "flag" if n.startswith("flag ") else "")
        out.append(f'<li class="{cls}">{_e(n)}</li>' if cls else f"<li>{_e(n)}</li>")
    out.append("</ul>")
    if plot_files:
        out.append("<h2>Plots</h2>")
        for p in plot_files:
            data = base64.b64encode(Path(p).read_bytes()).decode("ascii")
            key = next((k for k in PLOT_CAPTIONS if k in Path(p).stem), "")
            out.append(f'<figure><img alt="{_e(Path(p).stem)}" src="data:image/png;base64,{data}">'
                       f"<figcaption>{_e(PLOT_CAPTIONS.get(key, Path(p).stem))}</figcaption></figure>")
    out.append("<h2>Definitions and units</h2><dl>")
    for k, v in {**doc["definitions"], **doc["units"]}.items():
        out.append(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>")
    out.append("</dl>")
    out.append(f"<footer>tinyharden report, schema_version {doc['schema_version']}. Published rows are figures "
               "reported by the study tinyharden follows, not measured here.</footer></body></html>")
    return "\n".join(out) + "\n"


def render(doc: dict[str, Any], fmt: str, plot_files: list[Path] | None = None) -> str:
    """Text of `doc` in `fmt` (the table as plain text, for a file)."""
    if fmt == "table":
        return render_text_table(doc)
    if fmt == "md":
        return render_md(doc)
    if fmt == "csv":
        return render_csv(doc)
    if fmt == "json":
        return render_json(doc)
    if fmt == "html":
        return render_html(doc, plot_files)
    raise ValueError(fmt)
