"""Continual-regression metrics: pure functions of the squared-error counts in the event log.

M[i][j] is the mean squared error on task j's test set after training through task i (the
regression analogue of the accuracy matrix R; lower is better). Forgetting and backward
transfer follow their accuracy definitions with the error in place of the accuracy and the
sign chosen so that the reading stays the same: forgetting > 0 means the learner forgot,
BWT < 0 means learning later tasks hurt earlier ones.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from clenv.metrics.version import METRICS_VERSION


def mse_from_counts(sse: ArrayLike, count: ArrayLike, units: ArrayLike) -> float | None:
    """MSE over the test rows of ``units``: sum_u sse[u] / sum_u count[u]; None without rows."""
    units = np.asarray(units, dtype=np.int64)
    n = float(np.asarray(count, dtype=float)[units].sum())
    return float(np.asarray(sse, dtype=float)[units].sum()) / n if n else None


def final_mse(M: ArrayLike) -> float:
    """Mean MSE over all tasks after the last task: (1/T) sum_j M[T-1][j] (the analogue of
    final average accuracy, Lopez-Paz & Ranzato, "Gradient Episodic Memory", NeurIPS 2017)."""
    M = np.asarray(M, dtype=float)
    return float(M[-1].mean())


def mse_forgetting(M: ArrayLike) -> float | None:
    """Average MSE forgetting: final error minus the best (lowest) earlier error, per task::

        F = (1 / (T-1)) * sum_{j=0}^{T-2} ( M[T-1][j] - min_{j <= l <= T-2} M[l][j] )

    Positive: the learner forgot. The error analogue of Chaudhry et al.'s forgetting
    ("Riemannian Walk", ECCV 2018), where max accuracy becomes min error and the difference
    turns round. None when T < 2 (nothing can be forgotten).
    """
    M = np.asarray(M, dtype=float)
    T = len(M)
    if T < 2:
        return None
    return float(np.mean([M[T - 1, j] - M[j:T - 1, j].min() for j in range(T - 1)]))


def mse_bwt(M: ArrayLike) -> float | None:
    """Backward transfer in error::

        BWT = (1 / (T-1)) * sum_{j=0}^{T-2} ( M[j][j] - M[T-1][j] )

    Lopez-Paz & Ranzato's BWT (NeurIPS 2017) with the error in place of the accuracy and the
    difference turned round, so that, as there, negative means later tasks hurt earlier ones.
    None when T < 2.
    """
    M = np.asarray(M, dtype=float)
    T = len(M)
    if T < 2:
        return None
    return float(np.mean([M[j, j] - M[T - 1, j] for j in range(T - 1)]))


def column_mse(ev: dict, columns: list) -> list[float | None]:
    """Per column, the MSE an eval record counts (None: no test row counted); the curves of
    the regression figures."""
    return [mse_from_counts(ev["counts"]["sse"], ev["counts"]["count"], c) for c in columns]


def summarize_regression(events: list[dict]) -> dict:
    """metrics.json of a continual-regression run: the MSE matrix (rows: task ends), the MSE
    before training, final MSE, MSE forgetting, MSE BWT, MSE on the seen tasks at every
    anytime evaluation, and the online MSE of first exposures."""
    start = next(e for e in events if e["type"] == "start")
    end = next((e for e in events if e["type"] == "end"), None)
    T = start["n_tasks"]
    columns = start["columns"]
    evals = [e for e in events if e["type"] == "eval"]
    rows = sorted((e for e in evals if e["kind"] == "task_end"), key=lambda e: e["row"])
    init = next(e for e in evals if e["kind"] == "init")
    complete = len(rows) == T and end is not None
    M = [column_mse(r, columns) for r in rows]  # None: a column without test rows
    square = complete and start["square"] and all(v is not None for r in M for v in r)
    anytime = [e for e in evals if e["kind"] == "anytime" or "anytime" in e.get("kinds", ())]
    seen_mse = [mse_from_counts(e["counts"]["sse"], e["counts"]["count"], e["seen"])
                for e in anytime]
    last = end if end is not None else (evals[-1] if evals else start)
    online = last.get("online", {"correct": 0.0, "count": 0})
    return {
        "name": start["name"], "metrics_version": METRICS_VERSION, "complete": complete,
        "family": "regression", "n_tasks": T, "stream_length": start["stream_length"],
        "columns": start["column_names"], "mse_matrix": M,
        "init_mse": column_mse(init, columns),
        "final_mse": final_mse(M) if square else None,
        "mse_forgetting": mse_forgetting(M) if square else None,
        "mse_bwt": mse_bwt(M) if square else None,
        "anytime": {"samples": [e["samples"] for e in anytime], "mse": seen_mse},
        "online_mse": online["correct"] / online["count"] if online["count"] else None,
        "budget": last.get("budget", {}), "budget_limits": start.get("budget_limits", {}),
        "budget_exceeded": end.get("budget_exceeded", []) if end else [],
        "wall_time": end.get("wall", {}) if end else {},
    }
