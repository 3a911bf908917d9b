"""The attack report: attack.json's layout and the Rich table printed on stdout.

attack.json (schema_version 1) holds, top to bottom: what was attacked (`target`,
`data`), how (`config`: suite, eps in [0,1] units, norm, seed, EOT and why, re-check
policy and tolerances; each attack's `params`, `implementation` library and version),
the results (`clean`, `attacks[].results[]` per eps, `suite` worst case, `masking`
checks, `gate`), `per_sample` outcomes, the `examples` file and `versions`.
"""
from __future__ import annotations

from typing import Any

from tinyharden.formatting import fmt_eps, pct

SCHEMA_VERSION = 1


def fmt_ci(p: dict) -> str:
    lo, hi = p["ci95"]
    return f"{100 * lo:.1f}-{100 * hi:.1f}"


def _pct(p: dict) -> str:
    return pct(p["value"], 1)


_KIND = {"white-box": "wb", "black-box": "bb", "transfer": "tr"}


def table(report: dict[str, Any]):
    """Rows: clean, then attack x eps, then the suite's worst case; fits 80 columns."""
    from rich import box
    from rich.table import Table

    cfg = report["config"]
    named = dict(zip(cfg["eps"], cfg.get("eps_text") or []))  # as the user wrote them (0.5step, -40dB)
    eps_text = lambda e: named.get(e) or fmt_eps(e)  # noqa: E731
    t = Table(title=f"{report['target']['name']} on {report['data']['dataset']}: n={report['data']['n']}, "
                    f"{cfg['norm']}, eps in [0,1] units", box=box.SIMPLE_HEAD,
              pad_edge=False, collapse_padding=True,
              caption="wb white-box, bb black-box, tr transfer; success: share of clean-correct samples fooled")
    for col in ("attack", "eps", "robust", "95% CI", "success", "med norm", "queries", "s"):
        t.add_column(col, justify="left" if col == "attack" else "right", no_wrap=True)
    clean = report["clean"]["accuracy"]
    t.add_row("clean", "0", _pct(clean), fmt_ci(clean), "", "", "", "")
    for a in report["attacks"]:
        label = f"{a['name']} {_KIND.get(a['kind'], '')}" + (f" eot{a['eot']}" if a.get("eot", 1) > 1 else "")
        for i, r in enumerate(a["results"]):
            q = r.get("queries")
            med = r["perturbation"]["median"]
            t.add_row(label if i == 0 else "", eps_text(r["eps"]), _pct(r["robust_accuracy"]), fmt_ci(r["robust_accuracy"]),
                      _pct(r["success_rate"]), "" if med is None else f"{med:.4f}",
                      "" if q is None else f"{q['per_attacked_sample']:.0f}",
                      f"{r['time_s']:.1f}" if i == 0 or not r.get("time_note") else "")
    t.add_section()
    per_eps = report["suite"]["per_eps"]
    for i, p in enumerate(per_eps):
        t.add_row("[bold]worst case[/]" if i == 0 else "", eps_text(p["eps"]), f"[bold]{_pct(p['robust_accuracy'])}[/]",
                  fmt_ci(p["robust_accuracy"]), "", "", "", "")
    if len(per_eps) > 1:
        overall = report["suite"]["robust_accuracy"]
        t.add_row("[bold]all eps[/]", "", f"[bold]{_pct(overall)}[/]", fmt_ci(overall), "", "", "", "")
    return t
