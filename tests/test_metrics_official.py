"""Conformance with the official code's conventions (issue: metrics as the official code
computes them). Each expected value is worked by hand from the official definition on a small
event log written here, never replayed from clenv's own code:

- F_last: naver-ai/i-Blurry ``main.py`` (end of ``main``): task-end rows only, classes whose best
  earlier task-end accuracy is > 0, mean of (that best - the last task-end accuracy);
- per-level A_auc: Hyun1A/HLE ``methods/er_baseline.py`` (``get_avg_res``): a level's accuracy is
  0 at evaluations before any of its classes appeared, and A_auc averages every evaluation;
- events format 3: one record per position (a task end at an anytime point serves both), and
  format-2 logs (a duplicate anytime row at task ends) still read the same.
"""

from __future__ import annotations

import json

import pytest

from clenv.metrics.summary import METRICS_VERSION, summarize

# ---------------------------------------------------------------- a flat hand-worked log
# 4 classes, 3 tasks: task 0 = classes {0, 1}, task 1 = {2}, task 2 = {3}; 10 test samples per
# class; the stream has 30 samples, task ends at 10, 20, 30; anytime evaluations every 5
# samples are given at 5 and 15 (between task ends) and at every task end.
# Correct counts (out of 10) per class at each evaluation ("-": not seen yet):
#                 c0   c1   c2   c3
#   anytime  5     3    2    -    -
#   task end 10    8    5    -    -     (row 0)
#   anytime  15   10    9    2    -
#   task end 20    6    7    9    -     (row 1)
#   task end 30    4    9    3    6     (row 2, the stream end)
COLUMNS = [[0, 1], [2], [3]]
SEEN = {5: [0, 1], 10: [0, 1], 15: [0, 1, 2], 20: [0, 1, 2], 30: [0, 1, 2, 3]}
CORRECT = {5: [3, 2, 0, 0], 10: [8, 5, 0, 0], 15: [10, 9, 2, 0], 20: [6, 7, 9, 0],
           30: [4, 9, 3, 6]}
ROW_AT = {10: 0, 20: 1, 30: 2}


def _start(fmt: int) -> dict:
    return {"type": "start", "format": fmt, "name": "hand", "n_tasks": 3, "columns": COLUMNS,
            "column_names": ["t0", "t1", "t2"], "first_row": [0, 1, 2], "square": True,
            "task_starts": [0, 10, 20], "task_ends": [10, 20, 30],
            "unit_first_position": [0, 0, 10, 20], "first_position": [0, 0, 10, 20],
            "stream_length": 30, "levels": 1}


def _eval(kind: str, pos: int, **extra) -> dict:
    seen = SEEN.get(pos, [])
    if kind == "anytime":  # an anytime evaluation scores the seen classes' rows only
        total = [10 if c in seen else 0 for c in range(4)]
    else:  # init and task end: every test row
        total = [10] * 4
    correct = CORRECT.get(pos, [0] * 4)
    counts = {"total": total, "agnostic": correct}
    if kind != "anytime":
        counts["aware"] = correct
    return {"type": "eval", "kind": kind, "samples": pos, "task": 0, "seen": seen,
            "counts": counts, "online": {"correct": 0, "count": 0}, **extra}


def flat_log(fmt: int) -> list[dict]:
    """The table above as events format 3 (one record per position) or format 2 (a task end
    at an anytime point also has its own anytime row, same model)."""
    ev = [_start(fmt), _eval("init", 0)]
    for pos in (5, 10, 15, 20, 30):
        if pos not in ROW_AT:
            ev.append(_eval("anytime", pos))
        elif fmt == 3:
            ev.append(_eval("task_end", pos, row=ROW_AT[pos], kinds=["task_end", "anytime"]))
        else:
            ev.append(_eval("task_end", pos, row=ROW_AT[pos]))
            ev.append(_eval("anytime", pos))
    ev.append({"type": "end", "samples": 30, "online": {"correct": 0, "count": 0},
               "budget": {}, "budget_exceeded": [], "wall": {}})
    return ev


# F_last, the i-Blurry code's rule, over the task-end rows (10, 20, 30) only:
#   c0: max(0.8, 0.6) = 0.8 > 0  -> 0.8 - 0.4 =  0.4
#   c1: max(0.5, 0.7) = 0.7 > 0  -> 0.7 - 0.9 = -0.2   (improves at the end: negative)
#   c2: max(0.0, 0.9) = 0.9 > 0  -> 0.9 - 0.3 =  0.6   (unseen at row 0 counts as 0)
#   c3: max(0.0, 0.0) = 0        -> excluded
#   F_last = (0.4 - 0.2 + 0.6) / 3 = 0.8 / 3
F_LAST = 0.8 / 3
# The anytime variant, every evaluation in stream order, one per position (5, 10, 15, 20, 30):
#   c0: max(0.3, 0.8, 1.0, 0.6) - 0.4 = 0.6;  c1: max(0.2, 0.5, 0.9, 0.7) - 0.9 = 0.0
#   c2: max(0.2, 0.9) - 0.3 = 0.6;            c3: measured only at the last -> excluded
F_LAST_ANYTIME = 1.2 / 3
# A_auc: seen-class accuracy at 5, 10, 15, 20, 30:
#   5/20 = 0.25, 13/20 = 0.65, 21/30 = 0.7, 22/30, 22/40 = 0.55
A_AUC = (0.25 + 0.65 + 0.7 + 22 / 30 + 0.55) / 5


def test_f_last_is_the_iblurry_code_rule_on_a_format3_log():
    m = summarize(flat_log(3))
    assert m["f_last"] == pytest.approx(F_LAST)
    assert m["f_last_anytime"] == pytest.approx(F_LAST_ANYTIME)
    assert m["metrics_version"] == METRICS_VERSION == 2


