"""Golden tests of the hierarchy rules (clenv.metrics.hierarchy, HLE Lee et al. 2023): the
coarse accuracy that also credits the parent of the fine prediction, the consistency of the
coarse and fine predictions, and rates from per-unit counts. Expected values by hand."""

from __future__ import annotations

import numpy as np
import pytest

from clenv.metrics.hierarchy import coarse_correct_with_parent, consistent_predictions, rate

# 3 coarse classes; fine classes 0, 1 -> coarse 0; 2, 3 -> coarse 1; 4 -> coarse 2
PARENT = np.array([0, 0, 1, 1, 2])


def test_coarse_correct_with_parent_golden() -> None:
    #        row:   0  1  2  3  4  5  6
    y = np.array([0, 1, 2, 2, 1, 0, 2])
    cp = np.array([0, 0, 1, 2, 1, 0, 0])  # coarse head's predictions
    cv = np.array([1, 1, 1, 0, 0, 1, 1], dtype=bool)
    fp = np.array([3, 2, 0, 4, 3, 99, 4])  # fine head's predictions (99: missing, never read)
    fv = np.array([1, 1, 1, 0, 1, 0, 1], dtype=bool)
    # row 0: coarse 0 = y                                  -> True (fine parent 1 is wrong)
    # row 1: coarse 0 != 1, parent(fine 2) = 1 = y          -> True (rescued by the fine head)
    # row 2: coarse 1 != 2, parent(fine 0) = 0 != 2         -> False
    # row 3: both would be right, but neither prediction exists -> False
    # row 4: coarse missing, parent(fine 3) = 1 = y         -> True
    # row 5: coarse 0 = y, fine missing                     -> True
    # row 6: coarse 0 != 2, parent(fine 4) = 2 = y          -> True
    ok = coarse_correct_with_parent(cp, fp, PARENT, y, cv, fv)
    assert ok.dtype == bool
    assert ok.tolist() == [True, True, False, False, True, True, True]
    # the coarse head alone ("sup_only") gets rows 0 and 5: the rule only adds correct rows
    alone = (cp == y) & cv
    assert alone.tolist() == [True, False, False, False, False, True, False]
    assert (ok >= alone).all()


def test_coarse_correct_with_parent_defaults_to_all_valid() -> None:
    y = [0, 1, 2]
    cp = [0, 0, 0]
    fp = [4, 3, 1]  # parents 2, 1, 0
    # row 0: coarse right; row 1: parent 1 = y; row 2: coarse 0 != 2 and parent 0 != 2
    assert coarse_correct_with_parent(cp, fp, PARENT, y).tolist() == [True, True, False]
    none = np.zeros(0, dtype=np.int64)  # no rows (integer arrays: [] would be float)
    assert coarse_correct_with_parent(none, none, PARENT, none).tolist() == []
    assert consistent_predictions(none, none, PARENT).tolist() == []


def test_consistent_predictions_golden() -> None:
    #         row:  0  1  2  3  4   5
    cp = np.array([0, 1, 2, 1, 2, 0])
    fp = np.array([1, 2, 4, 2, 99, 3])
    cv = np.array([1, 1, 1, 0, 1, 1], dtype=bool)
    fv = np.array([1, 1, 1, 1, 0, 1], dtype=bool)
    # row 0: parent(1) = 0 = coarse 0  -> True
    # row 1: parent(2) = 1 = coarse 1  -> True
    # row 2: parent(4) = 2 = coarse 2  -> True
    # row 3: parent(2) = 1 = coarse 1 but the coarse prediction is missing -> False
    # row 4: the fine prediction is missing (99 never read)                -> False
    # row 5: parent(3) = 1 != coarse 0 -> False
    con = consistent_predictions(cp, fp, PARENT, cv, fv)
    assert con.tolist() == [True, True, True, False, False, False]
    # consistency rate of the 6 rows: 3 / 6
    assert rate([int(con.sum())], [len(con)], [0]) == pytest.approx(0.5)
    # without masks every row is valid; rows 3 and 4 (fp 0 -> parent 0) are then compared too
    fp_ok = np.array([1, 2, 4, 2, 0, 3])
    assert consistent_predictions(cp, fp_ok, PARENT).tolist() == [True, True, True, True,
                                                                   False, False]


def test_consistency_is_independent_of_the_true_label() -> None:
    # consistent but wrong at both levels (parent(3) = 1 = coarse 1, truth coarse 0 / fine 0)
    assert consistent_predictions([1], [3], PARENT).tolist() == [True]
    assert coarse_correct_with_parent([1], [3], PARENT, [0]).tolist() == [False]


def test_rate_golden() -> None:
    count = [3, 0, 5, 2]
    total = [4, 0, 10, 2]
    assert rate(count, total, [0, 2]) == pytest.approx(8 / 14)  # (3 + 5) / (4 + 10)
    assert rate(count, total, [0, 1, 3]) == pytest.approx(5 / 6)  # (3 + 0 + 2) / (4 + 0 + 2)
    assert rate(count, total, [3]) == 1.0
    assert rate(count, total, [1]) is None  # no test sample: undefined, not 0
    assert rate(count, total, []) is None
    assert isinstance(rate(np.array(count), np.array(total), np.array([2])), float)


def test_rate_over_per_unit_counts_like_the_evaluator() -> None:
    # 6 coarse test rows with their coarse unit and the parent-rule verdict; counts per unit
    units = np.array([0, 0, 1, 1, 1, 2])
    sup = np.array([1, 0, 1, 1, 0, 1], dtype=bool)
    total = np.bincount(units, minlength=3)  # [2, 3, 1]
    correct = np.bincount(units[sup], minlength=3)  # [1, 2, 1]
    assert total.tolist() == [2, 3, 1] and correct.tolist() == [1, 2, 1]
    assert rate(correct, total, [0, 1]) == pytest.approx(3 / 5)  # seen units 0 and 1
    assert rate(correct, total, [0, 1, 2]) == pytest.approx(4 / 6)


def test_rules_match_a_loop_on_random_inputs() -> None:
    rng = np.random.default_rng(0)
    parent = rng.integers(0, 4, 12)
    n = 200
    y = rng.integers(0, 4, n)
    cp, fp = rng.integers(0, 4, n), rng.integers(0, 12, n)
    cv, fv = rng.random(n) < 0.8, rng.random(n) < 0.8
    ok = coarse_correct_with_parent(cp, fp, parent, y, cv, fv)
    con = consistent_predictions(cp, fp, parent, cv, fv)
    for i in range(n):
        assert ok[i] == ((cv[i] and cp[i] == y[i]) or (fv[i] and parent[fp[i]] == y[i]))
        assert con[i] == (cv[i] and fv[i] and parent[fp[i]] == cp[i])
