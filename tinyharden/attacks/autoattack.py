"""AutoAttack as one suite entry: `--suite autoattack` and `--suite autoattack-rand`.

Example:

    python -m tinyharden attack runs/cifar-stq --suite autoattack --eps 1/255,2/255 -n 1000

Croce & Hein (2020). The standard version runs APGD-CE, APGD-T (targeted DLR loss, the
9 classes with the highest logits after the true one), FAB-T (same targets) and Square
(5,000 queries, p_init 0.8) in that order, each only on the samples every earlier
component failed to break, with AutoAttack's default budgets (100 iterations, one
restart each). `autoattack-rand`, for models random at inference, runs APGD-CE and
APGD-DLR with gradients averaged over 20 passes (EOT).

Every component's candidates are re-checked by tinyharden (`evaluation.recheck`, strict:
an example outside the eps ball or [0, 1] is a failure) and re-predicted before a sample
is dropped from the sequence; the suite then re-checks the final examples once more, so
the per-sample worst case is tinyharden's figure, never a library's success flag.
APGD and FAB are tinyharden's in-graph engines (`apgd_graph`, `fab_graph`); Square is
tinyharden's compiled Linf Square (`attacks.square_graph`; L2 through ART's
`SquareAttack`), always on the float32 model. Gradients through quantizers are whatever the
model's quantizers define: QKeras and tinyharden's quantizers use the straight-through
estimator, so this is BPDA; `autoattack_checks.ste_forward_agreement` flags a model whose
STE gradients do not predict its forward pass.
"""
from __future__ import annotations

import time

import numpy as np

from tinyharden.attacks import autoattack_checks as checks
from tinyharden.attacks import evaluation as ev
from tinyharden.attacks.base import WHITE_BOX, Attack, AttackOutput, batches
from tinyharden.attacks.target import require_differentiable
from tinyharden.errors import UserError


class AutoAttack(Attack):
    """Standard AutoAttack: APGD-CE, APGD-T, FAB-T, Square, in sequence on the still-robust samples."""

    name = "autoattack"
    kind = WHITE_BOX
    eot_capable = True
    precision_capable = True

    def __init__(self, *, steps: int = 100, targets: int = 9, fab_steps: int = 100, square_queries: int = 5000,
                 square_p_init: float = 0.8):
        if min(steps, targets, fab_steps, square_queries) < 1 or not 0 < square_p_init <= 1:
            raise ValueError("steps, targets, fab_steps and square_queries must be >= 1 and square_p_init in (0, 1]")
        self.steps = steps
        self.targets = targets
        self.fab_steps = fab_steps
        self.square_queries = square_queries
        self.square_p_init = square_p_init

    def algorithm(self) -> str:
        return ("AutoAttack standard (Croce & Hein 2020): APGD-CE, APGD-T (DLR), FAB-T in-graph; "
                "Square compiled (Linf; L2 via art.attacks.evasion.SquareAttack); sequential on still-robust samples")

    def components(self, target, x) -> list[tuple[str, object]]:
        k = min(self.targets, target.num_classes - 1)
        comps = [("apgd-ce", lambda t, xs, ys, **kw: _apgd(t, xs, ys, loss="ce", steps=self.steps, **kw))]
        comps.append(("apgd-t", lambda t, xs, ys, **kw: _targeted(t, xs, ys, k, "apgd", self.steps, **kw)))
        comps.append(("fab-t", lambda t, xs, ys, **kw: _targeted(t, xs, ys, k, "fab", self.fab_steps, **kw)))
        if np.asarray(x).ndim == 4:  # Square needs (H, W, C) images
            comps.append(("square", lambda t, xs, ys, **kw: _square(t, xs, ys, self.square_queries,
                                                                     self.square_p_init, **kw)))
        return comps

    def effective_eot(self, eot: int) -> int:
        return eot

    def refuse(self, target, x) -> None:
        if target.num_classes < 4:
            raise UserError(f"autoattack's targeted DLR loss needs at least 4 classes; target '{target.name}' has "
                            f"{target.num_classes}: attack with apgd and square instead")
        if bool(getattr(target, "stochastic_at_inference", lambda _x: False)(x)):
            raise UserError(f"model '{target.name}' is random at inference (two passes differ): "
                            "attack with autoattack-rand instead (APGD with EOT over 20 passes)")

    def run(self, target, x, y, *, eps, norm, seed, eot=1, batch_size=256) -> AttackOutput:
        require_differentiable(target, self.name)
        x, y = np.asarray(x, np.float32), np.asarray(y, np.int64)
        self.refuse(target, x)
        # The checks judge the model itself: on a bfloat16 twin (attacks.precision) its float32 original.
        f32 = getattr(target, "base", target)
        pre = [checks.softmax_like_outputs(f32, x[:256]),
               checks.ste_forward_agreement(f32, x[:100], y[:100], eps=eps, norm=norm)]
        if isinstance(self, AutoAttackRand):
            pre.append(checks.randomness_note(target, x))
        out = run_sequence(self.components(target, x), target, x, y, eps=eps, norm=norm, seed=seed,
                           eot=self.effective_eot(eot),
                           batch_size=batch_size)
        post = [checks.square_beats_whitebox(out.info["components"], len(x), eps=eps)] if not isinstance(
            self, AutoAttackRand) else []
        out.info["checks"] = [dict(c, eps=eps) for c in pre + post]
        return out


