"""The cost of ZOO, Boundary and C&W at the README's budgets: the library called as before vs tinyharden now.

On the first CIFAR-10 test images against the MLPerf Tiny ResNet-8 (pretrainedResnet.h5, raw
0..255 pixels, softmax stripped), each attack at its default budget (the one the README's
six-attack suites ran: ZOO 20 iterations x 128 coordinates, one binary search step; Boundary
1,000 steps from a blended-uniform-noise start with 1,000 directions and 1,000 levels; C&W
5 binary searches x 100 steps), on the correctly classified images only, as the suite does:

- `*_library`: the library called the way tinyharden called it before this change, which is
  how their docs show it: ART's `BlackBoxClassifier(predict_fn)` + `ZooAttack(batch_size=1)`;
  foolbox's `LinearSearchBlendedUniformNoiseAttack` + `BoundaryAttack` on a `NumPyModel`;
  foolbox's `L2CarliniWagnerAttack` on `TensorFlowModel(keras_model)`;
- `*_tinyharden`: `tinyharden.attacks` zoo / boundary / cw `.run`, same budget and seed.

Warm-up on 2 images (tracing is not throughput), then --rounds rounds, the methods interleaved
and the order alternating. Robust accuracy (over all n images; a clean mistake is not robust)
is scored as the suite scores minimum-norm attacks: a sample is broken at eps if the example
is misclassified and its Linf norm is within eps; Wilson 95% intervals. Minimum-norm attacks
run once for every eps, so the extrapolated wall time of an n=1000 sweep over 4 eps is one run
over the images the model gets right among the first 1,000: seconds per attacked image x that
count (linear in images: ZOO attacks one image at a time; Boundary and C&W run in batches of
256, so runs on fewer images than that make the extrapolation pessimistic).

    nice -n 15 python bench/blackbox_cost.py --zoo-n 12 --n 50 --rounds 2
writes bench/results/blackbox_cost.json.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.attack_throughput import run_context, write_record  # noqa: E402

DEFAULT_MODEL = ROOT.parent / "shared" / "data" / "mlperf_tiny" / "image_classification" / "trained_models" / "pretrainedResnet.h5"
ATTACKS = ("zoo", "boundary", "cw")
EPS = (1 / 255, 2 / 255, 4 / 255, 8 / 255)
EPS_TEXT = ("1/255", "2/255", "4/255", "8/255")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=50, help="CIFAR-10 test images for Boundary and C&W (default 50)")
    ap.add_argument("--zoo-n", type=int, default=12, help="CIFAR-10 test images for ZOO (default 12)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--attacks", default=",".join(ATTACKS))
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "blackbox_cost.json")
    args = ap.parse_args()
    names = [a for a in args.attacks.split(",") if a]
    if set(names) - set(ATTACKS):
        ap.error(f"attacks must be among {', '.join(ATTACKS)}")
    from tinyharden.attacks.base import make_attack
    from tinyharden.attacks.target import KerasTarget
    from tinyharden.data import load_dataset
    from tinyharden.models import load_model, logits_model
    from tinyharden.recipe import DataSpec
    load_start = list(os.getloadavg())
    ds = load_dataset(DataSpec(dataset="cifar10"), 0)
    target = KerasTarget(logits_model(load_model(args.model)), input_range=(0.0, 255.0))
    x1k, y1k = ds.x_test[:1000].astype(np.float32), ds.y_test[:1000].astype(np.int64)
    correct_1k = np.argmax(target.predict(x1k), -1) == y1k
    methods = {}
    for name in names:
        n = args.zoo_n if name == "zoo" else args.n
        attack = make_attack(name)
        methods[f"{name}_library"] = {"attack": name, "n": n, "fn": _library_fn(name, attack, target, args.seed)}
        methods[f"{name}_tinyharden"] = {"attack": name, "n": n, "params": attack.params(),
                                         "fn": _tinyharden_fn(attack, target, args.seed)}
    for m in methods.values():  # warm-up on two correctly classified images
        idx = np.flatnonzero(correct_1k)[:2]
        m["fn"](x1k[idx], y1k[idx])
    rounds: dict[str, list[dict]] = {k: [] for k in methods}
    for r in range(args.rounds):
        for name in (list(methods) if r % 2 == 0 else list(reversed(methods))):
            m = methods[name]
            rounds[name].append(_timed(name, m, x1k[: m["n"]], y1k[: m["n"]], correct_1k[: m["n"]], target))
    attacked_1k = int(correct_1k.sum())
    results = {k: _summarize(rs, attacked_1k) for k, rs in rounds.items()}
    for k, m in methods.items():
        results[k]["n"] = m["n"]
        if "params" in m:
            results[k]["budget"] = m["params"]
    record = {
        "benchmark": "blackbox_cost", "rounds": args.rounds, "seed": args.seed, "eps": list(EPS), "eps_text": list(EPS_TEXT),
        "model": str(args.model), "model_input_range": [0, 255], "dataset": "cifar10 test, first n",
        "clean_accuracy_first_1000": float(correct_1k.mean()), "attacked_at_n1000": attacked_1k,
        "results": results, "summary": _ratios(results, names),
        **run_context("blackbox_cost.py", load_start),
    }
    write_record(args.out, record)


def _tinyharden_fn(attack, target, seed: int):
    def run(x, y):
        out = attack.run(target, x, y, eps=max(EPS), norm="linf", seed=seed)
        return out.x_adv, out.queries

    return run


def _library_fn(name: str, attack, target, seed: int):
    """The library called as tinyharden did before: same budget as `attack`, same seed."""
    from tinyharden.attacks._adapters import QueryCounter, int_labels, seed_numpy_and_random

    def zoo(x, y):
        from art.attacks.evasion import ZooAttack
        from art.estimators.classification import BlackBoxClassifier

        seed_numpy_and_random(seed)
        counter = QueryCounter(target)
        clf = BlackBoxClassifier(counter, tuple(target.input_shape), target.num_classes, clip_values=(0.0, 1.0))
        att = ZooAttack(clf, confidence=attack.confidence, targeted=False, learning_rate=attack.learning_rate,
                        max_iter=attack.max_iter, binary_search_steps=attack.binary_search_steps,
                        initial_const=attack.initial_const, abort_early=True, use_resize=False, use_importance=False,
                        nb_parallel=attack.nb_parallel, batch_size=1, variable_h=attack.variable_h, verbose=False)
        return att.generate(x=x, y=np.eye(target.num_classes)[y]).astype(np.float32), counter.count

    def boundary(x, y):
        import foolbox as fb

        seed_numpy_and_random(seed)
        counter = QueryCounter(target)
        fmodel, yl = fb.models.NumPyModel(counter, bounds=(0.0, 1.0)), int_labels(y)
        init = fb.attacks.LinearSearchBlendedUniformNoiseAttack(directions=attack.init_directions, steps=attack.init_steps)
        att = fb.attacks.BoundaryAttack(steps=attack.steps, spherical_step=attack.spherical_step,
                                        source_step=attack.source_step, step_adaptation=attack.step_adaptation)
        starts = np.asarray(init.run(fmodel, x, fb.criteria.Misclassification(yl)), np.float32)
        ok = np.argmax(counter(starts), -1) != yl
        out = x.copy()
        if ok.any():
            raw, _, _ = att(fmodel, x[ok], yl[ok], epsilons=None, starting_points=starts[ok])
            out[ok] = np.asarray(raw, np.float32)
        return out, counter.count

    def cw(x, y):
        import foolbox as fb

        from tinyharden._tf import tf

        fmodel = fb.TensorFlowModel(target.data_model, bounds=(0.0, 1.0))
        att = fb.attacks.L2CarliniWagnerAttack(binary_search_steps=attack.binary_search_steps, steps=attack.steps,
                                               stepsize=attack.stepsize, confidence=attack.confidence,
                                               initial_const=attack.initial_const, abort_early=attack.abort_early)
        raw, _, _ = att(fmodel, tf.constant(x), tf.constant(int_labels(y)), epsilons=None)
        raw = raw.numpy()
        fooled = np.argmax(target.predict(raw), -1) != y  # foolbox's all-zero "not found" kept clean, as tinyharden
        return np.where(fooled[:, None, None, None], raw, x), None

    return {"zoo": zoo, "boundary": boundary, "cw": cw}[name]


def _timed(name: str, m: dict, x, y, correct, target) -> dict:
    from tinyharden.attacks.evaluation import proportion

    idx = np.flatnonzero(correct)
    t0 = time.perf_counter()
    x_att, queries = m["fn"](x[idx], y[idx])
    dt = time.perf_counter() - t0
    x_adv = x.copy()
    x_adv[idx] = np.clip(x_att, 0.0, 1.0)
    fooled = correct & (np.argmax(target.predict(x_adv), -1) != y)
    linf = np.abs(x_adv - x).reshape(len(x), -1).max(axis=1)
    robust = {t: proportion(correct & ~(fooled & (linf <= e * (1 + 1e-4) + 1e-6))) for t, e in zip(EPS_TEXT, EPS)}
    res = {"seconds": dt, "attacked": len(idx), "images_per_s": len(idx) / dt, "robust_accuracy": robust,
           "fooled_any_norm": int(fooled.sum()), "queries": queries,
           "queries_per_attacked_image": queries / len(idx) if queries is not None else None,
           "x_adv_sha": _digest(x_adv), "load_average": os.getloadavg()[0]}
    ra = robust["1/255"]
    print(f"{name:20s} {dt:8.1f} s  {res['images_per_s']:6.2f} img/s  robust@1/255 {100 * ra['value']:.1f}% "
          f"[{100 * ra['ci95'][0]:.1f}, {100 * ra['ci95'][1]:.1f}]  fooled {res['fooled_any_norm']}  queries {queries}",
          flush=True)
    return res


def _digest(a: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]


def _summarize(rs: list[dict], attacked_1k: int) -> dict:
    med = statistics.median(r["seconds"] for r in rs)
    attacked = rs[0]["attacked"]
    per_image = med / attacked
    return {"rounds": rs, "median_seconds": med, "attacked": attacked, "images_per_s": attacked / med,
            "seconds_per_attacked_image": per_image, "robust_accuracy": rs[0]["robust_accuracy"],
            "same_result_every_round": len({r["x_adv_sha"] for r in rs}) == 1,
            "extrapolated_n1000_4eps_seconds": per_image * attacked_1k}


def _ratios(results: dict, names: list[str]) -> dict:
    out = {}
    for a in names:
        old, new = results[f"{a}_library"], results[f"{a}_tinyharden"]
        agree = all(old["robust_accuracy"][t]["ci95"][0] <= new["robust_accuracy"][t]["ci95"][1]
                    and new["robust_accuracy"][t]["ci95"][0] <= old["robust_accuracy"][t]["ci95"][1] for t in EPS_TEXT)
        out[a] = {"speedup": new["images_per_s"] / old["images_per_s"],
                  "library_s": round(old["median_seconds"], 1), "tinyharden_s": round(new["median_seconds"], 1),
                  "robust_accuracy_library": {t: old["robust_accuracy"][t]["value"] for t in EPS_TEXT},
                  "robust_accuracy_tinyharden": {t: new["robust_accuracy"][t]["value"] for t in EPS_TEXT},
                  "accuracy_within_each_others_interval": agree,
                  "same_examples": old["rounds"][0]["x_adv_sha"] == new["rounds"][0]["x_adv_sha"],
                  "n1000_4eps_library_min": round(old["extrapolated_n1000_4eps_seconds"] / 60, 1),
                  "n1000_4eps_tinyharden_min": round(new["extrapolated_n1000_4eps_seconds"] / 60, 1)}
    return out


if __name__ == "__main__":
    main()
