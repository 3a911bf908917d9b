"""Run a suite of attacks over an eps sweep and score it: the engine behind `tinyharden attack`.

The suite attacks only the correctly classified samples (a misclassified sample is not
robust whatever happens), runs each fixed-budget attack once per eps and each
minimum-norm attack once, re-checks and re-predicts every example
(`evaluation.recheck`), and combines them:

- per attack and eps, `robust_accuracy` counts a sample robust only if it also resisted
  this attack at every smaller eps: the balls nest, so an example found at a smaller
  eps is a valid one at a larger eps. `robust_accuracy_run` is the run at that eps
  alone (what the masking checks look at);
- the suite's worst case counts a sample robust only if it is correct clean and robust
  under every attack (and, for the headline number, every eps).
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from tinyharden.attacks import evaluation as ev
from tinyharden.attacks import masking
from tinyharden.attacks.base import WHITE_BOX, Attack, attack_class, make_attack
from tinyharden.errors import UserError
from tinyharden.registry import ATTACKS

DEFAULT_EOT = 10  # passes per gradient for models that are random at inference


@dataclass
class SuiteConfig:
    suite: list[str]
    eps: list[float]
    norm: str = "linf"
    eot: int | None = None
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    seed: int = 0
    policy: str = "clip"  # clip | reject: what to do with an example outside the ball or [0, 1]
    batch_size: int = 256
    checks: bool = True
    sanity_eps: float = 0.5
    sanity_n: int = 100
    precision: str = "float32"  # what white-box attacks compute in (attacks.precision); scoring is always float32
    eps_labels: dict[float, str] = field(default_factory=dict)  # eps as the user wrote it (8/255, 0.5step)

    def eps_label(self, eps: float) -> str:
        """How progress and records name `eps`: the user's own text, else 8/255-style."""
        from tinyharden.formatting import fmt_eps

        return self.eps_labels.get(eps) or fmt_eps(eps)


@dataclass
class SuiteResult:
    report: dict[str, Any]
    examples: dict[str, np.ndarray]

    @property
    def robust_accuracy(self) -> float:
        return self.report["suite"]["robust_accuracy"]["value"]


def sampling_context(target, eot: int):
    if eot > 1 and hasattr(target, "sampling_mode"):
        return target.sampling_mode()
    return contextlib.nullcontext()


def plan_eot(target, x: np.ndarray, requested: int | None) -> tuple[int, str]:
    """How many stochastic passes per gradient, and why (recorded in the report)."""
    stochastic_inf = bool(getattr(target, "stochastic_at_inference", lambda _x: False)(x))
    stochastic_q = bool(getattr(target, "has_stochastic_quantizers", lambda: False)())
    if stochastic_inf:
        eot = requested or DEFAULT_EOT
        return eot, f"the model is stochastic at inference (two passes differ): always attacked with EOT over {eot} passes"
    if requested and requested > 1:
        if stochastic_q:
            return requested, f"EOT {requested}: gradients averaged over {requested} passes with the stochastic quantizers sampling"
        return 1, f"EOT {requested} ignored: the model has no stochastic quantizers or layers, every pass is identical"
    return 1, "deterministic model: no EOT"


def validate_config(config: SuiteConfig, target, attacks: list[Attack]) -> None:
    if not config.suite:
        raise UserError(f"the attack suite is empty; name at least one attack, e.g. pgd,square (attacks: {ATTACKS.choices()})")
    if not config.eps or any(not (e > 0) for e in config.eps):
        raise UserError(f"eps must be positive numbers in [0,1] data units such as 8/255, got {config.eps}")
    if any(e > 1 for e in config.eps) and config.norm == "linf":
        raise UserError(f"Linf eps {max(config.eps):g} exceeds the [0,1] data range; eps is in [0,1] units, e.g. 8/255")
    if config.policy not in ("clip", "reject"):
        raise UserError(f"the re-check policy must be clip or reject, got '{config.policy}'")
    if config.norm not in ("linf", "l2"):
        raise UserError(f"the attack norm must be linf or l2, got '{config.norm}'")
    from tinyharden.attacks.precision import PRECISIONS

    if config.precision not in PRECISIONS:
        raise UserError(f"attack precision must be {' or '.join(PRECISIONS)}, got '{config.precision}'")
    from tinyharden.attacks.target import require_differentiable

    for a in attacks:
        if a.kind == WHITE_BOX:
            require_differentiable(target, a.name)


