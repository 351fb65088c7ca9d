"""metrics.json as a pure function of the event log (events.jsonl)."""

from __future__ import annotations

import json
import os

import numpy as np

from clenv.metrics.accuracy_matrix import (
    average_forgetting,
    avg_incremental_accuracy,
    bwt,
    final_accuracy,
    forgetting_chaudhry,
    fwt,
    intransigence,
)
from clenv.metrics.anytime import (
    a_auc,
    a_avg,
    a_last,
    accuracy_from_counts,
    min_acc,
    old_new_accuracy,
    online_accuracy,
    wc_acc,
)


def read_events(path: str | os.PathLike) -> list[dict]:
    """Records of an events.jsonl file; a trailing partial line (a killed run) is dropped."""
    events = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.endswith("\n"):
                break
            events.append(json.loads(line))
    return events


def _acc(counts: dict, key: str, classes) -> float:
    """Accuracy of ``classes`` from an eval's counts; 0.0 when they have no test sample."""
    value = accuracy_from_counts(counts[key], counts["total"], classes)
    return 0.0 if value is None else value


def _seen_acc(ev: dict) -> float | None:
    return accuracy_from_counts(ev["counts"]["agnostic"], ev["counts"]["total"], ev["seen"])


def summarize(events: list[dict]) -> dict:
    """Every metric of a run from its events (see docs/metrics.md for the definitions)."""
    start = next(e for e in events if e["type"] == "start")
    end = next((e for e in events if e["type"] == "end"), None)
    T = start["n_tasks"]
    classes = [np.asarray(c, dtype=np.int64) for c in start["task_classes"]]
    first = np.asarray(start["first_position"])
    task_starts, task_ends = start["task_starts"], start["task_ends"]
    evals = [e for e in events if e["type"] == "eval"]
    rows = sorted((e for e in evals if e["kind"] == "task_end"), key=lambda e: e["row"])
    init = next(e for e in evals if e["kind"] == "init")
    anytime = [e for e in evals if e["kind"] == "anytime"]
    complete = len(rows) == T and end is not None
    out: dict = {"name": start["name"], "complete": complete, "n_tasks": T,
                 "stream_length": start["stream_length"]}

    R = [[_acc(r["counts"], "agnostic", classes[j]) for j in range(T)] for r in rows]
    out["accuracy_matrix"] = R
    if rows and "aware" in rows[0]["counts"]:
        out["accuracy_matrix_task_aware"] = [
            [_acc(r["counts"], "aware", classes[j]) for j in range(T)] for r in rows]
    out["init_accuracy"] = [_acc(init["counts"], "agnostic", classes[j]) for j in range(T)]
    metrics: dict = dict.fromkeys(("final_accuracy", "avg_incremental_accuracy",
                                   "average_forgetting", "forgetting_chaudhry", "bwt", "fwt",
                                   "fwt_reason", "intransigence", "final_accuracy_task_aware"))
    if complete:
        metrics["final_accuracy"] = final_accuracy(R)
        metrics["avg_incremental_accuracy"] = avg_incremental_accuracy(R)
        metrics["average_forgetting"] = average_forgetting(R)
        metrics["forgetting_chaudhry"] = forgetting_chaudhry(R)
        metrics["bwt"] = bwt(R)
        b = [_acc(init["counts"], "fwt_base", classes[j]) for j in range(T)]
        usable = [j > 0 and bool((first[classes[j]] >= 0).any() and
                                 ((first[classes[j]] >= 0) &
                                  (first[classes[j]] < task_ends[j - 1])).any())
                  for j in range(T)]
        metrics["fwt"], metrics["fwt_reason"] = fwt(R, b, usable)
        out["fwt_baseline"] = b
        if "accuracy_matrix_task_aware" in out:
            metrics["final_accuracy_task_aware"] = final_accuracy(out["accuracy_matrix_task_aware"])
        ref = sorted((e for e in events if e["type"] == "reference"), key=lambda e: e["row"])
        if len(ref) == T:
            r_star = [_acc(ref[j]["counts"], "agnostic", classes[j]) for j in range(T)]
            out["reference_accuracy"] = r_star
            metrics["intransigence"] = intransigence(R, r_star)
    out.update(metrics)

    out["a_avg"] = a_avg([v for v in map(_seen_acc, rows) if v is not None])
    any_acc = [_seen_acc(e) for e in anytime]
    any_acc = [0.0 if v is None else v for v in any_acc]
    out["a_auc"] = a_auc(any_acc)
    out["a_last"] = a_last(any_acc)
    out["anytime"] = {"samples": [e["samples"] for e in anytime], "accuracy": any_acc}
    positions = [e["samples"] for e in anytime]
    task_acc = np.full((T, len(anytime)), np.nan)
    for n, e in enumerate(anytime):
        for j in range(T):
            v = accuracy_from_counts(e["counts"]["agnostic"], e["counts"]["total"], classes[j])
            if v is not None:
                task_acc[j, n] = v
    out["min_acc"] = min_acc(positions, task_acc, task_ends) if anytime else None
    out["wc_acc"] = (wc_acc(out["min_acc"], R[T - 1][T - 1], T)
                     if complete and (T == 1 or out["min_acc"] is not None) else None)

    old_new = []
    for r in rows:
        i = r["row"]
        seen = np.asarray(r["seen"], dtype=np.int64)
        old = seen[first[seen] < task_starts[i]]
        new = seen[first[seen] >= task_starts[i]]
        o, n = old_new_accuracy(r["counts"]["agnostic"], r["counts"]["total"], old, new)
        old_new.append({"row": i, "old": o, "new": n})
    out["old_new_accuracy"] = old_new
    out["old_class_accuracy"] = old_new[-1]["old"] if complete else None
    out["new_class_accuracy"] = old_new[-1]["new"] if complete else None

    last = end if end is not None else (evals[-1] if evals else start)
    online = last.get("online", {"correct": 0, "count": 0})
    out["online_accuracy"] = online_accuracy(online["correct"], online["count"])
    out["budget"] = last.get("budget", {})
    out["budget_limits"] = start.get("budget_limits", {})
    out["budget_exceeded"] = end.get("budget_exceeded", []) if end else []
    out["wall_time"] = end.get("wall", {}) if end else {}
    return out
