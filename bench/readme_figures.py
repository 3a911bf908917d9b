"""Regenerate the README's quickstart table from a real run, so its figures cannot drift.

The table between the markers ``<!-- quickstart-figures:begin -->`` and ``<!-- quickstart-figures:end -->`` in
README.md is rendered from a run folder of ``tinyharden run recipes/quickstart.yaml`` (metrics.json, attack.json,
export.json, footprint.json). ``tests/test_readme_figures.py`` renders it from a fresh run and fails if the README
says anything else. Timings are left out on purpose: they depend on the machine's load, the figures do not.

    python bench/readme_figures.py            # run the quickstart in a scratch workspace, rewrite README.md
    python bench/readme_figures.py RUN_DIR    # render from an existing run folder
    python bench/readme_figures.py --check    # exit 1 if README.md differs from a fresh run
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- quickstart-figures:begin -->", "<!-- quickstart-figures:end -->"
RECORD = ROOT / "bench/results/readme_figures.json"
# The vector units oneDNN picks kernels by: the same seed gives the same figures on CPUs that share them,
# and can differ by an image or a few on others (summation order), e.g. 96.38% on one machine, 96.10% on another.
_KERNEL_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16")
# Off the recording CPU: how far each figure may move (points) before it counts as drift, not arithmetic.
TOLERANCE_POINTS = {"clean": 1.0, "worst_case": 3.5, "int8": 1.0}


def cpu_fingerprint() -> dict:
    """The CPU model and the kernel-selecting flags of this machine (Linux /proc/cpuinfo)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {"model": "unknown", "flags": []}
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "unknown")
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    return {"model": model, "flags": [f for f in _KERNEL_FLAGS if f in flags]}


def figures(run_dir: Path) -> dict:
    """The table's accuracies in percent and its footprint, for comparing runs made on different CPUs."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    attack = json.loads((run_dir / "attack.json").read_text())
    export = json.loads((run_dir / "export.json").read_text())
    footprint = json.loads((run_dir / "footprint.json").read_text())
    return {"clean": 100 * metrics["test"]["accuracy"], "worst_case": 100 * attack["suite"]["robust_accuracy"]["value"],
            "int8": float(export["parity"]["tflite_accuracy"]),
            "footprint": [export["deployed"]["flash_bytes"], export["deployed"]["arena_bytes"],
                          footprint["totals"]["packed_bytes"], footprint["totals"]["params"]]}


def _pct(value: float, ci: list[float]) -> str:
    return f"{100 * value:.2f}% [{100 * ci[0]:.1f}-{100 * ci[1]:.1f}]"


def _eps_label(eps: float) -> str:
    return f"{round(eps * 255)}/255" if abs(eps * 255 - round(eps * 255)) < 1e-6 else f"{eps:g}"


def _wilson_pct(accuracy_pct: float, n: int) -> str:
    from tinyharden.stats import wilson_interval

    k = round(accuracy_pct * n / 100)
    lo, hi = wilson_interval(k, n)
    return f"{accuracy_pct:.2f}% [{100 * lo:.1f}-{100 * hi:.1f}]"


def _attack_label(entry: dict) -> str:
    params = entry["params"]
    if entry["name"] == "pgd":
        return f"PGD-{params['steps']}"
    if entry["name"] == "square":
        return f"Square ({params['max_iter']} iterations)"
    return entry["name"].upper()


def render(run_dir: Path) -> str:
    """The markdown table of one quickstart run folder."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    attack = json.loads((run_dir / "attack.json").read_text())
    export = json.loads((run_dir / "export.json").read_text())
    footprint = json.loads((run_dir / "footprint.json").read_text())
    test = metrics["test"]
    suite = attack["suite"]["robust_accuracy"]
    attacks = ", ".join(_attack_label(a) for a in attack["attacks"])
    eps = _eps_label(max(attack["config"]["eps"]))
    parity = export["parity"]
    deployed = export["deployed"]
    total = footprint["totals"]
    rows = [
        "| | value |",
        "|---|---|",
        f"| clean test accuracy ({test['n']} images) | {_pct(test['accuracy'], test['ci95'])} |",
        f"| worst case over {attacks}, eps {eps}, n={suite['n']} | {_pct(suite['value'], suite['ci95'])} |",
        f"| int8 TFLite on the TFLite Micro interpreter | {_wilson_pct(parity['tflite_accuracy'], parity['samples'])} |",
        f"| flash / RAM (arena) / packed weights | {deployed['flash_bytes']:,} B / {deployed['arena_bytes']:,} B / "
        f"{total['packed_bytes']:,} B ({total['params']:,} parameters) |",
    ]
    return "\n".join(rows)


def fresh_run(workspace: Path) -> Path:
    """Run the README's first command into ``workspace`` and return the run folder."""
    cmd = [sys.executable, "-m", "tinyharden", "-w", str(workspace), "run", str(ROOT / "recipes/quickstart.yaml")]
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return workspace / "quickstart"


def readme_block(readme: str) -> str:
    start, end = readme.index(BEGIN) + len(BEGIN), readme.index(END)
    return readme[start:end].strip("\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="?", type=Path, help="a quickstart run folder (default: a fresh run)")
    parser.add_argument("--check", action="store_true", help="compare instead of rewriting README.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        run_dir = args.run_dir or fresh_run(Path(scratch))
        table = render(run_dir)
        record = {"cpu": cpu_fingerprint(), "figures": figures(run_dir), "table": table}
    readme_path = ROOT / "README.md"
    readme = readme_path.read_text()
    if args.check:
        same = readme_block(readme) == table
        print("README quickstart figures match a fresh run" if same else f"README differs; a fresh run gives:\n{table}")
        return 0 if same else 1
    start, end = readme.index(BEGIN) + len(BEGIN), readme.index(END)
    readme_path.write_text(readme[:start] + "\n" + table + "\n" + readme[end:])
    RECORD.write_text(json.dumps(record, indent=2) + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
