"""Gradient-masking sanity checks (Carlini et al., "On Evaluating Adversarial Robustness").

A defence that only breaks gradients looks robust to gradient attacks and is not. Each
check returns {"name", "flagged", "message", ...}; the CLI prints flagged ones as
warnings on stderr and attack.json records all of them:

- blackbox_beats_whitebox: a black-box or transfer attack ends with lower robust
  accuracy than the strongest white-box attack at the same eps, on the same samples.
  White-box attacks see strictly more, so this should not happen on an honest model.
- eps_not_decreasing: an attack's accuracy (its own run at each eps, before nesting)
  rises as eps grows, or, for a fixed-budget white-box attack, stays flat over a 4x
  range of eps while above zero.
- large_eps_pgd: PGD at a huge eps (0.5 in [0, 1] units by default; any image can be
  turned mid-grey) fails to drive accuracy near zero on a subset.
- zero_gradients: a large share of input gradients are exactly zero (of the margin
  loss, which, unlike cross-entropy, does not underflow on confident samples).

Accuracy differences below `tolerance(n)` (two samples, and at least one point) are
treated as noise.
"""
from __future__ import annotations

import numpy as np

from tinyharden.attacks.base import BLACK_BOX, TRANSFER, WHITE_BOX
from tinyharden.formatting import fmt_eps, pct

# The table's robust column nests the eps (robust at eps e = resisted every eps <= e), so it cannot rise;
# eps_not_decreasing reads each eps's own run, and its message says so rather than quote a figure the table lacks.
_RUN_ALONE = "each eps run alone; the table's robust column also counts the smaller eps"


def tolerance(n: int) -> float:
    return max(2.0 / max(n, 1), 0.01)


def _check(name: str, flagged: bool, message: str, **details) -> dict:
    return {"name": name, "flagged": bool(flagged), "message": message, **details}


def blackbox_beats_whitebox(records: list[dict], n: int) -> dict:
    """`records`: per attack {name, kind, results: [{eps, robust_accuracy}]}."""
    tol = tolerance(n)
    hits = []
    by_eps: dict[float, dict[str, list]] = {}
    for rec in records:
        for r in rec["results"]:
            group = "white" if rec["kind"] == WHITE_BOX else "black" if rec["kind"] in (BLACK_BOX, TRANSFER) else None
            if group:
                by_eps.setdefault(r["eps"], {"white": [], "black": []})[group].append((rec["name"], r["robust_accuracy"]["value"]))
    compared = False
    for eps, g in sorted(by_eps.items()):
        if not g["white"] or not g["black"]:
            continue
        compared = True
        wname, wacc = min(g["white"], key=lambda t: t[1])
        for bname, bacc in g["black"]:
            if bacc < wacc - tol:
                hits.append({"eps": eps, "black_box": bname, "black_box_accuracy": bacc,
                             "white_box": wname, "white_box_accuracy": wacc})
    if not compared:
        return _check("blackbox_beats_whitebox", False, "not run: the suite needs a white-box and a black-box or transfer attack",
                      skipped=True)
    if hits:
        h = hits[0]
        msg = (f"{h['black_box']} (robust {pct(h['black_box_accuracy'], 1)}) beats the strongest white-box attack "
               f"{h['white_box']} ({pct(h['white_box_accuracy'], 1)}) at eps {fmt_eps(h['eps'])}, both as in the "
               "table's robust column: gradients may be masked")
    else:
        msg = "no black-box or transfer attack beat the strongest white-box attack"
    return _check("blackbox_beats_whitebox", bool(hits), msg, tolerance=tol, hits=hits)


