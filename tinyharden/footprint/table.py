"""The footprint as one Rich table, after larq's `larq.models.summary`.

One row a layer, a total row, and a caption with the deployed figures (flash, RAM) and
the formulas, so a user reads the memory cost without opening footprint.json.
"""
from __future__ import annotations

from typing import Any

from rich.table import Table


def _n(value) -> str:
    return "–" if value in (None, 0) else f"{int(value):,}"


def _kib(value) -> str:
    return f"{int(value):,} B ({value / 1024:.1f} KiB)"


def _bits(weights: list[dict]) -> str:
    seen: list[str] = []
    for w in weights:
        b = str(w["bits"])
        if b not in seen:
            seen.append(b)
    return "/".join(seen) if seen else "–"


def _shape(shape) -> str:
    return "–" if shape is None else "×".join("?" if d is None else str(d) for d in shape)


def render_table(summary: dict[str, Any]) -> Table:
    """A Rich table of a `summarize()` result (or of a loaded footprint.json)."""
    totals = summary["totals"]
    rows = [[f"{r['name']} [dim]({r['type']})[/]", _shape(r["output_shape"]), _n(r["params"]), _bits(r["weights"]),
             _n(r["packed_bytes"]), _n(r["macs"]), _n(r["activation_bytes"])] for r in summary["layers"]]
    avg = totals["packed_bits"] / totals["params"] if totals["params"] else 0
    total_row = ["total", "", _n(totals["params"]), f"{avg:.2f}", _n(totals["packed_bytes"]),
                 _n(totals["macs"]), _n(totals["peak_activation_bytes"])]
    float_row = ["as float32", "", "", "32", _n(totals["float32_bytes"]), "", ""]

    table = Table(title=f"footprint: {summary.get('model', 'model')}", title_justify="left")
    # Figures keep their full width; on a narrow terminal the layer names wrap instead.
    table.add_column("layer (type)", overflow="fold")
    for i, header in enumerate(("output", "params", "bits", "packed (B)", "MACs", "act. (B)"), start=1):
        width = max(len(header), *(len(row[i]) for row in [*rows, total_row, float_row]))
        table.add_column(header, justify="right", no_wrap=True, min_width=width)
    for row in rows:
        table.add_row(*row)
    table.add_section()
    table.add_row(*(f"[bold]{c}[/]" if c and i != 3 else c for i, c in enumerate(total_row)))
    table.add_row(*float_row)

    lines = []
    deployed = summary.get("deployed")
    if deployed:
        lines.append(f"flash: {_kib(deployed['flash_bytes'])}, the .tflite flatbuffer (int8 weights, int32 biases)")
        arena = deployed.get("arena_bytes")
        if arena is not None:
            lines.append(f"RAM: {_kib(arena)}, TFLM tensor arena measured by the interpreter "
                         f"(activations {deployed.get('arena_head_bytes', 0):,} B + persistent "
                         f"{deployed.get('arena_tail_bytes', 0):,} B)")
    peak_at = totals.get("peak_activation_layer")
    lines.append(f"peak activations (graph estimate, int8): {_kib(totals['peak_activation_bytes'])}"
                 + (f" at '{peak_at}'" if peak_at else ""))
    if totals.get("compression") and totals["compression"] > 1:
        lines.append(f"packed weights are {totals['compression']:.1f}x smaller than float32")
    lines.append("bits per weight (kernel/bias): ternary 2, binary 1, quantized_bits(n) n, float 32; "
                 "packed = ceil(Σ count×bits / 8); MACs per inference; act. = int8 output, total row: peak alive")
    table.caption = "\n".join(lines)
    table.caption_justify = "left"
    return table
