"""`tinyharden report RUN [RUN ...]`: accuracy, robustness and footprint of runs, side by side.

Reads only the JSON files runs leave behind (no TensorFlow). Exit codes: 0 ok; 2 bad
arguments, a missing run or a missing/damaged file; 3 a gate failed (after the report
is printed or written).
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from tinyharden.cli.common import err, handle_errors, out, state, warn
from tinyharden.errors import GateFailed, UserError

_FORMATS = ("table", "md", "csv", "json", "html")
_SUFFIX = {"table": ".txt", "md": ".md", "csv": ".csv", "json": ".json", "html": ".html"}


def _parse_eps(text: Optional[str]) -> Optional[float]:
    if text is None:
        return None
    from tinyharden.recipe import parse_number

    try:
        value = float(parse_number(text))
    except ValueError:
        raise UserError(f"--eps must be a number or a fraction such as 8/255, got '{text}'") from None
    if value <= 0:
        raise UserError(f"--eps must be positive (in [0,1] data units, e.g. 8/255), got '{text}'")
    return value


@handle_errors
def report(
    runs: List[Path] = typer.Argument(..., help="Run folders written by train, attack or export.", show_default=False),
    fmt: str = typer.Option("table", "--format", "-f", help="table, md, csv, json or html (one self-contained file)."),
    out_file: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the report to this file (plots beside it). Default: stdout; html goes to report.html in the first run folder."),
    baseline: Optional[str] = typer.Option(None, "--baseline", help="Run folder (or published row id, e.g. published:cifar10-stq-jr) that the other rows are compared with."),
    eps: Optional[str] = typer.Option(None, "--eps", help="Eps the attack columns show, e.g. 8/255. Default: the largest of each run's sweep."),
    references: str = typer.Option("auto", "--references", help="Published rows: auto (datasets in the report), all, none."),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="Write PNG plots beside --out (else into the first run folder)."),
    min_clean: Optional[str] = typer.Option(None, "--min-clean", help="Gate: clean accuracy of every run at least this (0.9 or 90%)."),
    min_robust: Optional[str] = typer.Option(None, "--min-robust", help="Gate: worst-case robust accuracy (at the shown eps) at least this."),
    max_flash: Optional[str] = typer.Option(None, "--max-flash", help="Gate: flash (.tflite) at most this many bytes (65536, 64K, 1MiB)."),
    max_ram: Optional[str] = typer.Option(None, "--max-ram", help="Gate: RAM (TFLM arena) at most this many bytes."),
    json_out: bool = typer.Option(False, "--json", help="Print the versioned JSON (schema_version) to stdout; same as --format json."),
) -> None:
    """Compare runs: clean and robust accuracy with 95% intervals and budgets, footprint, flags.

    Published figures of the study are added for the datasets in the report, marked as such.

    Exit codes: 0 ok; 2 bad arguments or a missing/damaged run file; 3 a gate failed
    (each failure is listed: run, gate, value and bar).
    """
    from tinyharden import pretrained
    from tinyharden.parsing import parse_bytes, parse_fraction

    runs = [pretrained.resolve(r) for r in runs]
    fmt = fmt.lower()
    if fmt not in _FORMATS:
        raise UserError(f"--format must be one of {', '.join(_FORMATS)}, got '{fmt}'")
    if json_out:
        if fmt not in ("table", "json"):
            raise UserError(f"--json prints JSON; drop --format {fmt} or --json")
        fmt = "json"
    bars = {"min_clean": parse_fraction(min_clean, "--min-clean"), "min_robust": parse_fraction(min_robust, "--min-robust"),
            "max_flash": parse_bytes(max_flash, "--max-flash"), "max_ram": parse_bytes(max_ram, "--max-ram")}
    headline = _parse_eps(eps)
    if out_file is not None and out_file.is_dir():
        raise UserError(f"--out '{out_file}' is a folder; give a file name such as {out_file / ('report' + _SUFFIX[fmt])}")
    dest = out_file
    if dest is None and fmt == "html":
        dest = Path(runs[0]) / "report.html"  # a page needs a file; stdout is for text formats
    plots_dir = (dest.parent if dest is not None else Path(runs[0])) if plots else None
    if dest is not None and out_file is None and pretrained.is_pretrained(dest):
        dest = Path(state.workspace) / "report.html"  # shipped folders are read-only
    if plots_dir is not None and pretrained.is_pretrained(plots_dir):
        plots_dir = Path(state.workspace)

    from tinyharden.report.build import generate

    doc, _, plot_files = generate(runs, eps=headline, baseline=baseline, bars=bars, references=references,
                                  plots_dir=plots_dir)
    write_report(doc, fmt, dest, plot_files)
    finish(doc, plot_files)


def write_report(doc: dict, fmt: str, dest: Optional[Path], plot_files: list) -> None:
    """Print `doc` in `fmt`, or write it atomically to `dest`."""
    from tinyharden.report.render import render, render_table

    if dest is None:
        if fmt == "table":
            if out.is_terminal:
                out.print(render_table(doc))
            else:  # piped or captured: no width to respect, so do not squeeze the table to 80 columns
                from rich.console import Console

                Console(width=160, highlight=False).print(render_table(doc))
        else:
            typer.echo(render(doc, fmt, plot_files), nl=False)  # raw: no Rich markup or wrapping
        return
    from tinyharden.workspace import atomic_write_text

    try:
        atomic_write_text(dest, render(doc, fmt, plot_files))
    except OSError as exc:
        raise UserError(f"cannot write '{dest}' ({exc.strerror or exc}); pass --out in a writable folder") from None
    err.print(f"report: {dest}", highlight=False)


def finish(doc: dict, plot_files: list) -> None:
    """Name the plots, list flags and failed gates on stderr; raise GateFailed (exit 3) if any."""
    from tinyharden.report.build import failed_gates

    if plot_files:
        err.print("plots: " + ", ".join(str(p) for p in plot_files), highlight=False)
    for row in doc["rows"]:
        for flag in row["flags"]:
            warn(f"{row['id']}: {flag['message']}")
    failed = failed_gates(doc)
    for g in failed:
        err.print(f"[bold red]gate failed:[/] {g['message']}", highlight=False, soft_wrap=True)
    if failed:
        total = len(doc["gates"]["results"])
        raise GateFailed(f"{len(failed)} of {total} gates failed: " + "; ".join(g["message"] for g in failed))
