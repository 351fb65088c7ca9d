"""Run-level reference check of the native LwF, EWC (separate, online), SI and MAS against
Avalanche 0.6 through clenv's adapter (``strategy: {name: avalanche, class: ...}``).

Both sides run the same stream, initial weights (the model is built from the run's seed), SGD
settings (lr 0.05, batch 10, online, exposed boundaries; the adapter consolidates Avalanche's
plug-ins at task ends over the task's samples, ``consolidate: task``) and budget, on two
streams of scenarios/quickstart.yaml's synthetic data (10 classes, 32-d) with 100 training and
50 test samples per class:

- ``class``: quickstart itself, class-incremental (5 tasks of 2 classes, 1000 samples);
- ``domain``: domain-incremental (a ``lifelong`` stream: 600 samples of all 10 classes, then 3
  tasks of 600 with the inputs permuted by a fixed seeded permutation each), where every class
  is seen from the first batches on, so clenv's loss (unseen classes masked) and Avalanche's
  (plain cross-entropy over every output) coincide after the first few batches.

Five paired seeds (run seed = scenario seed = data seed). Prints per stream and method the mean
final accuracy of each side and the paired 95% CI of the difference native - Avalanche, in
points (and for the task-aware final accuracy).

Avalanche's SI penalty is 0 on CPU in 0.6 (its weight snapshots alias the parameters), so the
SI row on CPU compares native SI with what is in effect Avalanche's Naive; the si_defect row
shows it (its left side is Avalanche's Naive through the adapter, not a native method).

    nice -n 10 python benchmarks/zoo_reference_reg.py [--seeds 5] [--methods lwf,ewc,...]
        [--streams class,domain]
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from evidence_stats import paired_ci  # noqa: E402

from clenv.config.loader import load_config  # noqa: E402
from clenv.runner import Run  # noqa: E402

# method -> (native strategy section, Avalanche class and args), same hyperparameters
PAIRS = {
    # the baseline: both sides' plain fine-tuning (clenv masks unseen classes' logits in its
    # loss; Avalanche's criterion is the plain cross-entropy over every output)
    "naive": ({"name": "naive"}, ("Naive", {})),
    "lwf": ({"name": "lwf", "alpha": 1.0, "temperature": 2.0},
            ("LwF", {"alpha": 1.0, "temperature": 2.0})),
    "ewc": ({"name": "ewc", "ewc_lambda": 100.0, "mode": "separate"},
            ("EWC", {"ewc_lambda": 100.0, "mode": "separate"})),
    "ewc_online": ({"name": "ewc", "ewc_lambda": 100.0, "mode": "online", "decay_factor": 0.9},
                   ("EWC", {"ewc_lambda": 100.0, "mode": "online", "decay_factor": 0.9})),
    # Avalanche's penalty is si_lambda / 2 * sum Omega (theta - theta*)^2: c = si_lambda / 2;
    # its path integral uses the total gradient, its damping is eps and it clips Omega at 0.001
    "si": ({"name": "si", "c": 0.5, "xi": 1e-7, "path_gradient": "total", "omega_max": 1e-3},
           ("SynapticIntelligence", {"si_lambda": 1.0, "eps": 1e-7})),
    # evidence for the SI row on CPU: Avalanche's SI against Avalanche's Naive (difference 0)
    "si_defect": ({"name": "avalanche", "class": "Naive", "mode": "online"},
                  ("SynapticIntelligence", {"si_lambda": 1.0, "eps": 1e-7})),
    "mas": ({"name": "mas", "lambda_reg": 1.0, "alpha": 0.5},
            ("MAS", {"lambda_reg": 1.0, "alpha": 0.5})),
}


def base_config(seed: int, stream: str = "class") -> dict:
    cfg = yaml.safe_load((ROOT / "scenarios" / "quickstart.yaml").read_text())
    cfg["seed"] = seed
    cfg["scenario"]["seed"] = seed
    if stream == "domain":
        base = {"name": "base", "type": "classes", "classes": list(range(10)), "length": 600}
        cfg["scenario"] = {"generator": "lifelong", "seed": seed, "batch_size": 10,
                           "segments": [base, *({"name": f"perm-{k}", "type": "domain",
                                                 "of": "base", "length": 600,
                                                 "domain": {"kind": "permute", "seed": k}}
                                                for k in (1, 2, 3))]}
    cfg["data"]["seed"] = seed
    cfg["data"]["train_per_class"] = 100
    cfg["data"]["test_per_class"] = 50
    cfg["eval"] = {"every": 0}
    cfg["output"] = {"plots": False}
    return cfg


def run(cfg: dict, strategy: dict) -> tuple[float, float]:
    cfg = copy.deepcopy(cfg)
    cfg["strategy"] = {**strategy, "optimizer": "sgd", "lr": 0.05}
    m = Run(load_config(cfg)).execute(None)
    return m["final_accuracy"], m["final_accuracy_task_aware"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--methods", default=",".join(PAIRS))
    ap.add_argument("--streams", default="class,domain")
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"device: {'cuda' if torch.cuda.is_available() else 'cpu'}; quickstart data, 100/50 "
          f"samples per class, {args.seeds} paired seeds; final accuracy in points")
    for stream in args.streams.split(","):
        print(f"\n{stream}-incremental")
        print(f"{'method':<11} {'native':>7} {'avalanche':>9}  native - avalanche [95% CI]"
              "   task-aware: native - avalanche")
        for method in args.methods.split(","):
            compare(stream, method, args.seeds)


def compare(stream: str, method: str, seeds: int) -> None:
    native_cfg, (cls, cls_args) = PAIRS[method]
    nat, avl, nat_ta, avl_ta = [], [], [], []
    t0 = time.perf_counter()
    for seed in range(seeds):
        cfg = base_config(seed, stream)
        a, a_ta = run(cfg, native_cfg)
        b, b_ta = run(cfg, {"name": "avalanche", "class": cls, "args": cls_args,
                            "mode": "online", "consolidate": "task"})
        nat.append(a)
        avl.append(b)
        nat_ta.append(a_ta)
        avl_ta.append(b_ta)
    mean = lambda xs: 100 * sum(xs) / len(xs)  # noqa: E731
    print(f"{method:<11} {mean(nat):7.1f} {mean(avl):9.1f}  {paired_ci(nat, avl):<26}"
          f"   {paired_ci(nat_ta, avl_ta)}   ({time.perf_counter() - t0:.0f} s)", flush=True)

if __name__ == "__main__":
    main()
