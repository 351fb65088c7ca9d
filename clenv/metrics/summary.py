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
from clenv.metrics.active_discovery import summarize_agcd
from clenv.metrics.anytime import (
    a_auc,
    a_avg,
    a_last,
    accuracy_from_counts,
    column_accuracies,
    min_acc,
    old_new_accuracy,
    online_accuracy,
    wc_acc,
)
from clenv.metrics.hierarchy import rate
from clenv.metrics.lifelong import (
    concept_final_accuracy,
    concept_forgetting,
    f_last,
    few_shot_summary,
    pair_backward_transfer,
    pair_forward_transfer,
)
from clenv.metrics.multilabel import (
    average_map,
    cf1,
    cf1_prs,
    map_forgetting,
    mean_average_precision,
    of1,
)
from clenv.metrics.regression import summarize_regression
from clenv.metrics.version import METRICS_VERSION

"""Version of metrics.json's names and conventions (absent in a file means 1). Version 2:
``f_last`` from task-end rows (the i-Blurry code's rule, anytime variant ``f_last_anytime``),
per-level ``a_auc`` with 0 before a level's first class (HLE), ``cf1`` = mean per-class F1
(MULTI-LANE) and ``cf1_prs`` = PRS's CF1."""


def read_events(path: str | os.PathLike) -> list[dict]:
    """Records of an events.jsonl file; a trailing partial line (a killed run) is dropped; a
    damaged line before it (broken JSON, NUL bytes, not an object) is a one-line UserError
    naming the file and the line number."""
    from clenv.errors import UserError

    events = []
    with open(path, "rb") as fh:
        for n, line in enumerate(fh, 1):
            if not line.endswith(b"\n"):
                break
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if not isinstance(record, dict):
                raise UserError(f"{path} line {n}: not a JSON record (damaged, e.g. by a disk "
                                "or a second writer); the results folder cannot be read: run "
                                "it again")
            events.append(record)
    return events


def is_anytime(ev: dict) -> bool:
    """True for an evaluation that serves as an anytime point: kind "anytime", or (events
    format 3) a task-end record whose ``kinds`` list also names "anytime"."""
    return ev["kind"] == "anytime" or "anytime" in ev.get("kinds", ())


def anytime_view(ev: dict) -> dict:
    """The record as an anytime evaluation sees it: a task-end record evaluated every test row,
    so its per-unit counts of units not yet seen are zeroed (an anytime evaluation scores only
    seen units' rows). Anytime records and multi-label records (seen rows only) pass as is."""
    counts = ev["counts"]
    if ev["kind"] == "anytime" or "total" not in counts:
        return ev
    U = len(counts["total"])
    seen = np.zeros(U, dtype=bool)
    seen[np.asarray(ev["seen"], dtype=np.int64)] = True
    masked = {k: (np.where(seen, v, 0).tolist() if isinstance(v, list) and len(v) == U else v)
              for k, v in counts.items()}
    return {**ev, "counts": masked}


def one_per_position(evals: list[dict]) -> list[dict]:
    """Anytime and task-end evaluations in stream order, one per position (the last one there:
    the task-end record, after any task hook). A format-2 log wrote a separate anytime row of
    the same model at a task end; that duplicate is dropped here."""
    timeline = sorted((e for e in evals if e["kind"] in ("anytime", "task_end")),
                      key=lambda e: (e["samples"], e["kind"] == "task_end"))
    return [e for n, e in enumerate(timeline)
            if n + 1 == len(timeline) or timeline[n + 1]["samples"] != e["samples"]]


def _acc(counts: dict, key: str, classes) -> float:
    """Accuracy of ``classes`` from an eval's counts; 0.0 when they have no test sample."""
    value = accuracy_from_counts(counts[key], counts["total"], classes)
    return 0.0 if value is None else value


def _row(counts: dict, key: str, columns: list[np.ndarray]) -> list[float]:
    """Accuracy of every column from an eval's counts; 0.0 where a column has no test
    sample (as ``_acc``)."""
    return [0.0 if v is None else v
            for v in column_accuracies(counts[key], counts["total"], columns)]


