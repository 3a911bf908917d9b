"""`tinyharden report` over fixture run folders, and `tinyharden run` end to end on a tiny recipe.

The fixtures copy the real layouts: metrics.json (Trainer.finish), footprint.json
(footprint.summarize, with `deployed` once exported), export.json (export_model) and
attack.json (tinyharden attack, schema_version 1).
"""
from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tinyharden.cli.app import app
from tinyharden.report.schema import SCHEMA_VERSION, validate
from tinyharden.stats import wilson_interval

runner = CliRunner()

EPS = [2 / 255, 8 / 255]


# --------------------------------------------------------------------------- fixtures

def _write(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2))


def _prop(k: int, n: int) -> dict:
    lo, hi = wilson_interval(k, n)
    return {"value": k / n, "k": k, "n": n, "ci95": [lo, hi]}


def write_metrics(run: Path, *, acc=0.95, n=359, model="cnn", quant="stq", defense="JR(logits)", params=19850,
                  epochs=3, dataset="digits") -> None:
    lo, hi = wilson_interval(round(acc * n), n)
    history = [{"epoch": e + 1, "loss": 2.0 / (e + 1), "ce": 1.9 / (e + 1), "reg": [0.1],
                "train_acc": acc + 0.02 - 0.5 * 0.6 ** e, "val_loss": 2.1 / (e + 1), "val_acc": acc - 0.55 * 0.6 ** e,
                "lr": 0.005, "seconds": 1.0,
                "images_per_s": 1000.0, "quantized_share": 1.0} for e in range(epochs)]
    _write(run / "metrics.json", {
        "schema_version": 1, "run": run.name,
        "dataset": {"name": dataset, "kind": "image", "input_shape": [8, 8, 1], "input_range": [0.0, 1.0],
                    "num_classes": 10, "train": 1294, "val": 144, "test": n},
        "model": model, "quantization": quant, "defense": defense, "parameters": params,
        "test": {"accuracy": acc, "loss": 0.5, "n": n, "ci95": [lo, hi]},
        "epochs": epochs, "train_seconds": 3.0, "images_per_s": 1000.0, "history": history,
        "footprint": {"params": params, "packed_bytes": 5000},
    })


def write_footprint(run: Path, *, params=19850, packed=5000, deployed: dict | None = None) -> None:
    doc = {"schema": "tinyharden.footprint/1", "model": "cnn", "units": {}, "formulas": {}, "layers": [],
           "totals": {"params": params, "trainable_params": params, "packed_bits": packed * 8, "packed_bytes": packed,
                      "float32_bytes": params * 4, "compression": round(params * 4 / packed, 2), "macs": 120000,
                      "input_bytes": 64, "peak_activation_bytes": 2048, "peak_activation_layer": "conv1"}}
    if deployed:
        doc["deployed"] = deployed
    _write(run / "footprint.json", doc)


def write_export(run: Path, *, keras=95.0, tflite=94.5, samples=200, flash=10040, arena=4408, max_drop=1.0,
                 extra_gates=(), params=19850, packed=5000) -> None:
    deployed = {"flash_bytes": flash, "arena_bytes": arena, "arena_head_bytes": 2048, "arena_tail_bytes": arena - 2048,
                "tflite": "model.tflite", "note": "arena measured by the TFLM interpreter on this host"}
    drop = round(keras - tflite, 3)
    gates = [{"gate": "max_drop", "limit": max_drop, "value": drop, "unit": "points", "passed": drop <= max_drop,
              "waived": False}, *extra_gates]
    _write(run / "export.json", {
        "source": str(run), "dataset": "digits", "input_range": [0.0, 1.0], "data_range": [0.0, 1.0],
        "calibration_samples": 50,
        "input": {"shape": [1, 8, 8, 1], "dtype": "int8", "scale": 0.0039, "zero_point": -128},
        "output": {"shape": [1, 10], "dtype": "int8", "scale": 0.06, "zero_point": -21},
        "parity": {"samples": samples, "keras_accuracy": keras, "twin_accuracy": tflite, "tflite_accuracy": tflite,
                   "drop": drop, "agreement": 98.5, "interpreter": "tflite-micro 0.dev", "units": "percent"},
        "deployed": deployed, "gates": gates,
        "files": ["model.tflite", "model_data.h", "model_data.cc", "footprint.json", "export.json"],
    })
    write_footprint(run, params=params, packed=packed, deployed=deployed)  # export rewrites it


