"""Summaries of long streams stay linear in the log: a 300-task log (3000 classes) is
summarised in seconds, with golden values worked by hand. Before the per-row column sums, every
cell of the accuracy matrix and of the anytime task curves converted the whole count vectors
again (O(T^2 C)): this log took 20 s of CPU, a 1000-task permuted stream over 25 min (now 5 s)."""

from __future__ import annotations

import time

import pytest

from clenv.metrics.anytime import accuracy_from_counts, column_accuracies
from clenv.metrics.summary import summarize

K = 10  # classes per task
TASK = 10  # stream samples per task


def long_log(T: int) -> list[dict]:
    """A square class-incremental log: 5 test samples per class; at row i the model gets every
    sample of task i right, 3 of 5 of each earlier task's, none of later tasks'."""
    C = T * K
    first = [(u // K) * TASK for u in range(C)]
    start = {"type": "start", "name": "long", "n_tasks": T, "stream_length": T * TASK,
             "columns": [list(range(j * K, (j + 1) * K)) for j in range(T)],
             "column_names": [str(j) for j in range(T)], "first_row": list(range(T)),
             "first_position": first, "unit_first_position": first,
             "task_starts": [j * TASK for j in range(T)],
             "task_ends": [(j + 1) * TASK for j in range(T)], "square": True}
    total = [5] * C
    events = [start, {"type": "eval", "kind": "init", "samples": 0, "seen": [],
                      "counts": {"agnostic": [0] * C, "total": total}}]
    for i in range(T):
        correct = [5 if u // K == i else 3 if u // K < i else 0 for u in range(C)]
        events.append({"type": "eval", "kind": "task_end", "kinds": ["task_end", "anytime"],
                       "row": i, "samples": (i + 1) * TASK, "seen": list(range((i + 1) * K)),
                       "counts": {"agnostic": correct, "total": total}})
    events.append({"type": "end", "online": {"correct": 0, "count": 0}, "budget": {},
                   "wall": {}})
    return events


def test_column_accuracies_match_the_per_column_definition():
    correct, total = [1, 2, 0, 4, 0], [2, 4, 0, 5, 0]
    cols = [[0, 1], [2], [3, 4], [], [1, 3]]
    assert column_accuracies(correct, total, cols) == [
        accuracy_from_counts(correct, total, c) for c in cols]
    assert column_accuracies(correct, total, cols) == [0.5, None, 0.8, None, 6 / 9]
    with pytest.raises(ValueError, match="out of range"):
        column_accuracies(correct, total, [[5]])


def test_a_300_task_log_is_summarised_in_seconds_with_hand_worked_values():
    T = 300
    events = long_log(T)
    t0 = time.process_time()
    m = summarize(events)
    spent = time.process_time() - t0
    R = m["accuracy_matrix"]
    assert R[5][5] == 1.0 and R[5][2] == pytest.approx(0.6) and R[5][6] == 0.0
    assert m["final_accuracy"] == pytest.approx((0.6 * (T - 1) + 1) / T)
    assert m["average_forgetting"] == pytest.approx(0.4)  # best 1.0, last 0.6, each old task
    assert m["bwt"] == pytest.approx(-0.4)
    assert spent < 6.0, f"summarize took {spent:.1f} s of CPU for a {T}-task log"
