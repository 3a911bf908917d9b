"""PNG plots of a report (matplotlib, Agg backend: no display needed).

- robust_vs_eps: each measured model's robust accuracy against eps, one line per attack
  and a bold worst case with its 95% band (from the sweeps in attack.json); one plot per
  input space (features, waveform), since their eps do not compare, ticks named as the
  attack was given them (8/255, 0.5step, -40dB);
- accuracy_vs_footprint: clean and worst-case accuracy against flash (or packed weight
  bytes when nothing was exported) in KiB, published figures as hollow markers;
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


SPACE_TITLES = {"features": "model inputs (images, MFCC features)",
                "waveform": "raw waveform, through the MFCC front end"}


def _eps_ticks(ax, labels: dict[float, str]) -> None:
    """One tick per eps of the sweeps, named as the attack was given them; ticks closer than 4% of
    the axis to the one before are left unlabelled, and labels are slanted so long ones
    ("-40.0 dB") do not run into each other."""
    ordered = sorted(labels)
    lo, hi = ax.get_xlim()
    gap = 0.04 * (hi - lo)
    kept: list[float] = []
    for t in ordered:
        if not kept or t - kept[-1] >= gap:
            kept.append(t)
    ax.set_xticks(kept, [labels[t] for t in kept], rotation=35, ha="right", rotation_mode="anchor")


def _sweep_lines(ax, row: dict, color, labels: dict[float, str]) -> None:
    """A row's attacks as thin lines, its worst case bold with its 95% band."""
    attacks = [s for s in row["sweeps"] if s["attack"] != "worst case"]
    for j, s in enumerate(attacks):
        xs = [p["eps"] for p in s["points"]]
        for p in s["points"]:
            labels.setdefault(p["eps"], p.get("label") or (fmt_eps(p["eps"]) if p["eps"] else "0"))
        ax.plot(xs, [100 * p["value"] for p in s["points"]], _STYLES[j % len(_STYLES)], marker=_MARKERS[j % len(_MARKERS)],
                ms=4, lw=1.2, color=color, alpha=0.75, label=f"{row['id']}: {s['attack']}")
    worst = next((s for s in row["sweeps"] if s["attack"] == "worst case"), None)
    band = worst["points"] if worst and len(attacks) > 1 else (attacks[0]["points"] if attacks else [])
    if worst and len(attacks) > 1:
        ax.plot([p["eps"] for p in band], [100 * p["value"] for p in band], "-", lw=2.8, color=color,
                label=f"{row['id']}: worst case")
    if band and all(p.get("ci95") for p in band):
        ax.fill_between([p["eps"] for p in band], [100 * p["ci95"][0] for p in band],
                        [100 * p["ci95"][1] for p in band], color=color, alpha=0.12, lw=0)


def _robust_vs_eps(plt, rows: list[dict], path: Path, space: str) -> Path | None:
    """Robust accuracy against eps of the rows attacked in `space`: eps of different spaces do not compare."""
    rows = [r for r in rows if r["kind"] == "measured" and any(s.get("space", "features") == space for s in r["sweeps"])]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(8, 5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    labels: dict[float, str] = {}
    for i, row in enumerate(rows):
        _sweep_lines(ax, {**row, "sweeps": [s for s in row["sweeps"] if s.get("space", "features") == space]},
                     colors[i % len(colors)], labels)
    _eps_ticks(ax, labels)
    ax.set_xlabel("eps ([0, 1] data units; ticks as the attack was given them)")
    ax.set_ylabel("robust accuracy (%)")
    ax.set_ylim(-2, 102)
    ax.set_title(f"Robust accuracy against eps: {SPACE_TITLES.get(space, space)}")
    ax.grid(alpha=0.3)
    _legend(ax)
    out = _save(fig, path)
    plt.close(fig)
    return out


def _spaces(rows: list[dict]) -> list[str]:
    found = {s.get("space") or "features" for r in rows if r["kind"] == "measured" for s in r["sweeps"]}
    return [sp for sp in ("features", "waveform") if sp in found] + sorted(found - {"features", "waveform"})


def _size_axis(ax, xs: list[float], label: str) -> None:
    """Footprint in KiB, every tick a plain number (4, 20, 100, not 3x10^1): log scale only when
    the sizes span more than a factor of 8, with ticks at 1-2-5 steps."""
    from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullLocator

    plain = FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 10 else f"{v:g}")
    lo, hi = min(xs), max(xs)
    if hi > 8 * lo:
        ax.set_xscale("log")
        ax.set_xlim(lo / 1.5, hi * 1.5)
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_minor_locator(NullLocator())
        label += ", log scale"
    else:
        pad = max(0.15 * (hi - lo), 0.1 * hi)
        ax.set_xlim(max(0.0, lo - pad), hi + pad)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=6))
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(plain)
    ax.set_xlabel(label)


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
    _size_axis(ax, [r[key] / 1024 for r in shown], label)
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
        # one plot per input space: features keep the plain name, others add theirs (..._eps_waveform.png)
        *(_robust_vs_eps(plt, rows, out_dir / f"{PREFIX}robust_vs_eps{'' if sp == 'features' else '_' + sp}.png", sp)
          for sp in _spaces(rows)),
        _accuracy_vs_footprint(plt, rows, out_dir / f"{PREFIX}accuracy_vs_footprint.png"),
        _training_curves(plt, entries, out_dir / f"{PREFIX}training_curves.png"),
    ]
    return [p for p in written if p is not None]
