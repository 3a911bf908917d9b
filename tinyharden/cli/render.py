"""Rich renderings shared by commands: the training progress bar and result tables."""
from __future__ import annotations

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tinyharden import formatting
from tinyharden.cli.common import err


class TrainProgress:
    """Epoch/step bar with loss terms, accuracy and images/s; silent when stderr is not a TTY."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.progress = Progress(TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), console=err,
                                 disable=not enabled, transient=False)
        self.task = None
        self.current_epoch = None

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def update(self, epoch: int, step: int, steps: int, stats: dict) -> None:
        if not self.enabled:
            return
        if epoch != self.current_epoch:
            self.task = self.progress.add_task("train", total=steps, epoch=epoch + 1, stats="")
            self.current_epoch = epoch
        reg = " ".join(f"jr={r:.3g}" for r in stats["reg"])
        text = f"loss={stats['loss']:.3f} ce={stats['ce']:.3f} {reg} acc={stats['acc']:.3f} {stats['img_s']:.0f} img/s"
        self.progress.update(self.task, completed=step, stats=text)


def pct(x) -> str:
    return formatting.pct(x, missing="-")


def metrics_table(metrics: dict) -> Table:
    t = Table(title=f"train: {metrics['run']}")
    t.add_column("metric")
    t.add_column("value", justify="right")
    test = metrics["test"]
    lo, hi = test["ci95"]
    t.add_row("model", f"{metrics['model']} ({metrics['quantization']}, {metrics['defense']})")
    t.add_row("dataset", f"{metrics['dataset']['name']} (train {metrics['dataset']['train']}, test {test['n']})")
    t.add_row("parameters", f"{metrics['parameters']:,}")
    t.add_row("test accuracy", f"{pct(test['accuracy'])}  [95% CI {pct(lo)}-{pct(hi)}]")
    t.add_row("test loss", f"{test['loss']:.4f}")
    t.add_row("epochs", str(metrics["epochs"]))
    t.add_row("training time", f"{metrics['train_seconds']:.1f} s")
    if metrics.get("images_per_s"):
        t.add_row("throughput", f"{metrics['images_per_s']:.0f} images/s")
    return t
