"""Wall time of a whole attack suite, as a user runs it: one `tinyharden attack` command.

On the MLPerf Tiny ResNet-8 (pretrainedResnet.h5, raw 0..255 pixels) and the first N CIFAR-10
test images, at every eps of --eps, each suite of --suites runs as its own fresh command

    tinyharden attack pretrainedResnet.h5 --data cifar10 --input-range 0,255 \\
        --suite autoattack --eps 1/255,2/255,4/255,8/255 -n 1000 --json

so the figure includes start-up, loading, tracing and the masking checks: what a CI job
waits for. The JSON keeps the command, its wall time, the suite's per-eps worst case
(Wilson 95% intervals), each attack's own time where the attack reports it, the load
average before and after (these machines are shared: a loaded figure is an upper bound)
and what share of the CPU's nominal peak the white-box part used (see `_work`).

    python bench/suite_walltime.py --suites autoattack --n 1000
writes bench/results/suite_walltime.json (one entry per suite, merged into what is there).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.attack_throughput import DEFAULT_MODEL, cpu_peak  # noqa: E402

SIX = "fgsm,pgd,cw,square,boundary,zoo"


def _command(model: Path, suite: str, eps: str, n: int, precision: str, out: Path) -> list[str]:
    return [sys.executable, "-m", "tinyharden", "-w", str(out), "attack", str(model), "--data", "cifar10",
            "--input-range", "0,255", "--suite", suite, "--eps", eps, "-n", str(n), "--precision", precision,
            "--no-save-examples", "--json"]


def _strip(o):
    """attack.json without its per-sample arrays (they are what a re-check needs, not a bench)."""
    if isinstance(o, dict):
        return {k: _strip(v) for k, v in o.items() if k not in ("per_sample", "per_sample_robust", "robust_mask")}
    if isinstance(o, list):
        return [_strip(v) for v in o] if len(o) <= 64 else f"<{len(o)} values>"
    return o


def run_one(model: Path, suite: str, eps: str, n: int, precision: str, workdir: Path) -> dict:
    cmd = _command(model, suite, eps, n, precision, workdir)
    load_before = list(os.getloadavg())
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {done.returncode}: {done.stderr.strip()[-800:]}")
    doc = json.loads(done.stdout)
    report = doc.get("result", doc)
    return {"command": " ".join(["tinyharden", *cmd[3:]]), "seconds": seconds, "minutes": seconds / 60,
            "precision": precision, "n": n, "eps": eps,
            "clean_accuracy": report["clean"]["accuracy"],
            "worst_case_per_eps": [{"eps": text, "robust_accuracy": p["robust_accuracy"]}
                                   for text, p in zip(report["config"]["eps_text"], report["suite"]["per_eps"])],
            "attacks": _strip(report["attacks"]), "masking_flagged": report["masking"]["flagged"],
            "load_average_before": load_before, "load_average_after": list(os.getloadavg())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--suites", default="autoattack", help=f"semicolon list of suites, e.g. 'autoattack;{SIX}'")
    ap.add_argument("--eps", default="1/255,2/255,4/255,8/255")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--precision", default="float32", help="float32 or mixed_bfloat16 (white-box parts)")
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/tinyharden-bench-suite"))
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "suite_walltime.json")
    args = ap.parse_args()
    from tinyharden.workspace import atomic_write_json, package_versions

    record = json.loads(args.out.read_text()) if args.out.is_file() else {"benchmark": "suite_walltime", "runs": {}}
    for suite in [s for s in args.suites.split(";") if s]:
        key = f"{suite}@{args.precision}"
        print(f"{key}: n={args.n}, eps {args.eps} ...", flush=True)
        run = run_one(args.model, suite, args.eps, args.n, args.precision, args.workdir)
        run.update(cpu=cpu_peak(), versions=package_versions(), created=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        record["runs"][key] = run
        atomic_write_json(args.out, record)
        worst = ", ".join(f"{p['eps']}: {100 * p['robust_accuracy']['value']:.1f}%" for p in run["worst_case_per_eps"])
        print(f"{key}: {run['minutes']:.1f} min; worst case {worst}", flush=True)


if __name__ == "__main__":
    main()