@dataclass
class _Context:
    """What every attack of one suite run shares: the data, the clean predictions, the progress tick."""

    target: Any
    x: np.ndarray
    y: np.ndarray
    config: SuiteConfig
    eps_list: list[float]
    clean_pred: np.ndarray
    correct: np.ndarray
    idx: np.ndarray
    tick: Callable[[str, int], None]  # (label, samples this step attacks)
    examples: dict[str, np.ndarray] = field(default_factory=dict)
    attack_checks: list[dict] = field(default_factory=list)  # checks an attack runs itself (autoattack's flags)


def _min_norm(ctx: _Context, attack: Attack, rec: dict, ps: dict, eot: int) -> dict[float, np.ndarray]:
    """A minimum-norm attack: run once at the largest eps, scored at every eps of the sweep."""
    config, x, y, correct = ctx.config, ctx.x, ctx.y, ctx.correct
    robust_by_eps: dict[float, np.ndarray] = {}
    ctx.tick(f"{attack.name}", len(ctx.idx))
    t0 = time.perf_counter()
    out = _run(attack, ctx.target, x, y, ctx.idx, eps=max(ctx.eps_list), config=config, eot=eot)
    elapsed = time.perf_counter() - t0
    checked = ev.recheck(x, out.x_adv, eps=None, norm=config.norm, policy=config.policy)
    pred = np.argmax(ctx.target.predict(checked.x_adv), axis=-1)
    fooled = correct & (pred != y) & ~checked.rejected
    native = ev.norms(checked.x_adv - x, attack.norms[0])
    rec["time_s"] = elapsed
    rec["perturbation_native"] = {"norm": attack.norms[0], **ev.perturbation_stats(native, fooled)}
    ctx.examples[attack.name] = checked.x_adv
    for e in ctx.eps_list:
        within = checked.norm <= e * (1 + ev.REL_TOL) + ev.ABS_TOL
        success = fooled & within
        robust = correct & ~success
        rec["results"].append(_result(e, config.norm, robust, robust, success, correct, checked, fooled,
                                      out.queries, len(ctx.idx), elapsed, policy=config.policy,
                                      shared_time=True))
        robust_by_eps[e] = robust
        ps["adv_pred"].append(np.where(success, pred, ctx.clean_pred))
        ps["robust"].append(robust)
        ps["norm"].append(checked.norm)
    return robust_by_eps


def _fixed_eps(ctx: _Context, attack: Attack, rec: dict, ps: dict, eot: int) -> dict[float, np.ndarray]:
    """A fixed-budget attack: run once per eps; a sample is robust at eps only if it was at every smaller one."""
    config, x, y, correct = ctx.config, ctx.x, ctx.y, ctx.correct
    robust_by_eps: dict[float, np.ndarray] = {}
    prev_robust = correct.copy()
    rec["time_s"] = 0.0
    for k, e in enumerate(ctx.eps_list):
        ctx.tick(f"{attack.name} eps={config.eps_label(e)}", len(ctx.idx))
        t0 = time.perf_counter()
        out = _run(attack, ctx.target, x, y, ctx.idx, eps=e, config=config, eot=eot)
        elapsed = time.perf_counter() - t0
        rec["time_s"] += elapsed
        checked = ev.recheck(x, out.x_adv, eps=e, norm=config.norm, policy=config.policy)
        pred = np.argmax(ctx.target.predict(checked.x_adv), axis=-1)
        run_robust = correct & ((pred == y) | checked.rejected)
        nested = run_robust & prev_robust
        prev_robust = nested
        success = correct & ~nested
        rec["results"].append(_result(e, config.norm, nested, run_robust, success, correct, checked,
                                      correct & ~run_robust, out.queries, len(ctx.idx), elapsed,
                                      policy=config.policy))
        if "components" in out.info:  # a sequence of attacks (autoattack) records each stage
            rec["results"][-1]["components"] = out.info["components"]
        ctx.attack_checks.extend(out.info.get("checks", []))
        robust_by_eps[e] = nested
        ctx.examples[f"{attack.name}_eps{k}"] = checked.x_adv
        ps["adv_pred"].append(pred)
        ps["robust"].append(nested)
        ps["norm"].append(checked.norm)
    return robust_by_eps


def _attack_record(attack: Attack, config: SuiteConfig, eot: int) -> dict:
    return {"name": attack.name, "kind": attack.kind, "implementation": attack.implementation(),
            "params": attack.params(), "minimum_norm": attack.minimum_norm,
            "attack_norm": attack.norms[0] if attack.minimum_norm else config.norm,
            "eval_norm": config.norm, "eot": eot, "precision": _precision(attack, config),
            "scored_in": "float32", "results": []}


