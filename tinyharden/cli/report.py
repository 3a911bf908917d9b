"""`tinyharden report RUN [RUN ...]`: accuracy, robustness and footprint of runs, side by side.

Reads only the JSON files runs leave behind (no TensorFlow). Exit codes: 0 ok; 2 bad
arguments, a missing run or a missing/damaged file; 3 a gate failed (after the report
is printed or written).
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional

import typer

from tinyharden.cli.common import err, handle_errors, out, warn
from tinyharden.cli.parsing import parse_bytes, parse_fraction
from tinyharden.errors import GateFailed, UserError
from tinyharden.report.render import FORMATS

Opt = typer.Option

_FORMATS = FORMATS
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


def bars_from_flags(min_clean: Optional[str], min_robust: Optional[str], max_flash: Optional[str],
                    max_ram: Optional[str]):
    """The report gates from their flags (accuracies as 0.9 or 90%, sizes as 65536 or 64K)."""
    from tinyharden.jobs.report import Bars

    return Bars(min_clean=parse_fraction(min_clean, "--min-clean"), min_robust=parse_fraction(min_robust, "--min-robust"),
                max_flash=parse_bytes(max_flash, "--max-flash"), max_ram=parse_bytes(max_ram, "--max-ram"))


@handle_errors
def report(
    runs: Annotated[List[Path], typer.Argument(help="Run folders written by train, attack or export.", show_default=False)],
    fmt: Annotated[str, Opt("--format", "-f", help="table, md, csv, json or html (one self-contained file).")] = "table",
    out_file: Annotated[Optional[Path], Opt("--out", "-o", help="Write the report to this file (plots beside it). Default: stdout; html goes to report.html in the first run folder.")] = None,
    baseline: Annotated[Optional[str], Opt("--baseline", help="Run folder (or published row id, e.g. published:cifar10-stq-jr) that the other rows are compared with.")] = None,
    eps: Annotated[Optional[str], Opt("--eps", help="Eps the attack columns show, e.g. 8/255. Default: the largest of each run's sweep.")] = None,
    references: Annotated[str, Opt("--references", help="Published rows: auto (datasets in the report), all, none.")] = "auto",
    plots: Annotated[bool, Opt("--plots/--no-plots", help="Write PNG plots beside --out (else into the first run folder).")] = True,
    min_clean: Annotated[Optional[str], Opt("--min-clean", metavar="ACC", help="Gate: clean accuracy of every run at least this (0.9 or 90%).")] = None,
    min_robust: Annotated[Optional[str], Opt("--min-robust", metavar="ACC", help="Gate: worst-case robust accuracy (at the shown eps) at least this.")] = None,
    max_flash: Annotated[Optional[str], Opt("--max-flash", metavar="SIZE", help="Gate: flash (.tflite) at most this many bytes (65536, 64K, 1MiB).")] = None,
    max_ram: Annotated[Optional[str], Opt("--max-ram", metavar="SIZE", help="Gate: RAM (TFLM arena) at most this many bytes.")] = None,
    json_out: Annotated[bool, Opt("--json", help="Print the versioned JSON (schema_version) to stdout; same as --format json.")] = False,
) -> None:
    """Compare runs: clean and robust accuracy with 95% intervals and budgets, footprint, flags.

    Example: tinyharden report runs/quickstart runs/cifar10-stq-jr --format html --min-robust 30%

    A sweep folder (runs/<sweep>, holding sweep.json) renders the sweep's means per grid point instead, with a plot of robust accuracy against the swept value; the gates then apply to the means.

    Published figures of the study are added for the datasets in the report, marked as such.

    Exit codes: 0 ok; 2 bad arguments or a missing/damaged run file; 3 a gate failed (each failure is listed: run, gate, value and bar).
    """
    from tinyharden.jobs.report import ReportRequest
    from tinyharden.jobs.report import report as report_job
    from tinyharden import pretrained

    runs = [pretrained.resolve(r) for r in runs]  # shipped model names (tinyharden pretrained)
    fmt = fmt.lower()
    if fmt not in _FORMATS:
        raise UserError(f"--format must be one of {', '.join(_FORMATS)}, got '{fmt}'")
    if json_out:
        if fmt not in ("table", "json"):
            raise UserError(f"--json prints JSON; drop --format {fmt} or --json")
        fmt = "json"
    bars = bars_from_flags(min_clean, min_robust, max_flash, max_ram)
    headline = _parse_eps(eps)
    if out_file is not None and out_file.is_dir():
        raise UserError(f"--out '{out_file}' is a folder; give a file name such as {out_file / ('report' + _SUFFIX[fmt])}")
    dest = out_file
    if dest is None and fmt == "html":
        dest = Path(runs[0]) / "report.html"  # a page needs a file; stdout is for text formats
    if len(runs) == 1 and (Path(runs[0]) / "sweep.json").is_file():
        from tinyharden.cli.sweep import report_sweep

        return report_sweep(Path(runs[0]), fmt=fmt, dest=out_file, plots=plots, bars=bars)
    plots_dir = (dest.parent if dest is not None else Path(runs[0])) if plots else None
    from tinyharden.writable import check_writable

    for folder in dict.fromkeys(p for p in (dest.parent if dest is not None else None, plots_dir) if p is not None):
        check_writable(folder, what="report folder")  # before the runs are collected and plotted

    result = report_job(ReportRequest(runs=runs, eps=headline, baseline=baseline, bars=bars, references=references,
                                      plots_dir=plots_dir))
    write_report(result.doc, fmt, dest, result.plot_files)
    finish(result.doc, result.plot_files)


def write_report(doc: dict, fmt: str, dest: Optional[Path], plot_files: list) -> None:
    """Print `doc` in `fmt`, or write it atomically to `dest`."""
    from tinyharden.report.render import render, render_table

    if dest is None:
        if fmt == "table":
            out.print(render_table(doc))  # piped: COLUMNS or 200 wide, not squeezed to 80
        else:
            typer.echo(render(doc, fmt, plot_files), nl=False)  # raw: no Rich markup or wrapping
        return
    from tinyharden.workspace import atomic_write_text

    try:
        atomic_write_text(dest, render(doc, fmt, plot_files))
    except OSError as exc:
        raise UserError(f"cannot write '{dest}' ({exc.strerror or exc}); pass --out in a writable folder") from None
    err.print(f"report: {dest}", highlight=False)


def finish(doc: dict, plot_files: list, extra: tuple[str, ...] = ()) -> None:
    """Name the plots and list flags on stderr; failed gates (and `extra` failures) raise GateFailed (exit 3).

    Each failed gate is printed once, in the one-line error.
    """
    from tinyharden.report.build import failed_gates

    if plot_files:
        err.print("plots: " + ", ".join(str(p) for p in plot_files), highlight=False)
    said_in_error = {"export_gate"} if extra else set()  # `run`'s export failures are in the error line
    for row in doc["rows"]:
        for flag in row["flags"]:
            if flag["code"] not in said_in_error:
                warn(f"{row['id']}: {flag['message']}")
    failed = failed_gates(doc)
    if failed or extra:
        total = len(doc["gates"]["results"])
        head = f"{len(failed)} of {total} gates failed: " if failed else ""
        raise GateFailed(head + "; ".join([g["message"] for g in failed] + list(extra)))
