"""Plasticity metrics (docs/plasticity.md): pure functions of the event log.

Plasticity on task t is the accuracy on task t right after training on it (Dohare et al.,
Nature 2024, "Loss of plasticity in deep continual learning": the per-task accuracy curve of
Online Permuted MNIST and Continual ImageNet): P_t = R[t][c(t)], with R the accuracy matrix
(rows at task ends) and c(t) the column of the concept task t trains (square streams:
c(t) = t; lifelong streams: the segment's concept).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["plasticity_curve", "plasticity_tenths", "plasticity_drop", "plasticity_from_events",
           "own_accuracy_curve", "plasticity_summary", "diagnostics_series"]


def plasticity_curve(R: Sequence[Sequence[float]], task_columns: Sequence[int]) -> list[float]:
    """P_t = R[t][task_columns[t]] for every row t of ``R``."""
    m = np.asarray(R, dtype=float)
    if m.ndim != 2 or len(task_columns) < len(m):
        raise ValueError(f"R must be T x J with a column per row, got shape {m.shape} and "
                         f"{len(task_columns)} columns")
    return [float(m[t, task_columns[t]]) for t in range(len(m))]


def plasticity_tenths(curve: Sequence[float], fraction: float = 0.1) -> tuple[float, float]:
    """(mean of the first tenth of P, mean of the last tenth), each tenth ceil(fraction * T)
    tasks; ValueError for an empty curve."""
    p = np.asarray(curve, dtype=float)
    if len(p) == 0:
        raise ValueError("plasticity_tenths of an empty curve")
    k = max(1, int(np.ceil(fraction * len(p))))
    return float(p[:k].mean()), float(p[-k:].mean())


def plasticity_drop(curve: Sequence[float], fraction: float = 0.1) -> float | None:
    """mean(first tenth of P) - mean(last tenth of P), each tenth ceil(fraction * T) tasks
    (issue 22's calibration criterion); None for an empty curve."""
    if len(curve) == 0:
        return None
    first, last = plasticity_tenths(curve, fraction)
    return first - last


def _acc(counts: dict, columns: np.ndarray) -> float:
    total = np.asarray(counts["total"], dtype=float)[columns].sum()
    return float(np.asarray(counts["agnostic"], dtype=float)[columns].sum() / total) \
        if total else 0.0


def plasticity_from_events(events: list[dict]) -> list[float]:
    """The plasticity curve of a single-label run from its events: for each task-end record
    (row t), the accuracy on the test samples of the concept task t trains."""
    start = next(e for e in events if e["type"] == "start")
    columns = [np.asarray(c, dtype=np.int64) for c in start["columns"]]
    segments = (start.get("lifelong") or {}).get("segments")
    rows = sorted((e for e in events if e["type"] == "eval" and e["kind"] == "task_end"),
                  key=lambda e: e["row"])
    out = []
    for r in rows:
        t = r["row"]
        col = segments[t]["columns"][0] if segments else t
        out.append(_acc(r["counts"], columns[col]))
    return out


def own_accuracy_curve(events: list[dict]) -> list[float]:
    """Per task-end record (row order), the training accuracy on the task's own samples with
    the labels it trained on (``own_accuracy``, written by the recorder on plasticity
    streams)."""
    rows = sorted((e for e in events if e["type"] == "eval" and e["kind"] == "task_end"
                   and "own_accuracy" in e), key=lambda e: e["row"])
    return [float(e["own_accuracy"]) for e in rows]


def plasticity_summary(events: list[dict]) -> dict:
    """The plasticity of a run on a plasticity stream: ``curve`` is P_t (random-label tasks:
    the own-sample training accuracy at the task's end; permuted tasks: the test accuracy on
    the task's concept at its end), ``train_curve`` the own-sample training accuracy, and
    ``drop`` = mean(first tenth of P) - mean(last tenth of P)."""
    start = next(e for e in events if e["type"] == "start")
    own = own_accuracy_curve(events)
    random_labels = (start.get("lifelong") or {}).get("tasks") == "random_labels"
    curve = own if random_labels else plasticity_from_events(events)
    return {"curve": curve, "train_curve": own, "drop": plasticity_drop(curve),
            "source": "own_accuracy" if random_labels else "test_accuracy"}


def diagnostics_series(events: list[dict]) -> dict[str, list]:
    """samples and each diagnostic over the eval records that carry diagnostics (stream
    order): {"samples": [...], "dead_fraction": [...], ...}; empty lists when none do."""
    keys = ("dead_fraction", "effective_rank", "weight_magnitude", "grad_norm")
    evals = sorted((e for e in events if e["type"] == "eval" and "diagnostics" in e),
                   key=lambda e: e["samples"])
    out: dict[str, list] = {"samples": [e["samples"] for e in evals]}
    for k in keys:
        out[k] = [e["diagnostics"].get(k) for e in evals]
    return out
