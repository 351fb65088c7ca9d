"""Golden tests for clenv.metrics.lifelong: literal, hand-computed values (arithmetic in
comments)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from clenv.metrics import (
    METRICS,
    concept_final_accuracy,
    concept_forgetting,
    f_last,
    few_shot_summary,
    pair_backward_transfer,
    pair_forward_transfer,
)
from clenv.metrics.accuracy_matrix import average_forgetting

NAN = float("nan")

# ---------------------------------------------------------------- f_last

# 4 evaluations x 5 units. Column by column:
#   u0: measured throughout                       -> max(0.8, 0.6, 0.9) - 0.7 = 0.2
#   u1: seen from evaluation 1                    -> max(0.9, 0.8) - 0.5      = 0.4
#   u2: measured only at the last evaluation      -> skipped
#   u3: measured earlier, not at the last one     -> skipped
#   u4: a gap (nan) in the middle                 -> max(0.7, 0.6) - 0.4      = 0.3
ACC = [
    [0.8, NAN, NAN, 0.9, 0.7],
    [0.6, 0.9, NAN, 0.3, NAN],
    [0.9, 0.8, NAN, 0.2, 0.6],
    [0.7, 0.5, 0.4, NAN, 0.4],
]


def test_f_last_basic_with_nan_handling() -> None:
    # (0.2 + 0.4 + 0.3) / 3 = 0.9 / 3 = 0.3
    assert f_last(ACC) == pytest.approx(0.3)


def test_f_last_skips_unit_unmeasured_at_end() -> None:
    # u0: max(0.8) - 0.5 = 0.3; u1: nan at the last evaluation -> skipped. Mean = 0.3.
    acc = [
        [0.8, 0.9],
        [0.5, NAN],
    ]
    assert f_last(acc) == pytest.approx(0.3)


def test_f_last_skips_unit_measured_only_at_end() -> None:
    # u0: max(0.6) - 0.6 = 0.0; u1: only the last evaluation -> skipped (not a 0 term, and not
    # 0.95 - 0.95). Mean over u0 alone = 0.0.
    acc = [
        [0.6, NAN],
        [0.6, 0.95],
    ]
    assert f_last(acc) == pytest.approx(0.0)
    # With a second qualifying unit the skipped one does not dilute the mean:
    # u0: 0.9 - 0.5 = 0.4, u2: 0.7 - 0.5 = 0.2, u1 skipped -> (0.4 + 0.2) / 2 = 0.3
    acc2 = [
        [0.9, NAN, 0.7],
        [0.5, 0.95, 0.5],
    ]
    assert f_last(acc2) == pytest.approx(0.3)


def test_f_last_max_excludes_last_evaluation() -> None:
    # Trap: the unit's accuracy rises at the end. Correct: max(0.5, 0.6) - 0.9 = -0.3.
    # Including the last evaluation in the max would give max(0.5, 0.6, 0.9) - 0.9 = 0.
    acc = [[0.5], [0.6], [0.9]]
    value = f_last(acc)
    assert value == pytest.approx(-0.3)
    assert value != pytest.approx(0.0)
    # Mixed: u0 = 0.8 - 0.2 = 0.6, u1 = 0.4 - 0.7 = -0.3 -> (0.6 - 0.3) / 2 = 0.15
    assert f_last([[0.8, 0.4], [0.2, 0.7]]) == pytest.approx(0.15)


def test_f_last_none_cases() -> None:
    assert f_last([[0.5, 0.6]]) is None  # one evaluation
    assert f_last(np.zeros((0, 3))) is None  # no evaluation
    assert f_last(np.zeros((3, 0))) is None  # no unit
    assert f_last([[0.5, 0.6], [NAN, NAN]]) is None  # nothing measured at the end
    assert f_last([[NAN, NAN], [0.5, 0.6]]) is None  # everything measured only at the end


@pytest.mark.parametrize(
    "bad",
    [
        [0.1, 0.2, 0.3],  # 1-D
        [[[0.1]], [[0.2]]],  # 3-D
        [[0.1, 0.2], [0.3]],  # ragged
        [["a", "b"], ["c", "d"]],  # non-numeric
    ],
)
def test_f_last_malformed_raises(bad: object) -> None:
    with pytest.raises(ValueError):
        f_last(bad)  # type: ignore[arg-type]


# ---------------------------------------------------------------- concept_forgetting

# 3 segment ends x 4 concepts; first_row = [0, 1, 2, None].
#   c0: first trained in row 0 -> max(R[0][0], R[1][0]) - R[2][0] = max(0.9, 0.7) - 0.6 = 0.3
#   c1: first trained in row 1 -> max(R[1][1]) - R[2][1] = 0.8 - 0.6 = 0.2
#       (R[0][1] = 0.95 precedes its training and is not part of the max)
#   c2: first trained in the last row -> no term
#   c3: never trained -> no term
R_RECT = [
    [0.9, 0.95, 0.0, 0.1],
    [0.7, 0.8, 0.3, 0.1],
    [0.6, 0.6, 0.9, 0.1],
]
FIRST_RECT = [0, 1, 2, None]


def test_concept_forgetting_rectangular() -> None:
    # (0.3 + 0.2) / 2 = 0.25
    assert concept_forgetting(R_RECT, FIRST_RECT) == pytest.approx(0.25)


def test_concept_forgetting_more_columns_than_rows() -> None:
    # T = 2, two concepts trained in row 0 (no clipping at 0):
    #   c0: 0.8 - 0.5 = 0.3;  c1: 0.6 - 0.7 = -0.1;  c2 trained in the last row -> no term
    #   (0.3 - 0.1) / 2 = 0.1
    R = [
        [0.8, 0.6, 0.1],
        [0.5, 0.7, 0.9],
    ]
    assert concept_forgetting(R, [0, 0, 1]) == pytest.approx(0.1)


def test_concept_forgetting_more_rows_than_columns() -> None:
    # T = 4, C = 2:
    #   c0 (row 0): max(0.9, 0.8, 0.7) - 0.4 = 0.5
    #   c1 (row 2): max(0.6) - 0.5 = 0.1
    #   (0.5 + 0.1) / 2 = 0.3
    R = [
        [0.9, 0.0],
        [0.8, 0.0],
        [0.7, 0.6],
        [0.4, 0.5],
    ]
    assert concept_forgetting(R, [0, 2]) == pytest.approx(0.3)


def test_concept_forgetting_max_excludes_last_row() -> None:
    # Trap: c0 improves in the last row: max(0.5, 0.6) - 0.9 = -0.3 (not 0).
    R = [[0.5], [0.6], [0.9]]
    assert concept_forgetting(R, [0]) == pytest.approx(-0.3)


def test_concept_forgetting_nan_cells() -> None:
    # c0: max over rows 0..1 ignoring nan = 0.9 -> 0.9 - 0.7 = 0.2
    # c1: final cell nan -> skipped.  Result 0.2.
    R = [
        [0.9, 0.5],
        [NAN, 0.6],
        [0.7, NAN],
    ]
    assert concept_forgetting(R, [0, 0]) == pytest.approx(0.2)


R1 = [
    [0.9, 0.1, 0.0],
    [0.6, 0.8, 0.2],
    [0.5, 0.7, 0.9],
]


def test_concept_forgetting_square_equals_average_forgetting() -> None:
    # R1: ((0.9 - 0.5) + (0.8 - 0.7)) / 2 = (0.4 + 0.1) / 2 = 0.25
    assert concept_forgetting(R1, [0, 1, 2]) == pytest.approx(0.25)
    assert concept_forgetting(R1, [0, 1, 2]) == pytest.approx(average_forgetting(R1))
    rng = np.random.default_rng(0)
    for T in (2, 3, 5, 8):
        R = rng.uniform(size=(T, T))
        assert concept_forgetting(R, list(range(T))) == pytest.approx(average_forgetting(R))


def test_concept_forgetting_none_cases() -> None:
    assert concept_forgetting([[0.5, 0.6]], [0, 0]) is None  # T = 1
    assert concept_forgetting(R_RECT, [None, None, None, None]) is None  # nothing trained
    assert concept_forgetting(R_RECT, [2, 2, 2, None]) is None  # all trained in the last row
    assert concept_forgetting([[0.5], [NAN]], [0]) is None  # only term has a nan final cell


@pytest.mark.parametrize(
    ("R", "first_row"),
    [
        ([0.1, 0.2], [0, 1]),  # R 1-D
        ([[0.1, 0.2], [0.3]], [0, 1]),  # ragged
        (np.zeros((0, 2)), [None, None]),  # no rows
        (R1, [0, 1]),  # first_row too short
        (R1, [0, 1, 2, None]),  # first_row too long
        (R1, [0, 1, 3]),  # row out of range
        (R1, [-1, 1, 2]),  # negative row
        (R1, [0, 1.5, 2]),  # not an integer
        (R1, [True, 1, 2]),  # bool is not a row index
    ],
)
def test_concept_metrics_malformed_raise(R: object, first_row: list) -> None:
    with pytest.raises(ValueError):
        concept_forgetting(R, first_row)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        concept_final_accuracy(R, first_row)  # type: ignore[arg-type]


# ---------------------------------------------------------------- concept_final_accuracy


def test_concept_final_accuracy() -> None:
    # R_RECT last row [0.6, 0.6, 0.9, 0.1]; c3 never trained -> (0.6 + 0.6 + 0.9) / 3 = 0.7
    assert concept_final_accuracy(R_RECT, FIRST_RECT) == pytest.approx(0.7)
    # Square R1 with every column trained = final_accuracy: (0.5 + 0.7 + 0.9) / 3 = 0.7
    assert concept_final_accuracy(R1, [0, 1, 2]) == pytest.approx(0.7)
    # A nan final cell is left out: (0.4) / 1 = 0.4
    assert concept_final_accuracy([[0.1, 0.2], [0.4, NAN]], [0, 0]) == pytest.approx(0.4)
    # T = 1 is fine: the only row is the last one -> (0.3 + 0.5) / 2 = 0.4
    assert concept_final_accuracy([[0.3, 0.5]], [0, 0]) == pytest.approx(0.4)


def test_concept_final_accuracy_none() -> None:
    assert concept_final_accuracy(R_RECT, [None] * 4) is None
    assert concept_final_accuracy([[0.1], [NAN]], [0]) is None


# ---------------------------------------------------------------- related pairs


def test_pair_forward_transfer() -> None:
    # learner 0.7 - from-scratch 0.4 = 0.3 (A helped B)
    assert pair_forward_transfer(0.7, 0.4) == pytest.approx(0.3)
    # learner 0.2 - from-scratch 0.5 = -0.3 (negative transfer)
    assert pair_forward_transfer(0.2, 0.5) == pytest.approx(-0.3)
    assert pair_forward_transfer(0.5, 0.5) == 0.0
    assert isinstance(pair_forward_transfer(np.float64(1.0), 0), float)


def test_pair_backward_transfer() -> None:
    # after 0.6 - before 0.8 = -0.2 (B made the learner forget A)
    assert pair_backward_transfer(0.8, 0.6) == pytest.approx(-0.2)
    # after 0.75 - before 0.5 = 0.25 (B helped A)
    assert pair_backward_transfer(before=0.5, after=0.75) == pytest.approx(0.25)
    assert isinstance(pair_backward_transfer(np.float32(0.5), 1), float)


@pytest.mark.parametrize("bad", [NAN, math.inf, 1.5, -0.1, None, True, "0.5", [0.5]])
def test_pair_transfer_malformed_raises(bad: object) -> None:
    with pytest.raises(ValueError):
        pair_forward_transfer(bad, 0.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        pair_forward_transfer(0.5, bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        pair_backward_transfer(bad, 0.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        pair_backward_transfer(0.5, bad)  # type: ignore[arg-type]


# ---------------------------------------------------------------- few-shot


def test_few_shot_summary() -> None:
    # curve = [0.2, 0.5, 0.6, 0.7]
    #   after_k = 0.2, final = 0.7, mean = (0.2 + 0.5 + 0.6 + 0.7) / 4 = 2.0 / 4 = 0.5,
    #   gain = 0.7 - 0.2 = 0.5
    s = few_shot_summary([0.2, 0.5, 0.6, 0.7])
    assert s is not None
    assert set(s) == {"after_k", "final", "mean", "gain"}
    assert s["after_k"] == pytest.approx(0.2)
    assert s["final"] == pytest.approx(0.7)
    assert s["mean"] == pytest.approx(0.5)
    assert s["gain"] == pytest.approx(0.5)
    assert all(isinstance(v, float) for v in s.values())


def test_few_shot_summary_single_pass_and_drop() -> None:
    # One pass: after_k = final = mean = 0.4, gain = 0.
    assert few_shot_summary([0.4]) == pytest.approx(
        {"after_k": 0.4, "final": 0.4, "mean": 0.4, "gain": 0.0}
    )
    # Accuracy drops over passes: mean = (0.6 + 0.3) / 2 = 0.45, gain = 0.3 - 0.6 = -0.3
    assert few_shot_summary(np.array([0.6, 0.3])) == pytest.approx(
        {"after_k": 0.6, "final": 0.3, "mean": 0.45, "gain": -0.3}
    )


def test_few_shot_summary_none_and_malformed() -> None:
    assert few_shot_summary([]) is None
    with pytest.raises(ValueError):
        few_shot_summary([[0.1, 0.2]])  # type: ignore[list-item]
    with pytest.raises(ValueError):
        few_shot_summary([0.1, NAN])


# ---------------------------------------------------------------- registry


def test_lifelong_metrics_registered() -> None:
    expected = {
        "f_last",
        "concept_forgetting",
        "forward_transfer",
        "backward_transfer",
        "few_shot_accuracy",
    }
    assert expected <= set(METRICS)
    for name in expected:
        assert isinstance(METRICS[name], str) and METRICS[name] and "\n" not in METRICS[name]
