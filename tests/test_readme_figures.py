"""The README's quickstart table is what a fresh run of its first command produces, to the digit."""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _figures_module():
    spec = importlib.util.spec_from_file_location("readme_figures", ROOT / "bench/readme_figures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_readme_quickstart_figures_equal_a_fresh_run(quickstart_run):
    """To the digit on a CPU with the recording machine's vector units; within TOLERANCE_POINTS elsewhere."""
    import json

    figures = _figures_module()
    record = json.loads(figures.RECORD.read_text())
    in_readme = figures.readme_block((ROOT / "README.md").read_text())
    assert in_readme == record["table"], "README and bench/results/readme_figures.json disagree"
    if figures.cpu_fingerprint() == record["cpu"]:
        fresh = figures.render(quickstart_run.path)
        assert in_readme == fresh, "README quickstart figures drifted: run `python bench/readme_figures.py`"
        return
    fresh = figures.figures(quickstart_run.path)
    assert fresh["footprint"] == record["figures"]["footprint"]  # integer arithmetic: the same on every CPU
    for key, points in figures.TOLERANCE_POINTS.items():
        assert abs(fresh[key] - record["figures"][key]) <= points, (key, fresh[key], record["figures"][key])


@pytest.mark.slow
def test_quickstart_stderr_holds_no_tensorflow_cpp_lines(quickstart_run):
    native = [line for line in quickstart_run.stderr.splitlines()
              if re.match(r"[IWEF]\d{4} ", line) or "absl::InitializeLog" in line]
    assert native == []


def test_render_reads_every_figure_from_the_run_folder(tmp_path):
    # A doctored run folder: each figure in the table must come from its file, so changing one changes the table.
    import json

    figures = _figures_module()
    ci = [0.5, 0.6]
    (tmp_path / "metrics.json").write_text(json.dumps({"test": {"accuracy": 0.5512, "n": 123, "ci95": ci}}))
    (tmp_path / "attack.json").write_text(json.dumps({
        "config": {"eps": [2 / 255, 16 / 255]},
        "suite": {"robust_accuracy": {"value": 0.25, "n": 40, "ci95": [0.1, 0.4]}},
        "attacks": [{"name": "pgd", "params": {"steps": 7}}, {"name": "square", "params": {"max_iter": 9}},
                    {"name": "fgsm", "params": {}}]}))
    (tmp_path / "export.json").write_text(json.dumps({
        "parity": {"tflite_accuracy": 50.0, "samples": 100}, "deployed": {"flash_bytes": 1234, "arena_bytes": 567}}))
    (tmp_path / "footprint.json").write_text(json.dumps({"totals": {"packed_bytes": 89, "params": 4321}}))
    table = figures.render(tmp_path)
    assert "| clean test accuracy (123 images) | 55.12% [50.0-60.0] |" in table
    assert "| worst case over PGD-7, Square (9 iterations), FGSM, eps 16/255, n=40 | 25.00% [10.0-40.0] |" in table
    assert "| int8 TFLite on the TFLite Micro interpreter | 50.00% [40.4-59.6] |" in table
    assert "1,234 B / 567 B / 89 B (4,321 parameters)" in table