def write_attack(run: Path, *, n=100, clean_k=95, robust=None, masking_flag=False, eps=EPS) -> None:
    """`robust`: attack -> robust k per eps (nested, so non-increasing)."""
    robust = robust or {"fgsm": [80, 60], "pgd": [70, 40]}
    attacks = []
    params = {"fgsm": {"rel_step": 1.0, "random_start": False, "loss": "ce"},
              "pgd": {"steps": 20, "rel_step": 0.25, "random_start": True, "restarts": 1, "loss": "ce"}}
    for name, ks in robust.items():
        attacks.append({
            "name": name, "kind": "white-box",
            "implementation": {"library": "tinyharden", "version": "0.1.0", "algorithm": name.upper()},
            "params": params.get(name, {}), "minimum_norm": False, "attack_norm": "linf", "eval_norm": "linf", "eot": 1,
            "results": [{"eps": e, "robust_accuracy": _prop(k, n), "robust_accuracy_run": _prop(k, n),
                         "success_rate": _prop(clean_k - k, clean_k),
                         "perturbation": {"norm": "linf", "count": clean_k - k, "mean": e, "median": e},
                         "recheck": {"policy": "clip", "out_of_ball": 0, "out_of_range": 0, "non_finite": 0,
                                     "rejected": 0}, "time_s": 0.1} for e, k in zip(eps, ks)],
            "time_s": 0.2})
    per_eps = [{"eps": e, "robust_accuracy": _prop(min(ks[i] for ks in robust.values()) - 2, n),
                "strongest_attack": min(robust, key=lambda a: robust[a][i])} for i, e in enumerate(eps)]
    checks = [{"name": "blackbox_beats_whitebox", "flagged": False, "message": "not run", "skipped": True},
              {"name": "eps_not_decreasing", "flagged": False, "message": "accuracy falls as eps grows"},
              {"name": "large_eps_pgd", "flagged": masking_flag,
               "message": "PGD at eps 0.5 leaves accuracy at 0.600 on 95 samples" if masking_flag else "ok"},
              {"name": "zero_gradients", "flagged": False, "message": "input gradients are informative"}]
    _write(run / "attack.json", {
        "schema_version": 1, "tool": "tinyharden attack", "created": "2026-11-27T08:36:59+00:00",
        "target": {"path": str(run / "model.h5"), "kind": "keras", "run_dir": str(run), "name": run.name},
        "data": {"dataset": "digits", "split": "test", "n": n, "first_n": True, "data_seed": 0,
                 "input_range": [0.0, 1.0], "space": "features", "units": "[0,1] data units"},
        "config": {"suite": list(robust), "eps": list(eps), "norm": "linf", "seed": 0, "policy": "clip",
                   "batch_size": 256, "eot": 1, "eot_reason": "deterministic model: no EOT"},
        "clean": {"accuracy": _prop(clean_k, n), "attacked": clean_k},
        "attacks": attacks,
        "suite": {"robust_accuracy": per_eps[-1]["robust_accuracy"], "per_eps": per_eps, "definition": "..."},
        "masking": {"flagged": masking_flag, "checks": checks},
        "per_sample": {}, "time_s": 1.0, "gate": None, "examples": None, "versions": {},
    })


@pytest.fixture
def runs(tmp_path) -> dict[str, Path]:
    """full: trained, attacked, exported; plain: metrics.json (and footprint.json) only."""
    full, plain = tmp_path / "runs" / "full", tmp_path / "runs" / "plain"
    write_metrics(full, acc=0.95)
    write_export(full)
    write_attack(full)
    write_metrics(plain, acc=0.90, quant="float", defense="none", params=5322)
    write_footprint(plain, params=5322, packed=21288)
    return {"full": full, "plain": plain}


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def report_json(*args) -> dict:
    r = invoke("report", *args, "--json", "--no-plots")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    validate(doc)
    return doc


def rows_by_id(doc: dict) -> dict[str, dict]:
    return {row["id"]: row for row in doc["rows"]}


# --------------------------------------------------------------------------- rows and numbers

