"""One CLI, one set of conventions: help, --json, -n, sizes, --data-path, `runs`, and the warnings that
replace silent surprises. The fast tests read fixture folders written through the artifact models; the
ones that train a model are marked slow."""
from __future__ import annotations

import inspect
import json
import os
import re
import time
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from tinyharden.artifacts import (AttackArtifact, ExportArtifact, FootprintArtifact, MetricsArtifact, RunsOutput,
                                  Score, CleanScore)
from tinyharden.cli.app import app
from tinyharden.workspace import atomic_write_json

runner = CliRunner()
COMMANDS = ["train", "quantize", "attack", "export", "evaluate", "report", "run", "sweep", "runs", "pretrained",
            "doctor"]


def _click():
    return typer.main.get_command(app)


def _options(name: str) -> dict[str, object]:
    """Every option string of command `name` -> its click parameter."""
    command = _click().commands[name]
    return {opt: p for p in command.params for opt in (*p.opts, *p.secondary_opts)}


def invoke(*args: str, env: dict | None = None):
    return runner.invoke(app, list(args), env=env)


# --------------------------------------------------------------------------- help

def test_commands_are_listed_in_pipeline_order_and_completion_is_on():
    r = invoke("--help", env={"COLUMNS": ""})
    assert r.exit_code == 0, r.output
    listed = [line.split()[1] for line in r.stdout.splitlines()
              if line.startswith("│ ") and len(line.split()) > 1 and line.split()[1] in COMMANDS]
    assert listed == COMMANDS
    root = {opt for p in _click().params for opt in p.opts}
    assert {"--install-completion", "--show-completion"} <= root


