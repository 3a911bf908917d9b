"""The CLI skeleton: fast --help without TensorFlow, --version, doctor, one-line errors."""
from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from tinyharden import __version__
from tinyharden.cli.app import app

runner = CliRunner()


def test_help_lists_commands_and_imports_no_tensorflow():
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from tinyharden.cli.app import app\n"
        "r = CliRunner().invoke(app, ['--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        "print(r.output)\n"
        "print('TF_LOADED' if 'tensorflow' in sys.modules else 'TF_ABSENT')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "TF_ABSENT" in out.stdout
    for cmd in ("train", "doctor"):
        assert cmd in out.stdout


def test_console_script_help_is_fast_enough_to_feel_instant():
    # Import cost only: the budget is generous because CI machines are shared.
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "tinyharden", "--help"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    assert "tensorflow" not in out.stderr  # -X importtime lists every module imported


def test_version():
    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and __version__ in r.output


def test_doctor_reports_versions_and_datasets():
    r = runner.invoke(app, ["doctor"])
    assert r.exit_code == 0, r.output
    for name in ("python", "tensorflow", "tf-keras", "qkeras", "foolbox", "adversarial-robustness-toolbox", "numpy",
                 "cifar10", "speech_commands", "digits"):
        assert name in r.output


def test_bad_recipe_is_one_line_and_exit_2(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("train:\n  epoch: 2\n")
    r = runner.invoke(app, ["-w", str(tmp_path / "ws"), "train", str(p)])
    assert r.exit_code == 2
    assert "unknown key 'train.epoch'; did you mean 'epochs'?" in r.output
    assert "Traceback" not in r.output
    assert not (tmp_path / "ws").exists()  # nothing half-written


def test_train_without_recipe_or_with_missing_dataset(tmp_path):
    r = runner.invoke(app, ["train"])
    assert r.exit_code == 2 and "give a recipe" in r.output
    p = tmp_path / "r.yaml"
    p.write_text(f"data:\n  dataset: cifar10\n  path: {tmp_path / 'nowhere'}\n")
    r = runner.invoke(app, ["-w", str(tmp_path / "ws"), "train", str(p)])
    assert r.exit_code == 2 and "does not exist" in r.output and "Traceback" not in r.output
@pytest.mark.slow  # > 8 s idle


def test_verbose_flag_lets_tensorflow_cpp_lines_through_and_quiet_keeps_errors(tmp_path):
    code = ("from typer.testing import CliRunner\nfrom tinyharden.cli.app import app\n"
            "CliRunner().invoke(app, ['{flag}', 'doctor'])\nimport tinyharden._tf\n")
    import re

    env = {k: v for k, v in __import__("os").environ.items() if k != "TINYHARDEN_VERBOSE"}
    loud = subprocess.run([sys.executable, "-c", code.format(flag="--verbose")], capture_output=True, text=True,
                          env=env, timeout=120)
    quiet = subprocess.run([sys.executable, "-c", code.format(flag="--quiet")], capture_output=True, text=True,
                           env=env, timeout=120)
    assert loud.returncode == 0 and quiet.returncode == 0
    assert re.search(r"^[IWE]\d{4} ", loud.stderr, re.M), loud.stderr
    assert quiet.stderr == "", quiet.stderr  # not one native line: what a user's terminal shows by default
    r = runner.invoke(app, ["--quiet", "-w", str(tmp_path / "ws"), "train", str(tmp_path / "missing.yaml")])
    assert r.exit_code == 2 and "not found" in r.output
