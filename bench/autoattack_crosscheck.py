"""AutoAttack cross-check: tinyharden's `autoattack` vs ART's `AutoAttack` called directly.

On the MLPerf Tiny ResNet-8 (pretrainedResnet.h5, raw 0..255 pixels, softmax stripped so
both see logits) and the first N CIFAR-10 test images, for each eps (Linf, [0, 1] units),
interleaved on the same images:

- tinyharden: `run_suite(..., suite=["autoattack"])`, i.e. APGD-CE, APGD-T (9 targets),
  FAB-T (9 targets), Square 5,000 queries in sequence, scored by tinyharden's re-check;
- ART 1.20.1: `art.attacks.evasion.AutoAttack` on a `TensorFlowV2Classifier(...,
  clip_values=(0, 1), preprocessing=(0, 1/255))` with the standard budgets ART can
  express: APGD-CE and APGD-DLR (100 iterations, 1 restart each) and SquareAttack
  (5,000 iterations, p_init 0.8, 1 restart), untargeted. ART has no FAB, and its
  targeted mode would rerun every attack (Square included) against all 9 classes, so
  the ART side is the untargeted ensemble; its examples are scored by the same evaluator.
- the engine choice: tinyharden's in-graph APGD-CE vs ART's AutoProjectedGradientDescent
  (cross-entropy, 100 iterations, 1 restart) alone, same images: speed and accuracy.

Both accuracies carry Wilson 95% intervals; "agree" means the intervals overlap.

    python bench/autoattack_crosscheck.py --n 1000
writes bench/results/autoattack_crosscheck.json.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_MODEL = ROOT.parent / "shared" / "data" / "mlperf_tiny" / "image_classification" / "trained_models" / "pretrainedResnet.h5"


def _pct(p: dict) -> str:
    return f"{100 * p['value']:.1f}% [{100 * p['ci95'][0]:.1f}, {100 * p['ci95'][1]:.1f}]"


def _overlap(a: dict, b: dict) -> bool:
    return bool(a["ci95"][0] <= b["ci95"][1] and b["ci95"][0] <= a["ci95"][1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1000, help="CIFAR-10 test images (default 1000)")
    ap.add_argument("--eps", default="1/255,2/255", help="Linf eps list in [0,1] units")
    ap.add_argument("--batch-size", type=int, default=250)
    ap.add_argument("--square-queries", type=int, default=5000)
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-engine-check", action="store_true", help="skip the APGD-CE-alone engine comparison")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "autoattack_crosscheck.json")
    args = ap.parse_args()

    from tinyharden._tf import keras
    from tinyharden.attacks.evaluation import proportion, recheck
    from tinyharden.attacks.suite import SuiteConfig, run_suite
    from tinyharden.attacks.target import KerasTarget
    from tinyharden.data import load_dataset
    from tinyharden.models import load_model, logits_model
    from tinyharden.recipe import DataSpec, parse_number
    from tinyharden.workspace import atomic_write_json

    eps_list = [parse_number(e) for e in args.eps.split(",")]
    ds = load_dataset(DataSpec(dataset="cifar10"), 0)
    x, y = ds.x_test[: args.n].astype(np.float32), ds.y_test[: args.n].astype(np.int64)
    model = logits_model(load_model(args.model))
    target = KerasTarget(model, input_range=(0.0, 255.0))
    clean = np.argmax(target.predict(x), -1) == y
    print(f"clean accuracy {_pct(proportion(clean))} on n={args.n}; load average {os.getloadavg()[0]:.1f}", flush=True)

    from art.attacks.evasion import (
        AutoProjectedGradientDescent,
    )
    from art.estimators.classification import TensorFlowV2Classifier

    clf = TensorFlowV2Classifier(model=model, nb_classes=10, input_shape=(32, 32, 3),
                                 loss_object=keras.losses.CategoricalCrossentropy(from_logits=True),
                                 clip_values=(0.0, 1.0), preprocessing=(0.0, 1 / 255))

    def score(x_adv, eps):
        checked = recheck(x, x_adv, eps=eps, norm="linf", policy="reject")
        return proportion(clean & (np.argmax(target.predict(checked.x_adv), -1) == y) | (clean & checked.rejected))

    def art_apgd(eps, loss):
        return AutoProjectedGradientDescent(clf, norm=np.inf, eps=eps, eps_step=2 * eps, max_iter=100, nb_random_init=1,
                                            batch_size=args.batch_size, loss_type=loss, verbose=False)

    results = []
    for eps in eps_list:
        row: dict = {"eps": eps}
        cfg = SuiteConfig(suite=["autoattack"], eps=[eps], seed=args.seed, batch_size=args.batch_size, checks=False,
                          params={"autoattack": {"square_queries": args.square_queries}})
        t0 = time.perf_counter()
        rep = run_suite(target, x, y, cfg).report
        row["tinyharden"] = {"seconds": time.perf_counter() - t0, "robust_accuracy": rep["suite"]["robust_accuracy"],
                             "components": rep["attacks"][0]["results"][0]["components"],
                             "checks": [c for c in rep["masking"]["checks"]]}
        print(f"eps {eps:.5f} tinyharden autoattack {_pct(row['tinyharden']['robust_accuracy'])} "
              f"in {row['tinyharden']['seconds']:.0f} s", flush=True)

        x_art, seconds = _art_autoattack(clf, x, y, eps, args, art_apgd)
        row["art"] = {"seconds": seconds, "robust_accuracy": score(x_art, eps)}
        print(f"eps {eps:.5f} ART AutoAttack        {_pct(row['art']['robust_accuracy'])} in {row['art']['seconds']:.0f} s",
              flush=True)

        row["agree"] = _overlap(row["tinyharden"]["robust_accuracy"], row["art"]["robust_accuracy"])
        row["speed_ratio"] = row["art"]["seconds"] / row["tinyharden"]["seconds"]
        if not args.no_engine_check:
            row["apgd_ce"] = _engine_check(target, x, y, clean, eps, args, score, art_apgd)
        print(f"eps {eps:.5f} agree within 95% CI: {row['agree']}; ART/tinyharden time {row['speed_ratio']:.2f}x",
              flush=True)
        results.append(row)
        atomic_write_json(args.out, _record(args, proportion(clean), results))  # after every eps: an interrupted
        # run keeps what it measured
    print(f"wrote {args.out}")


def _record(args, clean: dict, results: list) -> dict:
    from tinyharden.workspace import package_versions

    return {"benchmark": "autoattack_crosscheck", "n": args.n, "batch_size": args.batch_size,
            "square_queries": args.square_queries, "model": str(args.model), "model_input_range": [0, 255],
            "dataset": "cifar10 test, first n", "clean_accuracy": clean, "results": results,
            "load_average_at_end": list(os.getloadavg()), "cpu_count": os.cpu_count(),
            "versions": package_versions(), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def _art_autoattack(clf, x, y, eps, args, art_apgd):
    """ART's AutoAttack with the standard budgets it can express; returns (examples, seconds)."""
    from art.attacks.evasion import AutoAttack, SquareAttack

    np.random.seed(args.seed)
    aa = AutoAttack(clf, norm=np.inf, eps=eps, eps_step=2 * eps, batch_size=args.batch_size, targeted=False,
                    attacks=[art_apgd(eps, "cross_entropy"), art_apgd(eps, "difference_logits_ratio"),
                             SquareAttack(clf, norm=np.inf, eps=eps, max_iter=args.square_queries, p_init=0.8,
                                          nb_restarts=1, batch_size=args.batch_size, verbose=False)])
    t0 = time.perf_counter()
    x_art = aa.generate(x=x, y=np.eye(10, dtype=np.float32)[y]).astype(np.float32)
    return x_art, time.perf_counter() - t0