def _seen_acc(ev: dict) -> float | None:
    return accuracy_from_counts(ev["counts"]["agnostic"], ev["counts"]["total"], ev["seen"])


def _unit_acc(ev: dict) -> np.ndarray:
    """Per-unit accuracy of an evaluation; nan for units not yet seen or without test rows."""
    total = np.asarray(ev["counts"]["total"], dtype=float)
    acc = np.full(len(total), np.nan)
    seen = np.asarray(ev["seen"], dtype=np.int64)
    ok = seen[total[seen] > 0]
    acc[ok] = np.asarray(ev["counts"]["agnostic"], dtype=float)[ok] / total[ok]
    return acc


def summarize(events: list[dict]) -> dict:
    """Every metric of a run from its events (see docs/metrics.md for the definitions),
    dispatched on the family its start record names (logs before the family field: the
    multi-label flag)."""
    start = next(e for e in events if e["type"] == "start")
    family = start.get("family") or ("multi_label" if start.get("multi_label")
                                      else "single_label")
    return SUMMARIES.get(family, summarize_single_label)(events)


def summarize_single_label(events: list[dict]) -> dict:
    """The metrics of a single-label or hierarchical stream (per-level metrics when the start
    record has more than one level)."""
    start = next(e for e in events if e["type"] == "start")
    end = next((e for e in events if e["type"] == "end"), None)
    T = start["n_tasks"]
    columns = [np.asarray(c, dtype=np.int64) for c in start["columns"]]
    J = len(columns)
    first_row = start["first_row"]
    first = np.asarray(start["first_position"])
    unit_first = np.asarray(start["unit_first_position"])
    task_starts, task_ends = start["task_starts"], start["task_ends"]
    evals = [e for e in events if e["type"] == "eval"]
    rows = sorted((e for e in evals if e["kind"] == "task_end"), key=lambda e: e["row"])
    init = next(e for e in evals if e["kind"] == "init")
    anytime = [anytime_view(e) for e in evals if is_anytime(e)]
    complete = len(rows) == T and end is not None
    out: dict = {"name": start["name"], "metrics_version": METRICS_VERSION, "complete": complete,
                 "n_tasks": T, "stream_length": start["stream_length"],
                 "columns": start["column_names"]}

    R = [_row(r["counts"], "agnostic", columns) for r in rows]
    out["accuracy_matrix"] = R
    if rows and "aware" in rows[0]["counts"]:
        out["accuracy_matrix_task_aware"] = [
            _row(r["counts"], "aware", columns) for r in rows]
    out["init_accuracy"] = _row(init["counts"], "agnostic", columns)
    metrics: dict = dict.fromkeys(("final_accuracy", "avg_incremental_accuracy",
                                   "average_forgetting", "forgetting_chaudhry", "bwt", "fwt",
                                   "fwt_reason", "intransigence", "final_accuracy_task_aware"))
    if complete and start["square"]:
        metrics["final_accuracy"] = final_accuracy(R)
        metrics["avg_incremental_accuracy"] = avg_incremental_accuracy(R)
        metrics["average_forgetting"] = average_forgetting(R)
        metrics["forgetting_chaudhry"] = forgetting_chaudhry(R)
        metrics["bwt"] = bwt(R)
        if "fwt_base" in init["counts"]:
            b = _row(init["counts"], "fwt_base", columns[:T])
            usable = [j > 0 and bool(((first[columns[j]] >= 0) &
                                      (first[columns[j]] < task_ends[j - 1])).any())
                      for j in range(T)]
            metrics["fwt"], metrics["fwt_reason"] = fwt(R, b, usable)
            out["fwt_baseline"] = b
        else:
            metrics["fwt_reason"] = ("hierarchical stream: every task introduces classes new "
                                     "at their level, so no output is usable before its task")
        if "accuracy_matrix_task_aware" in out:
            metrics["final_accuracy_task_aware"] = final_accuracy(out["accuracy_matrix_task_aware"])
        ref = sorted((e for e in events if e["type"] == "reference"), key=lambda e: e["row"])
        if len(ref) == T:
            r_star = [_acc(ref[j]["counts"], "agnostic", columns[j]) for j in range(T)]
            out["reference_accuracy"] = r_star
            metrics["intransigence"] = intransigence(R, r_star)
    elif complete:  # lifelong: rows at segment ends, columns are concepts
        metrics["final_accuracy"] = concept_final_accuracy(R, first_row)
        metrics["average_forgetting"] = concept_forgetting(R, first_row)
        trained = [[R[i][j] for j in range(J) if first_row[j] is not None and first_row[j] <= i]
                   for i in range(T)]
        metrics["avg_incremental_accuracy"] = float(np.mean([np.mean(t) for t in trained if t]))
        metrics["fwt_reason"] = ("lifelong stream: forward transfer is measured per related "
                                 "pair (transfer)")
        if "accuracy_matrix_task_aware" in out:
            metrics["final_accuracy_task_aware"] = concept_final_accuracy(
                out["accuracy_matrix_task_aware"], first_row)
    out.update(metrics)

    out["a_avg"] = a_avg([v for v in map(_seen_acc, rows) if v is not None])
    any_acc = [_seen_acc(e) for e in anytime]
    any_acc = [0.0 if v is None else v for v in any_acc]
    out["a_auc"] = a_auc(any_acc)
    out["a_last"] = a_last(any_acc)
    out["anytime"] = {"samples": [e["samples"] for e in anytime], "accuracy": any_acc}
    positions = [e["samples"] for e in anytime]
    task_acc = np.full((J, len(anytime)), np.nan)
    for n, e in enumerate(anytime):
        accs = column_accuracies(e["counts"]["agnostic"], e["counts"]["total"], columns)
        task_acc[:, n] = [np.nan if v is None else v for v in accs]
    out["min_acc"] = None
    out["wc_acc"] = None
    if start["square"] and anytime:
        out["min_acc"] = min_acc(positions, task_acc, task_ends)
        if complete and (T == 1 or out["min_acc"] is not None):
            out["wc_acc"] = wc_acc(out["min_acc"], R[T - 1][T - 1], T)
    timeline = one_per_position(evals)
    out["f_last"] = f_last(np.array([_unit_acc(e) for e in rows])) if rows else None
    out["f_last_anytime"] = (f_last(np.array([_unit_acc(e) for e in timeline])) if timeline
                             else None)

    old_new = []
    for r in rows:
        i = r["row"]
        seen = np.asarray(r["seen"], dtype=np.int64)
        old = seen[unit_first[seen] < task_starts[i]]
        new = seen[unit_first[seen] >= task_starts[i]]
        o, n = old_new_accuracy(r["counts"]["agnostic"], r["counts"]["total"], old, new)
        old_new.append({"row": i, "old": o, "new": n})
    out["old_new_accuracy"] = old_new
    out["old_class_accuracy"] = old_new[-1]["old"] if complete else None
    out["new_class_accuracy"] = old_new[-1]["new"] if complete else None
    out.update(_lifelong(start, evals, events, R, columns) if start.get("lifelong") else {})
    if start.get("generator") == "plasticity":  # long streams (clenv.metrics.plasticity)
        from clenv.metrics.plasticity import plasticity_summary

        out["plasticity"] = plasticity_summary(events)
    if start.get("levels", 1) > 1:
        out["levels"] = _per_level(start, evals, rows, timeline, anytime)

    last = end if end is not None else (evals[-1] if evals else start)
    online = last.get("online", {"correct": 0, "count": 0})
    out["online_accuracy"] = online_accuracy(online["correct"], online["count"])
    out["budget"] = last.get("budget", {})
    out["budget_limits"] = start.get("budget_limits", {})
    out["budget_exceeded"] = end.get("budget_exceeded", []) if end else []
    out["wall_time"] = end.get("wall", {}) if end else {}
    return out


