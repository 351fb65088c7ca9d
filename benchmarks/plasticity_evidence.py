"""Evidence for loss of plasticity (issue 22; docs/evidence.md rules): plain SGD against the
plasticity plug-ins on the ready long streams, 5 paired seeds.

Per scenario: the calibration (plain SGD's plasticity, first tenth minus last tenth of the
stream, must fall by >= 20 points), then one row per method: plasticity of the first and the
last tenth of tasks, the drop, the paired difference of the last-tenth plasticity to plain SGD
with its 95% t-interval, the diagnostics at the last evaluation (dead ReLU fraction, effective
rank, mean |w|, gradient norm), gradient steps and wall seconds. Every method shares the model
(MLP 100-100), the optimiser (the scenario's own strategy section: plain SGD at its rate), the
stream and its batches. A figure per scenario: the plasticity curve per method (mean over
seeds, each point the mean of a tenth of the tasks) and the diagnostics over the stream.

    python benchmarks/plasticity_evidence.py [--seeds 5] [--jobs 2] [--out FILE] [--img DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from evidence_stats import mean_std, paired_ci

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = {  # name -> overrides
    "plasticity_random_labels_digits": [],
    "plasticity_random_labels_mnist": [],
}
METHODS: dict[str, dict | None] = {  # row -> plug-in sections added to the scenario's own
    # strategy (plain SGD at the scenario's learning rate), with the presets' settings
    "plain SGD": None,
    "shrink & perturb": {"plasticity": {"method": "shrink_perturb", "shrink": 0.4,
                                        "sigma": 0.01}},
    "continual backprop": {"plasticity": {"method": "continual_backprop",
                                          "replacement_rate": 1e-4, "maturity": 100,
                                          "decay": 0.99}},
    "L2 to init": {"plasticity": {"method": "l2_init", "l2": 0.01}},
    "temporary forgetting (head, twice at each task start)": {
        "forgetting": {"schedule": "temporary", "every": 50, "window": 100, "per": "task",
                       "target": "head"}},
    "fresh network per task (reference)": {"plasticity": {"method": "fresh"}},
}
DIAG = ("dead_fraction", "effective_rank", "weight_magnitude", "grad_norm")


def one(args: tuple[str, str, int, tuple[str, ...]]) -> dict:
    scenario, method, seed, extra = args
    import torch

    from clenv.config.loader import load_config
    from clenv.metrics.plasticity import diagnostics_series
    from clenv.metrics.summary import read_events
    from clenv.runner import Run

    torch.set_num_threads(1)
    over = [*SCENARIOS[scenario], *extra, f"scenario.seed={seed}", "output.plots=false",
            "threads=1", "strategy.diagnostics=true"]
    over += [f"strategy.{k}={json.dumps(v)}" for k, v in (METHODS[method] or {}).items()]
    cfg = load_config(REPO / "scenarios" / f"{scenario}.yaml", seed=seed, overrides=over)
    with tempfile.TemporaryDirectory() as tmp:
        m = Run(cfg).execute(Path(tmp) / "run")
        diag = diagnostics_series(read_events(Path(tmp) / "run" / "events.jsonl"))
    p = m["plasticity"]
    return {"scenario": scenario, "method": method, "seed": seed, "curve": p["curve"],
            "drop": p["drop"], "diag": diag, "grad_steps": m["budget"]["grad_steps"],
            "wall": m["wall_time"]["total"]}


def tenth(curve: list[float], which: str) -> float:
    """The mean plasticity of the first or the last tenth of the tasks."""
    from clenv.metrics.plasticity import plasticity_tenths

    return plasticity_tenths(curve)[0 if which == "first" else 1]


def last_diag(r: dict, key: str) -> float:
    vals = [v for v in r["diag"][key] if v is not None]
    return float(vals[-1]) if vals else float("nan")


def table(rows: list[dict], scenario: str) -> list[str]:
    by = {m: sorted((r for r in rows if r["scenario"] == scenario and r["method"] == m),
                    key=lambda r: r["seed"]) for m in METHODS}
    base = by["plain SGD"]
    first = [tenth(r["curve"], "first") for r in base]
    last = [tenth(r["curve"], "last") for r in base]
    drops = [a - b for a, b in zip(first, last, strict=True)]
    out = [f"### {scenario}", "",
           f"Calibration (plain SGD, {len(base)} seeds): plasticity falls from "
           f"{100 * statistics.mean(first):.1f} (first tenth of tasks) to "
           f"{100 * statistics.mean(last):.1f} (last tenth): a drop of "
           f"{100 * statistics.mean(drops):.1f} points (min over seeds "
           f"{100 * min(drops):.1f}; the issue asks for >= 20): "
           f"{'calibrated' if min(drops) >= 0.20 else 'NOT calibrated'}.", "",
           "| method | first-tenth plasticity | last-tenth plasticity | drop | Δ last tenth vs "
           "plain SGD [95% CI] | dead ReLU fraction | effective rank | mean abs weight | "
           "grad norm | grad steps | wall s |", "|---|" + "---|" * 10]
    for m, runs in by.items():
        f = [tenth(r["curve"], "first") for r in runs]
        la = [tenth(r["curve"], "last") for r in runs]
        d = "—" if m == "plain SGD" else paired_ci(la, last)
        diag = " | ".join(f"{statistics.mean(last_diag(r, k) for r in runs):.{digits}f}"
                          for k, digits in zip(DIAG, (3, 1, 3, 3), strict=True))
        out.append(f"| {m} | {mean_std(f)} | {mean_std(la)} | "
                   f"{mean_std([a - b for a, b in zip(f, la, strict=True)])} | {d} | {diag} | "
                   f"{statistics.mean(r['grad_steps'] for r in runs):.0f} | "
                   f"{statistics.mean(r['wall'] for r in runs):.1f} |")
    return [*out, ""]


def figure(rows: list[dict], scenario: str, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for m in METHODS:
        runs = [r for r in rows if r["scenario"] == scenario and r["method"] == m]
        curves = np.array([r["curve"] for r in runs])
        n = curves.shape[1]
        k = max(1, n // 10)
        chunks = curves[:, : n - n % k].reshape(len(runs), -1, k).mean(axis=2)
        x = (np.arange(chunks.shape[1]) + 0.5) * k
        axes[0].plot(x, 100 * chunks.mean(0), marker="o", ms=3, label=m)
        for ax, key in ((axes[1], "dead_fraction"), (axes[2], "effective_rank")):
            s = [np.array(r["diag"]["samples"]) for r in runs]
            v = [np.array([np.nan if y is None else y for y in r["diag"][key]], float)
                 for r in runs]
            ax.plot(s[0], np.nanmean(np.vstack(v), axis=0), lw=1.2, label=m)
    axes[0].set(xlabel="task", ylabel="plasticity (%)", title="plasticity, mean of each tenth")
    axes[1].set(xlabel="stream samples", ylabel="fraction", title="dead ReLU units")
    axes[2].set(xlabel="stream samples", ylabel="effective rank",
                title="effective rank of the penultimate features")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{scenario}: mean over {len({r['seed'] for r in rows})} seeds")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=list(SCENARIOS))
    ap.add_argument("--out", default=None, help="write the tables (Markdown) here")
    ap.add_argument("--img", default=str(REPO / "docs" / "img"), help="figure folder")
    ap.add_argument("--rows", default=None, help="also append each finished run as JSON here")
    ap.add_argument("--set", nargs="*", default=[], help="extra overrides for every run (a "
                    "quick look, e.g. scenario.n_tasks=20; the tables say so)")
    args = ap.parse_args()
    jobs = [(s, m, seed, tuple(args.set)) for s in args.scenarios for m in METHODS
            for seed in range(args.seeds)]
    t0 = time.perf_counter()
    rows = []
    with ProcessPoolExecutor(args.jobs) as ex:
        for row in ex.map(one, jobs):
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k not in ("curve", "diag")}),
                  flush=True)
            if args.rows:
                with open(args.rows, "a") as fh:
                    fh.write(json.dumps(row) + "\n")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=REPO).stdout.strip() or "?"
    lines = [f"Produced by `python benchmarks/plasticity_evidence.py --jobs {args.jobs}` at "
             f"commit {commit} ({len(jobs)} runs, {time.perf_counter() - t0:.0f} s, torch "
             f"threads 1 per run), overrides {' '.join(args.set) or 'none'}. Mean ± std over "
             f"{args.seeds} paired seeds (scenario and "
             f"learner seed = 0..{args.seeds - 1}); plasticity in points; diagnostics at the "
             "last evaluation, mean over seeds.", ""]
    for s in args.scenarios:
        lines += table(rows, s)
        figure(rows, s, Path(args.img) / f"{s}.png")
        lines += [f"![{s}](img/{s}.png)", ""]
    text = "\n".join(lines)
    if args.out:
        Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
