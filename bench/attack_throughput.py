"""Attack throughput: tinyharden in float32 and bfloat16, and vs foolbox and ART, same model, data and run.

On the first N CIFAR-10 test images against the MLPerf Tiny ResNet-8 (pretrainedResnet.h5,
raw 0..255 pixels, softmax stripped so every attack sees logits):

- PGD-20 (Linf, step eps/4, random start) at --pgd-eps (1/255: robust accuracy ~7%, a
  budget where a weaker attack shows): tinyharden's in-graph PGD in float32 and with
  `--precision mixed_bfloat16` (the bf16 twin of `attacks.precision`), and optionally
  foolbox's `LinfPGD` and ART's `ProjectedGradientDescent` called directly;
- APGD-CE (Linf, 100 iterations, 1 restart) at --pgd-eps on the first --apgd-n images:
  tinyharden's in-graph engine (`attacks.apgd_graph`, what `autoattack` runs) vs ART's
  `AutoProjectedGradientDescent` called directly;
- Square (Linf, p_init 0.05) at --square-eps with a budget of --square-iters queries:
  tinyharden's compiled `square` vs ART's `SquareAttack` called directly on a
  `TensorFlowV2Classifier(..., preprocessing=(0, 1/255))`, as ART's documentation shows.

Every method first runs on a small warm-up batch (graph tracing is not throughput), then
--rounds times on the same N images, the methods interleaved within each round so load
changes hit all of them alike; the JSON keeps every round and the medians. All robust
accuracies are re-predicted by the same float32 evaluator, with Wilson 95% intervals.
Fraction of peak: MACs per image (tinyharden's footprint of the model; a gradient step
counted as 3 forwards) x images/s over the CPU's nominal peak (lscpu: cores x MACs per
cycle of its vector units x clock), and over a matmul measured in the same run.

    python bench/attack_throughput.py --n 500 --square-n 200 --rounds 3
writes bench/results/attack_throughput.json.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_MODEL = ROOT.parent / "shared" / "data" / "mlperf_tiny" / "image_classification" / "trained_models" / "pretrainedResnet.h5"
METHODS = ("pgd_float32", "pgd_bfloat16", "foolbox_pgd", "art_pgd", "apgd_graph", "art_apgd", "tinyharden_square",
           "art_square")
APGD_STEPS = 100


def cpu_peak() -> dict:
    """Nominal MACs/s from lscpu (cores, vector units, clock) and what this CPU is."""
    info = dict(line.split(":", 1) for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
                if ":" in line)
    info = {k.strip(): v.strip() for k, v in info.items()}
    flags = set(info.get("Flags", "").split())
    cores = os.cpu_count() or 1
    mhz = float(info.get("CPU max MHz") or 0) or float(info.get("BogoMIPS", 0)) / 2  # no MHz under KVM: TSC clock
    amd_zen4 = info.get("Vendor ID") == "AuthenticAMD" and info.get("CPU family") == "25"
    intel_avx512 = info.get("Vendor ID") == "GenuineIntel" and "avx512f" in flags
    # Zen 4 runs AVX-512 on two 256-bit FMA pipes: 16 fp32 MACs per cycle; Intel server cores with AVX-512 have
    # two 512-bit FMA ports: 32. VDPBF16PS does two bf16 MACs per fp32 lane; an AMX tile unit does 1,024 bf16
    # MACs per cycle (TDPBF16PS, Intel's optimization manual), the ceiling a bf16 matmul can reach.
    fp32 = 32 if intel_avx512 else 16 if amd_zen4 or "avx2" in flags else 8
    bf16 = 1024 if "amx_bf16" in flags else 2 * fp32 if "avx512_bf16" in flags else fp32
    return {"cpu": info.get("Model name"), "vendor": info.get("Vendor ID"), "family": info.get("CPU family"),
            "model": info.get("Model"), "cores": cores, "clock_ghz": mhz / 1000,
            "clock_source": "CPU max MHz" if info.get("CPU max MHz") else "BogoMIPS / 2 (the TSC clock; lscpu shows no MHz under KVM)",
            "macs_per_cycle_per_core": {"float32": fp32, "bfloat16": bf16},
            "nominal_gmacs": {"float32": cores * fp32 * mhz / 1000, "bfloat16": cores * bf16 * mhz / 1000},
            "flags": sorted(f for f in flags if f.startswith(("avx512", "amx", "fma", "avx2")))}


def measured_peak(tf) -> dict:
    """GMAC/s of a large matmul in float32 and bfloat16, median of 5, this run, this load."""
    out = {}
    for dt in (tf.float32, tf.bfloat16):
        a = tf.random.uniform((2048, 2048), dtype=tf.float32)
        a = tf.cast(a, dt)
        mm = tf.function(lambda u: tf.matmul(u, u))
        mm(a).numpy()
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            mm(a).numpy()
            times.append(time.perf_counter() - t0)
        out[dt.name] = 2048 ** 3 / statistics.median(times) / 1e9
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=500, help="CIFAR-10 test images for PGD (default 500)")
    ap.add_argument("--square-n", type=int, default=200, help="CIFAR-10 test images for Square (default 200)")
    ap.add_argument("--apgd-n", type=int, default=200, help="CIFAR-10 test images for APGD-CE (default 200)")
    ap.add_argument("--batch-size", type=int, default=250)
    ap.add_argument("--pgd-eps", default="1/255")
    ap.add_argument("--square-eps", default="2/255")
    ap.add_argument("--square-iters", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip", default="", help=f"comma list of methods to skip: {','.join(METHODS)}")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "attack_throughput.json")
    args = ap.parse_args()
    skip = {s for s in args.skip.split(",") if s}
    unknown = skip - set(METHODS)
    if unknown:
        ap.error(f"unknown methods to skip: {', '.join(sorted(unknown))}; choose from {', '.join(METHODS)}")
    from tinyharden._tf import tf
    from tinyharden.attacks.target import KerasTarget
    from tinyharden.data import load_dataset
    from tinyharden.footprint.summary import summarize
    from tinyharden.models import load_model, logits_model
    from tinyharden.recipe import DataSpec

    load_start = list(os.getloadavg())
    ds = load_dataset(DataSpec(dataset="cifar10"), 0)
    n = max(args.n, args.square_n, args.apgd_n)
    x, y = ds.x_test[:n].astype(np.float32), ds.y_test[:n].astype(np.int64)
    model = logits_model(load_model(args.model))
    target = KerasTarget(model, input_range=(0.0, 255.0))
    macs = int(summarize(model)["totals"]["macs"])
    pgd_eps, sq_eps = float(Fraction(args.pgd_eps)), float(Fraction(args.square_eps))
    methods = {k: v for k, v in _methods(args, target, model, pgd_eps, sq_eps, macs).items() if k not in skip}
    data = {"pgd": (x[: args.n], y[: args.n]), "square": (x[: args.square_n], y[: args.square_n]),
            "apgd": (x[: args.apgd_n], y[: args.apgd_n])}

    for m in methods.values():  # warm-up: tracing is not throughput
        xs, ys = data[m["data"]]
        m["fn"](xs[:16], ys[:16])
    rounds: dict[str, list[dict]] = {k: [] for k in methods}
    for r in range(args.rounds):
        order = list(methods) if r % 2 == 0 else list(reversed(methods))  # interleaved, alternating order
        for name in order:
            rounds[name].append(_timed(name, methods[name], *data[methods[name]["data"]], target))
    peak = cpu_peak()
    measured = measured_peak(tf)
    results = {k: _summarize(k, methods[k], rs, peak, measured) for k, rs in rounds.items()}
    record = {
        "benchmark": "attack_throughput", "n_pgd": args.n, "n_square": args.square_n, "batch_size": args.batch_size,
        "rounds": args.rounds, "pgd": {"steps": 20, "rel_step": 0.25, "random_start": True, "eps": pgd_eps,
                                       "eps_label": args.pgd_eps},
        "square": {"queries": args.square_iters, "p_init": 0.05, "eps": sq_eps, "eps_label": args.square_eps},
        "apgd": {"n": args.apgd_n, "steps": APGD_STEPS, "loss": "ce", "restarts": 1, "eps": pgd_eps, "eps_label": args.pgd_eps},
        "model": str(args.model), "model_macs_per_image": macs, "model_input_range": [0, 255],
        "dataset": "cifar10 test, first n", "clean_accuracy": _acc(target, x[: args.n], y[: args.n]),
        "results": results, "summary": _ratios(results), "cpu": peak, "measured_matmul_gmacs": measured,
        **run_context("attack_throughput.py", load_start),
    }
    write_record(args.out, record)


def run_context(script: str, load_start: list[float]) -> dict:
    """What every bench JSON records about its run: load, uptime, versions, time and the command."""
    from tinyharden.workspace import package_versions

    return {"load_average_at_start": load_start, "load_average_at_end": list(os.getloadavg()),
            "uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
            "versions": package_versions(), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": f"python bench/{script} " + " ".join(sys.argv[1:])}


def write_record(out: Path, record: dict) -> None:
    from tinyharden.workspace import atomic_write_json

    atomic_write_json(out, record)
    for k, v in record["summary"].items():
        print(f"{k}: {v}")
    print(f"wrote {out}")


def _methods(args, target, model, pgd_eps: float, sq_eps: float, macs: int) -> dict[str, dict]:
    """Each method: its attack function (x, y) -> (x_adv, queries or None), data set, eps, MACs per forward unit."""
    from tinyharden.attacks.apgd_graph import apgd_engine
    from tinyharden.attacks.pgd import PGD
    from tinyharden.attacks.precision import attack_target
    from tinyharden.attacks.square_graph import SquareGraph

    bs, steps, seed = args.batch_size, 20, args.seed
    pgd = PGD(steps=steps, rel_step=0.25, random_start=True)
    bf16 = attack_target(target, "mixed_bfloat16")
    pgd_work = (3 * steps + 1) * macs  # 20 forward+backward steps and the final forward
    out = {
        "pgd_float32": {"fn": lambda a, b: (pgd.run(target, a, b, eps=pgd_eps, norm="linf", seed=seed, batch_size=bs).x_adv,
                                            None), "data": "pgd", "eps": pgd_eps, "work": pgd_work, "precision": "float32"},
        "pgd_bfloat16": {"fn": lambda a, b: (pgd.run(bf16, a, b, eps=pgd_eps, norm="linf", seed=seed, batch_size=bs).x_adv,
                                             None), "data": "pgd", "eps": pgd_eps, "work": pgd_work, "precision": "bfloat16"},
    }
    engine = apgd_engine(target, norm="linf", loss="ce", eot=1)
    apgd_work = (3 * APGD_STEPS + 1) * macs

    def run_apgd(a, b):
        engine.reseed(seed)
        adv = np.concatenate([engine(a[i:i + bs], b[i:i + bs], eps=pgd_eps, steps=APGD_STEPS)[0]
                              for i in range(0, len(a), bs)])
        return adv, None

    out["apgd_graph"] = {"fn": run_apgd, "data": "apgd", "eps": pgd_eps, "work": apgd_work, "precision": "float32"}
    sq = SquareGraph(max_iter=args.square_iters, p_init=0.05)

    def run_square(a, b):
        o = sq.run(target, a, b, eps=sq_eps, norm="linf", seed=seed, batch_size=max(bs, len(a)))
        return o.x_adv, o.queries

    out["tinyharden_square"] = {"fn": run_square, "data": "square", "eps": sq_eps, "work": None, "macs": macs,
                                "precision": "float32"}
    out.update(_library_methods(args, model, pgd_eps, sq_eps, macs, pgd_work))
    return out


def _library_methods(args, model, pgd_eps, sq_eps, macs, pgd_work) -> dict[str, dict]:
    import foolbox as fb
    from art.attacks.evasion import AutoProjectedGradientDescent, ProjectedGradientDescent, SquareAttack
    from art.estimators.classification import TensorFlowV2Classifier

    from tinyharden._tf import keras, tf

    bs, step = args.batch_size, pgd_eps / 4

    class Counting(TensorFlowV2Classifier):
        """ART's classifier, counting the images it is asked to predict (its Square's real queries)."""

        queries = 0

        def predict(self, x, batch_size=128, training_mode=False, **kwargs):
            Counting.queries += len(x)
            return super().predict(x, batch_size=batch_size, training_mode=training_mode, **kwargs)

    clf = Counting(model=model, nb_classes=10, input_shape=(32, 32, 3),
                   loss_object=keras.losses.CategoricalCrossentropy(from_logits=True), clip_values=(0.0, 1.0),
                   preprocessing=(0.0, 1 / 255))
    fmodel = fb.TensorFlowModel(model, bounds=(0, 1), preprocessing=dict(mean=0.0, std=1 / 255))
    fattack = fb.attacks.LinfPGD(abs_stepsize=step, steps=20, random_start=True)

    def run_foolbox(a, b):
        outs = []
        for i in range(0, len(a), bs):
            # int64 labels: eagerpy's dtype-mixing path calls np.find_common_type, gone in NumPy 2.
            _, clipped, _ = fattack(fmodel, tf.constant(a[i:i + bs]), tf.constant(b[i:i + bs].astype(np.int64)),
                                    epsilons=pgd_eps)
            outs.append(clipped.numpy())
        return np.concatenate(outs), None

    def run_art_pgd(a, b):
        np.random.seed(args.seed)
        att = ProjectedGradientDescent(clf, norm=np.inf, eps=pgd_eps, eps_step=step, max_iter=20, num_random_init=1,
                                       batch_size=bs, verbose=False)
        return att.generate(x=a, y=b).astype(np.float32), None

    def run_art_apgd(a, b):
        np.random.seed(args.seed)
        att = AutoProjectedGradientDescent(clf, norm=np.inf, eps=pgd_eps, eps_step=2 * pgd_eps, max_iter=APGD_STEPS,
                                           nb_random_init=1, batch_size=bs, loss_type="cross_entropy", verbose=False)
        return att.generate(x=a, y=np.eye(10)[b]).astype(np.float32), None

    def run_art_square(a, b):
        np.random.seed(args.seed)
        att = SquareAttack(clf, norm=np.inf, eps=sq_eps, max_iter=args.square_iters, p_init=0.05,
                           batch_size=max(bs, len(a)), verbose=False)
        before = Counting.queries
        adv = att.generate(x=a, y=np.eye(10)[b]).astype(np.float32)
        return adv, Counting.queries - before

    return {"foolbox_pgd": {"fn": run_foolbox, "data": "pgd", "eps": pgd_eps, "work": pgd_work, "precision": "float32"},
            "art_pgd": {"fn": run_art_pgd, "data": "pgd", "eps": pgd_eps, "work": pgd_work, "precision": "float32"},
            "art_apgd": {"fn": run_art_apgd, "data": "apgd", "eps": pgd_eps, "work": (3 * APGD_STEPS + 1) * macs,
                         "precision": "float32"},
            "art_square": {"fn": run_art_square, "data": "square", "eps": sq_eps, "work": None, "macs": macs,
                           "precision": "float32"}}


def _acc(target, x, y) -> dict:
    from tinyharden.attacks.evaluation import proportion

    return proportion(np.argmax(target.predict(x), -1) == y)


def _timed(name: str, m: dict, x, y, target) -> dict:
    t0 = time.perf_counter()
    x_adv, queries = m["fn"](x, y)
    dt = time.perf_counter() - t0
    linf = float(np.abs(x_adv - x).max())
    res = {"seconds": dt, "images_per_s": len(x) / dt, "robust_accuracy": _acc(target, x_adv, y), "max_linf": linf,
           "within_eps": linf <= m["eps"] * (1 + 1e-4) + 1e-6, "queries": queries, "load_average": os.getloadavg()[0]}
    ra = res["robust_accuracy"]
    print(f"{name:18s} {res['images_per_s']:8.2f} img/s  robust acc {100 * ra['value']:.1f}% "
          f"[{100 * ra['ci95'][0]:.1f}, {100 * ra['ci95'][1]:.1f}]  queries {queries}", flush=True)
    return res


def _summarize(name: str, m: dict, rs: list[dict], peak: dict, measured: dict) -> dict:
    med = statistics.median(r["seconds"] for r in rs)
    n_img = rs[0]["images_per_s"] * rs[0]["seconds"]
    out = {"rounds": rs, "median_seconds": med, "images_per_s": n_img / med, "robust_accuracy": rs[0]["robust_accuracy"],
           "same_result_every_round": all(r["robust_accuracy"] == rs[0]["robust_accuracy"] for r in rs),
           "precision": m["precision"]}
    # Square's work is the model queries it made (one forward each); PGD's a fixed count per image.
    work = m["work"] * n_img if m["work"] else statistics.median(r["queries"] for r in rs) * m["macs"]
    gmacs = work / med / 1e9
    prec = m["precision"]
    out.update(gmacs=gmacs, fraction_of_nominal_peak=gmacs / peak["nominal_gmacs"][prec],
               fraction_of_measured_matmul=gmacs / measured[prec])
    if m["work"] is None:
        out["queries_per_image"] = statistics.median(r["queries"] for r in rs) / n_img
    return out


def _ratios(results: dict) -> dict:
    def ratio(a, b):
        return results[a]["images_per_s"] / results[b]["images_per_s"] if a in results and b in results else None

    def agree(a, b):
        if a not in results or b not in results:
            return None
        (l1, h1), (l2, h2) = results[a]["robust_accuracy"]["ci95"], results[b]["robust_accuracy"]["ci95"]
        return bool(l1 <= h2 and l2 <= h1)

    return {"pgd_bfloat16_vs_float32": ratio("pgd_bfloat16", "pgd_float32"),
            "pgd_bfloat16_accuracy_within_interval": agree("pgd_bfloat16", "pgd_float32"),
            "pgd_vs_foolbox": ratio("pgd_float32", "foolbox_pgd"), "pgd_vs_art": ratio("pgd_float32", "art_pgd"),
            "pgd_accuracy_agrees_with_foolbox": agree("pgd_float32", "foolbox_pgd"),
            "pgd_accuracy_agrees_with_art": agree("pgd_float32", "art_pgd"),
            "apgd_graph_vs_art": ratio("apgd_graph", "art_apgd"),
            "apgd_accuracy_agrees_with_art": agree("apgd_graph", "art_apgd"),
            "square_vs_art": ratio("tinyharden_square", "art_square"),
            "square_accuracy_agrees_with_art": agree("tinyharden_square", "art_square"),
            "targets": {"pgd_bfloat16_vs_float32": 2.0, "square_vs_art": 3.0}}


if __name__ == "__main__":
    main()
