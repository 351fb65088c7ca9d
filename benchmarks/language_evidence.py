"""Evidence table for language-guided heads (LingoCL; docs/evidence.md): linear vs cosine vs
language head under naive and ER, on the semantic simulation (50 and 100 CIFAR-100 names, 10
tasks) and on scikit-learn digits (real data, 5 tasks), with the joint and naive references.

The cosine and language heads share everything but their class vectors: the same projection
g (features -> 384, the encoder's size), the same scale s (learnt from the same start), the same
model, memory size and updates per stream sample. Paired seeds: scenario.seed = learner seed =
s for s in 0..4. The encoder runs once per class name (the targets are cached on disk).

    python benchmarks/language_evidence.py [--seeds 5] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
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
SCALE = 30.0  # the heads' initial scale (--scale)
DATASETS: dict[str, tuple[dict, int, float | None]] = {  # name -> (data, tasks, updates
    # per stream sample: None = one step per batch of 10)
    "semantic (50 CIFAR-100 names, 10 superclasses)": (
        {"source": "semantic", "seed": 0, "superclasses": 10, "classes_per_superclass": 5,
         "dim": 32, "coarse_separation": 3.0, "fine_separation": 1.0, "noise": 1.0,
         "train_per_class": 40, "test_per_class": 20}, 10, None),
    "semantic (all 100 CIFAR-100 names, 20 superclasses)": (
        {"source": "semantic", "seed": 0, "superclasses": 20, "classes_per_superclass": 5,
         "dim": 32, "coarse_separation": 3.0, "fine_separation": 1.0, "noise": 1.0,
         "train_per_class": 30, "test_per_class": 20}, 10, None),
    "digits (real, sklearn 8x8; 3 steps per batch)": ({"source": "digits", "seed": 0}, 5, 0.3),
}


def methods(scale: float) -> dict[str, dict]:
    """Row name -> strategy section; cosine and language share the projection and scale."""
    heads = {"linear": None, "cosine": {"type": "cosine", "dim": 384, "scale": scale},
             "language": {"type": "language", "scale": scale}}
    return {
        **{f"naive + {h}": {"name": "naive", **({"head": v} if v else {})}
           for h, v in heads.items()},
        **{f"ER + {h}": {"name": "er", **({"head": v} if v else {})} for h, v in heads.items()},
        "joint (linear)": {"name": "joint", "epochs": 5},
    }


METHODS = methods(SCALE)
BASELINE = {"naive + language": "naive + cosine", "ER + language": "ER + cosine",
            "naive + cosine": "naive + linear", "ER + cosine": "ER + linear"}


def one(dataset: str, method: str, seed: int) -> dict:
    from clenv.config.loader import load_config
    from clenv.runner import Run

    data, tasks, ups = DATASETS[dataset]
    cfg = disjoint_mlp_config("language_evidence", data, tasks, ups, METHODS[method], seed)
    m = Run(load_config(cfg)).execute(None)
    return {"dataset": dataset, "method": method, "seed": seed,
            "final": m["final_accuracy"], "forgetting": m["average_forgetting"],
            "bwt": m["bwt"], "grad_steps": m["budget"]["grad_steps"],
            "samples": m["budget"]["samples_processed"], "wall": m["wall_time"]["total"]}


def table(rows: list[dict], dataset: str) -> list[str]:
    by = {m: sorted((r for r in rows if r["dataset"] == dataset and r["method"] == m),
                    key=lambda r: r["seed"]) for m in METHODS}
    out = ["| method | final accuracy | average forgetting | BWT | Δ final vs baseline "
           "[95% CI] | Δ forgetting vs baseline [95% CI] | grad steps | samples processed "
           "| wall s |", "|---|---|---|---|---|---|---|---|---|"]
    for m, runs in by.items():
        base = BASELINE.get(m)
        if base:
            d_final = f"{paired_ci([r['final'] for r in runs], [r['final'] for r in by[base]])}"
            d_forg = paired_ci([r["forgetting"] for r in runs],
                               [r["forgetting"] for r in by[base]])
            d_final, d_forg = f"{d_final} (vs {base})", f"{d_forg} (vs {base})"
        else:
            d_final = d_forg = "—"
        out.append(f"| {m} | {mean_std([r['final'] for r in runs])} | "
                   f"{mean_std([r['forgetting'] for r in runs])} | "
                   f"{mean_std([r['bwt'] for r in runs])} | {d_final} | {d_forg} | "
                   f"{budget_cells(runs)} |")
    out += ["", calibration_line([r["final"] for r in by["joint (linear)"]],
                                 [r["final"] for r in by["naive + linear"]])]
    return out


def target_geometry() -> list[str]:
    """How the frozen targets relate: mean cosine between the 100 CIFAR-100 name targets
    (all pairs, same superclass, different superclass), how often a name's nearest target is
    a sibling, and the mean cosine between the ten digit-name targets."""
    import numpy as np

    from clenv.data.cifar100_names import FINE_NAMES, coarse_of_fine, readable
    from clenv.data.digits import DIGIT_NAMES
    from clenv.language.config import DEFAULT_ENCODER, DEFAULT_TEMPLATE
    from clenv.text.targets import SemanticTargets

    targets = SemanticTargets(DEFAULT_ENCODER, DEFAULT_TEMPLATE)
    e = targets.encode([readable(n) for n in FINE_NAMES])
    c = np.asarray(coarse_of_fine())
    sim = e @ e.T
    off = ~np.eye(len(e), dtype=bool)
    sib = (c[:, None] == c[None, :]) & off
    nearest = np.where(off, sim, -np.inf).argmax(1)
    d = targets.encode(list(DIGIT_NAMES))
    d_sim = (d @ d.T)[~np.eye(len(d), dtype=bool)]
    return [f"Target geometry ({DEFAULT_ENCODER}, template {DEFAULT_TEMPLATE!r}): mean cosine "
            f"between CIFAR-100 name targets {sim[off].mean():.3f} (same superclass "
            f"{sim[sib].mean():.3f}, different superclass {sim[~sib & off].mean():.3f}); the "
            f"nearest target is a sibling for {100 * (c[nearest] == c).mean():.0f}% of names; "
            f"mean cosine between the ten digit-name targets {d_sim.mean():.3f}."]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--out", default=None, help="also write the tables to this file")
    ap.add_argument("--scale", type=float, default=SCALE, help="initial s of both cosine heads")
    args = ap.parse_args()
    METHODS.update(methods(args.scale))
    import torch

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as cache:
        os.environ["CLENV_CACHE"] = cache  # encode each name once, here, for this script
        rows = [one(d, m, s) for d in DATASETS for m in METHODS for s in range(args.seeds)]
        geometry = target_geometry()
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True,
                            text=True, cwd=REPO).stdout.strip()  # -dirty: uncommitted changes
    lines = [f"Produced by `python benchmarks/language_evidence.py` at commit {commit} "
             f"({len(rows)} runs, {time.perf_counter() - t0:.0f} s on one core of a 2-core "
             f"Xeon VM, torch threads 1). Mean ± std over {args.seeds} paired seeds "
             f"(scenario seed = learner seed = 0..{args.seeds - 1}); Δ is the paired "
             f"difference with its 95% t-interval, in accuracy points. Heads: s = {args.scale:g} "
             "(learnt), projection 128 -> 384 for cosine and language.", ""]
    for d in DATASETS:
        lines += [f"### {d}", "", *table(rows, d), ""]
    lines += geometry
    text = "\n".join(lines)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
