"""Progress on stderr: one plain line per epoch off a terminal, attack progress in samples with eps as written.

The terminal side (the live Rich bar) is shown by bench/progress_tty.py in a tmux pane.
"""
from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import pytest
from typer.testing import CliRunner

from tinyharden.cli.app import app
from tinyharden.cli.progress import AttackProgress, TrainProgress, duration, loss_terms

runner = CliRunner()

EPOCH_LINE = re.compile(r"^epoch (\d+)/(\d+)  loss \d+\.\d{3} \(ce \d+\.\d{3}(, jr [\d.e+-]+)?\)  acc \d\.\d{3}"
                        r"(  val_acc \d\.\d{3})?  \d+\.\ds(  eta \d+(s|m\d\ds|h\d\dm))?$")


def _log(epoch, seconds=1.0, val_acc=0.9):
    return SimpleNamespace(epoch=epoch, loss=0.412, ce=0.4, reg=[1.2], train_acc=0.95, val_acc=val_acc, seconds=seconds)


def _stats(epochs=30):
    return {"loss": 0.5, "ce": 0.45, "reg": [5.0], "reg_weights": [0.01], "acc": 0.9, "img_s": 1000.0, "epochs": epochs}


def test_duration_and_loss_terms_read_as_people_write_them():
    assert [duration(s) for s in (0.4, 12.3, 312, 3725)] == ["0s", "12s", "5m12s", "1h02m"]
    assert loss_terms(0.412, 0.4, [1.2], [0.01]) == "loss 0.412 (ce 0.400, jr 0.012)"  # terms add up to the loss
    assert loss_terms(0.4, 0.4, []) == "loss 0.400 (ce 0.400)"


def test_off_a_terminal_each_epoch_is_one_plain_line_with_eta(capsys):
    p = TrainProgress(mode="lines")
    with p:
        for epoch in range(3):
            for step in range(1, 11):
                p.update(epoch, step, 10, _stats(epochs=3))
            p.epoch_end(_log(epoch + 1, val_acc=None if epoch == 1 else 0.9))
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 3, err
    assert all(EPOCH_LINE.match(line) for line in lines), lines
    assert lines[0].startswith("epoch 1/3  loss 0.412 (ce 0.400, jr 0.012)  acc 0.950  val_acc 0.900  1.0s  eta ")
    assert "val_acc" not in lines[1]  # no validation split, no made-up figure
    assert "eta" not in lines[2]  # the last epoch has nothing left
    assert "\x1b" not in err and "\r" not in err


def test_eta_follows_the_latest_whole_epoch(monkeypatch):
    clock = iter(np.arange(0, 1000, 0.5))  # every call to the clock is half a second later
    monkeypatch.setattr("tinyharden.cli.progress.time.perf_counter", lambda: float(next(clock)))
    p = TrainProgress(mode="lines")
    for epoch in range(2):
        for step in range(1, 5):
            p.update(epoch, step, 4, _stats(epochs=10))
        p.epoch_end(_log(epoch + 1))
    # epoch 2 took 5 clock ticks (4 steps + its end) = 2.5 s; 8 epochs are left
    assert p.eta(2 * 4) == pytest.approx(8 * 2.5)


def test_quiet_mode_prints_nothing(capsys):
    p = TrainProgress(mode="off")
    p.update(0, 1, 1, _stats())
    p.epoch_end(_log(1))
    a = AttackProgress(mode="off")
    a.update("pgd eps=8/255", 0, 100)
    assert capsys.readouterr().err == ""


def test_attack_lines_name_each_finished_step_in_samples(capsys):
    a = AttackProgress(mode="lines")
    with a:
        a.update("fgsm eps=0.5step", 0, 300)
        a.update("pgd eps=0.5step", 100, 300)
        a.update("check: zero gradients", 200, 300)
        a.update("done", 300, 300)
    lines = capsys.readouterr().err.splitlines()
    assert [line.split("  ")[:2] for line in lines] == [
        ["attack fgsm eps=0.5step", "100/300 samples"], ["attack pgd eps=0.5step", "200/300 samples"],
        ["attack check: zero gradients", "300/300 samples"]]


def test_suite_progress_counts_samples_and_writes_eps_as_given():
    from tinyharden.attacks.suite import SuiteConfig, run_suite
    from tinyharden.attacks.target import KerasTarget
    from tinyharden._tf import keras

    rng = np.random.default_rng(0)
    x = rng.random((40, 4, 4, 1)).astype("float32")
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(3)])
    y = np.argmax(model.predict(x, verbose=0), -1)  # every sample is correct clean: 40 attacked
    eps = [0.5 / 255, 2 / 255]
    seen = []
    config = SuiteConfig(suite=["fgsm", "pgd"], eps=eps, params={"pgd": {"steps": 2}}, checks=False,
                         eps_labels={eps[0]: "0.5step", eps[1]: "2/255"})
    result = run_suite(KerasTarget(model), x, y, config, progress=lambda *a: seen.append(a))
    assert seen == [("fgsm eps=0.5step", 0, 160), ("fgsm eps=2/255", 40, 160), ("pgd eps=0.5step", 80, 160),
                    ("pgd eps=2/255", 120, 160), ("done", 160, 160)]
    assert result.report["config"]["eps_text"] == ["0.5step", "2/255"]


def test_quiet_turns_progress_off_and_a_pipe_gets_lines(monkeypatch):
    from tinyharden.cli import common
    from tinyharden.cli.progress import progress_mode

    monkeypatch.setattr(common.err, "quiet", False)
    assert progress_mode() == "lines"  # pytest's stderr is not a terminal
    monkeypatch.setattr(common.err, "quiet", True)
    assert progress_mode() == "off"


def test_cli_train_writes_one_line_per_epoch_off_a_terminal(tmp_path):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text("name: tiny\ndata: {dataset: synthetic, shape: [8, 8, 1], num_classes: 3, samples: 256}\n"
                      "model: {name: cnn, width: 0.5}\nquantization: {preset: float}\n"
                      "robustness: {jacobian: {layers: [logits], lambda: 0.01}}\n"
                      "train: {epochs: 2, batch_size: 64}\n")
    r = runner.invoke(app, ["-w", str(tmp_path / "ws"), "train", str(recipe)])
    assert r.exit_code == 0, r.output
    lines = [line for line in r.stderr.splitlines() if line.startswith("epoch ")]
    assert [EPOCH_LINE.match(line).group(1, 2) for line in lines] == [("1", "2"), ("2", "2")], r.stderr
    assert all(", jr " in line and "val_acc" in line for line in lines), lines
    assert "eta " in lines[0] and "eta " not in lines[1]
    assert "\x1b" not in r.stderr and "\r" not in r.stderr and "━" not in r.stderr  # no bar, no control codes
