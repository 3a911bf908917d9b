"""`tinyharden sweep`: sweep files, grid cells as run folders, the local and Ray engines, resume, aggregate."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tinyharden.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "recipes" / "quickstart.yaml"
# Small and quick: 1 epoch on 400 training images, two attacks on 32 test images.
TINY = ["data.folds=3", "train.epochs=1", "data.limit_train=400", "attack.suite=[fgsm,pgd]", "attack.n=32",
        "attack.eps=[8/255]"]


def write_sweep(folder: Path, name: str, grid: str, *, overrides=TINY, stages="[train, attack]", extra="") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(f"name: {name}\nrecipe: {QUICKSTART}\ngrid:\n{grid}seeds: [0]\nstages: {stages}\n"
                    f"overrides: {json.dumps(list(overrides))}\n{extra}")
    return path


def cli(*args: str, timeout: float = 2400, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    return subprocess.run([sys.executable, "-m", "tinyharden", *args], capture_output=True, text=True, check=False,
                          timeout=timeout, env=env, cwd=ROOT, **kw)


# --------------------------------------------------------------------------- sweep files and grids

@pytest.mark.parametrize("body, line, needle", [
    ("name: s\nrecipe: {r}\ngrid:\n  data.fold: [0]\nseed: [0]\n", 5, "unknown key 'seed'; did you mean 'seeds'?"),
    ("name: s\nrecipe: {r}\ngrid:\n  robustness.jacobian.lamda: [0.1]\n", 4, "did you mean 'lambda'?"),
    ("name: s\nrecipe: {r}\ngrid:\n  train.epochs: []\n", 4, "has no values"),
    ("name: s\nrecipe: {r}\ngrid:\n  data.fold: [0, 7]\n", 4, "data.fold 7 is not below data.folds 5"),
    ("name: s\nrecipe: {r}\ngrid:\n  train.epochs: [0]\n", 4, "greater than 0"),
    ("name: s\nrecipe: {r}\ngrid: {{data.fold: [0]\n", 4, "fix the YAML syntax"),
    ("name: s\nrecipe: {r}\nstages: [attack]\n", 3, "stages must include train"),
])
def test_a_malformed_sweep_file_gets_a_one_line_error_with_file_and_line(tmp_path, body, line, needle):
    from tinyharden.sweep.grid import expand

    path = tmp_path / "bad.yaml"
    path.write_text(body.format(r=QUICKSTART))
    with pytest.raises(UserError) as exc:
        expand(path)
    message = str(exc.value)
    assert "\n" not in message
    assert message.startswith(f"{path}:{line}:"), message
    assert needle in message


def test_the_cli_prints_the_sweep_file_error_on_one_line_and_exits_2(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(f"name: s\nrecipe: {QUICKSTART}\ngrid:\n  train.epoch: [1]\n")
    result = cli("sweep", str(path), timeout=120)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {path}:4: unknown key 'train.epoch'; did you mean 'epochs'?"], result.stderr


def test_the_grid_expands_to_one_resolved_recipe_per_cell(tmp_path):
    from tinyharden.sweep.grid import expand

    path = write_sweep(tmp_path, "g", "  robustness.jacobian.lambda: [0.001, 0.01]\n  data.fold: [0, 2]\n",
                       extra="")
    path.write_text(path.read_text().replace("seeds: [0]", "seeds: [0, 1]"))
    sweep = expand(path)
    assert [c.id for c in sweep.cells][:3] == ["lambda-0.001_fold-0_seed-0", "lambda-0.001_fold-0_seed-1",
                                               "lambda-0.001_fold-2_seed-0"]
    assert len(sweep.cells) == 8 and sweep.swept == ["robustness.jacobian.lambda"]
    last = sweep.cells[-1]
    assert (last.recipe["robustness"]["jacobian"]["lambda"], last.recipe["data"]["fold"], last.recipe["seed"],
            last.recipe["name"], last.recipe["train"]["epochs"]) == (0.01, 2, 1, last.id, 1)
    assert last.point == {"robustness.jacobian.lambda": 0.01}


def test_sweep_data_path_reaches_every_cell_and_a_bad_override_is_the_sweep_files_error(tmp_path):
    from tinyharden.sweep.grid import expand

    path = write_sweep(tmp_path, "d", "  data.fold: [0, 1]\n", extra="")
    sweep = expand(path, overrides=[f"data.path={tmp_path / 'data'}"])
    assert [c.recipe["data"]["path"] for c in sweep.cells] == [str(tmp_path / "data")] * 2
    assert all(c.recipe["data"]["path"] is None for c in expand(path).cells)
    with pytest.raises(UserError, match="overrides"):
        expand(path, overrides=["data.pth=x"])


def test_fold_and_seed_placeholders_chain_each_cell_onto_the_same_cell_of_another_sweep(tmp_path):
    from tinyharden.sweep.grid import expand

    chained = [*TINY, "model.init=runs/cv-float/fold-{fold}_seed-{seed}"]
    path = write_sweep(tmp_path, "c", "  data.fold: [0, 2]\n", overrides=chained)
    path.write_text(path.read_text().replace("seeds: [0]", "seeds: [0, 1]"))
    inits = [(c.id, c.recipe["model"]["init"]) for c in expand(path).cells]
    assert inits == [(f"fold-{f}_seed-{s}", f"runs/cv-float/fold-{f}_seed-{s}") for f in (0, 2) for s in (0, 1)]
    no_folds = write_sweep(tmp_path, "n", "  train.lr: [0.01]\n", overrides=chained)
    with pytest.raises(UserError, match=r"'\{fold\}' needs a data.fold grid"):
        expand(no_folds)


def test_digits_folds_are_a_stratified_partition_of_the_images():
    from tinyharden.data import load_dataset
    from tinyharden.recipe import DataSpec

    tests = [load_dataset(DataSpec(dataset="digits", fold=k, folds=5), seed=0) for k in range(5)]
    keys = [{x.tobytes() + bytes([y]) for x, y in zip(ds.x_test, ds.y_test)} for ds in tests]
    assert sum(len(k) for k in keys) == len(set().union(*keys))  # disjoint
    assert sum(len(ds.y_test) for ds in tests) == 1797  # and together every image
    for ds in tests:
        counts = np.bincount(ds.y_test, minlength=10)
        totals = sum(np.bincount(d.y_test, minlength=10) for d in tests)
        assert np.all(np.abs(counts - totals / 5) < 1)  # each class split evenly over the folds
        train = {x.tobytes() for x in ds.x_train} | {x.tobytes() for x in ds.x_val}
        assert not train & {x.tobytes() for x in ds.x_test}
    with pytest.raises(UserError, match="data.fold is 5 but data.folds is 5"):
        load_dataset(DataSpec(dataset="digits", fold=5, folds=5), seed=0)


def test_stats_are_the_mean_sample_std_and_t_interval():
    from tinyharden.sweep.aggregate import stats

    s = stats([0.9, 0.8, 1.0])
    assert math.isclose(s["mean"], 0.9) and math.isclose(s["std"], 0.1)
    half = 4.302652729911275 * 0.1 / math.sqrt(3)  # t(0.975, 2)
    assert np.allclose(s["ci95"], [0.9 - half, 0.9 + half])
    assert stats([0.9, 1.0], (0.0, 1.0))["ci95"][1] == 1.0
    assert stats([0.5])["std"] is None and stats([0.5])["ci95"] is None


# --------------------------------------------------------------------------- real sweeps

def _metrics(cell_dir: Path) -> dict:
    m = json.loads((cell_dir / "metrics.json").read_text())
    a = json.loads((cell_dir / "attack.json").read_text())
    robust = {r["name"]: r["results"][0]["robust_accuracy"]["value"] for r in a["attacks"]}
    return {"clean": m["test"]["accuracy"], **robust, "worst": a["suite"]["per_eps"][0]["robust_accuracy"]["value"]}


GRID_2X2 = "  robustness.jacobian.lambda: [0.001, 0.1]\n  data.fold: [0, 1]\n"


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sweep")
    path = write_sweep(folder, "two-by-two", GRID_2X2)
    result = cli("-w", str(folder / "runs"), "sweep", str(path), "--jobs", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    return path, folder / "runs" / "two-by-two", result


@pytest.mark.slow
def test_a_2x2_sweep_runs_locally_into_run_folders_and_aggregates(local_sweep):
    _, sweep_dir, result = local_sweep
    cells = sorted(p.name for p in sweep_dir.iterdir() if (p / "recipe.yaml").is_file())
    assert cells == ["lambda-0.001_fold-0_seed-0", "lambda-0.001_fold-1_seed-0",
                     "lambda-0.1_fold-0_seed-0", "lambda-0.1_fold-1_seed-0"]
    from tinyharden.recipe import load_recipe

    alone = load_recipe(sweep_dir / cells[3] / "recipe.yaml")  # a cell's recipe re-runs it alone
    assert (alone.robustness.jacobian.lam, alone.data.fold, alone.train.epochs) == (0.1, 1, 1)
    doc = json.loads((sweep_dir / "sweep.json").read_text())
    assert doc["schema_version"] == 1 and doc["summary"] == {"done": 4, "failed": 0, "pending": 0}
    for point in doc["points"]:
        lam = point["values"]["robustness.jacobian.lambda"]
        per_cell = [_metrics(sweep_dir / f"lambda-{lam:g}_fold-{k}_seed-0") for k in (0, 1)]
        for key, name in (("clean", "clean"), ("fgsm@8/255", "fgsm"), ("pgd@8/255", "pgd"), ("worst@8/255", "worst")):
            a, b = (m[name] for m in per_cell)
            s = point["stats"][key]
            assert math.isclose(s["mean"], (a + b) / 2), key
            assert math.isclose(s["std"], abs(a - b) / math.sqrt(2)), key  # sample std of two values
            half = 12.706204736174707 * s["std"] / math.sqrt(2)  # t(0.975, 1)
            assert np.allclose(s["ci95"], [max(0.0, s["mean"] - half), min(1.0, s["mean"] + half)])
        assert point["stats"]["parameters"]["mean"] == 19850
    assert "worst case 8/255" in result.stdout

    report = cli("report", str(sweep_dir), "--format", "md", "--min-clean", "0.01", timeout=120)
    assert report.returncode == 0, report.stderr
    assert "| robustness.jacobian.lambda | cells | clean |" in report.stdout
    assert (sweep_dir / "sweep_robust.png").stat().st_size > 5000
    gated = cli("report", str(sweep_dir), "--min-robust", "0.999", timeout=120)
    assert gated.returncode == 3 and "on the sweep's means" in gated.stderr


@pytest.mark.slow
def test_a_finished_sweep_is_skipped_on_rerun(local_sweep):
    path, sweep_dir, _ = local_sweep
    before = {p.name: p.stat().st_mtime_ns for p in sweep_dir.glob("*/metrics.json")}
    result = cli("-w", str(sweep_dir.parent), "sweep", str(path), timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stderr.count("skip (done)") == 4
    assert {p.name: p.stat().st_mtime_ns for p in sweep_dir.glob("*/metrics.json")} == before


@pytest.mark.slow
def test_sweep_json_and_runs_show_a_finished_sweep_as_one_row(local_sweep):
    from typer.testing import CliRunner

    from tinyharden.cli.app import app

    path, sweep_dir, _ = local_sweep
    runs = sweep_dir.parent
    r = CliRunner().invoke(app, ["-w", str(runs), "sweep", str(path), "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)  # the whole of stdout is one document
    assert (doc["schema_version"], doc["kind"], doc["summary"]["done"]) == (1, "tinyharden sweep", 4)
    r = CliRunner().invoke(app, ["runs", str(runs), "--json"])
    assert r.exit_code == 0, r.output
    listing = json.loads(r.stdout)
    [row] = listing["runs"]
    assert (row["name"], row["type"], row["cells"], row["cells_done"], row["dataset"]) == (
        "two-by-two", "sweep", 4, 4, "digits")
    assert 0 < row["clean_accuracy"] <= 1 and listing["skipped"] == []


@pytest.mark.slow
def test_a_failing_cell_is_recorded_and_the_others_go_on(tmp_path):
    path = write_sweep(tmp_path, "fails", f"  model.init: [null, {tmp_path / 'missing.h5'}]\n", stages="[train]")
    result = cli("-w", str(tmp_path / "runs"), "sweep", str(path), "--jobs", "2")
    assert result.returncode == 1, result.stderr[-2000:]
    doc = json.loads((tmp_path / "runs" / "fails" / "sweep.json").read_text())
    status = {c["id"]: (c["status"], c["error"]) for c in doc["cells"]}
    assert status["init-None_seed-0"] == ("done", None)
    failed = next(v for k, v in status.items() if k != "init-None_seed-0")
    assert failed[0] == "failed" and "missing.h5" in failed[1] and "\n" not in failed[1]
    assert "1 of 2 cells failed" in result.stderr


@pytest.fixture
def ray_cluster():
    """A real one-node Ray cluster on loopback, 2 CPUs, stopped afterwards (tinyharden.sweep.loopback)."""
    pytest.importorskip("ray")
    from tinyharden.sweep.loopback import loopback_cluster

    with loopback_cluster(num_cpus=2, env={"PYTHONPATH": str(ROOT)}) as address:
        yield address


@pytest.mark.slow
def test_the_same_sweep_on_a_ray_cluster_gives_identical_cell_metrics(local_sweep, ray_cluster, tmp_path):
    _, local_dir, _ = local_sweep
    # One row of the local 2x2 (a cell's id is its values, so the folders match): two cells, one per Ray CPU.
    path = write_sweep(tmp_path, "one-row", "  robustness.jacobian.lambda: [0.1]\n  data.fold: [0, 1]\n")
    result = cli("sweep", str(path), "--address", ray_cluster, "--storage", str(tmp_path / "shared"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ray (127.0.0.1:" in result.stderr
    ray_dir = tmp_path / "shared" / "one-row"
    assert sorted(p.name for p in ray_dir.iterdir() if (p / "cell.json").is_file()) == [
        "lambda-0.1_fold-0_seed-0", "lambda-0.1_fold-1_seed-0"]
    for cell in ("lambda-0.1_fold-0_seed-0", "lambda-0.1_fold-1_seed-0"):
        assert _metrics(ray_dir / cell) == _metrics(local_dir / cell), cell
        record = json.loads((ray_dir / cell / "cell.json").read_text())
        assert record["status"] == "done"


@pytest.mark.slow
def test_a_sweep_interrupted_mid_cell_resumes_with_no_cell_run_twice(tmp_path):
    overrides = [o for o in TINY if not o.startswith("train.epochs")] + ["train.epochs=4"]
    path = write_sweep(tmp_path, "killed", "  data.fold: [0, 1]\n", overrides=overrides, stages="[train]")
    runs = tmp_path / "runs"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.Popen([sys.executable, "-m", "tinyharden", "-w", str(runs), "sweep", str(path)],
                            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # its group: cleaned up whatever happens
    second = runs / "killed" / "fold-1_seed-0"
    deadline = time.monotonic() + 1800  # bounded, and generous: a loaded 2-core machine
    try:
        # Mid-cell: the first cell is done and the second has checkpointed its first epoch.
        while not (second / "checkpoints" / "history.json").is_file():
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            assert time.monotonic() < deadline, "the second cell never checkpointed"
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, stderr[-2000:]
    assert "run the same command again to continue" in stderr
    assert not (second / "metrics.json").exists()
    first = runs / "killed" / "fold-0_seed-0" / "metrics.json"
    stamp = first.stat().st_mtime_ns

    result = cli("-w", str(runs), "sweep", str(path))
    assert result.returncode == 0, result.stderr[-2000:]
    assert first.stat().st_mtime_ns == stamp  # the finished cell was skipped
    epochs = [json.loads(line)["epoch"] for line in (second / "train.log").read_text().splitlines()]
    assert epochs.count(1) == 1 and sorted(set(epochs)) == [1, 2, 3, 4]  # resumed, not restarted
    doc = json.loads((runs / "killed" / "sweep.json").read_text())
    assert doc["summary"] == {"done": 2, "failed": 0, "pending": 0}


def test_sweep_help_imports_neither_tensorflow_nor_ray():
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom tinyharden.cli.app import app\n"
            "r = CliRunner().invoke(app, ['sweep', '--help'])\nassert r.exit_code == 0, r.output\n"
            "assert 'Example: tinyharden sweep' in r.output\n"
            "print(sorted(m for m in ('tensorflow', 'ray') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
