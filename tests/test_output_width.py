"""Tables on a piped stdout keep one line per row: COLUMNS if set, else 200 columns, never Rich's 80."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from tinyharden.cli.app import app

ROOT = Path(__file__).resolve().parent.parent

# Layer names as long as ResNet-8's (its QKeras layers carry stage and block in the name).
LAYERS = [f"stage{s}_block{b}_{kind}" for s in (1, 2, 3) for b in (1, 2) for kind in ("conv_a", "batchnorm_b")]


def _footprint() -> dict:
    layers = [{"name": n, "type": "QConv2D" if "conv" in n else "BatchNormalization", "output_shape": [32, 32, 16],
               "params": 2320, "weights": [{"bits": 8}, {"bits": 32}], "packed_bytes": 2368, "macs": 2359296,
               "activation_bytes": 16384} for n in LAYERS]
    totals = {"params": 2320 * len(LAYERS), "packed_bits": 8 * 2368 * len(LAYERS), "packed_bytes": 2368 * len(LAYERS),
              "float32_bytes": 4 * 2320 * len(LAYERS), "macs": 2359296 * len(LAYERS), "peak_activation_bytes": 32768,
              "peak_activation_layer": LAYERS[0], "compression": 3.9}
    return {"model": "resnet8", "layers": layers, "totals": totals}


def _piped(columns: str | None, tmp_path: Path) -> str:
    """The footprint table printed by the CLI's stdout console into a pipe."""
    fp = tmp_path / "footprint.json"
    fp.write_text(json.dumps(_footprint()))
    code = ("import json, sys\nfrom tinyharden.cli.common import out\nfrom tinyharden.footprint.table import render_table\n"
            "out.print(render_table(json.load(open(sys.argv[1]))))\n")
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    env["PYTHONPATH"] = str(ROOT)
    if columns is not None:
        env["COLUMNS"] = columns
    r = subprocess.run([sys.executable, "-c", code, str(fp)], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


def _row_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("│") and any(n in line for n in LAYERS)]


def test_a_piped_footprint_table_has_one_line_per_layer(tmp_path):
    text = _piped(None, tmp_path)
    rows = _row_lines(text)
    assert len(rows) == len(LAYERS), text  # no layer name folded onto a second line
    assert max(len(line) for line in text.splitlines()) <= 200
    assert "\x1b" not in text  # a pipe gets no colour codes


def test_columns_is_honoured_when_set(tmp_path):
    text = _piped("100", tmp_path)
    assert max(len(line) for line in text.splitlines()) <= 100
    assert len(text.splitlines()) > len(_piped(None, tmp_path).splitlines())  # names fold: the width was applied


def test_a_captured_report_table_has_one_line_per_run(tmp_path):
    from test_report import write_attack, write_export, write_metrics

    runs = []
    for i, name in enumerate(("stq-jr-digits-long-run-name", "float-digits-baseline-run", "stq-digits-no-defense")):
        run = tmp_path / name
        write_metrics(run, acc=0.95 - 0.02 * i)
        write_export(run)
        write_attack(run)
        runs.append(str(run))
    r = CliRunner().invoke(app, ["report", *runs, "--no-plots"], env={"COLUMNS": ""})
    assert r.exit_code == 0, r.output
    for name in ("stq-jr-digits-long-run-name", "float-digits-baseline-run", "stq-digits-no-defense"):
        assert sum(name in line for line in r.stdout.splitlines()) == 1, r.stdout
    assert max(len(line) for line in r.stdout.splitlines()) > 80  # not squeezed to Rich's pipe default