def _per_level(start: dict, evals: list[dict], rows: list[dict], timeline: list[dict],
               anytime: list[dict]) -> list[dict]:
    """Per label level (HLE): A_auc, A_last, F_last and final accuracy on seen classes, the
    coarse accuracy that also credits the parent of the finer prediction, the coarse-head-only
    accuracy and the hierarchy-consistency rate. As in the HLE code (``er_baseline.py``,
    ``get_avg_res``), a level's accuracy is 0 at evaluations before any of its classes has
    appeared and A_auc averages every evaluation; ``a_auc_after_appearance`` drops those
    points instead."""
    out = []
    sizes, offsets = start["level_sizes"], start["level_offsets"]
    for lv, (size, off) in enumerate(zip(sizes, offsets, strict=True)):
        units = np.arange(off, off + size)

        def seen_rate(e: dict, key: str, units=units) -> float | None:
            seen = np.intersect1d(np.asarray(e["seen"], dtype=np.int64), units)
            return rate(e["counts"][key], e["counts"]["total"], seen) if len(seen) else None

        measured = [seen_rate(e, "agnostic") for e in anytime]
        acc = [0.0 if v is None else v for v in measured]
        sup = [0.0 if v is None else v for v in (seen_rate(e, "sup") for e in anytime)]
        con = [v for v in (seen_rate(e, "consistent") for e in anytime) if v is not None]
        row_acc = np.array([_unit_acc(e)[units] for e in rows]) if rows else None
        any_acc = np.array([_unit_acc(e)[units] for e in timeline]) if timeline else None
        last = rows[-1] if rows else None
        rec = {"level": lv, "classes": size, "a_auc": a_auc(acc), "a_last": a_last(acc),
               "a_auc_after_appearance": a_auc([v for v in measured if v is not None]),
               "f_last": f_last(row_acc) if row_acc is not None else None,
               "f_last_anytime": f_last(any_acc) if any_acc is not None else None,
               "final_accuracy": seen_rate(last, "agnostic") if last else None}
        if lv < len(sizes) - 1:
            rec.update({"a_auc_with_finer": a_auc(sup), "a_last_with_finer": a_last(sup),
                        "final_accuracy_with_finer": seen_rate(last, "sup") if last else None,
                        "consistency_last": a_last(con), "consistency_mean": a_auc(con)})
        out.append(rec)
    return out