def eps_not_decreasing(records: list[dict], n: int) -> dict:
    tol = tolerance(n)
    hits = []
    for rec in records:
        rs = sorted(rec["results"], key=lambda r: r["eps"])
        if len(rs) < 2:
            continue
        accs = [r["robust_accuracy_run"]["value"] for r in rs]
        for k in range(1, len(rs)):
            if accs[k] > min(accs[:k]) + tol:
                j = min(range(k), key=lambda i: accs[i])
                hits.append({"attack": rec["name"], "kind": "rises", "eps": rs[k]["eps"], "accuracy": accs[k],
                             "lower_eps": rs[j]["eps"], "lower_eps_accuracy": accs[j]})
        # Flatness is judged for gradient attacks only: a query-limited black-box attack
        # can legitimately plateau, a gradient attack on an honest model does not.
        if (rec["kind"] == WHITE_BOX and not rec.get("minimum_norm") and rs[-1]["eps"] >= 4 * rs[0]["eps"]
                and accs[-1] >= accs[0] - tol and accs[-1] > tol):
            hits.append({"attack": rec["name"], "kind": "flat", "eps": rs[-1]["eps"], "accuracy": accs[-1],
                         "lower_eps": rs[0]["eps"], "lower_eps_accuracy": accs[0]})
    if hits:
        h = hits[0]
        what = "rises to" if h["kind"] == "rises" else "stays at"
        msg = (f"{h['attack']}: robust accuracy {what} {pct(h['accuracy'], 1)} at eps {fmt_eps(h['eps'])} from "
               f"{pct(h['lower_eps_accuracy'], 1)} at eps {fmt_eps(h['lower_eps'])} ({_RUN_ALONE}): the attack may be "
               "failing, not the model resisting")
    else:
        msg = "accuracy falls as eps grows" if any(len(r["results"]) > 1 for r in records) else "not run: a single eps"
    return _check("eps_not_decreasing", bool(hits), msg, tolerance=tol, hits=hits)


def large_eps_pgd(target, x, y, *, eps: float = 0.5, steps: int = 20, eot: int = 1, seed: int = 0,
                  max_accuracy: float = 0.1, batch_size: int = 256) -> dict:
    from tinyharden.attacks.pgd import PGD
    from tinyharden.attacks.suite import sampling_context

    if len(x) == 0:
        return _check("large_eps_pgd", False, "not run: no correctly classified samples", skipped=True)
    with sampling_context(target, eot):
        out = PGD(steps=steps, rel_step=0.25, random_start=True).run(target, x, y, eps=eps, norm="linf", seed=seed,
                                                                       eot=eot, batch_size=batch_size)
    acc = float((np.argmax(target.predict(out.x_adv), -1) == y).mean())
    flagged = acc > max_accuracy and (acc * len(x)) > 2
    msg = (f"PGD at eps {eps:g} leaves accuracy at {pct(acc, 1)} on {len(x)} samples (expected near 0): gradients may be "
           "masked" if flagged else f"PGD at eps {eps:g} drives accuracy to {pct(acc, 1)} on {len(x)} samples")
    return _check("large_eps_pgd", flagged, msg, eps=eps, steps=steps, samples=int(len(x)), accuracy=acc,
                  threshold=max_accuracy)


def zero_gradients(target, x, y, *, max_sample_share: float = 0.1, max_element_share: float = 0.5,
                   batch_size: int = 256) -> dict:
    from tinyharden._tf import tf
    from tinyharden.attacks.pgd import margin_loss

    if len(x) == 0:
        return _check("zero_gradients", False, "not run: no samples", skipped=True)
    zero_samples = 0
    zero_elems = 0
    total = 0
    for i in range(0, len(x), batch_size):
        xb = tf.constant(x[i:i + batch_size])
        yb = tf.constant(np.asarray(y[i:i + batch_size], np.int64))
        with tf.GradientTape() as tape:
            tape.watch(xb)
            loss = margin_loss(target.logits(xb, training=False), yb)
        g = tape.gradient(loss, xb)
        g = np.zeros(xb.shape, np.float32) if g is None else g.numpy()
        flat = g.reshape(len(g), -1)
        zero_samples += int((np.abs(flat).max(axis=1) == 0).sum())
        zero_elems += int((flat == 0).sum())
        total += flat.size
    s_share, e_share = zero_samples / len(x), zero_elems / max(total, 1)
    flagged = s_share > max_sample_share or e_share > max_element_share
    msg = (f"{s_share:.0%} of samples have an all-zero input gradient and {e_share:.0%} of gradient entries are zero: "
           "gradients are masked (e.g. rounding without a straight-through estimator); trust black-box results more"
           if flagged else f"input gradients are informative ({e_share:.1%} zero entries)")
    return _check("zero_gradients", flagged, msg, samples=int(len(x)), zero_sample_share=s_share,
                  zero_element_share=e_share, thresholds={"samples": max_sample_share, "elements": max_element_share})
