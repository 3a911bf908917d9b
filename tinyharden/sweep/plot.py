"""The sweep's plot: mean robust accuracy (95% interval bars) against the swept value.

    >>> from tinyharden.sweep.plot import write_plot  # doctest: +SKIP
    >>> write_plot(doc, Path("runs/digits-cv"))
    PosixPath('runs/digits-cv/sweep_robust.png')

x is the first swept key (numbers on a log axis when they span a decade, names as
categories); every other swept key gets its own line. A sweep over folds alone has no
swept value: its grid point is plotted against eps instead. Nothing to plot, no file.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from tinyharden.report.plots import _pyplot, _save

PLOT_FILE = "sweep_robust.png"


def _err(s: dict[str, Any]) -> list[list[float]]:
    if not s.get("ci95"):
        return [[0.0], [0.0]]
    return [[100 * (s["mean"] - s["ci95"][0])], [100 * (s["ci95"][1] - s["mean"])]]


def _series(doc: dict[str, Any]) -> list[dict[str, Any]]:
    eps = doc.get("headline_eps")
    return [m for m in doc["metrics"] if m["kind"] in ("clean", "worst", "robust")
            and (m["kind"] == "clean" or m.get("eps") == eps)]


def _vs_swept(ax, doc: dict[str, Any]) -> None:
    key, others = doc["swept"][0], doc["swept"][1:]
    xs_all = [p["values"][key] for p in doc["points"]]
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in xs_all)
    cats = list(dict.fromkeys(map(str, xs_all)))
    groups: dict[str, list[dict[str, Any]]] = {}
    for p in doc["points"]:
        groups.setdefault(", ".join(f"{k}={p['values'][k]}" for k in others), []).append(p)
    for label, points in groups.items():
        for m in _series(doc):
            pts = [p for p in points if (p["stats"].get(m["key"]) or {}).get("mean") is not None]
            if not pts:
                continue
            xs = [p["values"][key] if numeric else cats.index(str(p["values"][key])) for p in pts]
            ss = [p["stats"][m["key"]] for p in pts]
            yerr = [[e[0][0] for e in map(_err, ss)], [e[1][0] for e in map(_err, ss)]]
            ax.errorbar(xs, [100 * s["mean"] for s in ss], yerr=yerr, capsize=3, marker="o", ms=4,
                        lw=2.4 if m["kind"] == "worst" else 1.2, ls="--" if m["kind"] == "clean" else "-",
                        label=f"{label + ': ' if label else ''}{m['label']}")
    if numeric and min(xs_all) > 0 and max(xs_all) / min(xs_all) >= 10:
        ax.set_xscale("log")
    if not numeric:
        ax.set_xticks(range(len(cats)), cats)
    ax.set_xlabel(key)


def _vs_eps(ax, doc: dict[str, Any]) -> None:
    point = doc["points"][0]
    lines: dict[str, list[dict[str, Any]]] = {}
    for m in doc["metrics"]:
        if m["kind"] in ("robust", "worst") and (point["stats"].get(m["key"]) or {}).get("mean") is not None:
            lines.setdefault(m.get("attack") or "worst case", []).append(m)
    for name, ms in lines.items():
        ss = [point["stats"][m["key"]] for m in ms]
        yerr = [[e[0][0] for e in map(_err, ss)], [e[1][0] for e in map(_err, ss)]]
        ax.errorbar([m["eps"] for m in ms], [100 * s["mean"] for s in ss], yerr=yerr, capsize=3, marker="o", ms=4,
                    lw=2.4 if name == "worst case" else 1.2, label=name)
    ax.set_xlabel("eps ([0,1] data units)")


def write_plot(doc: dict[str, Any], out_dir: Path) -> Path | None:
    has_robust = any(m["kind"] in ("robust", "worst") for m in doc["metrics"])
    if not doc["points"] or not has_robust:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    (_vs_swept if doc["swept"] else _vs_eps)(ax, doc)
    over = " and ".join("folds" if o == "data.fold" else "seeds" for o in doc["over"])
    ax.set_ylabel("accuracy (%), mean with 95% interval")
    ax.set_title(f"sweep {doc['name']}: robust accuracy, mean over {over}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    path = _save(fig, Path(out_dir) / PLOT_FILE)
    plt.close(fig)
    return path