def _precision(attack: Attack, config: SuiteConfig) -> str:
    """What `attack` computes in: the configured precision if it can use it, else float32."""
    return config.precision if attack.precision_capable else "float32"


def _sanity_checks(ctx: _Context, records: list[dict], eot: int) -> list[dict]:
    config, target, idx = ctx.config, ctx.target, ctx.idx
    if not config.checks:
        return []
    checks = [masking.blackbox_beats_whitebox(records, len(ctx.x)), masking.eps_not_decreasing(records, len(ctx.x))]
    checks.extend(ctx.attack_checks)
    if getattr(target, "differentiable", False) and hasattr(target, "logits"):
        sub = idx[: config.sanity_n]
        ctx.tick(f"check: large-eps PGD (eps {config.sanity_eps:g})", len(sub))
        checks.append(masking.large_eps_pgd(target, ctx.x[sub], ctx.y[sub], eps=config.sanity_eps, eot=eot,
                                            seed=config.seed, batch_size=config.batch_size))
        ctx.tick("check: zero gradients", len(sub))
        checks.append(masking.zero_gradients(target, ctx.x[sub], ctx.y[sub], batch_size=config.batch_size))
    else:
        for nm in ("large_eps_pgd", "zero_gradients"):
            checks.append({"name": nm, "flagged": False, "skipped": True,
                           "message": "not run: the target is not differentiable"})
    return checks


def _worst_cases(ctx: _Context, attacks: list[Attack], records: list[dict],
                 robust_by_attack: dict[str, dict[float, np.ndarray]]) -> tuple[list[dict], np.ndarray]:
    """The suite's worst case per eps (with the strongest attack) and over everything."""
    per_eps = []
    for e in ctx.eps_list:
        wc = ev.worst_case([robust_by_attack[a.name][e] for a in attacks], ctx.correct)
        strongest = min(records, key=lambda r: next(rr["robust_accuracy"]["value"] for rr in r["results"] if rr["eps"] == e))
        per_eps.append({"eps": e, "robust_accuracy": ev.proportion(wc), "strongest_attack": strongest["name"]})
    overall = ev.worst_case([r for a in attacks for r in robust_by_attack[a.name].values()], ctx.correct)
    return per_eps, overall


def _planned_samples(attacks: list[Attack], eps_list: list[float], attacked: int, config: SuiteConfig,
                     target) -> int:
    """Samples the suite will attack: each fixed-eps attack once per eps, a minimum-norm one once, the checks."""
    total = sum(attacked * (1 if a.minimum_norm else len(eps_list)) for a in attacks)
    if config.checks and getattr(target, "differentiable", False) and hasattr(target, "logits"):
        total += 2 * min(config.sanity_n, attacked)
    return total


def _progress_tick(progress: Callable[[str, int, int], None] | None, total: int) -> Callable[[str, int], None]:
    """tick(label, samples) as each step starts: progress hears (label, samples done before it, total)."""
    done = 0

    def tick(label: str, samples: int) -> None:
        nonlocal done
        if progress:
            progress(label, done, total)
        done += samples

    return tick


