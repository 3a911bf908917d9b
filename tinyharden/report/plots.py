"""PNG plots of a report (matplotlib, Agg backend: no display needed).

- robust_vs_eps: each measured model's robust accuracy against eps, one line per attack
  and a bold worst case with its 95% band (from the sweeps in attack.json);
- accuracy_vs_footprint: clean and worst-case accuracy against flash (or packed weight
  bytes when nothing was exported), published figures as hollow markers;
- training_curves: accuracy and loss per epoch from metrics.json's history.

A plot with nothing to show is not written. Files are written atomically.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from tinyharden.formatting import fmt_eps
from tinyharden.report.collect import Entry
from tinyharden.workspace import atomic_path

PREFIX = "report_"
_STYLES = ["-", "--", ":", "-."]
_MARKERS = ["o", "s", "^", "D", "v", "P", "X"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: never a window, works headless in CI
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    return path


def _robust_vs_eps(plt, rows: list[dict], path: Path) -> Path | None:
    rows = [r for r in rows if r["kind"] == "measured" and r["sweeps"]]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(8, 5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    ticks: set[float] = set()
    for i, row in enumerate(rows):
        color = colors[i % len(colors)]
        attacks = [s for s in row["sweeps"] if s["attack"] != "worst case"]
        for j, s in enumerate(attacks):
            xs = [p["eps"] for p in s["points"]]
            ys = [100 * p["value"] for p in s["points"]]
            ticks.update(xs)
            ax.plot(xs, ys, _STYLES[j % len(_STYLES)], marker=_MARKERS[j % len(_MARKERS)], ms=4, lw=1.2,
                    color=color, alpha=0.75, label=f"{row['id']}: {s['attack']}")
        worst = next((s for s in row["sweeps"] if s["attack"] == "worst case"), None)
        if worst and len(attacks) > 1:
            pts = worst["points"]
            xs = [p["eps"] for p in pts]
            ax.plot(xs, [100 * p["value"] for p in pts], "-", lw=2.8, color=color, label=f"{row['id']}: worst case")
            if all(p.get("ci95") for p in pts):
                ax.fill_between(xs, [100 * p["ci95"][0] for p in pts], [100 * p["ci95"][1] for p in pts],
                                color=color, alpha=0.12, lw=0)
        elif attacks and all(p.get("ci95") for p in attacks[0]["points"]):
            pts = attacks[0]["points"]
            ax.fill_between([p["eps"] for p in pts], [100 * p["ci95"][0] for p in pts],
                            [100 * p["ci95"][1] for p in pts], color=color, alpha=0.12, lw=0)
    ordered = sorted(ticks)
    if len(ordered) <= 10:
        ax.set_xticks(ordered, [fmt_eps(t) if t else "0" for t in ordered])
    ax.set_xlabel("eps ([0, 1] data units)")
    ax.set_ylabel("robust accuracy (%)")
    ax.set_ylim(-2, 102)
    ax.set_title("Robust accuracy against eps")
    ax.grid(alpha=0.3)
    _legend(ax)
    out = _save(fig, path)
    plt.close(fig)
    return out


def _accuracy_vs_footprint(plt, rows: list[dict], path: Path) -> Path | None:
    key, label = "flash_bytes", "flash (KiB, the .tflite flatbuffer)"
    if not any(r["kind"] == "measured" and r["flash_bytes"] for r in rows):
        key, label = "packed_bytes", "packed weights (KiB)"
    shown = [r for r in rows if r[key] and (r["clean"] or r["worst_case"] or r["attacks"])]
    if not any(r["kind"] == "measured" for r in shown):
        return None
    fig, ax = plt.subplots(figsize=(8, 5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, row in enumerate(shown):
        color = colors[i % len(colors)]
        published = row["kind"] == "published"
        face = "none" if published else color
        x = row[key] / 1024
        robust = row["worst_case"] or (min(row["attacks"], key=lambda c: c["value"]) if row["attacks"] else None)
        ys = []
        name = row["label"] or row["id"]
        if row["clean"]:
            ys.append(100 * row["clean"]["value"])
            err = _yerr(row["clean"])
            ax.errorbar([x], [ys[-1]], yerr=err, fmt="o", ms=8, mfc=face, color=color, capsize=3,
                        label=f"{name}: clean" + (" (published)" if published else ""))
        if robust:
            ys.append(100 * robust["value"])
            ax.errorbar([x], [ys[-1]], yerr=_yerr(robust), fmt="^", ms=8, mfc=face, color=color, capsize=3,
                        label=f"{name}: robust" + (" (published)" if published else ""))
        if len(ys) == 2:
            ax.plot([x, x], ys, color=color, lw=1, alpha=0.5)
    ax.set_xscale("log")
    from matplotlib.ticker import FuncFormatter

    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel(label + ", log scale")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(-2, 102)
    ax.set_title("Accuracy against footprint (o clean, ^ worst-case robust)")
    ax.grid(alpha=0.3, which="both")
    _legend(ax)
    out = _save(fig, path)
    plt.close(fig)
    return out


def _legend(ax) -> None:
    # Outside the axes: with several models the lines fill the plot and "best" still hides some.
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)


def _yerr(p: dict[str, Any]):
    ci = p.get("ci95")
    if not ci:
        return None
    v = 100 * p["value"]
    return [[max(0.0, v - 100 * ci[0])], [max(0.0, 100 * ci[1] - v)]]


def _training_curves(plt, entries: list[Entry], path: Path) -> Path | None:
    entries = [e for e in entries if e.history]
    if not entries:
        return None
    fig, (acc_ax, loss_ax) = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, e in enumerate(entries):
        color = colors[i % len(colors)]
        epochs = [h.get("epoch", j + 1) for j, h in enumerate(e.history)]
        for ax, train_key, val_key, scale in ((acc_ax, "train_acc", "val_acc", 100), (loss_ax, "loss", "val_loss", 1)):
            for key, style, what in ((train_key, "-", "train"), (val_key, "--", "val")):
                pts = [(x, h[key] * scale) for x, h in zip(epochs, e.history) if h.get(key) is not None]
                if pts:
                    ax.plot(*zip(*pts), style, color=color, lw=1.5, label=f"{e.row['id']}: {what}")
    acc_ax.set(xlabel="epoch", ylabel="accuracy (%)", title="Accuracy", ylim=(-2, 102))
    loss_ax.set(xlabel="epoch", ylabel="loss", title="Loss (train includes the regularizer)")
    for ax in (acc_ax, loss_ax):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    out = _save(fig, path)
    plt.close(fig)
    return out


def write_plots(entries: list[Entry], rows: list[dict], out_dir: Path) -> list[Path]:
    """Write the plots that have data into `out_dir`; returns their paths."""
    plt = _pyplot()
    out_dir = Path(out_dir)
    written = [
        _robust_vs_eps(plt, rows, out_dir / f"{PREFIX}robust_vs_eps.png"),
        _accuracy_vs_footprint(plt, rows, out_dir / f"{PREFIX}accuracy_vs_footprint.png"),
        _training_curves(plt, entries, out_dir / f"{PREFIX}training_curves.png"),
    ]
    return [p for p in written if p is not None]
