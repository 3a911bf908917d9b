"""Rich renderings shared by commands: result tables (progress is in cli/progress.py)."""
from __future__ import annotations

from rich.table import Table

from tinyharden import formatting


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