def _engine_check(target, x, y, clean, eps, args, score, art_apgd) -> dict:
    """APGD-CE alone, ours in-graph vs ART's, on the correctly classified samples."""
    idx = np.flatnonzero(clean)
    from tinyharden.attacks.autoattack import _apgd

    t0 = time.perf_counter()
    ours, _ = _apgd(target, x[idx], y[idx], loss="ce", steps=100, eps=eps, norm="linf", seed=args.seed, eot=1,
                    batch_size=args.batch_size)
    t_ours = time.perf_counter() - t0
    np.random.seed(args.seed)
    t0 = time.perf_counter()
    theirs = art_apgd(eps, "cross_entropy").generate(x=x[idx], y=np.eye(10, dtype=np.float32)[y[idx]])
    t_art = time.perf_counter() - t0
    full_o, full_a = x.copy(), x.copy()
    full_o[idx], full_a[idx] = ours, theirs.astype(np.float32)
    res = {"tinyharden": {"seconds": t_ours, "robust_accuracy": score(full_o, eps)},
           "art": {"seconds": t_art, "robust_accuracy": score(full_a, eps)}, "speed_ratio": t_art / t_ours}
    res["agree"] = _overlap(res["tinyharden"]["robust_accuracy"], res["art"]["robust_accuracy"])
    print(f"eps {eps:.5f} APGD-CE alone: tinyharden {_pct(res['tinyharden']['robust_accuracy'])} {t_ours:.0f} s, "
          f"ART {_pct(res['art']['robust_accuracy'])} {t_art:.0f} s ({res['speed_ratio']:.2f}x)", flush=True)
    return res


if __name__ == "__main__":
    main()