def test_rows_hold_the_runs_figures(runs):
    doc = report_json(runs["full"], runs["plain"])
    assert doc["schema_version"] == SCHEMA_VERSION == 1
    rows = rows_by_id(doc)
    assert list(rows) == ["full", "plain"]  # digits: no published rows in auto mode
    full = rows["full"]
    assert (full["dataset"], full["model"], full["quantization"], full["defense"]) == ("digits", "cnn", "stq", "JR(logits)")
    assert (full["parameters"], full["packed_bytes"], full["flash_bytes"], full["ram_bytes"]) == (19850, 5000, 10040, 4408)
    assert full["clean"]["value"] == 0.95 and full["clean"]["n"] == 359
    assert full["clean"]["ci95"] == pytest.approx(list(wilson_interval(round(0.95 * 359), 359)))
    # Attack columns at the largest eps of the sweep, with their interval and budget.
    assert doc["attack_columns"] == ["fgsm", "pgd"]
    pgd = next(c for c in full["attacks"] if c["name"] == "pgd")
    assert pgd["value"] == 0.40 and pgd["n"] == 100 and pgd["eps"] == pytest.approx(8 / 255)
    assert pgd["ci95"] == pytest.approx(list(wilson_interval(40, 100)))
    assert "eps 8/255 linf" in pgd["budget"] and "n=100" in pgd["budget"] and "steps=20" in pgd["budget"]
    assert pgd["params"]["steps"] == 20
    wc = full["worst_case"]
    assert wc["value"] == 0.38 and wc["strongest_attack"] == "pgd" and wc["attacks"] == ["fgsm", "pgd"]
    assert full["export"]["int8"]["value"] == pytest.approx(0.945) and full["export"]["drop_points"] == pytest.approx(0.5)
    assert full["flags"] == [] and full["missing"] == []
    # Sweeps start at eps 0 with the attacked samples' clean accuracy.
    worst = next(s for s in full["sweeps"] if s["attack"] == "worst case")
    assert [p["eps"] for p in worst["points"]] == pytest.approx([0.0, *EPS])
    assert worst["points"][0]["value"] == 0.95


def test_metrics_only_run_reports_with_empty_attack_and_export_cells(runs):
    doc = report_json(runs["plain"])
    row = doc["rows"][0]
    assert row["clean"]["value"] == 0.90 and row["packed_bytes"] == 21288
    assert row["attacks"] == [] and row["worst_case"] is None and row["export"] is None
    assert row["flash_bytes"] is None and row["ram_bytes"] is None
    assert set(row["missing"]) == {"attack.json", "export.json"}
    r = invoke("report", runs["plain"], "--no-plots")
    assert r.exit_code == 0, r.output
    assert "plain" in r.stdout and "90.00%" in r.stdout and "attack cells empty" in r.stdout


def test_eps_option_picks_a_budget_from_the_sweep(runs):
    doc = report_json(runs["full"], "--eps", "2/255")
    full = doc["rows"][0]
    assert {c["name"]: c["value"] for c in full["attacks"]} == {"fgsm": 0.80, "pgd": 0.70}
    assert full["worst_case"]["value"] == 0.68 and doc["headline_eps"] == pytest.approx(2 / 255)
    doc = report_json(runs["full"], "--eps", "4/255")
    full = doc["rows"][0]
    assert full["attacks"] == [] and full["worst_case"] is None
    assert [f["code"] for f in full["flags"]] == ["eps_missing"] and "2/255, 8/255" in full["flags"][0]["message"]


def test_baseline_marks_a_row_and_gives_deltas(runs):
    write_export(runs["plain"], keras=90.0, tflite=90.0, flash=20080, arena=8816)
    doc = report_json(runs["full"], "--baseline", runs["plain"])
    rows = rows_by_id(doc)
    assert doc["baseline"] == "plain" and rows["plain"]["baseline"] and rows["plain"]["delta"] is None
    d = rows["full"]["delta"]
    assert d["clean_points"] == pytest.approx(5.0)
    assert d["flash_bytes_ratio"] == pytest.approx(0.5) and d["ram_bytes_ratio"] == pytest.approx(0.5)
    assert d["worst_case_points"] is None  # the baseline was never attacked
    assert list(rows) == ["plain", "full"]  # a baseline outside RUN... is added first
    # A published row can be the baseline too, for runs on its dataset only.
    doc = report_json(runs["full"], "--references", "all", "--baseline", "published:cifar10-stq-jr")
    assert rows_by_id(doc)["full"]["delta"] is None  # digits vs CIFAR-10: no meaningful delta
    write_metrics(runs["full"], acc=0.95, dataset="cifar10")
    doc = report_json(runs["full"], "--references", "all", "--baseline", "published:cifar10-stq-jr")
    full = rows_by_id(doc)["full"]
    assert full["delta"]["clean_points"] == pytest.approx(100 * (0.95 - 0.8244))
    assert full["delta"]["attacks_points"]["pgd"] == pytest.approx(100 * (0.40 - 0.3359))


