"""CL-legal hyper-parameter selection over a sweep.

``select: {metric, on, k, among, goal}``: among the values of the ``among`` axes, pick, for
every combination of the other non-replicate axes, the one whose selection score, averaged
over replicates (seeds), is best. The score never looks at test data of the reported tasks:
- ``on: validation``: the metric computed from the validation split's accuracy matrix
  (``scenario.validation``: held out of the training pool per class, evaluated at every task
  end; metrics.json ``validation``);
- ``on: first_tasks``: the metric of the accuracy matrix restricted to the first k tasks (rows
  and columns < k: the learner as it stood after task k-1) — the protocol of Chaudhry et al.
  2019 (A-GEM, section 5: hyper-parameters are chosen on the first tasks' stream); the
  validation matrix is used when the runs hold one, else the test matrix of those k tasks.
Only the selected configuration's test metrics are then reported (clenv compare).
"""

from __future__ import annotations

import json
from pathlib import Path

from clenv.atomic import write_json_atomic
from clenv.metrics import accuracy_matrix as am
from clenv.sweep.index import load_metrics

SELECTION_NAME = "selection.json"
MATRIX_METRICS = {
    "final_accuracy": am.final_accuracy,
    "avg_incremental_accuracy": am.avg_incremental_accuracy,
    "average_forgetting": am.average_forgetting,
    "forgetting_chaudhry": am.forgetting_chaudhry,
    "bwt": am.bwt,
}


def selection_score(metrics: dict, select: dict) -> float | None:
    """The score of one run under ``select`` (None when it cannot be computed)."""
    name = select["metric"]
    val = metrics.get("validation") or {}
    if select["on"] == "validation":
        v = val.get(name)
        return float(v) if isinstance(v, (int, float)) else None
    R = val.get("accuracy_matrix") or metrics.get("accuracy_matrix")
    if not R or name not in MATRIX_METRICS:
        return None
    k = min(int(select["k"]), len(R))
    v = MATRIX_METRICS[name]([row[:k] for row in R[:k]])
    return None if v is None else float(v)


def _key(params: dict, axes: list[str]) -> str:
    return json.dumps({a: params[a] for a in axes}, sort_keys=True)


def select_runs(index: dict, metrics_of: dict[str, dict]) -> dict:
    """The selection of a sweep: per group of fixed axes, each candidate's mean score and the
    chosen values. ``metrics_of``: run id -> metrics of the complete runs."""
    sel = index["select"]
    among = sel["among"]
    fixed = [a for a in index["axes"] if a not in among and a not in index["replicates"]]
    groups: dict[str, dict] = {}
    for e in index["runs"]:
        g = groups.setdefault(_key(e["params"], fixed),
                              {"fixed": {a: e["params"][a] for a in fixed}, "candidates": {}})
        c = g["candidates"].setdefault(_key(e["params"], among), {
            "values": {a: e["params"][a] for a in among}, "scores": [], "runs": []})
        m = metrics_of.get(e["id"])
        score = selection_score(m, sel) if m is not None else None
        if score is not None:
            c["scores"].append(score)
            c["runs"].append(e["id"])
    out = []
    sign = 1.0 if sel["goal"] == "max" else -1.0
    for g in groups.values():
        cands = []
        for c in g["candidates"].values():
            n = len(c["scores"])
            cands.append({"values": c["values"], "n": n, "runs": c["runs"],
                          "score": sum(c["scores"]) / n if n else None})
        scored = [c for c in cands if c["score"] is not None]
        best = max(scored, key=lambda c: sign * c["score"]) if scored else None  # first on ties
        out.append({"fixed": g["fixed"], "candidates": cands,
                    "chosen": None if best is None else best["values"],
                    "chosen_runs": [] if best is None else best["runs"]})
    return {"select": sel, "groups": out}


def write_selection(out: Path, index: dict) -> dict:
    """Compute the selection of the sweep in ``out`` and write selection.json."""
    result = select_runs(index, load_metrics(out, index))
    write_json_atomic(Path(out) / SELECTION_NAME, result)
    return result
