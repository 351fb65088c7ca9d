"""Golden tests for clenv.metrics: literal, hand-computed values (arithmetic in comments)."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from clenv.metrics import (
    FWT_REASON_FEW_TASKS,
    FWT_REASON_NO_USABLE,
    METRICS,
    a_auc,
    a_avg,
    a_last,
    accuracy_from_counts,
    average_forgetting,
    avg_incremental_accuracy,
    bwt,
    final_accuracy,
    forgetting_chaudhry,
    fwt,
    intransigence,
    min_acc,
    old_new_accuracy,
    online_accuracy,
    per_task_forgetting,
    wc_acc,
)

NAN = float("nan")

# A plain 3-task class-incremental-like matrix.
R1 = [
    [0.9, 0.1, 0.0],
    [0.6, 0.8, 0.2],
    [0.5, 0.7, 0.9],
]

# A blurry stream: task 1 is already partly known after task 0 (R[0][1] = 0.6 > R[1][1] = 0.5).
R_BLURRY = [
    [0.8, 0.6, 0.1],
    [0.7, 0.5, 0.3],
    [0.6, 0.4, 0.7],
]

# Task 1 improves after it was learned (R[2][1] = 0.85 > R[1][1] = 0.8): negative forgetting.
R_IMPROVES = [
    [0.9, 0.0, 0.0],
    [0.6, 0.8, 0.0],
    [0.7, 0.85, 0.9],
]


def _trap_forgetting_including_last_row(R: list[list[float]]) -> float:
    """The wrong definition: the max also runs over the final row T-1."""
    m = np.asarray(R)
    T = m.shape[0]
    return float(np.mean([m[j:, j].max() - m[T - 1, j] for j in range(T - 1)]))


# ---------------------------------------------------------------- accuracy-matrix metrics


def test_final_accuracy() -> None:
    # (0.5 + 0.7 + 0.9) / 3 = 2.1 / 3 = 0.7
    assert final_accuracy(R1) == pytest.approx(0.7)


def test_avg_incremental_accuracy() -> None:
    # row 0: 0.9 ; row 1: (0.6 + 0.8) / 2 = 0.7 ; row 2: (0.5 + 0.7 + 0.9) / 3 = 0.7
    # (0.9 + 0.7 + 0.7) / 3 = 2.3 / 3 = 0.76666...
    assert avg_incremental_accuracy(R1) == pytest.approx(2.3 / 3)
    assert avg_incremental_accuracy(R1) == pytest.approx(0.7666666666666667)


def test_average_forgetting_basic() -> None:
    # j=0: max(0.9, 0.6) - 0.5 = 0.4 ; j=1: max(0.8) - 0.7 = 0.1 ; mean(0.4, 0.1) = 0.25
    assert per_task_forgetting(R1) == pytest.approx([0.4, 0.1])
    assert average_forgetting(R1) == pytest.approx(0.25)


def test_forgetting_chaudhry_equal_when_no_early_peak() -> None:
    # j=0: max(0.9, 0.6) - 0.5 = 0.4 ; j=1: max(0.1, 0.8) - 0.7 = 0.1 ; mean = 0.25
    assert forgetting_chaudhry(R1) == pytest.approx(0.25)


def test_forgetting_chaudhry_differs_on_blurry_stream() -> None:
    # average_forgetting (max over rows l >= j, l <= T-2):
    #   j=0: max(0.8, 0.7) - 0.6 = 0.2 ; j=1: max(0.5) - 0.4 = 0.1 ; mean = 0.15
    # forgetting_chaudhry (max over rows 0 <= l <= T-2):
    #   j=0: max(0.8, 0.7) - 0.6 = 0.2 ; j=1: max(0.6, 0.5) - 0.4 = 0.2 ; mean = 0.2
    assert average_forgetting(R_BLURRY) == pytest.approx(0.15)
    assert forgetting_chaudhry(R_BLURRY) == pytest.approx(0.2)


def test_forgetting_max_excludes_last_row() -> None:
    # correct: j=0: max(0.9, 0.6) - 0.7 = 0.2 ; j=1: max(0.8) - 0.85 = -0.05
    #          mean(0.2, -0.05) = 0.075
    # trap (max over rows including T-1): j=0: max(0.9, 0.6, 0.7) - 0.7 = 0.2 ;
    #          j=1: max(0.8, 0.85) - 0.85 = 0.0 ; mean = 0.1
    assert per_task_forgetting(R_IMPROVES) == pytest.approx([0.2, -0.05])
    assert average_forgetting(R_IMPROVES) == pytest.approx(0.075)
    assert _trap_forgetting_including_last_row(R_IMPROVES) == pytest.approx(0.1)
    assert average_forgetting(R_IMPROVES) != pytest.approx(0.1)
    # Chaudhry: j=1: max(0.0, 0.8) - 0.85 = -0.05 -> same 0.075 here, also not the trap.
    assert forgetting_chaudhry(R_IMPROVES) == pytest.approx(0.075)
    # two tasks: correct 0.9 - 0.95 = -0.05 ; trap max(0.9, 0.95) - 0.95 = 0.0
    assert average_forgetting([[0.9, 0.0], [0.95, 0.8]]) == pytest.approx(-0.05)
    assert forgetting_chaudhry([[0.9, 0.0], [0.95, 0.8]]) == pytest.approx(-0.05)


def test_bwt() -> None:
    # ((0.5 - 0.9) + (0.7 - 0.8)) / 2 = (-0.4 - 0.1) / 2 = -0.25
    assert bwt(R1) == pytest.approx(-0.25)
    # ((0.7 - 0.9) + (0.85 - 0.8)) / 2 = (-0.2 + 0.05) / 2 = -0.075
    assert bwt(R_IMPROVES) == pytest.approx(-0.075)


def test_fwt_uses_b() -> None:
    b = [0.1, 0.05, 0.1]
    # j=1: R[0][1] - b[1] = 0.1 - 0.05 = 0.05 ; j=2: R[1][2] - b[2] = 0.2 - 0.1 = 0.1
    # mean(0.05, 0.1) = 0.075
    value, reason = fwt(R1, b, [True, True, True])
    assert value == pytest.approx(0.075)
    assert reason is None
    # trap: FWT without b = mean(R[0][1], R[1][2]) = mean(0.1, 0.2) = 0.15
    assert value != pytest.approx(0.15)


def test_fwt_requires_b() -> None:
    with pytest.raises(TypeError):
        fwt(R1)  # type: ignore[call-arg]
    with pytest.raises(ValueError):
        fwt(R1, [0.1, 0.2], [True, True, True])  # b has the wrong length


def test_fwt_drops_unusable_terms() -> None:
    b = [0.1, 0.05, 0.1]
    # only j=2: 0.2 - 0.1 = 0.1
    assert fwt(R1, b, [True, False, True]) == (pytest.approx(0.1), None)
    # only j=1: 0.1 - 0.05 = 0.05
    assert fwt(R1, b, [True, True, False]) == (pytest.approx(0.05), None)
    # usable[0] is ignored (task 0 has no earlier row): still mean(0.05, 0.1) = 0.075
    assert fwt(R1, b, [False, True, True]) == (pytest.approx(0.075), None)


def test_fwt_none_when_no_usable_term() -> None:
    # disjoint class-incremental: zeros above the diagonal, no usable output before a task
    R = [[0.9, 0.0, 0.0], [0.5, 0.9, 0.0], [0.4, 0.5, 0.9]]
    value, reason = fwt(R, [0.3, 0.3, 0.3], [False, False, False])
    assert value is None
    assert reason == FWT_REASON_NO_USABLE
    assert reason == (
        "no task has classes with a usable output before its own task "
        "(e.g. disjoint class-incremental)"
    )


def test_intransigence() -> None:
    # (0.95 - 0.9) + (0.9 - 0.8) + (0.92 - 0.9) = 0.05 + 0.1 + 0.02 = 0.17 ; / 3 = 0.05666...
    assert intransigence(R1, [0.95, 0.9, 0.92]) == pytest.approx(0.17 / 3)
    with pytest.raises(ValueError):
        intransigence(R1, [0.95, 0.9])


def test_single_task() -> None:
    R = [[0.7]]
    assert final_accuracy(R) == pytest.approx(0.7)
    assert avg_incremental_accuracy(R) == pytest.approx(0.7)
    assert per_task_forgetting(R) == []
    assert average_forgetting(R) is None
    assert forgetting_chaudhry(R) is None
    assert bwt(R) is None
    assert fwt(R, [0.1], [True]) == (None, FWT_REASON_FEW_TASKS)
    assert FWT_REASON_FEW_TASKS == "fewer than two tasks"
    # 0.8 - 0.7 = 0.1
    assert intransigence(R, [0.8]) == pytest.approx(0.1)


def test_numpy_input_and_float_output() -> None:
    m = np.array(R1)
    assert isinstance(final_accuracy(m), float)
    assert isinstance(average_forgetting(m), float)
    assert average_forgetting(m) == pytest.approx(0.25)


@pytest.mark.parametrize(
    "bad",
    [
        [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]],  # 2 x 3
        [],  # T = 0
        [[]],  # 1 x 0
        [0.5, 0.6],  # 1-D
        [[0.1, 0.2], [0.3]],  # ragged
        [[[0.1]]],  # 3-D
    ],
)
def test_non_square_raises(bad: object) -> None:
    for fn in (
        final_accuracy,
        avg_incremental_accuracy,
        average_forgetting,
        forgetting_chaudhry,
        bwt,
        per_task_forgetting,
    ):
        with pytest.raises(ValueError):
            fn(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        fwt(bad, [0.0, 0.0], [True, True])  # type: ignore[arg-type]


# ---------------------------------------------------------------- anytime / online metrics


def test_a_auc_a_last_a_avg() -> None:
    # (0.2 + 0.4 + 0.9) / 3 = 1.5 / 3 = 0.5
    assert a_auc([0.2, 0.4, 0.9]) == pytest.approx(0.5)
    assert a_last([0.2, 0.4, 0.9]) == pytest.approx(0.9)
    # (0.9 + 0.6 + 0.45) / 3 = 1.95 / 3 = 0.65
    assert a_avg([0.9, 0.6, 0.45]) == pytest.approx(0.65)
    assert a_auc([]) is None
    assert a_last([]) is None
    assert a_avg([]) is None


def test_online_accuracy() -> None:
    # 30 / 40 = 0.75
    assert online_accuracy(30, 40) == pytest.approx(0.75)
    assert online_accuracy(0, 0) is None
    with pytest.raises(ValueError):
        online_accuracy(5, 4)


POSITIONS = [50, 100, 150, 200, 250, 300]
TASK_ENDS = [100, 200, 300]
TASK_ACC = [
    # task 0: evaluations strictly after 100 -> idx 2..5 = 0.6, 0.7, nan, 0.65 -> min 0.6
    #         (0.5 at 50 and 0.9 at 100 are not after task 0 was learned)
    [0.5, 0.9, 0.6, 0.7, NAN, 0.65],
    # task 1: strictly after 200 -> idx 4..5 = 0.3, 0.5 -> min 0.3 (0.1 at 100 excluded)
    [NAN, 0.1, 0.8, 0.9, 0.3, 0.5],
    # task 2 is the last task: not part of min-ACC
    [NAN, NAN, NAN, NAN, 0.2, 0.85],
]


def test_min_acc_and_wc_acc() -> None:
    # min-ACC = (0.6 + 0.3) / 2 = 0.45
    m = min_acc(POSITIONS, TASK_ACC, TASK_ENDS)
    assert m == pytest.approx(0.45)
    # WC-ACC = (1/3) * 0.85 + (1 - 1/3) * 0.45 = 0.283333... + 0.3 = 0.583333...
    assert wc_acc(m, 0.85, 3) == pytest.approx(0.85 / 3 + 0.3)
    assert wc_acc(m, 0.85, 3) == pytest.approx(0.5833333333333333)


def test_min_acc_skips_tasks_without_evaluation() -> None:
    acc = [row[:] for row in TASK_ACC]
    acc[1] = [NAN, 0.1, 0.8, 0.9, NAN, NAN]  # task 1 never evaluated after it was learned
    # only task 0: min-ACC = 0.6
    assert min_acc(POSITIONS, acc, TASK_ENDS) == pytest.approx(0.6)
    acc[0] = [0.5, 0.9, NAN, NAN, NAN, NAN]
    assert min_acc(POSITIONS, acc, TASK_ENDS) is None
    assert wc_acc(None, 0.85, 3) is None


def test_min_acc_single_task() -> None:
    assert min_acc([10, 20], [[0.4, 0.5]], [20]) is None
    # T == 1: WC-ACC is the final current-task accuracy
    assert wc_acc(None, 0.8, 1) == pytest.approx(0.8)
    with pytest.raises(ValueError):
        min_acc([10, 20], [[0.4, 0.5, 0.6]], [20])  # row length != len(positions)


def test_accuracy_from_counts_and_old_new() -> None:
    correct = [8, 3, 0, 5]
    total = [10, 5, 0, 10]
    # classes 0,1: (8 + 3) / (10 + 5) = 11 / 15
    assert accuracy_from_counts(correct, total, [0, 1]) == pytest.approx(11 / 15)
    # classes 1,3: (3 + 5) / (5 + 10) = 8 / 15
    assert accuracy_from_counts(correct, total, [1, 3]) == pytest.approx(8 / 15)
    assert accuracy_from_counts(correct, total, [2]) is None  # zero test samples
    assert accuracy_from_counts(correct, total, []) is None  # empty class set
    # old = classes 0,1 -> 11/15 ; new = class 3 -> 5/10 = 0.5
    old, new = old_new_accuracy(correct, total, [0, 1], [3])
    assert old == pytest.approx(11 / 15)
    assert new == pytest.approx(0.5)
    assert old_new_accuracy(correct, total, [], [0]) == (None, pytest.approx(0.8))
    with pytest.raises(ValueError):
        accuracy_from_counts(correct, total, [4])


def test_results_are_finite_floats() -> None:
    for v in (final_accuracy(R1), average_forgetting(R1), bwt(R1), a_auc([0.1, 0.2])):
        assert isinstance(v, float) and math.isfinite(v)


# ---------------------------------------------------------------- registry / imports


def test_metrics_registry() -> None:
    expected = {
        "final_accuracy",
        "avg_incremental_accuracy",
        "a_avg",
        "average_forgetting",
        "forgetting_chaudhry",
        "bwt",
        "fwt",
        "intransigence",
        "a_auc",
        "a_last",
        "min_acc",
        "wc_acc",
        "online_accuracy",
        "old_class_accuracy",
        "new_class_accuracy",
    }
    assert expected <= set(METRICS)
    for name, desc in METRICS.items():
        assert isinstance(desc, str) and desc and "\n" not in desc, name


def test_metrics_import_is_light() -> None:
    code = "import sys, clenv.metrics; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
