"""Statistics shared by the evidence scripts (docs/evidence.md): mean ± std over seeds and
the paired difference to a baseline with its 95% t-interval, both in points. They live in the
package (clenv.sweep.stats, also used by `clenv compare` on sweep folders); these are the
formatted forms the scripts print."""

from __future__ import annotations

import statistics

from clenv.sweep.stats import format_mean_std, format_paired


def mean_std(xs: list[float]) -> str:
    return format_mean_std(xs)


def paired_ci(a: list[float], b: list[float]) -> str:
    """Mean paired difference a - b with its 95% t-interval, in points."""
    return format_paired(a, b)


def budget_cells(runs: list[dict]) -> str:
    """The equal-budget columns (docs/evidence.md, rule 4): mean gradient steps, samples
    processed and wall seconds over the runs."""
    return (f"{statistics.mean(r['grad_steps'] for r in runs):.0f} | "
            f"{statistics.mean(r['samples'] for r in runs):.0f} | "
            f"{statistics.mean(r['wall'] for r in runs):.2f}")


def calibration_line(upper: list[float], lower: list[float], upper_name: str = "joint",
                     lower_name: str = "naive", what: str = "final accuracy") -> str:
    """docs/evidence.md, rule 1: the upper minus the lower reference, which must reach 25 points."""
    hi, lo = statistics.mean(upper), statistics.mean(lower)
    gap = hi - lo
    return (f"Calibration: {upper_name} {100 * hi:.1f} − {lower_name} {100 * lo:.1f} = "
            f"{100 * gap:.1f} points of {what} ({'≥' if gap >= 0.25 else '<'} 25).")


def disjoint_mlp_config(name: str, data: dict, tasks: int, updates_per_sample: float | None,
                        strategy: dict, seed: int) -> dict:
    """A class-incremental run config shared by the plug-in evidence scripts: disjoint tasks,
    batch 10, an MLP with one hidden layer of 128, memory 200, evaluation at task ends."""
    return {"name": name, "seed": seed, "threads": 1,
            "scenario": {"generator": "disjoint", "seed": seed, "n_tasks": tasks,
                         "batch_size": 10},
            "data": data, "strategy": strategy, "model": {"name": "mlp", "hidden": [128]},
            "budget": {"memory_size": 200, "updates_per_sample": updates_per_sample},
            "eval": {"every": 10**9}, "output": {"plots": False}}