def test_published_rows_are_marked_and_carry_no_interval(runs, tmp_path):
    doc = report_json(runs["full"], "--references", "all")
    published = [r for r in doc["rows"] if r["kind"] == "published"]
    assert [r["dataset"] for r in published] == ["cifar10", "cifar10", "speech_commands"]
    cifar = published[0]
    assert cifar["clean"]["value"] == 0.8244 and cifar["clean"]["ci95"] is None
    assert cifar["attacks"][0]["name"] == "pgd" and cifar["attacks"][0]["value"] == 0.3359
    assert cifar["attacks"][0]["budget"] == "published" and "not measured here" in cifar["source"]
    assert published[1]["attacks"][0]["value"] == 0.1254 and published[1]["clean"] is None
    assert published[2]["clean"]["value"] == 0.9164 and published[2]["attacks"][0]["value"] == 0.8429
    # auto: a CIFAR-10 run brings in the CIFAR-10 references only.
    cifar_run = tmp_path / "c10"
    write_metrics(cifar_run, dataset="cifar10")
    doc = report_json(cifar_run)
    assert [r["id"] for r in doc["rows"][1:]] == ["published:cifar10-stq-jr", "published:mlperf-tiny-resnet8"]
    r = invoke("report", cifar_run, "--no-plots")
    assert r.exit_code == 0 and "published" in r.stdout and "82.44%" in r.stdout


def test_flags_for_gradient_masking_and_export_drop(runs):
    write_attack(runs["full"], masking_flag=True)
    write_export(runs["full"], keras=95.0, tflite=91.0, max_drop=1.0)
    doc = report_json(runs["full"])
    flags = {f["code"]: f["message"] for f in doc["rows"][0]["flags"]}
    assert "masking:large_eps_pgd" in flags and "gradient masking" in flags["masking:large_eps_pgd"]
    assert "export_drop" in flags and "4.00 points" in flags["export_drop"]
    r = invoke("report", runs["full"], "--no-plots")
    assert r.exit_code == 0
    assert "gradient masking" in r.stderr and "export_drop" in r.stdout


def test_folders_of_bare_model_attack_and_export_report_what_they_have(tmp_path):
    attacked, exported = tmp_path / "attack-mlp", tmp_path / "export-mlp"
    write_attack(attacked, clean_k=97)
    write_export(exported)
    r = invoke("report", attacked, exported, "--min-clean", "0.5", "--json", "--no-plots")
    assert r.exit_code == 3, r.output  # the export folder has no clean accuracy to gate
    doc = json.loads(r.stdout)
    rows = rows_by_id(doc)
    assert rows["attack-mlp"]["clean"] == {**rows["attack-mlp"]["clean"], "value": 0.97, "source": "attack.json"}
    assert rows["attack-mlp"]["worst_case"]["value"] == 0.38 and rows["attack-mlp"]["flash_bytes"] is None
    assert rows["export-mlp"]["clean"] is None and rows["export-mlp"]["flash_bytes"] == 10040
    assert rows["export-mlp"]["dataset"] == "digits"
    assert [(g["run"], g["passed"]) for g in doc["gates"]["results"]] == [("attack-mlp", True), ("export-mlp", False)]


# --------------------------------------------------------------------------- missing and damaged files

def _one_line_error(r, code: int = 2) -> str:
    assert r.exit_code == code, r.output
    assert "Traceback" not in r.output
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error:")
    return lines[-1]


