"""Calibration probe for the MLCIL evidence (docs/evidence.md, rule 1): joint minus
fine-tuning on last mAP, seed 0, for candidate variants of the two MLCIL scenarios. Only the
two reference methods run, so the scenario is chosen without looking at MULTI-LANE or ER.

    python benchmarks/mlcil_calibrate.py [--jobs 2] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from mlcil_evidence import METHODS, REPO, SCENARIOS

# in order of preference (cost): the ready files as they are, then more epochs per task
# (fine-tuning drifts further, joint learns more), then ten one-class tasks instead of five
VARIANTS: dict[str, list[str]] = {
    "ready": [],
    "epochs10": ["scenario.epochs=10"],
    "c1": ["scenario.increment=1"],
    "c1-epochs10": ["scenario.increment=1", "scenario.epochs=10"],
}
REFERENCES = ("fine-tuning (BCE)", "joint")
PROBES = ("mlcil_canvas", "mlcil_digits")


def one(args: tuple[int, str, str, str, tuple[str, ...]]) -> tuple[str, str, str, float, float]:
    seed, scenario, variant, method, extra = args
    import torch

    from clenv.config.loader import load_config
    from clenv.runner import Run

    torch.set_num_threads(1)
    preset, sets = METHODS[method]
    cfg = load_config(REPO / "scenarios" / f"{scenario}.yaml", strategy=preset, seed=seed,
                      overrides=[*SCENARIOS[scenario], *VARIANTS[variant], *sets, *extra,
                                 f"scenario.seed={seed}", f"data.seed={seed}",
                                 "output.plots=false"])
    t = time.perf_counter()
    m = Run(cfg).execute(None)
    return scenario, variant, method, m["map"], time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scenarios", nargs="+", default=list(PROBES), choices=list(SCENARIOS))
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS))
    ap.add_argument("--choose", default=None,
                    help="write {scenario: overrides} of the first variant whose gap is >= 25 "
                         "points (else the widest gap) to this JSON file")
    ap.add_argument("--set", nargs="*", default=[], help="KEY=VALUE overrides for every run")
    args = ap.parse_args()
    jobs = [(args.seed, s, v, m, tuple(args.set)) for s in args.scenarios for v in args.variants
            for m in REFERENCES]
    got: dict[tuple[str, str, str], tuple[float, float]] = {}
    with ProcessPoolExecutor(args.jobs) as ex:
        for s, v, m, mp, w in ex.map(one, jobs):
            got[(s, v, m)] = (mp, w)
            print(f"{s} {v} {m}: last mAP {100 * mp:.1f} ({w:.0f} s)", flush=True)
    chosen: dict[str, list[str]] = {}
    print("| scenario | variant | joint | fine-tuning | gap | joint wall s |")
    print("|---|---|---|---|---|---|")
    for s in args.scenarios:
        for v in args.variants:
            j, f = got[(s, v, "joint")], got[(s, v, "fine-tuning (BCE)")]
            print(f"| {s} | {v} | {100 * j[0]:.1f} | {100 * f[0]:.1f} | "
                  f"{100 * (j[0] - f[0]):.1f} | {j[1]:.0f} |", flush=True)
        gaps = {v: got[(s, v, "joint")][0] - got[(s, v, "fine-tuning (BCE)")][0]
                for v in args.variants}
        ok = [v for v in args.variants if gaps[v] >= 0.25]
        pick = ok[0] if ok else max(gaps, key=gaps.get)
        chosen[s] = VARIANTS[pick]
        print(f"{s}: chosen variant {pick} (gap {100 * gaps[pick]:.1f})", flush=True)
    if args.choose:
        Path(args.choose).write_text(json.dumps(chosen, indent=1))


if __name__ == "__main__":
    main()
