"""Run-level reference check of the native memory methods against Avalanche 0.6 (issue 19).

GDumb: native ``gdumb`` with ``retrain: task_end`` (the offline form: a retraining at each
task end) against Avalanche's ``GDumb`` through clenv's adapter in offline mode (one
experience per task, trained at its end), on scenarios/quickstart.yaml (5 disjoint tasks,
synthetic 10 classes) with 5 paired seeds (learner and stream seed = s). Same stream, model
(MLP 32-128-128-10 built from the learner seed; both retrain from these initial weights),
memory 200, retraining budget (``epochs`` passes of batch 16 over the memory, SGD lr 0.05
constant, no momentum, no weight decay, no clipping). Avalanche's online GDumb retrains
after every batch (a different work), so it is not compared.

Two Avalanche arms: the adapter as it is (offline mode trains without shuffling, so the
memory, held class by class in Avalanche's ClassBalancedBuffer, is seen class-sorted every
epoch) and the adapter with Avalanche's loader shuffling each epoch (``shuffle=True``, as the
paper's code and the native strategy do). Prints per arm the final accuracy (mean ± std) and
the paired 95% CI of native - Avalanche in points.

iCaRL is not run: Avalanche's ICaRL reads ``experience.benchmark`` (n_classes_per_exp,
classes_order), which clenv's adapter experiences lack, so it fails on its first experience;
its herding, class means, NCM and loss are checked at unit level in tests/test_icarl.py.

    nice -n 10 python benchmarks/zoo_reference_memory.py [--seeds 5] [--epochs 16]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evidence_stats import mean_std, paired_ci  # noqa: E402

from clenv.avalanche.strategy import AvalancheStrategy  # noqa: E402
from clenv.config.loader import load_config  # noqa: E402
from clenv.runner import Run  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


class ShuffledAvalanche(AvalancheStrategy):
    """The adapter, offline, with Avalanche's data loader shuffling the experience."""

    def _train(self, exp) -> None:
        with warnings.catch_warnings(record=True):
            self.avl.train(exp, eval_streams=[], shuffle=True)
        self.n_trained += 1
        self.grad_steps = self.counter.steps
        self.samples_processed = self.counter.samples


def config(seed: int, strategy: dict) -> dict:
    cfg = load_config(str(REPO / "scenarios" / "quickstart.yaml"))
    cfg = {k: v for k, v in cfg.items() if k not in ("strategy",)}
    cfg.update(seed=seed, threads=1, strategy=strategy, eval={"every": 0},
               output={"plots": False})
    cfg["scenario"] = {**cfg["scenario"], "seed": seed}
    return load_config(cfg)


def arms(epochs: int) -> dict[str, dict]:
    optim = {"optimizer": "sgd", "lr": 0.05, "momentum": 0.0, "weight_decay": 0.0}
    avalanche = {"class": "GDumb", "mode": "offline", "train_epochs": epochs,
                 "train_mb_size": 16, "args": {"mem_size": 200}, **optim}
    return {
        "native": {"name": "gdumb", "retrain": "task_end", "epochs": epochs, "batch_size": 16,
                   "memory_size": 200, "sgdr": False, "warmup": False, "clip": 0.0, **optim},
        "avalanche": {"name": "avalanche", **avalanche},
        "avalanche_shuffled": {"name": "zoo_reference_memory:ShuffledAvalanche", **avalanche},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=16)
    args = ap.parse_args()
    torch.set_num_threads(1)
    results: dict[str, list[float]] = {}
    steps: dict[str, list[int]] = {}
    for name, strategy in arms(args.epochs).items():
        t0 = time.perf_counter()
        for seed in range(args.seeds):
            metrics = Run(config(seed, dict(strategy))).execute(None)
            results.setdefault(name, []).append(metrics["final_accuracy"])
            steps.setdefault(name, []).append(metrics["budget"]["grad_steps"])
        print(f"GDumb {name:<19} final accuracy {mean_std(results[name])}  "
              f"grad steps {statistics.mean(steps[name]):.0f}  "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
    for other in ("avalanche", "avalanche_shuffled"):
        print(f"GDumb native - {other}: {paired_ci(results['native'], results[other])} "
              f"points (paired 95% CI, {args.seeds} seeds)")


if __name__ == "__main__":
    main()