@pytest.mark.parametrize("case", ["absent", "unfinished", "empty", "bad_json", "attack_layout", "metrics_layout"])
def test_missing_or_damaged_files_name_the_run_and_the_problem(runs, tmp_path, case):
    run = tmp_path / "runs" / "broken"
    if case == "unfinished":
        run.mkdir(parents=True)
        (run / "recipe.yaml").write_text("name: broken\n")
    elif case == "empty":
        run.mkdir(parents=True)
    elif case == "bad_json":
        write_metrics(run)
        (run / "attack.json").write_text("{not json")
    elif case == "attack_layout":
        write_metrics(run)
        _write(run / "attack.json", {"schema_version": 2, "results": []})
    elif case == "metrics_layout":
        _write(run / "metrics.json", {"schema_version": 1, "model": "cnn"})
    line = _one_line_error(invoke("report", runs["full"], run, "--no-plots"))
    assert "broken" in line
    expected = {"absent": "not found", "unfinished": "missing metrics.json", "empty": "none of metrics.json",
                "bad_json": "attack.json' is not valid JSON", "attack_layout": "attack.json lacks 'attacks'",
                "metrics_layout": "metrics.json lacks 'test'"}[case]
    assert expected in line
    if case == "unfinished":
        assert "resume the training run" in line
    if case == "attack_layout":
        assert "schema_version 2" in line and "tinyharden attack" in line


# --------------------------------------------------------------------------- gates

@pytest.mark.parametrize("gate,passing,failing,value", [
    ("--min-clean", "0.9", "96%", "95.00%"),
    ("--min-robust", "0.38", "0.5", "38.00%"),
    ("--max-flash", "10040", "8K", "10,040 B"),
    ("--max-ram", "4.5KiB", "4000", "4,408 B"),
])
def test_each_gate_passes_and_fails_where_it_should(runs, gate, passing, failing, value):
    r = invoke("report", runs["full"], gate, passing, "--no-plots")
    assert r.exit_code == 0, r.output
    r = invoke("report", runs["full"], gate, failing, "--json", "--no-plots")
    assert r.exit_code == 3, r.output
    doc = json.loads(r.stdout)  # the report is still printed before the exit code
    validate(doc)
    failed = [g for g in doc["gates"]["results"] if not g["passed"]]
    name = gate.lstrip("-").replace("-", "_")
    assert [(g["run"], g["gate"]) for g in failed] == [("full", name)]
    line = _one_line_error(r, 3)
    assert "full" in line and name in line and value in line


def test_a_gate_on_a_figure_the_run_lacks_fails(runs):
    r = invoke("report", runs["full"], runs["plain"], "--min-robust", "0.1", "--max-flash", "1M", "--no-plots")
    line = _one_line_error(r, 3)
    assert "2 of 4 gates failed" in line and "plain: min_robust: no attack.json" in line
    assert "plain: max_flash: not exported" in line
    assert r.stderr.count("plain: min_robust: no attack.json") == 1  # a failed gate is printed once


def test_bad_gate_values_are_usage_errors(runs):
    assert "--min-clean must be an accuracy" in _one_line_error(invoke("report", runs["full"], "--min-clean", "high"))
    assert "--max-flash must be a size" in _one_line_error(invoke("report", runs["full"], "--max-flash", "12parsecs"))
    assert "--format must be one of" in _one_line_error(invoke("report", runs["full"], "--format", "pdf"))


# --------------------------------------------------------------------------- formats, plots, schema