class AutoAttackRand(AutoAttack):
    """AutoAttack's version for models random at inference: APGD-CE and APGD-DLR with EOT."""

    name = "autoattack-rand"

    def __init__(self, *, steps: int = 100, eot_iter: int = 20):
        if steps < 1 or eot_iter < 1:
            raise ValueError("steps and eot_iter must be >= 1")
        self.steps = steps
        self.eot_iter = eot_iter

    def algorithm(self) -> str:
        return f"AutoAttack rand (Croce & Hein 2020): APGD-CE and APGD-DLR in-graph, EOT over {self.eot_iter} passes"

    def refuse(self, target, x) -> None:
        if target.num_classes < 3:
            raise UserError(f"APGD-DLR needs at least 3 classes; target '{target.name}' has {target.num_classes}: "
                            "attack with apgd instead")

    def effective_eot(self, eot: int) -> int:
        return max(eot, self.eot_iter)

    def components(self, target, x):
        return [(nm, lambda t, xs, ys, _l=loss, **kw: _apgd(t, xs, ys, loss=_l, steps=self.steps, **kw))
                for nm, loss in (("apgd-ce", "ce"), ("apgd-dlr", "dlr"))]


def run_sequence(components, target, x, y, *, eps, norm, seed, eot, batch_size) -> AttackOutput:
    """Run `components` in order on the still-robust samples; re-check each stage ourselves."""
    x_adv = x.copy()
    robust = np.ones(len(x), bool)  # the suite hands over correctly classified samples only
    records = []
    for name, fn in components:
        idx = np.flatnonzero(robust)
        rec = {"name": name, "attacked": len(idx), "fooled": 0, "time_s": 0.0}
        if len(idx):
            t0 = time.perf_counter()
            with _eot_context(target, eot if name != "square" else 1):
                cand, extra = fn(target, x[idx], y[idx], eps=eps, norm=norm, seed=seed, eot=eot, batch_size=batch_size)
            rec["time_s"] = time.perf_counter() - t0
            rec.update(extra)
            checked = ev.recheck(x[idx], cand, eps=eps, norm=norm, policy="reject")
            pred = np.argmax(target.predict(checked.x_adv), axis=-1)
            fooled = (pred != y[idx]) & ~checked.rejected
            x_adv[idx[fooled]] = checked.x_adv[fooled]
            robust[idx[fooled]] = False
            rec.update(fooled=int(fooled.sum()), rejected=int(checked.rejected.sum()))
        rec["robust_after"] = ev.proportion(robust)
        records.append(rec)
    queries = sum(r.get("queries", 0) for r in records)
    return AttackOutput(x_adv, queries=None, info={"components": records, "square_queries": queries})


def _eot_context(target, eot: int):
    import contextlib

    # The suite enters sampling mode when it plans EOT; autoattack-rand always averages,
    # so it needs the mode (BatchNorm frozen, Dropout off) even when the suite did not.
    if eot > 1 and hasattr(target, "sampling_mode"):
        return target.sampling_mode()
    return contextlib.nullcontext()


def _apgd(target, x, y, *, loss, steps, eps, norm, seed, eot, batch_size, y_target=None):
    from tinyharden.attacks.apgd_graph import apgd_engine

    eng = apgd_engine(target, norm=norm, loss=loss, eot=eot)
    eng.reseed(seed)
    out = np.array(x, copy=True)
    for sl in batches(len(x), batch_size):
        out[sl], _ = eng(x[sl], y[sl], eps=eps, steps=steps, y_target=None if y_target is None else y_target[sl])
    return out, {}


def _targeted(target, x, y, k, engine, steps, *, eps, norm, seed, eot, batch_size):
    """Run APGD-T or FAB-T against the 2nd..(k+1)-th most likely classes, stopping per sample on success."""
    from tinyharden.attacks.fab_graph import fab_engine

    order = np.argsort(-target.predict(x), axis=-1)
    out = np.array(x, copy=True)
    todo = np.ones(len(x), bool)
    for j in range(1, k + 1):
        idx = np.flatnonzero(todo)
        if not len(idx):
            break
        yt = order[idx, j]
        if engine == "apgd":
            cand, _ = _apgd(target, x[idx], y[idx], loss="dlr-t", steps=steps, eps=eps, norm=norm, seed=seed + j,
                            eot=eot, batch_size=batch_size, y_target=yt)
        else:
            cand = np.array(x[idx], copy=True)
            eng = fab_engine(target, norm=norm)
            for sl in batches(len(idx), batch_size):
                cand[sl], _ = eng(x[idx][sl], y[idx][sl], yt[sl], steps=steps)
            cand = ev.project(x[idx], cand, eps, norm)  # FAB minimizes the norm; the ball is ours
        fooled = np.argmax(target.predict(cand), -1) != y[idx]
        out[idx[fooled]] = cand[fooled]
        todo[idx[fooled]] = False
    return out, {"targets": int(k)}


def _square(target, x, y, queries, p_init, *, eps, norm, seed, eot, batch_size):
    from tinyharden.attacks.square_graph import SquareGraph

    # Accepting a square on a margin change smaller than bf16's rounding would be noise: float32.
    target = getattr(target, "base", target)
    out = SquareGraph(max_iter=queries, p_init=p_init).run(target, x, y, eps=eps, norm=norm, seed=seed,
                                                     batch_size=batch_size)
    return out.x_adv, {"queries": int(out.queries or 0)}
