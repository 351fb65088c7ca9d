"""Lifelong streams at scale: generation time, Env steps/s and peak RSS at 10k, 1M and 10M
samples, each size in a fresh subprocess (so peak RSS is that size's own).

The stream mixes every segment kind that scales with length (classes, drift, domain with
per-sample noise, revisit, related); a no-op learner drives the Env (constant action), so the
numbers are the environment's own cost. Memory must stay flat: peak RSS at 10M within 10% (or
50 MB) of that at 1M.

    python benchmarks/stream_scale.py [--batch 100] [--sizes 10000 1000000 10000000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def segments(n: int) -> list[dict]:
    """Seven segments whose lengths add up to n."""
    parts = [0.2, 0.15, 0.15, 0.15, 0.1, 0.15]
    lens = [max(1, int(p * n)) for p in parts]
    lens.append(n - sum(lens))
    return [
        {"name": "A", "type": "classes", "classes": [0, 1, 2], "length": lens[0]},
        {"name": "B", "type": "classes", "classes": [3, 4, 5], "length": lens[1]},
        {"type": "drift", "from": "A", "to": "B", "length": lens[2], "schedule": "linear"},
        {"type": "domain", "of": "A", "domain": {"kind": "noise", "std": 0.3},
         "length": lens[3]},
        {"type": "revisit", "of": "B", "length": lens[4]},
        {"type": "drift", "from": "B", "to": "A", "length": lens[5], "schedule": "gaussian"},
        {"type": "related", "to": "A", "relation": "domain",
         "domain": {"kind": "permute", "seed": 1}, "length": lens[6]},
    ]


def child(n: int, batch: int) -> dict:
    import numpy as np

    from clenv.config.loader import load_config
    from clenv.runner import Run

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cfg = load_config({
        "scenario": {"generator": "lifelong", "seed": 0, "batch_size": batch,
                     "boundaries": "exposed", "segments": segments(n)},
        "data": {"source": "digits"}, "output": {"plots": False}})
    t0 = time.perf_counter()
    run = Run(cfg)
    env = run.env
    obs, _ = env.reset(seed=0)
    t_plan = time.perf_counter() - t0
    action = np.zeros(batch, dtype=np.int64)
    t1 = time.perf_counter()
    steps, done, valid = 0, False, 0
    while not done:
        obs, _, done, _, info = env.step(action)
        valid += int(info["valid"].sum())
        steps += 1
    t_run = time.perf_counter() - t1
    assert valid == n, (valid, n)
    # generation alone: every chunk of the stream, no Env
    t2 = time.perf_counter()
    for k in range(env.stream.n_chunks):
        env.stream.chunk(k)
    t_gen = time.perf_counter() - t2
    return {"samples": n, "plan_s": t_plan, "generate_s": t_gen, "env_s": t_run,
            "steps": steps, "steps_per_s": steps / t_run, "samples_per_s": n / t_run,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "rss_after_import_mb": rss0 / 1024}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 1_000_000, 10_000_000])
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.batch)))
        return
    rows = []
    print(f"{'samples':>10} {'plan s':>7} {'gen s':>7} {'env s':>7} {'steps/s':>9} "
          f"{'samples/s':>10} {'peak RSS MB':>11}")
    for n in args.sizes:
        out = subprocess.run([sys.executable, __file__, "--child", str(n), "--batch",
                              str(args.batch)], capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(r)
        print(f"{n:>10} {r['plan_s']:7.2f} {r['generate_s']:7.2f} {r['env_s']:7.2f} "
              f"{r['steps_per_s']:9.0f} {r['samples_per_s']:10.0f} {r['peak_rss_mb']:11.1f}",
              flush=True)
    by = {r["samples"]: r for r in rows}
    if 1_000_000 in by and 10_000_000 in by:
        a, b = by[1_000_000]["peak_rss_mb"], by[10_000_000]["peak_rss_mb"]
        ok = b <= max(a * 1.10, a + 50)
        print(f"peak RSS 10M vs 1M: {b:.1f} MB vs {a:.1f} MB ({(b / a - 1) * 100:+.1f}%): "
              f"{'flat' if ok else 'NOT flat'}")


if __name__ == "__main__":
    main()