def test_html_is_one_self_contained_file_with_embedded_plots(runs, tmp_path):
    out = tmp_path / "out" / "report.html"
    r = invoke("report", runs["full"], runs["plain"], "--format", "html", "--out", out, "--baseline", runs["plain"])
    assert r.exit_code == 0, r.output
    text = out.read_text()
    assert text.startswith("<!DOCTYPE html>") and "<style>" in text
    assert len(re.findall(r'src="data:image/png;base64,[A-Za-z0-9+/=]+"', text)) == 3
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", text, re.I)
    assert not re.search(r"<link\b|<script\b|@import|url\(", text, re.I)
    assert "full" in text and "38.00%" in text and "★ baseline" in text
    for name in ("report_robust_vs_eps.png", "report_accuracy_vs_footprint.png", "report_training_curves.png"):
        assert (out.parent / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_md_csv_and_table_formats(runs, tmp_path):
    r = invoke("report", runs["full"], runs["plain"], "--format", "csv", "--no-plots")
    assert r.exit_code == 0, r.output
    table = list(csv.DictReader(io.StringIO(r.stdout)))
    assert [row["id"] for row in table] == ["full", "plain"]
    assert float(table[0]["pgd"]) == 0.40 and table[0]["pgd_n"] == "100" and table[1]["pgd"] == ""
    assert int(table[0]["flash_bytes"]) == 10040 and float(table[0]["worst_case"]) == 0.38
    md = tmp_path / "r.md"
    r = invoke("report", runs["full"], "--format", "md", "--out", md)
    assert r.exit_code == 0, r.output
    text = md.read_text()
    assert "| run |" in text and "| full" in text and "40.00%" in text and "report_robust_vs_eps.png" in text
    r = invoke("report", runs["full"], "--no-plots")
    assert r.exit_code == 0 and "40.00%" in r.stdout and "9.8 KiB" in r.stdout


def test_plots_and_html_default_to_the_first_run_folder(runs):
    r = invoke("report", runs["full"], runs["plain"], "--format", "html")
    assert r.exit_code == 0, r.output
    assert r.stdout == "" and (runs["full"] / "report.html").is_file()
    assert (runs["full"] / "report_robust_vs_eps.png").is_file()
    assert (runs["full"] / "report_training_curves.png").is_file()


def test_schema_rejects_what_it_does_not_describe(runs):
    doc = report_json(runs["full"])
    for mutate, where in [
        (lambda d: d.update(schema_version=2), "schema_version"),
        (lambda d: d["rows"][0].update(surprise=1), "surprise"),
        (lambda d: d["rows"][0]["clean"].update(value=1.5), "clean.value"),
        (lambda d: d["rows"][0].pop("worst_case"), "worst_case"),
    ]:
        bad = json.loads(json.dumps(doc))
        mutate(bad)
        with pytest.raises(ValueError, match=where):
            validate(bad)


def test_report_needs_no_tensorflow(runs):
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom tinyharden.cli.app import app\n"
            f"r = CliRunner().invoke(app, ['report', {str(runs['full'])!r}, '--format', 'html', '--out', "
            f"{str(runs['full'] / 'r.html')!r}])\n"
            "assert r.exit_code == 0, r.output\nprint('TF_LOADED' if 'tensorflow' in sys.modules else 'TF_ABSENT')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "TF_ABSENT" in proc.stdout


# --------------------------------------------------------------------------- tinyharden run

@pytest.mark.slow
def test_run_trains_attacks_exports_and_reports_into_one_folder(tmp_path):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump({
        "name": "tiny", "seed": 0,
        "data": {"dataset": "digits", "limit_train": 400, "limit_test": 120},
        "model": {"name": "cnn"}, "quantization": {"preset": "int8"},
        "train": {"epochs": 2, "batch_size": 64, "lr": 0.005},
        "attack": {"suite": ["fgsm"], "eps": ["8/255"], "n": 50},
        "export": {"formats": ["tflite"], "calib": 50, "max_drop": 100},
    }))
    ws = tmp_path / "ws"
    r = runner.invoke(app, ["-w", str(ws), "run", str(recipe), "--limit", "20", "--min-clean", "0.01"])
    assert r.exit_code == 0, r.output
    run = ws / "tiny"
    for name in ("metrics.json", "attack.json", "export.json", "footprint.json", "model.tflite", "report.html",
                 "report.json", "report_training_curves.png"):
        assert (run / name).is_file(), name
    doc = json.loads((run / "report.json").read_text())
    validate(doc)
    row = doc["rows"][0]
    assert row["id"] == "tiny" and row["attacks"][0]["name"] == "fgsm" and row["attacks"][0]["n"] == 50
    assert row["flash_bytes"] > 0 and row["export"]["samples"] == 20 and doc["gates"]["passed"]
    # ... and `report` reads the folder like any other.
    again = report_json(run)
    assert again["rows"][0]["worst_case"]["value"] == row["worst_case"]["value"]


@pytest.mark.parametrize("text, label, expect", [
    (["0.0009804", "1/255"], ["0.25 int8 steps", "1 int8 steps"], ["0.25 int8 steps", "1 int8 steps"]),  # a recipe's numbers
    (["0.25step", "1/255"], ["0.25 int8 steps", "1 int8 steps"], ["0.25step", "1 int8 steps"]),  # the user's own words win
    (["1/255", "2/255"], None, ["1/255", "2/255"]),  # images: no unit of their own
])
def test_budgets_are_named_by_the_users_text_else_by_the_spaces_unit(text, label, expect):
    from types import SimpleNamespace

    from tinyharden.report.collect import eps_names

    config = SimpleNamespace(eps=[1 / 1020, 1 / 255] if label else [1 / 255, 2 / 255], eps_text=text, eps_label=label)
    assert list(eps_names(SimpleNamespace(config=config)).values()) == expect
