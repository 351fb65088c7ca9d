"""Loop overhead of `clenv run` against a hand-written torch loop.

The same online ER run (batch 10, MLP, test-then-train, reservoir replay, masked
cross-entropy, task-end evaluation) goes (a) through clenv's Runner/Env code path and (b)
through a plain loop over pre-gathered tensors (slicing), with the same replay sampler
(clenv.strategies.memory.ReservoirBuffer) and the same reward computation. torch threads = 1;
repetitions are interleaved in one process. Prints samples/s for both, microseconds of overhead
per Env step, and `ratio clenv/torch: X.XX` (median of per-repetition ratios).

    python benchmarks/loop_overhead.py [--reps 7] [--train-per-class 2000]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

from clenv.config.loader import load_config
from clenv.models.build import build_model
from clenv.runner import Run
from clenv.strategies.memory import ReservoirBuffer


def config(train_per_class: int) -> dict:
    return load_config({
        "name": "loop_overhead", "seed": 0, "threads": 1,
        "scenario": {"generator": "disjoint", "seed": 0, "n_tasks": 5, "batch_size": 10},
        "data": {"source": "synthetic", "seed": 0, "dim": 32, "separation": [1.0],
                 "noise": 1.5, "train_per_class": train_per_class, "test_per_class": 100},
        "strategy": {"name": "er", "lr": 0.05, "memory_size": 500},
        "model": {"name": "mlp", "hidden": [256, 256]},
        "eval": {"every": 0}, "output": {"plots": False},
    })


def torch_loop(cfg: dict, run: Run) -> tuple[float, float]:
    """Hand-written loop; returns (seconds, final accuracy on all test samples)."""
    pool, stream = run.env.pool, run.env.stream
    order = stream.materialize()["index"]
    X = torch.from_numpy(pool.x[order])
    Y = torch.from_numpy(pool.y[order])
    test = pool.test_indices
    Xt, Yt = torch.from_numpy(pool.x[test]), torch.from_numpy(pool.y[test])
    C, B = pool.n_classes, cfg["scenario"]["batch_size"]
    t0 = time.perf_counter()
    torch.manual_seed(cfg["seed"])
    rng = np.random.default_rng(np.random.SeedSequence([cfg["seed"], 0x57A7]))
    model = build_model(cfg["model"], pool.shape, C)
    opt = torch.optim.SGD(model.parameters(), lr=cfg["strategy"]["lr"])
    memory = ReservoirBuffer(cfg["strategy"]["memory_size"], pool.shape, torch.float32, rng)
    seen = torch.zeros(C, dtype=torch.bool)
    neg_inf = torch.tensor(float("-inf"))
    ends = set(stream.task_ends.tolist())
    correct = 0.0
    for s in range(0, len(Y), B):
        x, y = X[s:s + B], Y[s:s + B]
        with torch.no_grad():  # test ...
            pred = torch.where(seen, model(x), neg_inf).argmax(1)
        correct += (pred == y).float().mean().item()  # reward
        seen[y] = True  # ... then train
        mx, my = memory.sample(B)
        logits = torch.where(seen, model(torch.cat((x, mx))), neg_inf)
        loss = F.cross_entropy(logits, torch.cat((y, my)))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss.item()
        memory.add(x, y)
        if s + B in ends:  # task-end evaluation on the whole test set
            with torch.no_grad():
                acc = (torch.where(seen, model(Xt), neg_inf).argmax(1) == Yt).float().mean()
    return time.perf_counter() - t0, float(acc)


def clenv_loop(cfg: dict, run: Run) -> tuple[float, float, int]:
    t0 = time.perf_counter()
    metrics = run.execute(None)
    secs = time.perf_counter() - t0
    return secs, metrics["final_accuracy"], metrics["budget"]["grad_steps"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--train-per-class", type=int, default=2000)
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = config(args.train_per_class)
    run = Run(cfg)
    torch.set_num_threads(1)
    n = run.env.stream.length
    steps = n // cfg["scenario"]["batch_size"]
    print(f"stream {n} samples, {steps} steps of batch {cfg['scenario']['batch_size']}, "
          f"MLP {cfg['model']['hidden']}, ER memory {cfg['strategy']['memory_size']}, "
          f"torch threads {torch.get_num_threads()}")
    torch_loop(cfg, run)  # warm-up
    clenv_loop(cfg, run)
    t_torch, t_clenv, ratios = [], [], []
    for r in range(args.reps):
        a, acc_t = torch_loop(cfg, run)
        b, acc_c, gs = clenv_loop(cfg, run)
        t_torch.append(a)
        t_clenv.append(b)
        ratios.append(a / b)
        print(f"rep {r}: torch {n / a:8.0f} samples/s  clenv {n / b:8.0f} samples/s  "
              f"ratio {a / b:.3f}  (final acc torch {acc_t:.3f}, clenv {acc_c:.3f}, "
              f"clenv grad steps {gs})")
    mt, mc = statistics.median(t_torch), statistics.median(t_clenv)
    print(f"torch loop: {n / mt:.0f} samples/s (median of {args.reps})")
    print(f"clenv run:  {n / mc:.0f} samples/s (median of {args.reps})")
    print(f"overhead per step: {(mc - mt) / steps * 1e6:.1f} us")
    print(f"ratio clenv/torch: {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