def run_suite(target, x: np.ndarray, y: np.ndarray, config: SuiteConfig, *, source=None,
              progress: Callable[[str, int, int], None] | None = None) -> SuiteResult:
    """Attack `target` on (x, y) (x in [0, 1] units) and return the scored report.

        result = run_suite(KerasTarget(model), x, y, SuiteConfig(suite=["pgd"], eps=[8 / 255]))

    `progress(label, done, total)` hears each step as it starts ("pgd eps=8/255") and "done"
    at the end; done and total count samples: the correctly classified ones, once per
    attack and eps, plus the masking checks' samples.
    """
    from tinyharden._tf import tf

    x = np.asarray(x, np.float32)
    y = np.asarray(y, np.int64)
    names = list(dict.fromkeys(config.suite))  # de-duplicated, order kept
    for nm in config.params:  # a misspelt attack name in the parameters is an error; budgets
        attack_class(nm)      # for known attacks outside this suite (from a recipe) are unused
    attacks = [make_attack(nm, config.params.get(nm), _source_target=source) for nm in names]
    validate_config(config, target, attacks)
    eps_list = sorted(set(float(e) for e in config.eps))
    t_start = time.perf_counter()
    tf.random.set_seed(config.seed)

    clean_pred = np.argmax(target.predict(x), axis=-1)
    correct = clean_pred == y
    eot, eot_reason = plan_eot(target, x, config.eot)
    for a in attacks:  # an attack that cannot evaluate this target says so before any attack runs
        getattr(a, "refuse", lambda _t, _x: None)(target, x)
    total = _planned_samples(attacks, eps_list, int(correct.sum()), config, target)
    ctx = _Context(target, x, y, config, eps_list, clean_pred, correct, np.flatnonzero(correct),
                   _progress_tick(progress, total))

    records, per_sample_attacks, robust_by_attack = _run_attacks(ctx, attacks, config, eot)
    per_eps, overall = _worst_cases(ctx, attacks, records, robust_by_attack)
    checks = _sanity_checks(ctx, records, eot)
    if progress:
        progress("done", total, total)

    report = {
        "config": {"suite": names, "eps": eps_list, "eps_text": [config.eps_label(e) for e in eps_list],
                   "norm": config.norm, "seed": config.seed, "policy": config.policy,
                   "batch_size": config.batch_size, "eot": eot, "eot_reason": eot_reason,
                   "precision": config.precision,
                   "tolerance": {"relative": ev.REL_TOL, "absolute": ev.ABS_TOL},
                   "sanity": {"eps": config.sanity_eps, "samples": config.sanity_n}},
        "clean": {"accuracy": ev.proportion(correct), "attacked": int(len(ctx.idx))},
        "attacks": records,
        "suite": {"robust_accuracy": ev.proportion(overall), "per_eps": per_eps,
                  "definition": "a sample counts as robust only if it is correct clean and under every attack and eps"},
        "masking": {"flagged": any(c["flagged"] for c in checks), "checks": checks},
        "per_sample": {"label": y.tolist(), "clean_pred": clean_pred.tolist(), "clean_correct": correct.tolist(),
                       "attacks": per_sample_attacks, "suite_robust": overall.tolist(), "eps": eps_list},
        "time_s": time.perf_counter() - t_start,
    }
    return SuiteResult(report, ctx.examples)


def _run_attacks(ctx: "_Context", attacks: list[Attack], config: SuiteConfig, eot: int):
    """Each attack over every eps: (records, per-sample outcomes, robust mask per attack and eps)."""
    records: list[dict] = []
    per_sample_attacks: dict[str, dict] = {}
    robust_by_attack: dict[str, dict[float, np.ndarray]] = {}
    for attack in attacks:
        a_eot = eot if attack.eot_capable else 1
        rec = _attack_record(attack, config, a_eot)
        ps: dict[str, list] = {"adv_pred": [], "robust": [], "norm": []}
        run = _min_norm if attack.minimum_norm else _fixed_eps
        robust_by_attack[attack.name] = run(ctx, attack, rec, ps, a_eot)
        records.append(rec)
        per_sample_attacks[attack.name] = {k: [np.asarray(v).tolist() if k != "norm" else np.round(v, 6).tolist()
                                               for v in vals] for k, vals in ps.items()}
    return records, per_sample_attacks, robust_by_attack


def _run(attack: Attack, target, x, y, idx, *, eps, config: SuiteConfig, eot: int):
    """Run `attack` on the samples `idx` only; others keep their clean input."""
    from tinyharden.attacks.base import AttackOutput

    from tinyharden.attacks.precision import attack_target

    x_adv = x.copy()
    if len(idx) == 0:
        return AttackOutput(x_adv, queries=0 if attack.kind != WHITE_BOX else None)
    # The caller re-predicts the returned examples with `target` (float32) whatever this computed in.
    target = attack_target(target, _precision(attack, config))
    with sampling_context(target, eot):
        out = attack.run(target, x[idx], y[idx], eps=eps, norm=config.norm, seed=config.seed, eot=eot,
                         batch_size=config.batch_size)
    x_adv[idx] = out.x_adv
    out.x_adv = x_adv
    return out


def _result(eps, norm, robust, run_robust, success, correct, checked, run_success, queries, attacked, elapsed,
            *, policy: str, shared_time: bool = False) -> dict:
    r = {
        "eps": eps,
        "robust_accuracy": ev.proportion(robust),
        "robust_accuracy_run": ev.proportion(run_robust),
        "success_rate": ev.proportion(success[correct]),
        "perturbation": {"norm": norm, **ev.perturbation_stats(checked.norm, success & run_success)},
        "recheck": checked.summary(policy),
        "time_s": elapsed,
    }
    if shared_time:
        r["time_note"] = "one run scored at every eps"
    if queries is not None:
        r["queries"] = {"total": int(queries), "per_attacked_sample": (queries / attacked) if attacked else 0.0}
    return r
