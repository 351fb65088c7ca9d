"""Evidence table for the forgetting plug-ins (docs/evidence.md): ER without forgetting vs
ER with active, temporary and probabilistic forgetting of the head, on a class-incremental
stream of the semantic simulation and on scikit-learn digits (real data), with the naive and
joint references.

Reported: final accuracy; late-task accuracy (plasticity) = mean over the second half of the
tasks of R[j][j], the accuracy on task j right after training it; average forgetting; BWT; and
steps to recover after a reset = gradient steps until the training loss is back at its mean
over the 10 steps before the reset (from the run's ``recovered`` events; resets followed by
another reset before recovering count as not recovered). Same model, memory size and updates
per stream sample for every row; paired seeds (scenario.seed = learner seed = 0..4).

    python benchmarks/forgetting_evidence.py [--seeds 5] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from evidence_stats import (
    budget_cells,
    calibration_line,
    disjoint_mlp_config,
    mean_std,
    paired_ci,
)

REPO = Path(__file__).resolve().parents[1]
DATASETS: dict[str, tuple[dict, int, float | None]] = {  # name -> (data, tasks, updates
    # per stream sample: None = one step per batch of 10)
    "semantic (50 CIFAR-100 names, 10 tasks, 50 steps per task)": (
        {"source": "semantic", "seed": 0, "superclasses": 10, "classes_per_superclass": 5,
         "dim": 32, "train_per_class": 100, "test_per_class": 20}, 10, None),
    "digits (real, 5 tasks, 3 steps per batch, ~86 steps per task)": (
        {"source": "digits", "seed": 0}, 5, 0.3),
}
METHODS: dict[str, dict] = {
    "naive": {"name": "naive"},
    "ER (no forgetting)": {"name": "er"},
    "ER + active (head, every 75 steps)": {
        "name": "er", "forgetting": {"schedule": "active", "every": 75, "target": "head"}},
    "ER + temporary (head, every 10 steps, first 30 of each task)": {
        "name": "er", "forgetting": {"schedule": "temporary", "every": 10, "window": 30,
                                     "per": "task", "target": "head"}},
    "ER + temporary (head, every 10 steps, first 100 of the run)": {
        "name": "er", "forgetting": {"schedule": "temporary", "every": 10, "window": 100,
                                     "per": "run", "target": "head"}},
    "ER + probabilistic (head rows, p = 0.1)": {
        "name": "er", "forgetting": {"schedule": "probabilistic", "p": 0.1}},
    "joint": {"name": "joint", "epochs": 5},
}
BASELINE = "ER (no forgetting)"


def one(dataset: str, method: str, seed: int, tmp: Path) -> dict:
    from clenv.config.loader import load_config
    from clenv.runner import Run

    data, tasks, ups = DATASETS[dataset]
    out = tmp / f"{abs(hash((dataset, method, seed)))}"
    cfg = disjoint_mlp_config("forgetting_evidence", data, tasks, ups, METHODS[method], seed)
    m = Run(load_config(cfg)).execute(out)
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    resets = [e for e in events if e["type"] == "event" and e["kind"] == "reset"]
    rec = [e["recovery_steps"] for e in events
           if e["type"] == "event" and e["kind"] == "recovered"]
    R = m["accuracy_matrix"]
    T = len(R)
    late = statistics.mean(R[j][j] for j in range(T // 2, T))
    return {"dataset": dataset, "method": method, "seed": seed,
            "final": m["final_accuracy"], "late": late, "forgetting": m["average_forgetting"],
            "bwt": m["bwt"], "resets": len(resets),
            "recovered": [r for r in rec if r is not None],
            "unrecovered": len(resets) - len([r for r in rec if r is not None]),
            "grad_steps": m["budget"]["grad_steps"],
            "samples": m["budget"]["samples_processed"], "wall": m["wall_time"]["total"]}


def table(rows: list[dict], dataset: str) -> list[str]:
    by = {m: sorted((r for r in rows if r["dataset"] == dataset and r["method"] == m),
                    key=lambda r: r["seed"]) for m in METHODS}
    out = ["| method | final accuracy | late-task accuracy | average forgetting | BWT | "
           "Δ final vs ER [95% CI] | Δ late-task vs ER [95% CI] | Δ forgetting vs ER [95% CI] "
           "| resets per run | steps to recover (median, not recovered) | grad steps | "
           "samples processed | wall s |", "|---|" + "---|" * 12]
    base = by[BASELINE]
    for m, runs in by.items():
        diffs = ["—"] * 3
        if m not in (BASELINE, "naive", "joint"):
            diffs = [paired_ci([r[k] for r in runs], [r[k] for r in base])
                     for k in ("final", "late", "forgetting")]
        rec = [x for r in runs for x in r["recovered"]]
        unrec = sum(r["unrecovered"] for r in runs)
        n_resets = statistics.mean(r["resets"] for r in runs)
        recovery = (f"{statistics.median(rec):.0f} ({unrec} of "
                    f"{sum(r['resets'] for r in runs)})" if n_resets else "—")
        out.append(f"| {m} | {mean_std([r['final'] for r in runs])} | "
                   f"{mean_std([r['late'] for r in runs])} | "
                   f"{mean_std([r['forgetting'] for r in runs])} | "
                   f"{mean_std([r['bwt'] for r in runs])} | {' | '.join(diffs)} | "
                   f"{n_resets:.1f} | {recovery} | "
                   f"{budget_cells(runs)} |")
    out += ["", calibration_line([r["final"] for r in by["joint"]],
                                 [r["final"] for r in by["naive"]])]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--out", default=None, help="also write the tables to this file")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [one(d, m, s, Path(tmp)) for d in DATASETS for m in METHODS
                for s in range(args.seeds)]
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True,
                            text=True, cwd=REPO).stdout.strip()  # -dirty: uncommitted changes
    lines = [f"Produced by `python benchmarks/forgetting_evidence.py` at commit {commit} "
             f"({len(rows)} runs, {time.perf_counter() - t0:.0f} s on one core of a 2-core "
             f"Xeon VM, torch threads 1). Mean ± std over {args.seeds} paired seeds "
             f"(scenario seed = learner seed = 0..{args.seeds - 1}); Δ is the paired "
             "difference to ER without forgetting with its 95% t-interval, in accuracy "
             "points. Model: MLP [128], SGD lr 0.05, memory 200, batches of 10.", ""]
    for d in DATASETS:
        lines += [f"### {d}", "", *table(rows, d), ""]
    text = "\n".join(lines)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
