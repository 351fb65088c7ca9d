"""Evidence table for MLCIL / MULTI-LANE (docs/evidence.md): fine-tuning, ER-BCE,
MULTI-LANE and joint on the synthetic canvas scenario (10 shape classes, B0-C2) and on
canvases of real MNIST digits, 5 paired seeds; last mAP, average mAP, CF1-PRS, CF1
(MULTI-LANE's mean per-class F1), OF1 and mAP forgetting. All methods share the model (a
small ViT pretrained on 6 disjoint shape classes; MULTI-LANE freezes it, the others fine-tune
it), the stream and its epochs.
Writes docs/mlcil_evidence.md.

    python benchmarks/mlcil_evidence.py [--seeds 5] [--jobs 2] [--scenarios ...]

With CLENV_CACHE set, each seed's backbone is pretrained once (first phase, one job per seed)
and every later run loads it from the disk cache, so all runs can go to separate workers.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from evidence_stats import mean_std, paired_ci

REPO = Path(__file__).resolve().parents[1]
MNIST = REPO / "data" / "mnist-test"
SCENARIOS = {"mlcil_canvas": [], "mlcil_digits": [], "mlcil_mnist": [f"data.root={MNIST}"]}
METHODS: dict[str, tuple[str, list[str]]] = {
    "fine-tuning (BCE)": ("finetune_bce", []),
    "ER-BCE": ("er_bce", []),
    "MULTI-LANE": ("multilane", []),
    "joint": ("joint", ["strategy.epochs=10", "strategy.optimizer=adam", "strategy.lr=0.001"]),
}
KEYS = ("map", "average_map", "cf1_prs", "cf1", "of1", "map_forgetting")  # metrics_version 2


def one(args: tuple[int, str, str, tuple[str, ...]]) -> dict:
    seed, scenario, method, extra = args
    t0 = time.perf_counter()
    import torch

    from clenv.config.loader import load_config
    from clenv.runner import Run

    torch.set_num_threads(1)
    preset, sets = METHODS[method]
    cfg = load_config(REPO / "scenarios" / f"{scenario}.yaml", strategy=preset, seed=seed,
                      overrides=[*SCENARIOS[scenario], *extra, *sets, f"scenario.seed={seed}",
                                 f"data.seed={seed}", "output.plots=false"])
    m = Run(cfg).execute(None)
    row = {"scenario": scenario, "method": method, "seed": seed,
           "grad_steps": m["budget"].get("grad_steps", 0),
           "trainable": m["budget"].get("trainable_params", m["budget"].get("n_params", 0)),
           "wall": m["wall_time"]["total"], "process_s": time.perf_counter() - t0}
    row.update({k: (m[k] if m[k] is not None else float("nan")) for k in KEYS})
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--scenarios", nargs="+", default=["mlcil_canvas", "mlcil_digits"],
                    choices=list(SCENARIOS))
    ap.add_argument("--machine", default="2 CPU cores",
                    help="how the table describes the machine that ran it")
    ap.add_argument("--out", default=str(REPO / "docs" / "mlcil_evidence.md"))
    ap.add_argument("--rows", default=None, help="also append each finished run as JSON here")
    ap.add_argument("--scenario-sets", default=None,
                    help="JSON file {scenario: [KEY=VALUE, ...]} of overrides per scenario "
                         "(what benchmarks/mlcil_calibrate.py --choose writes)")
    args = ap.parse_args()
    extra = json.loads(Path(args.scenario_sets).read_text()) if args.scenario_sets else {}
    jobs = [(seed, s, m, tuple(extra.get(s, ()))) for seed in range(args.seeds)
            for s in args.scenarios for m in METHODS]
    t0 = time.perf_counter()
    rows: list[dict] = []

    def done(row: dict) -> None:
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.rows:
            with open(args.rows, "a") as fh:
                fh.write(json.dumps(row) + "\n")

    with ProcessPoolExecutor(args.jobs) as ex:
        if os.environ.get("CLENV_CACHE"):
            # phase 1: one run per seed pretrains that seed's backbone into the disk cache
            first = [j for j in jobs if j[1] == args.scenarios[0] and j[2] == "MULTI-LANE"]
            for row in ex.map(one, first):
                done(row)
            rest = [j for j in jobs if j not in first]
            rest.sort(key=lambda j: j[2] != "joint")  # the longest runs first
            for row in ex.map(one, rest):
                done(row)
        else:  # grouped by seed, so a worker reuses the seed's backbone (cached per process)
            for row in ex.map(one, jobs, chunksize=len(args.scenarios) * len(METHODS)):
                done(row)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=REPO).stdout.strip()
    commit = commit or os.environ.get("CLENV_COMMIT", "?")  # a copy without .git
    lines = ["# MLCIL evidence: MULTI-LANE against fine-tuning, ER-BCE and joint", "",
             f"Produced by `python benchmarks/mlcil_evidence.py --jobs {args.jobs}` at commit "
             f"{commit}, scenario overrides {json.dumps(extra) if extra else 'none'} "
             f"({len(jobs)} runs, {time.perf_counter() - t0:.0f} s on "
             f"{args.machine}, torch threads 1 per run). Mean ± std over {args.seeds} paired "
             f"seeds (scenario, data and learner seed = 0..{args.seeds - 1}); Δ = paired "
             "difference of the last mAP to ER-BCE with its 95% t-interval, in points. "
             "Threshold 0.8 on the sigmoid for CF1 / OF1; CF1 is MULTI-LANE's (mean per-class "
             "F1), CF1-PRS the harmonic mean of mean precision and mean recall.", ""]
    for s in args.scenarios:
        rs = [r for r in rows if r["scenario"] == s]
        by = {m: sorted((r for r in rs if r["method"] == m), key=lambda r: r["seed"])
              for m in METHODS}
        lines += [f"## {s}", "",
                  "| method | last mAP | avg mAP | CF1-PRS | CF1 | OF1 | mAP forgetting "
                  "| Δ last mAP vs ER-BCE [95% CI] | grad steps | trainable params | wall s |",
                  "|---|" + "---|" * 10]
        for m, runs in by.items():
            cells = " | ".join(mean_std([r[k] for r in runs]) for k in KEYS)
            diff = "—" if m == "ER-BCE" else paired_ci([r["map"] for r in runs],
                                                        [r["map"] for r in by["ER-BCE"]])
            lines.append(f"| {m} | {cells} | {diff} | "
                         f"{statistics.mean(r['grad_steps'] for r in runs):.0f} | "
                         f"{statistics.mean(r['trainable'] for r in runs):.0f} | "
                         f"{statistics.mean(r['wall'] for r in runs):.1f} |")
        gap = (statistics.mean(r["map"] for r in by["joint"])
               - statistics.mean(r["map"] for r in by["fine-tuning (BCE)"]))
        lines += ["", f"Calibration: joint − fine-tuning on last mAP = {100 * gap:.1f} points "
                  f"({'≥' if gap >= 0.25 else '<'} 25).", ""]
    text = "\n".join(lines) + "\n"
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
