"""Inference cost of MULTI-LANE against full-token lanes and the frozen backbone alone.

ViT-B/16 sized backbone (random weights: timing only), 224x224 RGB, S = 20 selectors, P = 20
prompts in the first 5 blocks, 10 classes per task. For 1..20 tasks: milliseconds per image of
one batched inference pass over all lanes (median of --reps), throughput relative to the
backbone alone, the speed-up of MULTI-LANE over full-token lanes, and GFLOPs per image from
torch's FlopCounterMode. CPU by default; --device cuda when present.

    python benchmarks/multilane_cost.py [--batch 4] [--tasks 1 2 5 10 20] [--reps 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from clenv.models.full_token_lanes import FullTokenLanes
from clenv.models.multilane import MultiLane
from clenv.models.vit import vit_b16


def timed(fn, reps: int, device: str) -> float:
    times = []
    for _ in range(reps):
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def gflops(fn) -> float:
    with FlopCounterMode(display=False) as fc:
        fn()
    return fc.get_total_flops() / 1e9


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--tasks", type=int, nargs="+", default=[1, 2, 5, 10, 20])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    args = ap.parse_args()
    torch.manual_seed(0)
    dev, dt = args.device, getattr(torch, args.dtype)
    vit = vit_b16().to(dev, dt).eval()
    x = torch.rand(args.batch, 3, 224, 224, device=dev, dtype=dt)
    print(f"device {dev} ({torch.cuda.get_device_name(0) if dev == 'cuda' else 'CPU'}), "
          f"{args.dtype}, batch {args.batch}, torch threads {torch.get_num_threads()}")
    with torch.no_grad():
        vit.forward_features(x)  # warm-up
        t_bb = timed(lambda: vit.forward_features(x), args.reps, dev)
        f_bb = gflops(lambda: vit.forward_features(x)) / args.batch
    nd = 3 if dev == "cuda" else 1  # a GPU image takes microseconds
    print(f"backbone alone: {1000 * t_bb / args.batch:.{nd}f} ms/image, "
          f"{f_bb:.1f} GFLOPs/image")
    print(f"{'tasks':>5} {'ML ms/img':>10} {'FT ms/img':>10} {'speed-up':>9} "
          f"{'ML/backbone thr.':>16} {'ML GFLOPs':>10} {'FT GFLOPs':>10}")
    for n in args.tasks:
        ml = MultiLane(vit, 10 * n, n_selectors=20, n_prompts=20, prompt_layers=5).to(dev, dt)
        ft = FullTokenLanes(vit, 10 * n, n_selectors=20, n_prompts=20,
                            prompt_layers=5).to(dev, dt)
        for t in range(n):
            ml.add_task(list(range(10 * t, 10 * t + 10)))
            ft.add_task(list(range(10 * t, 10 * t + 10)))
        ml.to(dev, dt)
        ft.to(dev, dt)
        with torch.no_grad():
            ml(x)
            t_ml = timed(lambda ml=ml: ml(x), args.reps, dev)
            t_ft = timed(lambda ft=ft: ft(x), args.reps, dev)
            g_ml = gflops(lambda ml=ml: ml(x)) / args.batch
            g_ft = gflops(lambda ft=ft: ft(x)) / args.batch
        print(f"{n:>5} {1000 * t_ml / args.batch:>10.{nd}f} {1000 * t_ft / args.batch:>10.{nd}f} "
              f"{t_ft / t_ml:>8.2f}x {t_bb / t_ml:>15.0%} {g_ml:>10.1f} {g_ft:>10.1f}",
              flush=True)


if __name__ == "__main__":
    main()
