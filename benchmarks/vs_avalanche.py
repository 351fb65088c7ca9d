"""Speed side by side: Avalanche replay, clenv ER and a hand-written torch loop.

One stream (synthetic 10 classes, 32-d, 5 disjoint tasks), one model (MLP 32-256-256-10, SGD
lr 0.05), one memory size (500), one replay batch per step (as many memory samples as stream
samples) and the same number of SGD steps, in two settings:

- offline: batch 32, one pass per task (the exported task experience holds the task's samples
  in clenv's order; Avalanche trains it with ``train_epochs=1``, no shuffling);
- online: batch 10, one Avalanche mini experience per Env batch (``to_benchmark(...,
  mode="online")``, i.e. ``split_online_stream(..., access_task_boundaries=True)``).

(a) Avalanche: ``Naive`` + ``ReplayPlugin`` with a ``ReservoirSamplingBuffer`` (Avalanche's
    reservoir storage policy, the one it recommends online; its ``Replay`` default,
    ExperienceBalancedBuffer, rebuilds per experience and is slower online), on the benchmark
    exported from the clenv config, evaluated on the test stream at every task end;
(b) clenv: ``Run(cfg).execute(None)`` with the built-in ``er`` strategy (the ``clenv run`` path);
(c) torch: the hand-written loop of benchmarks/loop_overhead.py (tensor slicing, the same
    reservoir sampler as clenv, the same test-then-train and task-end evaluation).

torch threads = 1; repetitions interleaved in one process. Prints samples/s per path and mode,
then ``ratio clenv/torch: X.XX`` (the lower of the offline and online medians of per-repetition
time ratios) and ``ratio clenv/avalanche online: X.XX``.

    python benchmarks/vs_avalanche.py [--reps 5] [--train-per-class 2000]
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
from loop_overhead import clenv_loop, config, torch_loop  # noqa: E402

from clenv.avalanche import to_benchmark  # noqa: E402
from clenv.config.loader import load_config  # noqa: E402
from clenv.models.build import build_model  # noqa: E402
from clenv.runner import Run  # noqa: E402

SETTINGS = {"offline": 32, "online": 10}


def avalanche_loop(cfg: dict, bm, mode: str) -> tuple[float, float, int]:
    """Avalanche replay on the exported benchmark; (seconds, final accuracy, SGD steps)."""
    from avalanche.evaluation.metrics import accuracy_metrics
    from avalanche.training import Naive
    from avalanche.training.plugins import EvaluationPlugin, ReplayPlugin
    from avalanche.training.storage_policy import ReservoirSamplingBuffer

    ex = bm.exported
    B, memory = cfg["scenario"]["batch_size"], cfg["strategy"]["memory_size"]
    t0 = time.perf_counter()
    torch.manual_seed(cfg["seed"])
    model = build_model(cfg["model"], ex.input_shape, ex.n_classes)
    opt = torch.optim.SGD(model.parameters(), lr=cfg["strategy"]["lr"])
    replay = ReplayPlugin(mem_size=memory, batch_size=B, batch_size_mem=B,
                          storage_policy=ReservoirSamplingBuffer(max_size=memory))
    with warnings.catch_warnings(record=True):
        strategy = Naive(model=model, optimizer=opt, criterion=torch.nn.CrossEntropyLoss(),
                         train_mb_size=B, train_epochs=1, eval_mb_size=1024, device="cpu",
                         plugins=[replay], eval_every=-1,
                         evaluator=EvaluationPlugin(accuracy_metrics(stream=True), loggers=[]))
        for exp in bm.train_stream:
            # online: Avalanche's default shuffle (random memory batches); offline: clenv order
            strategy.train(exp, eval_streams=[], shuffle=mode == "online")
            if mode == "offline" or exp.is_last_subexp:
                strategy.eval(bm.test_stream)
    secs = time.perf_counter() - t0
    acc = strategy.evaluator.get_last_metrics()["Top1_Acc_Stream/eval_phase/test_stream"]
    return secs, float(acc), int(strategy.clock.train_iterations)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--train-per-class", type=int, default=2000)
    args = ap.parse_args()
    torch.set_num_threads(1)
    jobs = {}
    for mode, B in SETTINGS.items():
        cfg = load_config(config(args.train_per_class),
                          overrides=[f"scenario.batch_size={B}", "scenario.boundaries=exposed"])
        run = Run(cfg)
        bm = to_benchmark(cfg, mode=mode)
        jobs[mode] = (cfg, run, bm)
    torch.set_num_threads(1)
    n = jobs["online"][1].env.stream.length
    print(f"stream {n} samples, 10 classes, 5 tasks, MLP [256, 256], memory 500, "
          f"torch threads {torch.get_num_threads()}, {args.reps} interleaved repetitions")
    for mode, (cfg, run, bm) in jobs.items():  # warm-up
        torch_loop(cfg, run)
        clenv_loop(cfg, run)
        avalanche_loop(cfg, bm, mode)
    times: dict[tuple[str, str], list[float]] = {}
    ratios: dict[tuple[str, str], list[float]] = {}
    for r in range(args.reps):
        for mode, (cfg, run, bm) in jobs.items():
            t, acc_t = torch_loop(cfg, run)
            c, acc_c, steps_c = clenv_loop(cfg, run)
            a, acc_a, steps_a = avalanche_loop(cfg, bm, mode)
            for path, secs in (("torch", t), ("clenv", c), ("avalanche", a)):
                times.setdefault((mode, path), []).append(secs)
            ratios.setdefault((mode, "torch"), []).append(t / c)
            ratios.setdefault((mode, "avalanche"), []).append(a / c)
            print(f"rep {r} {mode:7s} batch {SETTINGS[mode]:2d}: torch {n / t:7.0f}  "
                  f"clenv {n / c:7.0f}  avalanche {n / a:7.0f} samples/s  "
                  f"(final acc {acc_t:.3f} / {acc_c:.3f} / {acc_a:.3f}; "
                  f"SGD steps clenv {steps_c}, avalanche {steps_a})")
    print()
    print("| mode | batch | torch loop | clenv ER | Avalanche replay | clenv/torch | "
          "clenv/Avalanche |")
    print("|---|---|---|---|---|---|---|")
    for mode in SETTINGS:
        med = {p: n / statistics.median(times[(mode, p)])
               for p in ("torch", "clenv", "avalanche")}
        print(f"| {mode} | {SETTINGS[mode]} | {med['torch']:.0f} | {med['clenv']:.0f} | "
              f"{med['avalanche']:.0f} | {statistics.median(ratios[(mode, 'torch')]):.2f} | "
              f"{statistics.median(ratios[(mode, 'avalanche')]):.2f} |")
    print("(samples/s, medians; ratios are medians of per-repetition time ratios)")
    for mode in SETTINGS:
        print(f"ratio clenv/torch {mode}: {statistics.median(ratios[(mode, 'torch')]):.2f}")
    worst = min(statistics.median(ratios[(m, "torch")]) for m in SETTINGS)
    print(f"ratio clenv/avalanche offline: "
          f"{statistics.median(ratios[('offline', 'avalanche')]):.2f}")
    print(f"ratio clenv/torch: {worst:.2f}")
    print(f"ratio clenv/avalanche online: "
          f"{statistics.median(ratios[('online', 'avalanche')]):.2f}")


if __name__ == "__main__":
    main()