@pytest.mark.parametrize("name", [None, *COMMANDS])
def test_every_help_has_an_example_no_bool_metavar_no_cut_and_no_broken_sentence(name, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("TERMINAL_WIDTH", raising=False)
    r = invoke(*([name] if name else []), "--help")
    assert r.exit_code == 0, r.output
    text = r.stdout
    assert "<bool>" not in text
    assert "…" not in text  # rich cuts a cell that does not fit with an ellipsis
    assert "Example" in text
    assert max(len(line) for line in text.splitlines()) > 100  # piped: rendered wide, not squeezed to 80
    doc = app.info.help if name is None else next(c.callback for c in app.registered_commands if c.name == name).__doc__
    for paragraph in inspect.cleandoc(doc or "").split("\n\n"):
        # rich keeps a docstring's line breaks: a paragraph on two lines prints as a sentence broken mid-line
        assert "\n" not in paragraph, (name, paragraph)


def test_help_honours_columns():
    r = invoke("attack", "--help", env={"COLUMNS": "90"})
    assert r.exit_code == 0 and max(len(line) for line in r.stdout.splitlines()) <= 90


# --------------------------------------------------------------------------- consistent options

@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_json(name):
    assert "--json" in _options(name)


@pytest.mark.parametrize("name", ["attack", "export", "run", "evaluate"])
def test_the_sample_count_is_n_everywhere_and_limit_stays_a_hidden_alias(name):
    opts = _options(name)
    assert opts["-n"] is opts["--n"]
    if name in ("export", "run"):
        assert opts["--limit"].hidden and opts["--limit"] is not opts["-n"]
        r = invoke(name, "--help")
        assert "--limit" not in r.stdout


def test_limit_and_n_merge():
    from tinyharden.cli.parsing import sample_count
    from tinyharden.errors import UserError

    assert (sample_count(5, None), sample_count(None, 7), sample_count(3, 3), sample_count(None, None)) == (5, 7, 3, None)
    with pytest.raises(UserError, match="old name"):
        sample_count(5, 6)
    with pytest.raises(UserError, match="at least 1"):
        sample_count(None, 0)


@pytest.mark.parametrize("name", ["train", "quantize", "attack", "export", "evaluate", "run", "sweep"])
def test_every_command_that_loads_data_takes_data_path(name):
    assert "--data-path" in _options(name)


def test_sizes_take_units_everywhere(tmp_path):
    from tinyharden.cli.parsing import parse_bytes

    assert [parse_bytes(t, "--max-flash") for t in ("65536", "64K", "64KiB", "1M", "1.5K")] == [65536, 65536, 65536,
                                                                                                 1048576, 1536]
    for command in ("export", "run", "report"):
        for flag in ("--max-flash", "--max-ram"):
            r = invoke("-w", str(tmp_path), command, str(tmp_path / "nowhere"), flag, "12parsecs")
            assert r.exit_code == 2 and f"{flag} must be a size" in r.output, (command, flag, r.output)
    # 64K passes the parser: the error is now about the missing model, not the size
    r = invoke("-w", str(tmp_path), "export", str(tmp_path / "nowhere"), "--max-flash", "64K", "--max-ram", "1M")
    assert r.exit_code == 2 and "not found" in r.output and "must be a size" not in r.output


def test_attack_accepts_a_saved_model_folder_as_export_does(tmp_path):
    from tinyharden.jobs.attack import AttackRequest, _plan

    folder = tmp_path / "kws_saved"
    folder.mkdir()
    (folder / "saved_model.pb").write_bytes(b"")
    plan = _plan(AttackRequest(model=folder, dataset="digits"))
    assert (plan.path, plan.kind, plan.run_dir) == (folder, "keras", None)


# --------------------------------------------------------------------------- --json without training

def _json(r, kind: str) -> dict:
    assert r.exit_code in (0, 3), r.output
    doc = json.loads(r.stdout)  # the whole of stdout is one document
    assert doc["schema_version"] == 1 and doc["kind"] == kind, doc.get("kind")
    return doc


def test_json_of_doctor_pretrained_runs_and_report(tmp_path):
    doc = _json(invoke("doctor", "--json"), "tinyharden doctor")
    assert doc["versions"]["python"] and {d["name"] for d in doc["datasets"]} >= {"digits", "cifar10"}
    assert isinstance(_json(invoke("pretrained", "--json"), "tinyharden pretrained")["models"], list)
    ws = tmp_path / "ws"
    write_run(ws / "a", clean=0.9, worst=[0.5, 0.3], flash=9000)
    _json(invoke("runs", str(ws), "--json"), "tinyharden runs")
    _json(invoke("report", str(ws / "a"), "--json", "--no-plots"), "tinyharden report")


# --------------------------------------------------------------------------- runs

EPS = [2 / 255, 8 / 255]
NOW = float(int(time.time()))  # the fixture folders are dated relative to now: the CLI reads the clock


def write_run(folder: Path, *, clean: float, worst=None, flash=None, dataset="digits", model="cnn", age=0.0,
              now=None) -> Path:
    """A run folder as train, attack and export leave it, written through the artifact models."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "recipe.yaml").write_text(f"name: {folder.name}\ndata:\n  dataset: {dataset}\n")
    files = [folder / "recipe.yaml"]
    metrics = MetricsArtifact(schema_version=1, test=Score(accuracy=clean, n=359), model=model, run=folder.name,
                              dataset={"name": dataset})
    files.append(atomic_write_json(folder / "metrics.json", metrics.model_dump(mode="json")))
    if worst is not None:
        per_eps = [{"eps": e, "robust_accuracy": {"value": w, "k": round(w * 100), "n": 100}} for e, w in zip(EPS, worst)]
        attack = AttackArtifact(schema_version=1, attacks=[], clean=CleanScore(accuracy={"value": clean, "n": 100}),
                                suite={"per_eps": list(reversed(per_eps)), "robust_accuracy": per_eps[-1]["robust_accuracy"]},
                                data={"dataset": dataset, "n": 100}, target={"name": folder.name})
        files.append(atomic_write_json(folder / "attack.json", attack.model_dump(mode="json")))
    if flash is not None:
        deployed = {"flash_bytes": flash, "arena_bytes": 4000}
        files.append(atomic_write_json(folder / "export.json", ExportArtifact(
            parity={"samples": 100}, deployed=deployed, dataset=dataset).model_dump(mode="json")))
        files.append(atomic_write_json(folder / "footprint.json", FootprintArtifact(
            totals={"params": 100}, deployed=deployed).model_dump(mode="json")))
    stamp = (now or NOW) - age
    for f in files:
        os.utime(f, (stamp, stamp))
    return folder


def write_sweep(folder: Path, *, cells: list[str], clean: list[float], worst: list[float], now: float, age: float) -> None:
    for cell in cells:
        write_run(folder / cell, clean=0.5, dataset="digits", model="cnn", now=now, age=age)
    metrics = [{"key": "clean", "kind": "clean"}, {"key": "worst@8/255", "kind": "worst", "eps": EPS[1]}]
    points = [{"id": f"p{i}", "stats": {"clean": {"mean": c}, "worst@8/255": {"mean": w}}}
              for i, (c, w) in enumerate(zip(clean, worst))]
    atomic_write_json(folder / "sweep.json", {
        "schema_version": 1, "kind": "tinyharden sweep", "name": folder.name, "headline_eps": EPS[1],
        "metrics": metrics, "points": points,
        "cells": [{"id": c, "status": "done" if i else "failed"} for i, c in enumerate(cells)]})
    os.utime(folder / "sweep.json", (now - age, now - age))


@pytest.fixture
def workspace(tmp_path) -> Path:
    ws, now = tmp_path / "ws", NOW
    write_run(ws / "old-float", clean=0.97, model="cnn", now=now, age=3 * 86400)
    write_run(ws / "stq-jr", clean=0.95, worst=[0.80, 0.40], flash=10040, now=now, age=120)
    write_run(ws / "kws", clean=0.88, worst=[0.60, 0.20], dataset="speech_commands", model="ds_cnn", now=now,
              age=7200)
    write_sweep(ws / "lambda-sweep", cells=["c0", "c1", "c2"], clean=[0.93, 0.91], worst=[0.35, 0.45], now=now,
                age=60)
    (ws / "notes").mkdir()
    (ws / "notes" / "todo.txt").write_text("not a run")
    broken = ws / "broken"
    broken.mkdir()
    (broken / "metrics.json").write_text("{not json")
    (ws / ".cache").mkdir()  # hidden: ignored, not counted
    return ws


def test_runs_lists_newest_first_with_accuracy_eps_flash_and_skips_foreign_folders(workspace):
    from tinyharden.jobs.runs import list_runs

    listing = list_runs(workspace, now=NOW)
    assert isinstance(listing, RunsOutput)
    assert [r.name for r in listing.runs] == ["lambda-sweep", "stq-jr", "kws", "old-float"]
    stq = listing.runs[1]
    assert (stq.model, stq.dataset, stq.clean_accuracy, stq.robust_accuracy, stq.robust_eps, stq.flash_bytes,
            stq.age_seconds) == ("cnn", "digits", 0.95, 0.40, EPS[1], 10040, 120.0)
    old = listing.runs[3]
    assert (old.robust_accuracy, old.robust_eps, old.flash_bytes) == (None, None, None)
    sweep = listing.runs[0]
    assert (sweep.type, sweep.cells, sweep.cells_done, sweep.clean_accuracy, sweep.robust_accuracy,
            sweep.robust_eps) == ("sweep", 3, 2, 0.93, 0.45, EPS[1])
    assert sorted(Path(s["folder"]).name for s in listing.skipped) == ["broken", "notes"]
    assert "not valid JSON" in next(s["reason"] for s in listing.skipped if s["folder"].endswith("broken"))
    assert [r.name for r in list_runs(workspace, dataset="speech_commands").runs] == ["kws"]


def test_runs_cli_table_json_filter_and_one_line_errors(workspace, tmp_path):
    r = invoke("-w", str(workspace), "runs")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    order = [n for line in lines for n in ["lambda-sweep", "stq-jr", "kws", "old-float"] if f" {n} " in f" {line} "]
    assert order == ["lambda-sweep", "stq-jr", "kws", "old-float"]
    row = next(line for line in lines if " stq-jr " in line)
    assert all(cell in row for cell in ("95.00%", "40.00%", "8/255", "10,040 B", "digits"))
    assert "sweep, 2/3 cells" in r.stdout
    assert "Traceback" not in r.output and "skipped 2 folder(s)" in r.stderr
    doc = _json(invoke("runs", str(workspace), "--dataset", "speech_commands", "--json"), "tinyharden runs")
    assert [row["name"] for row in doc["runs"]] == ["kws"] and len(doc["skipped"]) == 2
    bad = invoke("runs", str(workspace), "--dataset", "digit")
    assert bad.exit_code == 2 and "digits" in bad.output and "Traceback" not in bad.output
    missing = invoke("runs", str(tmp_path / "nowhere"))
    assert missing.exit_code == 2 and "not a folder" in missing.output


# --------------------------------------------------------------------------- silent surprises

def test_near_chance_is_flagged_only_near_chance_on_enough_samples():
    from tinyharden.attacks.evaluation import near_chance

    assert near_chance(0.11, 500, 10)["code"] == "near_chance"
    assert near_chance(0.08, 500, 10) is not None  # below chance is as suspect
    assert near_chance(0.20, 500, 10) is None
    assert near_chance(0.10, 30, 10) is None  # too few samples to call
    assert near_chance(0.53, 200, 2) is not None


class _Outcome:
    def __init__(self, report):
        self.report = report


def _attack_report(**data) -> dict:
    return {"config": {"eot": 1}, "masking": {"checks": []}, "flags": [],
            "data": {"dataset": "digits", "split": "test", "n": 360, "requested_n": None, **data}}


def _alerts(monkeypatch) -> list[str]:
    from tinyharden.cli import attack as cli_attack

    seen: list[str] = []
    monkeypatch.setattr(cli_attack, "warn", seen.append)
    return seen


def test_attack_warns_once_when_n_exceeds_the_split_and_when_clean_accuracy_is_at_chance(monkeypatch):
    from tinyharden.attacks.evaluation import near_chance
    from tinyharden.cli.attack import notes

    seen = _alerts(monkeypatch)
    notes(_Outcome(_attack_report(requested_n=1000)))
    assert seen == ["-n 1000 is more than the digits test split holds: attacked all 360 samples"]
    seen.clear()
    notes(_Outcome(_attack_report(requested_n=100)))
    assert seen == []
    report = _attack_report()
    report["flags"] = [{**near_chance(0.1, 360, 10), "input_range": [0.0, 1.0]}]
    notes(_Outcome(report))
    assert len(seen) == 1 and "near chance" in seen[0] and "--input-range" in seen[0] and "0..1" in seen[0]
    seen.clear()
    report["data"]["input_range"] = [0.0, 1.0]
    report["flags"][0]["input_range"] = [0.0, 255.0]  # the user passed --input-range 0,255 and got chance
    notes(_Outcome(report))
    assert len(seen) == 1 and "--input-range fed it 0..255" in seen[0]


def test_report_shows_the_near_chance_flag_of_attack_json(tmp_path):
    from test_report import write_attack, write_metrics

    from tinyharden.attacks.evaluation import near_chance

    run = tmp_path / "runs" / "raw-pixels"
    write_metrics(run, acc=0.1)
    write_attack(run, clean_k=10, robust={"pgd": [9, 8]})
    doc = json.loads((run / "attack.json").read_text())
    doc["flags"] = [near_chance(0.1, 100, 10)]
    (run / "attack.json").write_text(json.dumps(doc))
    r = invoke("report", str(run), "--no-plots")
    assert r.exit_code == 0, r.output
    assert "near_chance" in r.stdout and "near chance" in r.stderr


def test_masking_warnings_compare_like_with_like_and_write_eps_as_fractions():
    from tinyharden.attacks import masking

    def rec(name, kind, nested, alone):
        return {"name": name, "kind": kind, "results": [
            {"eps": e, "robust_accuracy": {"value": a}, "robust_accuracy_run": {"value": b}}
            for e, a, b in zip(EPS, nested, alone)]}

    rising = masking.eps_not_decreasing([rec("pgd", "white-box", [0.50, 0.45], [0.50, 0.60])], 200)
    assert rising["flagged"]
    msg = rising["message"]
    assert "eps 8/255" in msg and "eps 2/255" in msg and "0.0314" not in msg
    assert "60.0%" in msg and "50.0%" in msg and "run alone" in msg  # the per-eps figures, named as such
    beaten = masking.blackbox_beats_whitebox([rec("pgd", "white-box", [0.70, 0.60], [0.70, 0.60]),
                                              rec("square", "black-box", [0.70, 0.40], [0.70, 0.40])], 200)
    assert beaten["flagged"] and "40.0%" in beaten["message"] and "60.0%" in beaten["message"]
    assert "eps 8/255" in beaten["message"] and "table's robust column" in beaten["message"]


def test_a_failed_report_gate_is_printed_once(tmp_path):
    from test_report import write_metrics

    run = tmp_path / "runs" / "r"
    write_metrics(run, acc=0.90)
    from test_report import write_footprint

    write_footprint(run)
    r = invoke("report", str(run), "--min-clean", "95%", "--no-plots")
    assert r.exit_code == 3
    assert len(re.findall(r"min_clean", r.stderr)) == 1, r.stderr


# --------------------------------------------------------------------------- real commands (train a model)

@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, dict]:
    ws = tmp_path_factory.mktemp("consistency-ws")
    r = invoke("-w", str(ws), "train", "recipes/quickstart.yaml", "train.epochs=1", "data.limit_train=300",
               "name=tiny", "--json")
    return ws, _json(r, "tinyharden train")


@pytest.mark.slow  # trains one epoch on 300 digits, then attacks, exports, evaluates, quantizes it (~1 min)
def test_json_of_every_command_that_needs_a_model(trained, tmp_path):
    ws, doc = trained
    run = Path(doc["run_dir"])
    assert doc["metrics"]["test"]["n"] > 0 and doc["footprint"]["totals"]["params"] > 0
    base = ["-w", str(ws)]
    att = invoke(*base, "attack", str(run), "-s", "fgsm", "--eps", "8/255", "-n", "1000", "--no-checks", "--json")
    report = _json(att, "tinyharden attack")
    assert report["data"]["requested_n"] == 1000 and report["data"]["n"] < 1000
    assert f"-n 1000 is more than the digits test split holds: attacked all {report['data']['n']} samples" in att.stderr
    exp = _json(invoke(*base, "export", str(run), "-n", "20", "--format", "tflite", "--json"), "tinyharden export")
    assert exp["export"]["parity"]["samples"] == 20 and exp["footprint"]["deployed"]["flash_bytes"] > 0
    old = _json(invoke(*base, "export", str(run), "--limit", "10", "--format", "tflite", "--json"), "tinyharden export")
    assert old["export"]["parity"]["samples"] == 10  # the old spelling still works
    ev = _json(invoke(*base, "evaluate", str(run), "-n", "5000", "--json"), "tinyharden evaluate")
    assert ev["evaluation"]["n"] < 5000 and "-n 5000 is more than" in invoke(*base, "evaluate", str(run), "-n", "5000").stderr
    q = invoke(*base, "quantize", str(run / "model.h5"), "--data", "digits", "--preset", "int8", "--json")
    _json(q, "tinyharden quantize")
    _json(invoke(*base, "report", str(run), "--json", "--no-plots"), "tinyharden report")


@pytest.mark.slow  # a model fed the wrong input range: trains nothing more, attacks 200 samples (~20 s)
def test_attack_with_the_wrong_input_range_warns_and_flags_the_report(trained):
    ws, doc = trained
    run = Path(doc["run_dir"])
    r = invoke("-w", str(ws), "attack", str(run / "model.h5"), "--data", "digits", "--input-range", "0,255",
               "-s", "fgsm", "--eps", "8/255", "-n", "200", "--no-checks", "--name", "wrong-range")
    assert r.exit_code == 0, r.output
    assert "near chance" in r.stderr and "--input-range" in r.stderr
    folder = ws / "wrong-range"
    assert [f["code"] for f in json.loads((folder / "attack.json").read_text())["flags"]] == ["near_chance"]
    rep = invoke("report", str(folder), "--no-plots")
    assert "near_chance" in rep.stdout


@pytest.mark.slow  # the whole pipeline on one epoch (~1 min)
def test_run_json_is_one_document(tmp_path):
    r = invoke("-w", str(tmp_path), "run", "recipes/quickstart.yaml", "train.epochs=1", "data.limit_train=300",
               "attack.n=40", "attack.suite=[fgsm]", "-n", "20", "--json")
    doc = _json(r, "tinyharden run")
    assert doc["report"]["kind"] == "tinyharden report" and doc["attack"]["kind"] == "tinyharden attack"
    assert doc["export"]["parity"]["samples"] == 20


def test_a_job_error_names_the_flag_the_user_types():
    """Jobs word errors without flags (tests/test_style.py); the CLI adds its own flag for the option at fault."""
    r = CliRunner().invoke(app, ["evaluate", "no-such-model", "--split", "train"])
    assert r.exit_code == 2 and "--split" in r.output and "Traceback" not in r.output
    from tinyharden.cli.common import with_flag

    assert with_flag("no dataset for the model", "dataset") == "no dataset for the model (--data)"
    assert with_flag("bad range", "input_range") == "bad range (--input-range)"
    assert with_flag("pass --data cifar10", "dataset") == "pass --data cifar10"
    assert with_flag("plain", None) == "plain"
