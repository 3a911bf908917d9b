"""Bad data, workspaces and arguments through the CLI: exit 2, one line, no traceback, no run folder."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tinyharden.cli.app import app
from tinyharden.errors import UserError

runner = CliRunner()


def cifar_folder(root: Path, **test_members) -> Path:
    """A tiny CIFAR-10 npz layout; `test_members` replace cifar10_test.npz's arrays."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(1, 6):
        np.savez(root / f"cifar10_train_batch{i}.npz", x_train=rng.integers(0, 255, (8, 32, 32, 3), dtype=np.uint8),
                 y_train=rng.integers(0, 10, 8).astype(np.uint8))
    members = {"x_test": rng.integers(0, 255, (8, 32, 32, 3), dtype=np.uint8), "y_test": rng.integers(0, 10, 8).astype(np.uint8)}
    members.update(test_members)
    np.savez(root / "cifar10_test.npz", **members)
    return root


def assert_one_line_refusal(result, workspace: Path, *needles: str) -> None:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert not workspace.exists() or not any(workspace.iterdir()), list(workspace.iterdir())


DEFECTS = {
    "labels out of range": (dict(y_test=np.full(8, 200, np.uint8)), "member 'y_test' has labels from 200"),
    "other image shape": (dict(x_test=np.zeros((8, 28, 28, 3), np.uint8)), "member 'x_test' has samples of shape [28, 28, 3]"),
    "x and y lengths differ": (dict(y_test=np.zeros(7, np.uint8)), "'y_test' has 7 labels"),
    "float pixels": (dict(x_test=np.zeros((8, 32, 32, 3), np.float32)), "member 'x_test' holds float32"),
}


@pytest.mark.parametrize("defect", list(DEFECTS))
def test_each_data_defect_is_one_line_and_leaves_no_folder(tmp_path, defect):
    members, needle = DEFECTS[defect]
    data = cifar_folder(tmp_path / "data", **members)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: bad\ndata: {{dataset: cifar10, path: {data}}}\nmodel: {{name: cnn}}\ntrain: {{epochs: 1}}\n")
    ws = tmp_path / "ws"
    result = runner.invoke(app, ["-w", str(ws), "train", str(recipe)])
    assert_one_line_refusal(result, ws, "cifar10_test.npz", needle)


@pytest.mark.parametrize("damage", ["zero-byte", "truncated"])
def test_damaged_npz_names_the_file(tmp_path, damage):
    from tinyharden.data import load_dataset
    from tinyharden.recipe import DataSpec

    data = cifar_folder(tmp_path)
    victim = data / "cifar10_train_batch4.npz"
    victim.write_bytes(b"" if damage == "zero-byte" else victim.read_bytes()[:5000])
    with pytest.raises(UserError, match="cifar10_train_batch4.npz") as err:
        load_dataset(DataSpec(dataset="cifar10", path=str(data)), 0)
    assert "\n" not in str(err.value)


def test_workspace_that_is_a_file_or_read_only_is_refused_before_work(tmp_path):
    from tinyharden.writable import check_writable

    blocker = tmp_path / "ws"
    blocker.write_text("a file")
    result = runner.invoke(app, ["-w", str(blocker), "train", "recipes/quickstart.yaml", "train.epochs=1"])
    assert result.exit_code == 2 and "is a file, not a folder" in result.output, result.output
    with pytest.raises(UserError, match="is a file"):
        check_writable(blocker / "inner")
    if os.geteuid() == 0:  # root writes through permission bits; a kernel filesystem refuses everyone
        unwritable = Path("/proc/tinyharden-workspace")
    else:
        unwritable = tmp_path / "ro"
        unwritable.mkdir()
        unwritable.chmod(0o555)
    with pytest.raises(UserError, match="is not writable|does not exist|not a folder"):
        check_writable(unwritable)


def test_usage_errors_are_one_line_with_the_fix():
    result = runner.invoke(app, ["train", "--workspace", "x", "recipes/quickstart.yaml"])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and "put it before the command" in result.output, result.output
    result = runner.invoke(app, ["attack"])
    assert result.exit_code == 2 and "Missing argument 'model'" in result.output and "--help" in result.output
    assert result.output.strip().count("\n") == 0


@pytest.mark.parametrize("override, message", [
    ("seed=-1", "seed"), ("model.width=1e9", "model.width"), ("robustness.adversarial.eps=2", "eps"),
])
def test_out_of_range_numbers_are_refused_at_validation(tmp_path, override, message):
    result = runner.invoke(app, ["-w", str(tmp_path / "ws"), "train", "recipes/quickstart.yaml", override])
    assert_one_line_refusal(result, tmp_path / "ws", message)


@pytest.mark.slow
def test_quantize_takes_an_own_float_run(tmp_path):
    ws = tmp_path / "ws"
    result = runner.invoke(app, ["-w", str(ws), "train", "recipes/quickstart.yaml", "quantization.preset=float",
                                 "train.epochs=1", "data.limit_train=300"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["-w", str(ws), "quantize", str(ws / "quickstart"), "--preset", "stq",
                                 "--finetune-epochs", "1"])
    assert result.exit_code == 0, result.output
    assert (ws / "quantize-quickstart-stq" / "model.h5").is_file()
