"""Faults around checkpoints: kills between log and checkpoint, damaged checkpoints, concurrent resumes."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinyharden.errors import UserError
from tinyharden.recipe import validate
from tinyharden.training import run


def jr_stq_recipe(epochs: int = 3):
    return validate({"name": "r", "seed": 3, "data": {"dataset": "digits", "limit_train": 256},
                     "model": {"name": "cnn"}, "quantization": {"preset": "stq"},
                     "robustness": {"jacobian": {"layers": ["logits"], "lambda": 0.05}},
                     "train": {"epochs": epochs, "batch_size": 64, "lr": 0.005}})


def _weights(model) -> list[np.ndarray]:
    return [w.copy() for w in model.get_weights()]


def _killed_after_logging(tmp_path, epoch: int):
    """A run that dies after epoch `epoch` is logged but before it is checkpointed."""
    t = run.start(jr_stq_recipe(), tmp_path / "killed")
    save = t._save_checkpoint

    def die_before_saving():
        if int(t.epoch.numpy()) == epoch:
            raise KeyboardInterrupt
        save()

    t._save_checkpoint = die_before_saving
    with pytest.raises(KeyboardInterrupt):
        t.fit()
    assert t.checkpointed_epoch == epoch - 1
    return t.run_dir


@pytest.mark.slow
def test_kill_between_log_and_checkpoint_then_resume_equals_an_uninterrupted_run(tmp_path):
    whole = run.start(jr_stq_recipe(), tmp_path / "whole")
    whole.fit()
    expected = _weights(whole.model)

    run_dir = _killed_after_logging(tmp_path, epoch=2)
    resumed = run.resume(run_dir)
    assert int(resumed.epoch.numpy()) == 1
    resumed.fit()
    for a, b in zip(expected, _weights(resumed.model)):
        np.testing.assert_array_equal(a, b)  # bit for bit: batches, STQ samples and JR projections alike
    epochs = [json.loads(line)["epoch"] for line in (run_dir / "train.log").read_text().splitlines()
              if line.startswith("{")]
    assert epochs == [1, 2, 3]  # the redone epoch is logged once


@pytest.mark.slow
def test_damaged_checkpoints_are_named_and_the_previous_one_used(tmp_path):
    t = run.start(jr_stq_recipe(epochs=3), tmp_path)
    t._save_checkpoint_original = t._save_checkpoint
    stop = {"at": 3}

    def stop_in_epoch(epoch, step, steps, stats):
        if epoch + 1 == stop["at"] and step == 1:
            raise KeyboardInterrupt

    t.on_progress = stop_in_epoch
    with pytest.raises(KeyboardInterrupt):
        t.fit()
    folder = t.run_dir / "checkpoints"
    data = next(folder.glob("ckpt-2.data-*"))
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])  # truncated newest checkpoint
    (folder / "checkpoint").write_text("garbage {{{ not a proto")
    warnings: list[str] = []
    resumed = run.resume(t.run_dir, warn=warnings.append)
    assert int(resumed.epoch.numpy()) == 1  # not 0: the garbage index did not restart the run
    assert len(warnings) == 1 and "ckpt-2" in warnings[0] and "damaged" in warnings[0]
    next(folder.glob("ckpt-1.data-*")).write_bytes(b"")
    with pytest.raises(UserError, match="every checkpoint .* is damaged"):
        run.resume(t.run_dir)


def test_a_second_process_cannot_resume_a_locked_run_folder(tmp_path):
    from tinyharden.training.checkpoints import lock_run_dir, unlock_run_dir

    (tmp_path / "recipe.yaml").write_text("name: r\n")
    lock_run_dir(tmp_path)
    # The second process loads checkpoints.py alone (it needs only tinyharden.errors): the same lock code, without the
    # TensorFlow import that `tinyharden.training` does first (about 5 s of CPU per process).
    module = Path(lock_run_dir.__code__.co_filename)
    try:
        code = ("import importlib.util, sys\n"
                f"spec = importlib.util.spec_from_file_location('checkpoints', {str(module)!r})\n"
                "checkpoints = importlib.util.module_from_spec(spec); spec.loader.exec_module(checkpoints)\n"
                "from tinyharden.errors import UserError\n"
                "assert 'tensorflow' not in sys.modules\n"
                f"try:\n    checkpoints.lock_run_dir({str(tmp_path)!r})\nexcept UserError as e:\n    print(e); sys.exit(2)\n")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2 and "in use by another tinyharden process" in proc.stdout, proc.stdout + proc.stderr
    finally:
        unlock_run_dir(tmp_path)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout  # released: the next process gets it
