"""AGCD metrics as pure functions of the event log: clustering accuracy All / Old / New per
round (transductive on the unlabelled candidates, inductive on the held-out test split) and the
query diagnostics of Ma et al. 2024 (ActiveGCD utils_al/novelty_metrics.py)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from clenv.metrics.clustering import cluster_accuracy
from clenv.metrics.version import METRICS_VERSION


def novel_coverage(queried: ArrayLike, new_classes: ArrayLike) -> float | None:
    """#{distinct new classes among the queried labels} / |new classes| (None: no new class)."""
    new = np.unique(np.asarray(new_classes, dtype=np.int64))
    if not len(new):
        return None
    return float(np.isin(new, np.asarray(queried, dtype=np.int64)).sum() / len(new))


def novel_ratio(queried: ArrayLike, new_classes: ArrayLike) -> float | None:
    """Share of queried labels that belong to new classes (None: nothing queried)."""
    q = np.asarray(queried, dtype=np.int64)
    return None if not len(q) else float(np.isin(q, new_classes).mean())


def novel_entropy(queried: ArrayLike, new_classes: ArrayLike) -> float | None:
    """Entropy (nats) of the histogram of queried new-class labels, -sum_c f_c ln f_c; its
    maximum, ln |new classes|, means every new class was queried equally often (None: no
    new-class query)."""
    q = np.asarray(queried, dtype=np.int64)
    q = q[np.isin(q, new_classes)]
    if not len(q):
        return None
    f = np.unique(q, return_counts=True)[1] / len(q)
    return float(-(f * np.log(f)).sum())


def _accuracy(contingency: list, old: list) -> dict:
    return cluster_accuracy(np.asarray(contingency, dtype=np.int64), old)


def summarize_agcd(records: list[dict]) -> dict:
    """metrics.json of an AGCD run from its records (start, eval, query, end)."""
    start = next(e for e in records if e["type"] == "start")
    end = next((e for e in records if e["type"] == "end"), None)
    old, new = start["old_classes"], start["new_classes"]
    queries = {e["round"]: e for e in records if e["type"] == "query"}
    rounds = []
    asked: list[int] = []
    for e in sorted((e for e in records if e["type"] == "eval"), key=lambda e: e["round"]):
        q = queries.get(e["round"])
        if q is not None:
            asked += q["labels"]
        rounds.append({
            "round": e["round"],
            "transductive": _accuracy(e["transductive"], old),
            "inductive": _accuracy(e["inductive"], old),
            "labels_bought": len(asked),
            "novel_coverage": novel_coverage(asked, new),
            "novel_ratio": novel_ratio(asked, new),
            "novel_entropy": novel_entropy(asked, new),
            "round_novel_ratio": None if q is None else novel_ratio(q["labels"], new),
            "grad_steps": e["budget"].get("grad_steps", 0),
            "samples_processed": e["budget"].get("samples_processed", 0),
            "wall": e["wall"],
        })
    last = rounds[-1] if rounds else None
    budget = (end or {}).get("budget", last and {"grad_steps": last["grad_steps"]}) or {}
    per_round = start["budget"]
    over = [f"round {r}: {len(q['labels'])} labels > budget {per_round}"
            for r, q in sorted(queries.items()) if len(q["labels"]) > per_round]
    out = {
        "name": start["name"], "metrics_version": METRICS_VERSION, "generator": "agcd",
        "strategy": start["strategy"],
        "learner": start["learner"], "query": start["query"],
        "complete": end is not None and len(rounds) == start["rounds"] + 1,
        "rounds": start["rounds"], "budget_per_round": per_round,
        "old_classes": old, "new_classes": new,
        "novel_entropy_max": float(np.log(len(new))) if new else None,
        "per_round": rounds,
    }
    for split in ("inductive", "transductive"):
        suffix = "" if split == "inductive" else "_transductive"
        for part in ("all", "old", "new"):
            out[f"gcd_{part}{suffix}"] = last[split][part] if last else None
    for k in ("novel_coverage", "novel_ratio", "novel_entropy"):
        out[k] = last[k] if last else None
    out["budget"] = budget
    out["budget_exceeded"] = over
    out["wall_time"] = (end or {}).get("wall", {})
    return out