def _lifelong(start: dict, evals: list[dict], events: list[dict], R: list[list[float]],
              columns: list[np.ndarray]) -> dict:
    """Related-pair transfer and few-shot metrics of a lifelong stream."""
    meta = start["lifelong"]
    names = start["column_names"]
    probes = [e for e in evals if e["kind"] == "probe"]
    out: dict = {"transfer": [], "forward_transfer": None, "backward_transfer": None,
                 "few_shot": [], "few_shot_accuracy": None}
    scratch = {e["pair"]: e for e in events if e["type"] == "scratch"}
    for i, pair in enumerate(meta.get("related", [])):
        a, b, seg = pair["a"], pair["b"], pair["segment"]
        probe = next((e for e in probes if e.get("probe") == "transfer" and e["pair"] == i),
                     None)
        rec = {"a": names[a], "b": names[b], "relation": pair["relation"], "k": None,
               "learner_after_k": None, "scratch_after_k": None, "forward": None,
               "backward": None}
        if probe is not None and i in scratch:
            rec["k"] = scratch[i]["samples"]
            learner = accuracy_from_counts(probe["counts"]["agnostic"],
                                           probe["counts"]["total"], columns[b])
            copy = accuracy_from_counts(scratch[i]["counts"]["agnostic"],
                                        scratch[i]["counts"]["total"], columns[b])
            if learner is not None and copy is not None:
                rec.update(learner_after_k=learner, scratch_after_k=copy,
                           forward=pair_forward_transfer(learner, copy))
        if len(R) > seg >= 1:
            rec["backward"] = pair_backward_transfer(R[seg - 1][a], R[seg][a])
        out["transfer"].append(rec)
    fw = [t["forward"] for t in out["transfer"] if t["forward"] is not None]
    bw = [t["backward"] for t in out["transfer"] if t["backward"] is not None]
    out["forward_transfer"] = float(np.mean(fw)) if fw else None
    out["backward_transfer"] = float(np.mean(bw)) if bw else None
    for fs in meta.get("few_shot", []):
        j = fs["column"]
        curve_ev = sorted((e for e in probes if e.get("probe") == "few_shot"
                           and e["column"] == j and e["segment"] == fs["segment"]),
                          key=lambda e: e["pass"])
        curve = [_acc(e["counts"], "agnostic", columns[j]) for e in curve_ev]
        summary = few_shot_summary(curve) if curve else None
        out["few_shot"].append({"column": names[j], "segment": fs["segment"],
                                "shots": fs["shots"], "curve": curve, **(summary or {})})
    after = [f["after_k"] for f in out["few_shot"] if "after_k" in f]
    out["few_shot_accuracy"] = float(np.mean(after)) if after else None
    return out


