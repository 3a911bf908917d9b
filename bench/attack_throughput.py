"""Attack throughput: tinyharden vs foolbox and ART called directly, same model, data and run.

PGD-20 (Linf, eps 8/255, step eps/4, random start) and Square (1,000 iterations, Linf,
eps 8/255) on the first N CIFAR-10 test images against the MLPerf Tiny ResNet-8
(pretrainedResnet.h5, inputs x*255, softmax stripped so every attack sees logits):

- tinyharden: `tinyharden.attacks.pgd.PGD` (the in-graph engine) and `Square` (ART's
  SquareAttack behind tinyharden's black-box Target adapter);
- foolbox: `LinfPGD` on `TensorFlowModel(model, bounds=(0,1), preprocessing=dict(mean=0, std=1/255))`;
- ART: `ProjectedGradientDescent` and `SquareAttack` on `TensorFlowV2Classifier(...,
  clip_values=(0,1), preprocessing=(0, 1/255))`, as their documentation shows.

Every method first runs once on a small warm-up batch (graph tracing is not
throughput), then on the same N images with the same batch size. All robust accuracies
are re-predicted by the same evaluator, with Wilson 95% intervals. The machine's load
average is recorded: on a shared machine only ratios measured in the same run mean much.

    python bench/attack_throughput.py --n 200
writes bench/results/attack_throughput.json.
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1000, help="CIFAR-10 test images (default 1000)")
    ap.add_argument("--batch-size", type=int, default=250)
    ap.add_argument("--square-iters", type=int, default=1000)
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip", default="", help="comma list of methods to skip: foolbox_pgd,art_pgd,square,art_square")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "attack_throughput.json")
    args = ap.parse_args()
    skip = {s for s in args.skip.split(",") if s}

    from tinyharden._tf import keras, tf
    from tinyharden.attacks.evaluation import proportion
    from tinyharden.attacks.pgd import PGD
    from tinyharden.attacks.square import Square
    from tinyharden.attacks.target import KerasTarget
    from tinyharden.data import load_dataset
    from tinyharden.models import load_model, logits_model
    from tinyharden.recipe import DataSpec
    from tinyharden.workspace import atomic_write_json, package_versions

    eps, step, steps, bs = 8 / 255, 2 / 255, 20, args.batch_size
    ds = load_dataset(DataSpec(dataset="cifar10"), 0)
    x, y = ds.x_test[: args.n].astype(np.float32), ds.y_test[: args.n].astype(np.int64)
    model = logits_model(load_model(args.model))
    target = KerasTarget(model, input_range=(0.0, 255.0))
    warm = slice(0, min(16, args.n))

    def accuracy(x_adv):
        return proportion(np.argmax(target.predict(x_adv), -1) == y)

    def timed(name, fn):
        fn(x[warm], y[warm])
        t0 = time.perf_counter()
        x_adv = fn(x, y)
        dt = time.perf_counter() - t0
        linf = float(np.abs(x_adv - x).max())
        res = {"seconds": dt, "images_per_s": args.n / dt, "robust_accuracy": accuracy(x_adv), "max_linf": linf,
               "within_eps": linf <= eps * (1 + 1e-4) + 1e-6}
        print(f"{name:18s} {res['images_per_s']:8.2f} img/s  robust acc {100 * res['robust_accuracy']['value']:.1f}% "
              f"[{100 * res['robust_accuracy']['ci95'][0]:.1f}, {100 * res['robust_accuracy']['ci95'][1]:.1f}]", flush=True)
        return res

    results: dict[str, dict] = {}
    print(f"clean accuracy {100 * accuracy(x)['value']:.1f}% on n={args.n}", flush=True)

    pgd = PGD(steps=steps, rel_step=0.25, random_start=True)
    results["tinyharden_pgd"] = timed("tinyharden PGD", lambda a, b: pgd.run(
        target, a, b, eps=eps, norm="linf", seed=args.seed, batch_size=bs).x_adv)

    if "foolbox_pgd" not in skip:
        import foolbox as fb

        fmodel = fb.TensorFlowModel(model, bounds=(0, 1), preprocessing=dict(mean=0.0, std=1 / 255))
        fattack = fb.attacks.LinfPGD(abs_stepsize=step, steps=steps, random_start=True)

        def run_foolbox(a, b):
            outs = []
            for i in range(0, len(a), bs):
                # int64 labels: eagerpy's dtype-mixing path calls np.find_common_type, gone in NumPy 2.
                _, clipped, _ = fattack(fmodel, tf.constant(a[i:i + bs]), tf.constant(b[i:i + bs].astype(np.int64)),
                                        epsilons=eps)
                outs.append(clipped.numpy())
            return np.concatenate(outs)

        results["foolbox_pgd"] = timed("foolbox LinfPGD", run_foolbox)

    art_clf = None
    if "art_pgd" not in skip or "art_square" not in skip:
        from art.estimators.classification import TensorFlowV2Classifier

        art_clf = TensorFlowV2Classifier(model=model, nb_classes=10, input_shape=(32, 32, 3),
                                         loss_object=keras.losses.CategoricalCrossentropy(from_logits=True),
                                         clip_values=(0.0, 1.0), preprocessing=(0.0, 1 / 255))
    if "art_pgd" not in skip:
        from art.attacks.evasion import ProjectedGradientDescent

        np.random.seed(args.seed)
        apgd = ProjectedGradientDescent(art_clf, norm=np.inf, eps=eps, eps_step=step, max_iter=steps,
                                        num_random_init=1, batch_size=bs, verbose=False)
        results["art_pgd"] = timed("ART PGD", lambda a, b: apgd.generate(x=a, y=b).astype(np.float32))

    if "square" not in skip:
        sq = Square(max_iter=args.square_iters)
        queries = {}

        def run_square(a, b):
            out = sq.run(target, a, b, eps=eps, norm="linf", seed=args.seed, batch_size=bs)
            queries["per_image"] = out.queries / len(a)
            return out.x_adv

        results["tinyharden_square"] = timed("tinyharden Square", run_square)
        # ART asks the model up to 3 times per iteration for each unfooled image.
        results["tinyharden_square"]["model_queries_per_image"] = queries["per_image"]
    if "art_square" not in skip:
        from art.attacks.evasion import SquareAttack

        np.random.seed(args.seed)
        asq = SquareAttack(art_clf, norm=np.inf, eps=eps, max_iter=args.square_iters, p_init=0.05, batch_size=bs,
                           verbose=False)
        results["art_square"] = timed("ART Square", lambda a, b: asq.generate(x=a, y=np.eye(10)[b]).astype(np.float32))

    def ratio(a, b):
        if a in results and b in results:
            return results[a]["images_per_s"] / results[b]["images_per_s"]
        return None

    def agree(a, b):
        if a not in results or b not in results:
            return None
        (l1, h1), (l2, h2) = results[a]["robust_accuracy"]["ci95"], results[b]["robust_accuracy"]["ci95"]
        return bool(l1 <= h2 and l2 <= h1)

    summary = {
        "pgd_vs_foolbox": ratio("tinyharden_pgd", "foolbox_pgd"),
        "pgd_vs_art": ratio("tinyharden_pgd", "art_pgd"),
        "square_vs_art": ratio("tinyharden_square", "art_square"),
        "pgd_accuracy_agrees_with_foolbox": agree("tinyharden_pgd", "foolbox_pgd"),
        "pgd_accuracy_agrees_with_art": agree("tinyharden_pgd", "art_pgd"),
        "targets": {"pgd_vs_foolbox": 1.5, "pgd_vs_art": 1.7},
    }
    for k in ("pgd_vs_foolbox", "pgd_vs_art", "square_vs_art"):
        if summary[k] is not None:
            print(f"{k}: {summary[k]:.2f}x", flush=True)
    record = {
        "benchmark": "attack_throughput", "n": args.n, "batch_size": bs, "eps": eps, "pgd": {"steps": steps, "step": step,
        "random_start": True}, "square": {"max_iter": args.square_iters, "p_init": 0.05}, "model": str(args.model),
        "model_input_range": [0, 255], "dataset": "cifar10 test, first n", "results": results, "summary": summary,
        "load_average_at_end": list(os.getloadavg()), "cpu_count": os.cpu_count(), "versions": package_versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    atomic_write_json(args.out, record)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