def test_format3_task_end_records_serve_as_anytime_points():
    m = summarize(flat_log(3))
    assert m["anytime"]["samples"] == [5, 10, 15, 20, 30]
    assert m["a_auc"] == pytest.approx(A_AUC)
    assert m["a_last"] == pytest.approx(0.55)
    # min_acc (De Lange et al.): task 0 after its end (positions 15, 20, 30): min(19/20, 13/20,
    # 13/20) = 0.65; task 1 after its end (30): 0.3 -> (0.65 + 0.3) / 2
    assert m["min_acc"] == pytest.approx((0.65 + 0.3) / 2)


def test_format2_logs_read_the_same():
    """A format-2 log evaluated the same model twice at each task end (a task-end row and an
    anytime row); the duplicate is one anytime point and is ignored by F_last."""
    m2, m3 = summarize(flat_log(2)), summarize(flat_log(3))
    for key in ("f_last", "f_last_anytime", "a_auc", "a_last", "min_acc", "final_accuracy"):
        assert m2[key] == pytest.approx(m3[key]), key
    assert m2["f_last"] == pytest.approx(F_LAST)


# ---------------------------------------------------------------- a hierarchical log (HLE)
# Two levels: coarse units 0-1 (offset 0), fine units 2-5 (offset 2). Dual-label order: the
# coarse task (samples 0-20) then the fine task (20-40); every level's test set has 10 samples
# per class. Anytime evaluations at 10, 20, 30, 40 (20 and 40 are task ends).
# Correct counts (out of 10) per unit at each evaluation ("-": not seen):
#                 u0  u1 | u2  u3  u4  u5
#   10             6   - |  -   -   -   -
#   20 (row 0)     7   8 |  -   -   -   -
#   30             5   6 |  4   6   -   -
#   40 (row 1)     4   4 |  8   5   7   8
H_SEEN = {10: [0], 20: [0, 1], 30: [0, 1, 2, 3], 40: [0, 1, 2, 3, 4, 5]}
H_CORRECT = {10: [6, 0, 0, 0, 0, 0], 20: [7, 8, 0, 0, 0, 0], 30: [5, 6, 4, 6, 0, 0],
             40: [4, 4, 8, 5, 7, 8]}


def hier_log() -> list[dict]:
    start = {"type": "start", "format": 3, "name": "hle", "n_tasks": 2,
             "columns": [[0, 1], [2, 3, 4, 5]], "column_names": ["coarse", "fine"],
             "first_row": [0, 1], "square": True, "task_starts": [0, 20], "task_ends": [20, 40],
             "unit_first_position": [0, 10, 20, 20, 30, 30],
             "first_position": [0, 10, 20, 20, 30, 30], "stream_length": 40,
             "levels": 2, "level_sizes": [2, 4], "level_offsets": [0, 2]}

    def ev(pos: int, **extra) -> dict:
        seen, correct = H_SEEN.get(pos, []), H_CORRECT.get(pos, [0] * 6)
        total = [10 if (u in seen or extra) else 0 for u in range(6)]
        counts = {"total": total, "agnostic": correct, "sup": correct, "consistent": correct}
        if extra:
            counts["aware"] = correct
        kind = extra.pop("kind", "anytime")
        return {"type": "eval", "kind": kind, "samples": pos, "task": 0, "seen": seen,
                "counts": counts, "online": {"correct": 0, "count": 0}, **extra}

    init = ev(0, kind="init")
    return [start, init, ev(10), ev(20, kind="task_end", row=0, kinds=["task_end", "anytime"]),
            ev(30), ev(40, kind="task_end", row=1, kinds=["task_end", "anytime"]),
            {"type": "end", "samples": 40, "online": {"correct": 0, "count": 0}, "budget": {},
             "budget_exceeded": [], "wall": {}}]


def test_per_level_a_auc_counts_zero_before_the_level_appears():
    coarse, fine = summarize(hier_log())["levels"]
    # fine level, the HLE code's rule: 0 at 10 and 20 (no fine class yet), then 10/20 at 30
    # and 28/40 at 40 -> (0 + 0 + 0.5 + 0.7) / 4 = 0.3
    assert fine["a_auc"] == pytest.approx(0.3)
    # the variant that drops the points before the level appeared: (0.5 + 0.7) / 2 = 0.6
    assert fine["a_auc_after_appearance"] == pytest.approx(0.6)
    assert fine["a_last"] == pytest.approx(0.7)
    # coarse level, seen from the first evaluation: (6/10 + 15/20 + 11/20 + 8/20) / 4
    assert coarse["a_auc"] == pytest.approx((0.6 + 0.75 + 0.55 + 0.4) / 4)
    assert coarse["a_auc_after_appearance"] == pytest.approx(coarse["a_auc"])
    assert coarse["a_auc_with_finer"] == pytest.approx(coarse["a_auc"])
    # per-level F_last from the task-end rows (20, 40), i-Blurry's rule: coarse u0 0.7 - 0.4,
    # u1 0.8 - 0.4 -> 0.35; fine: no class has a best earlier task-end accuracy > 0 -> null
    assert coarse["f_last"] == pytest.approx(0.35)
    assert fine["f_last"] is None
    # the anytime variant over 10, 20, 30, 40: fine u2 0.4 - 0.8, u3 0.6 - 0.5 -> -0.15
    assert fine["f_last_anytime"] == pytest.approx(-0.15)


def test_metrics_json_round_trips():
    assert json.loads(json.dumps(summarize(flat_log(3))))["f_last"] == pytest.approx(F_LAST)
