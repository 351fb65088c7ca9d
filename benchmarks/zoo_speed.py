"""Speed of the native baselines against the same methods in Avalanche 0.6 through clenv's
adapter (issue 19, item 4).

Per method, two runs of the same work through the same Runner (``Run(cfg).execute(None)``):
native (the preset strategies/<method>.yaml) and Avalanche (``strategy: {name: avalanche,
class: ..., args: ...}``, clenv/avalanche/strategy.py, online, consolidating at the exposed
task ends). Same stream (synthetic 10 classes, 32-d, 5 disjoint tasks, online batch 10), same
model and initial weights (MLP 32-256-256-10), the preset's optimiser on both sides, one gradient
step per batch, same memory size (500), same task-end evaluation; torch threads 1; repetitions
interleaved (native, Avalanche, next method, ...); each run timed in CPU time of this process
(time.process_time: the runs are in-process with one thread, and CPU time is steadier than wall
time on a shared machine); medians, ratios per repetition. Prints per method the native and
Avalanche samples/s (medians) and, last on the row, the ratio: the median of per-repetition
time ratios Avalanche / native (goal: >= 3). A method whose preset is not in strategies/ is
skipped with a line. Where Avalanche does different work (GDumb retrains on its memory after
every online batch; SI's penalty is 0 on CPU in 0.6) the ratio is printed and marked "not the
same work", and left out of the goal. A method Avalanche fails on through the adapter (ICaRL in
0.6 needs its deprecated benchmark objects) gets a "failed" row with the error.

    python benchmarks/zoo_speed.py [--reps 3] [--train-per-class 500] [--methods agem,der]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from clenv.config.loader import load_config  # noqa: E402
from clenv.runner import Run  # noqa: E402

MEMORY = 500
BATCH = 10


def pick(preset: dict, keys: tuple[str, ...], default):
    """The first of ``keys`` the preset sets, else ``default``."""
    for k in keys:
        if preset.get(k) is not None:
            return preset[k]
    return default


@dataclass(frozen=True)
class Method:
    name: str  # the preset strategies/<name>.yaml
    avalanche: str  # the Avalanche class
    args: object  # preset dict -> Avalanche args
    same_work: bool = True
    note: str = ""


METHODS = [
    Method("lwf", "LwF", lambda p: {"alpha": pick(p, ("alpha",), 1.0),
                                    "temperature": pick(p, ("temperature",), 2.0)}),
    Method("ewc", "EWC", lambda p: {"ewc_lambda": pick(p, ("ewc_lambda",), 10.0),
                                    "mode": "separate"}),
    Method("ewc_online", "EWC", lambda p: {"ewc_lambda": pick(p, ("ewc_lambda",), 10.0),
                                           "mode": "online",
                                           "decay_factor": pick(p, ("decay_factor",), 0.9)}),
    # Avalanche's SI penalty is si_lambda / 2 * sum Omega (theta - theta*)^2: si_lambda = 2 c
    Method("si", "SI", lambda p: {"si_lambda": 2 * pick(p, ("c",), 0.5),
                                  "eps": pick(p, ("xi",), 1e-3)},
           False, "Avalanche 0.6's SI penalty is 0 on CPU"),
    Method("mas", "MAS", lambda p: {"lambda_reg": pick(p, ("lambda_reg",), 1.0),
                                    "alpha": pick(p, ("alpha",), 0.5)}),
    Method("agem", "AGEM", lambda p: {"patterns_per_exp": MEMORY // 5,
                                      "sample_size": pick(p, ("sample_size",), 256)}),
    Method("er_ace", "ER_ACE", lambda p: {"mem_size": MEMORY, "batch_size_mem": BATCH}),
    Method("der", "DER", lambda p: {"mem_size": MEMORY, "batch_size_mem": BATCH,
                                    "alpha": pick(p, ("alpha",), 0.3), "beta": 0.0}),
    Method("derpp", "DER", lambda p: {"mem_size": MEMORY, "batch_size_mem": BATCH,
                                      "alpha": pick(p, ("alpha",), 0.1),
                                      "beta": pick(p, ("beta",), 0.5)}),
    Method("gdumb", "GDumb", lambda p: {"mem_size": MEMORY}, False,
           "Avalanche's GDumb retrains on its memory after every online batch, clenv's at "
           "each evaluation point"),
    Method("icarl", "iCaRL", lambda p: {"memory_size": MEMORY}),
]


def config(strategy: dict, train_per_class: int, seed: int = 0) -> dict:
    """The shared run: synthetic 10 classes, 5 tasks, online batch 10, MLP [256, 256]."""
    return load_config({
        "name": "zoo_speed", "seed": seed, "threads": 1,
        "scenario": {"generator": "disjoint", "seed": seed, "n_tasks": 5, "batch_size": BATCH,
                     "boundaries": "exposed"},
        "data": {"source": "synthetic", "seed": 0, "dim": 32, "separation": [1.0],
                 "noise": 1.5, "train_per_class": train_per_class, "test_per_class": 100},
        "strategy": strategy, "model": {"name": "mlp", "hidden": [256, 256]},
        "budget": {"memory_size": MEMORY}, "eval": {"every": 0}, "output": {"plots": False},
    })


def preset(name: str) -> dict | None:
    path = REPO / "strategies" / f"{name}.yaml"
    return yaml.safe_load(path.read_text()) if path.is_file() else None


def native_strategy(p: dict) -> dict:
    """The preset with the shared memory size where it takes one."""
    out = dict(p)
    if "memory_size" in out:
        out["memory_size"] = MEMORY
    return out


def avalanche_strategy(m: Method, p: dict) -> dict:
    return {"name": "avalanche", "class": m.avalanche, "args": m.args(p), "mode": "online",
            "consolidate": "task", "optimizer": p.get("optimizer", "sgd"),
            "lr": p.get("lr", 0.05), "momentum": p.get("momentum", 0.0),
            "weight_decay": p.get("weight_decay", 0.0)}


def timed(run: Run) -> tuple[float, dict]:
    t0 = time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metrics = run.execute(None)
    return time.process_time() - t0, metrics


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--train-per-class", type=int, default=500)
    ap.add_argument("--methods", default=",".join(m.name for m in METHODS))
    args = ap.parse_args()
    torch.set_num_threads(1)
    wanted = args.methods.split(",")
    jobs: dict[str, tuple[Method, Run, Run | None]] = {}
    failed: dict[str, str] = {}
    for m in METHODS:
        if m.name not in wanted:
            continue
        p = preset(m.name)
        if p is None:
            print(f"{m.name}: skipped (no strategies/{m.name}.yaml on this branch)")
            continue
        native = Run(config(native_strategy(p), args.train_per_class))
        try:
            avl = Run(config(avalanche_strategy(m, p), args.train_per_class))
        except Exception as exc:  # noqa: BLE001 - reported on the method's row
            avl, failed[m.name] = None, f"{type(exc).__name__}: {exc}"
        jobs[m.name] = (m, native, avl)
    torch.set_num_threads(1)
    n = next(iter(jobs.values()))[1].env.stream.length if jobs else 0
    print(f"stream {n} samples, 10 classes, 5 tasks, online batch {BATCH}, MLP [256, 256], "
          f"memory {MEMORY}, torch threads {torch.get_num_threads()}, {args.reps} interleaved "
          "repetitions (+1 warm-up)")
    times: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in jobs}
    accs: dict[str, tuple[float, float]] = {}
    for r in range(args.reps + 1):
        for name, (_, native, avl) in jobs.items():
            tn, mn = timed(native)
            ta, acc_a = float("nan"), float("nan")
            if avl is not None and name not in failed:
                try:
                    ta, ma = timed(avl)
                    acc_a = ma["final_accuracy"]
                except Exception as exc:  # noqa: BLE001 - reported on the method's row
                    failed[name] = f"{type(exc).__name__}: {exc}"
            accs[name] = (mn["final_accuracy"], acc_a)
            if r == 0:
                continue  # warm-up
            times[name][0].append(tn)
            times[name][1].append(ta)
            print(f"rep {r} {name:7s}: native {n / tn:7.0f}  avalanche {n / ta:7.0f} samples/s"
                  f"  (final acc {mn['final_accuracy']:.3f} / {acc_a:.3f})", flush=True)
    print()
    print("| method | native samples/s | Avalanche samples/s | final acc native / Avalanche "
          "| note | ratio |")
    print("|---|---|---|---|---|---|")
    goal = []
    for name, (m, _, _) in jobs.items():
        tn, ta = times[name]
        native_sps = n / statistics.median(tn)
        if name in failed:
            print(f"| {name} | {native_sps:.0f} | failed | {accs[name][0]:.3f} / - | "
                  f"Avalanche failed ({failed[name][:120]}) | - |")
            continue
        ratio = statistics.median(a / b for a, b in zip(ta, tn, strict=True))
        note = "same work" if m.same_work else f"not the same work: {m.note}"
        if m.same_work:
            goal.append((name, ratio))
        print(f"| {name} | {native_sps:.0f} | {n / statistics.median(ta):.0f} | "
              f"{accs[name][0]:.3f} / {accs[name][1]:.3f} | {note} | {ratio:.2f} |")
    print("(samples/s: medians; ratio: median of per-repetition time ratios Avalanche / native)")
    if goal:
        low = min(r for _, r in goal)
        print(f"goal >= 3x on the same work: {'met' if low >= 3 else 'not met'} "
              f"(lowest {low:.2f}, {min(goal, key=lambda g: g[1])[0]})")


if __name__ == "__main__":
    main()
