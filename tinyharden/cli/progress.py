"""Progress of training and attacks on stderr: a live bar at a terminal, plain lines elsewhere.

    with TrainProgress() as progress:   # the mode follows stderr and --quiet
        jobs.train(recipe, workspace, on_progress=progress.update, on_epoch=progress.epoch_end)

At a terminal a Rich bar shows epoch N/M, the loss terms and the ETA, and each finished
epoch leaves one line above it. When stderr is a file or a pipe (CI logs, `2> log`),
only those lines are written, one per epoch, with no control codes:

    epoch 3/30  loss 0.412 (ce 0.400, jr 0.012)  acc 0.951  val_acc 0.912  1.2s  eta 32s

Attacks count samples (attacked samples x attacks x eps) and name each eps as the user
wrote it. `--quiet` silences both. Jobs only call these callbacks; printing lives here.
"""
from __future__ import annotations

import sys
import time
from typing import Any, Literal

from tinyharden.cli.common import err

Mode = Literal["bar", "lines", "off"]


def progress_mode() -> Mode:
    """'off' under --quiet, 'bar' when stderr is a terminal, else 'lines'."""
    if err.quiet:
        return "off"
    return "bar" if sys.stderr.isatty() else "lines"


def duration(seconds: float) -> str:
    """12.3 -> '12s', 312 -> '5m12s', 3725 -> '1h02m': what an ETA needs, no more."""
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def loss_terms(loss: float, ce: float, reg: list[float], weights: list[float] | None = None) -> str:
    """'loss 0.412 (ce 0.400, jr 0.012)': the terms add up to the loss (each Jacobian term times its lambda)."""
    terms = [f"ce {ce:.3f}"]
    if reg:
        weighted = [w * r for w, r in zip(weights, reg)] if weights and len(weights) == len(reg) else reg
        terms.append("jr " + " ".join(f"{r:.3g}" for r in weighted))
    return f"loss {loss:.3f} ({', '.join(terms)})"


def _print_line(text: str) -> None:
    err.print(text, markup=False, highlight=False, soft_wrap=True)


class _BarOwner:
    """A context manager that closes its Rich bar (`self._bar`, opened lazily by the subclass) on exit."""

    _bar = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.__exit__(*exc)
            self._bar = None
        return False


class TrainProgress(_BarOwner):
    """Callbacks for a training job: `update` after every step, `epoch_end` after every epoch."""

    def __init__(self, mode: Mode | None = None):
        self.mode: Mode = progress_mode() if mode is None else mode
        self.epochs = 0
        self.steps = 0
        self.weights: list[float] = []
        self._bar = None
        self._task = None
        self._first: tuple[float, int] | None = None  # (time, global step) after this process's first step
        self._last: tuple[float, int] | None = None  # the same after its latest step
        self._epoch_end: float | None = None
        self._epoch_cost: float | None = None  # wall seconds of the latest whole epoch, validation included

    def eta(self, done_steps: int) -> float | None:
        """Seconds left: whole epochs at the latest epoch's wall time once one is known, else the step pace.

        The first step (which traces the graph) and epoch 1's validation (which traces
        another) are left out of the pace, or the first ETA would be several times too long.
        """
        left = self.epochs * self.steps - done_steps
        if self._epoch_cost is not None and self.steps:
            return left * self._epoch_cost / self.steps
        if self._first is None or self._last is None or self._last[1] <= self._first[1]:
            return None
        return left * (self._last[0] - self._first[0]) / (self._last[1] - self._first[1])

    def update(self, epoch: int, step: int, steps: int, stats: dict[str, Any]) -> None:
        if self.mode == "off":
            return
        self.epochs, self.steps = int(stats.get("epochs", epoch + 1)), steps
        self.weights = list(stats.get("reg_weights") or [])
        done = epoch * steps + step
        self._last = (time.perf_counter(), done)
        if self._first is None:
            self._first = self._last
        if self.mode != "bar":
            return
        eta = self.eta(done)
        text = (f"{loss_terms(stats['loss'], stats['ce'], stats['reg'], self.weights)}  acc {stats['acc']:.3f}  "
                f"{stats['img_s']:.0f} img/s  eta {duration(eta) if eta is not None else '-'}")
        if self._bar is None:
            self._start_bar()
        self._bar.update(self._task, completed=done, total=self.epochs * steps, epoch=epoch + 1,
                         epochs=self.epochs, stats=text)

    def _start_bar(self) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self._bar = Progress(TextColumn("epoch {task.fields[epoch]}/{task.fields[epochs]}"), BarColumn(),
                             TimeElapsedColumn(), TextColumn("{task.fields[stats]}"), console=err, transient=True)
        self._bar.__enter__()
        self._task = self._bar.add_task("train", total=1, epoch=1, epochs=1, stats="")

    def epoch_line(self, log) -> str:
        """The line of one finished epoch (a training.trainer.EpochLog)."""
        parts = [f"epoch {log.epoch}/{self.epochs or log.epoch}", loss_terms(log.loss, log.ce, log.reg, self.weights),
                 f"acc {log.train_acc:.3f}"]
        if log.val_acc is not None:
            parts.append(f"val_acc {log.val_acc:.3f}")
        parts.append(f"{log.seconds:.1f}s")
        eta = self.eta(log.epoch * self.steps)
        if eta is not None and log.epoch < self.epochs:
            parts.append(f"eta {duration(eta)}")
        return "  ".join(parts)

    def epoch_end(self, log) -> None:
        if self.mode == "off":
            return
        now = time.perf_counter()
        if self._epoch_end is not None:
            self._epoch_cost = now - self._epoch_end
        self._epoch_end = now
        line = self.epoch_line(log)
        if self._bar is not None:
            self._bar.console.print(line, markup=False, highlight=False, soft_wrap=True)  # above the live bar
        else:
            _print_line(line)


class AttackProgress(_BarOwner):
    """Callback for an attack job: `update(label, done, total)` with done and total in samples."""

    def __init__(self, mode: Mode | None = None):
        self.mode: Mode = progress_mode() if mode is None else mode
        self._bar = None
        self._task = None
        self._label: str | None = None
        self._since = 0.0
        self._t0 = time.perf_counter()

    def update(self, label: str, done: int, total: int) -> None:
        if self.mode == "off":
            return
        now = time.perf_counter()
        if self.mode == "lines":
            if self._label is not None and done > 0:  # the job before this one has finished
                _print_line(f"attack {self._label}  {done:,}/{total:,} samples  {now - self._since:.1f}s  "
                            f"(total {duration(now - self._t0)})")
            self._label, self._since = (None if label == "done" else label), now
            return
        if self._bar is None:  # started by the suite's first report, not while data and model load
            self._start_bar()
        what = "attack: done" if label == "done" else f"attack: {label}"
        self._bar.update(self._task, description=what, completed=done, total=total)

    def _start_bar(self) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self._bar = Progress(TextColumn("{task.description}"), BarColumn(),
                             TextColumn("{task.completed:,.0f}/{task.total:,.0f} samples"), TimeElapsedColumn(),
                             TextColumn("eta"), TimeRemainingColumn(), console=err, transient=True)
        self._bar.__enter__()
        self._task = self._bar.add_task("attack", total=1)