def _ap(ev: dict) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in ev["counts"]["ap"]], dtype=float)


def _seen_map(ev: dict) -> float | None:
    return mean_average_precision(_ap(ev), np.asarray(ev["seen"], dtype=np.int64))


def summarize_multilabel(events: list[dict]) -> dict:
    """Multi-label runs (MLCIL): mAP over seen classes with a positive, average and last mAP,
    the per-task mAP matrix and its forgetting, CF1 (MULTI-LANE) / CF1-PRS / OF1 at the
    threshold."""
    start = next(e for e in events if e["type"] == "start")
    end = next((e for e in events if e["type"] == "end"), None)
    T = start["n_tasks"]
    columns = [np.asarray(c, dtype=np.int64) for c in start["columns"]]
    evals = [e for e in events if e["type"] == "eval"]
    rows = sorted((e for e in evals if e["kind"] == "task_end"), key=lambda e: e["row"])
    anytime = [e for e in evals if is_anytime(e)]
    complete = len(rows) == T and end is not None
    M = [[(mean_average_precision(_ap(r), columns[j]) or 0.0) for j in range(T)] for r in rows]
    maps = [v for v in map(_seen_map, rows) if v is not None]
    out: dict = {"name": start["name"], "metrics_version": METRICS_VERSION,
                 "complete": complete, "n_tasks": T,
                 "stream_length": start["stream_length"], "columns": start["column_names"],
                 "multi_label": True, "threshold": start.get("threshold"),
                 "accuracy_matrix": M, "map_matrix": M, "map_per_task_end": maps,
                 "map": maps[-1] if complete and maps else None,
                 "average_map": average_map(maps) if complete and maps else None,
                 "map_forgetting": map_forgetting(M) if complete else None}
    out["last_map"] = out["map"]
    for key in ("cf1", "cf1_prs", "of1"):
        out[key] = None
    if complete and rows:
        last = rows[-1]["counts"]
        seen = np.asarray(rows[-1]["seen"], dtype=np.int64)
        tp, fp, fn = (np.asarray(last[k]) for k in ("tp", "fp", "fn"))
        out["cf1"] = cf1(tp, fp, fn, seen)
        out["cf1_prs"] = cf1_prs(tp, fp, fn, seen)
        out["of1"] = of1(tp, fp, fn, seen)
    any_map = [v if v is not None else 0.0 for v in map(_seen_map, anytime)]
    out["a_auc"] = a_auc(any_map)
    out["a_last"] = a_last(any_map)
    out["anytime"] = {"samples": [e["samples"] for e in anytime], "map": any_map}
    last = end if end is not None else (evals[-1] if evals else start)
    online = last.get("online", {"correct": 0, "count": 0})
    out["online_f1"] = online_accuracy(online["correct"], online["count"])
    out["online_accuracy"] = out["online_f1"]
    out["budget"] = last.get("budget", {})
    out["budget_limits"] = start.get("budget_limits", {})
    out["budget_exceeded"] = end.get("budget_exceeded", []) if end else []
    out["wall_time"] = end.get("wall", {}) if end else {}
    return out


# the summary of each family whose metrics are not the single-label ones (one line per family)
SUMMARIES = {
    "multi_label": summarize_multilabel,
    "discovery": summarize_agcd,
    "regression": summarize_regression,
}
