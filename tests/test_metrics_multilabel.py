"""Golden tests for clenv.metrics.multilabel: literal, hand-computed values (arithmetic in
comments) and cross-checks against torchmetrics / scikit-learn on random data."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from clenv.metrics import (
    DEFAULT_THRESHOLD,
    METRICS,
    average_map,
    average_precision_per_class,
    cf1,
    cf1_prs,
    f1_counts,
    map_forgetting,
    mean_average_precision,
    of1,
    predict_at_threshold,
    sample_f1,
)

NAN = float("nan")

# ---------------------------------------------------------------- average precision


def test_ap_literal_distinct_scores() -> None:
    # Ranked: 0.9 (pos), 0.8 (neg), 0.7 (pos), 0.6 (neg).
    # Precision at the rank of each positive: 1/1 and 2/3 -> AP = (1 + 2/3) / 2 = 0.8333...
    y = [[1], [0], [1], [0]]
    s = [[0.9], [0.8], [0.7], [0.6]]
    ap = average_precision_per_class(y, s)
    assert ap.shape == (1,)
    assert ap[0] == pytest.approx((1.0 + 2.0 / 3.0) / 2.0)
    assert ap[0] == pytest.approx(0.833333, abs=1e-6)


def test_ap_literal_tie_is_one_threshold() -> None:
    # Scores 0.5 (pos), 0.5 (neg), 0.1 (pos). The tied pair is one threshold:
    #   at 0.5: TP=1, FP=1 -> P=1/2, R=1/2;  at 0.1: TP=2, FP=1 -> P=2/3, R=1.
    # AP = (1/2 - 0) * 1/2 + (1 - 1/2) * 2/3 = 1/4 + 1/3 = 7/12 = 0.58333...
    ap = average_precision_per_class([[1], [0], [1]], [[0.5], [0.5], [0.1]])
    assert ap[0] == pytest.approx(7.0 / 12.0)


def test_ap_is_nan_for_class_without_positive_and_logits_equal_probabilities() -> None:
    y = np.array([[1, 0], [0, 0], [1, 0], [0, 0]])
    logits = np.array([[2.2, 0.1], [1.4, -0.3], [0.8, 0.5], [0.4, 0.0]])
    ap = average_precision_per_class(y, logits)
    assert math.isnan(ap[1])
    # AP depends only on the ranking: the sigmoid gives the same value.
    ap_prob = average_precision_per_class(y, 1.0 / (1.0 + np.exp(-logits)))
    assert ap[0] == pytest.approx(ap_prob[0])
    # ranks: pos, neg, pos, neg -> (1 + 2/3) / 2
    assert ap[0] == pytest.approx(5.0 / 6.0)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("ties", [False, True])
def test_ap_matches_torchmetrics(seed: int, ties: bool) -> None:
    torch = pytest.importorskip("torch")
    tm_cls = pytest.importorskip("torchmetrics.functional.classification")
    rng = np.random.default_rng(seed)
    n, C = 60, 7
    y = (rng.random((n, C)) < 0.3).astype(np.int64)
    y[0, :] = 1  # every class but the empty one has a positive
    empty = 3
    y[:, empty] = 0  # a class with no positive
    scores = rng.normal(size=(n, C))
    if ties:
        scores = np.round(scores, 1)  # many tied scores
    ours = average_precision_per_class(y, scores)
    assert math.isnan(ours[empty])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = tm_cls.multilabel_average_precision(
            torch.tensor(scores, dtype=torch.float64),
            torch.tensor(y),
            num_labels=C,
            average=None,
        ).numpy()
    keep = [c for c in range(C) if c != empty]
    assert not np.isnan(ours[keep]).any()
    np.testing.assert_allclose(ours[keep], ref[keep], rtol=0, atol=1e-6)


# ---------------------------------------------------------------- mAP and its summaries


def test_mean_average_precision_skips_nan_classes() -> None:
    ap = [0.5, NAN, 1.0, 0.2]
    # all classes: (0.5 + 1.0 + 0.2) / 3 = 0.5666...; the nan class is skipped, not counted as 0
    assert mean_average_precision(ap) == pytest.approx(1.7 / 3.0)
    # seen classes {0, 1}: only class 0 has a positive -> 0.5
    assert mean_average_precision(ap, classes=[0, 1]) == pytest.approx(0.5)
    # only the empty class -> undefined
    assert mean_average_precision(ap, classes=[1]) is None
    assert mean_average_precision(ap, classes=[]) is None
    assert mean_average_precision([NAN, NAN]) is None


def test_mean_average_precision_end_to_end() -> None:
    # class 0: ranks pos, neg, pos, neg -> 5/6; class 1: ranks pos, pos, neg, neg -> 1;
    # class 2: no positive -> skipped. mAP = (5/6 + 1) / 2 = 11/12.
    y = [[1, 1, 0], [0, 1, 0], [1, 0, 0], [0, 0, 0]]
    s = [[0.9, 0.9, 0.1], [0.8, 0.8, 0.2], [0.7, 0.3, 0.3], [0.6, 0.2, 0.4]]
    ap = average_precision_per_class(y, s)
    assert mean_average_precision(ap) == pytest.approx(11.0 / 12.0)


def test_average_map_and_last() -> None:
    maps = [0.8, 0.6, 0.7]
    assert average_map(maps) == pytest.approx(0.7)  # (0.8 + 0.6 + 0.7) / 3
    assert maps[-1] == 0.7  # last mAP is the last task-end value
    assert average_map([]) is None
    with pytest.raises(ValueError):
        average_map([0.5, NAN])
    with pytest.raises(ValueError):
        average_map([80.0, 60.0])  # percentages are not mAP in [0, 1]
    with pytest.raises(ValueError):
        average_map([[0.5, 0.6]])


def test_map_forgetting() -> None:
    # M[i][j] = mAP on task j's classes after task i; cells above the diagonal are undefined.
    M = [
        [0.8, NAN, NAN],
        [0.6, 0.9, NAN],
        [0.5, 0.7, 0.95],
    ]
    # task 0: max(M[0][0], M[1][0]) - M[2][0] = 0.8 - 0.5 = 0.3
    # task 1: M[1][1] - M[2][1] = 0.9 - 0.7 = 0.2
    # F = (0.3 + 0.2) / 2 = 0.25
    assert map_forgetting(M) == pytest.approx(0.25)
    assert map_forgetting([[0.7]]) is None
    with pytest.raises(ValueError):
        map_forgetting([[0.5, 0.6]])


# ---------------------------------------------------------------- threshold and counts


def test_threshold_is_on_the_sigmoid() -> None:
    assert DEFAULT_THRESHOLD == 0.8
    # sigmoid(1.0) = 0.731 < 0.8 -> 0; sigmoid(2.0) = 0.881 > 0.8 -> 1;
    # sigmoid(0.0) = 0.5 -> 0; sigmoid(-3.0) = 0.047 -> 0
    s = [[1.0, 2.0, 0.0, -3.0]]
    assert predict_at_threshold(s).tolist() == [[0, 1, 0, 0]]
    # at 0.5 the logit 0.0 (sigmoid exactly 0.5) is still negative: the comparison is strict
    assert predict_at_threshold(s, threshold=0.5).tolist() == [[1, 1, 0, 0]]
    # huge logits do not overflow
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert predict_at_threshold([[800.0, -800.0]]).tolist() == [[1, 0]]
    with pytest.raises(ValueError):
        predict_at_threshold(s, threshold=1.5)
    with pytest.raises(ValueError):
        predict_at_threshold([1.0, 2.0])
    with pytest.raises(ValueError):
        predict_at_threshold([[NAN]])


def test_f1_counts_literal() -> None:
    y_true = [[1, 0, 1], [0, 1, 1], [1, 0, 0]]
    y_pred = [[1, 1, 0], [0, 0, 1], [1, 0, 1]]
    tp, fp, fn = f1_counts(y_true, y_pred)
    # class 0: rows 0 and 2 hit -> TP 2; class 1: row 0 false alarm, row 1 missed;
    # class 2: row 1 hit, row 2 false alarm, row 0 missed.
    assert tp.tolist() == [2, 0, 1]
    assert fp.tolist() == [0, 1, 1]
    assert fn.tolist() == [0, 1, 1]
    assert tp.dtype == fp.dtype == fn.dtype == np.int64


# Counts with a zero-division class (class 1: TP = FP = 0, so its precision is 0/0 -> 0).
TP = [3, 0, 1]
FP = [1, 0, 3]
FN = [0, 2, 1]


def test_cf1_prs_literal() -> None:
    # precision: 3/4, 0/0 -> 0, 1/4 -> CP = (0.75 + 0 + 0.25) / 3 = 1/3
    # recall:    3/3, 0/2,      1/2 -> CR = (1 + 0 + 0.5) / 3 = 1/2
    # CF1 = 2 * 1/3 * 1/2 / (1/3 + 1/2) = (1/3) / (5/6) = 2/5
    assert cf1_prs(TP, FP, FN) == pytest.approx(0.4)
    # classes {0, 2}: CP = (0.75 + 0.25) / 2 = 0.5, CR = (1 + 0.5) / 2 = 0.75
    # CF1 = 2 * 0.5 * 0.75 / 1.25 = 0.6
    assert cf1_prs(TP, FP, FN, classes=[0, 2]) == pytest.approx(0.6)


def test_cf1_literal() -> None:
    # F1_c = 2TP / (2TP + FP + FN): 6/(6+1+0) = 6/7; 0/(0+0+2) = 0; 2/(2+3+1) = 1/3
    # mean = (6/7 + 0 + 1/3) / 3 = (18/21 + 7/21) / 3 = 25/63
    assert cf1(TP, FP, FN) == pytest.approx(25.0 / 63.0)
    # classes {0, 2}: (6/7 + 1/3) / 2 = 25/42
    assert cf1(TP, FP, FN, classes=[0, 2]) == pytest.approx(25.0 / 42.0)


def test_of1_literal() -> None:
    # pooled: TP = 4, FP = 4, FN = 3 -> OP = 4/8 = 1/2, OR = 4/7
    # OF1 = 2 * 1/2 * 4/7 / (1/2 + 4/7) = (4/7) / (15/14) = 8/15
    assert of1(TP, FP, FN) == pytest.approx(8.0 / 15.0)
    # classes {0, 2}: TP = 4, FP = 4, FN = 1 -> OP = 1/2, OR = 4/5
    # OF1 = 2 * 0.4 / 1.3 = 8/13
    assert of1(TP, FP, FN, classes=[0, 2]) == pytest.approx(8.0 / 13.0)


def test_prs_cf1_differs_from_macro_cf1() -> None:
    # class 0: TP 1, FP 0, FN 9 -> P = 1, R = 0.1; class 1: TP 1, FP 9, FN 0 -> P = 0.1, R = 1
    # PRS: CP = CR = (1 + 0.1) / 2 = 0.55 -> CF1 = 2 * 0.55 * 0.55 / 1.1 = 0.55
    # macro: F1_0 = F1_1 = 2 / (2 + 0 + 9) = 2/11 -> mean 2/11 = 0.1818...
    tp, fp, fn = [1, 1], [0, 9], [9, 0]
    assert cf1_prs(tp, fp, fn) == pytest.approx(0.55)
    assert cf1(tp, fp, fn) == pytest.approx(2.0 / 11.0)
    # pooled: TP 2, FP 9, FN 9 -> OP = OR = 2/11 -> OF1 = 2/11
    assert of1(tp, fp, fn) == pytest.approx(2.0 / 11.0)


def test_zero_division_and_empty_selection() -> None:
    # nothing predicted, nothing true: every ratio is 0/0 -> 0
    assert cf1_prs([0, 0], [0, 0], [0, 0]) == 0.0
    assert cf1([0, 0], [0, 0], [0, 0]) == 0.0
    assert of1([0, 0], [0, 0], [0, 0]) == 0.0
    # only misses: CP = 0 (0/0), CR = 0 -> 0
    assert cf1_prs([0], [0], [5]) == 0.0
    assert of1([0], [0], [5]) == 0.0
    for f in (cf1_prs, cf1, of1):
        assert f(TP, FP, FN, classes=[]) is None


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_f1_variants_match_sklearn(seed: int) -> None:
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(seed)
    y = (rng.random((40, 6)) < 0.3).astype(int)
    y[:, 5] = 0  # a class with no positive
    pred = predict_at_threshold(rng.normal(scale=2.0, size=(40, 6)))
    pred[:, 4] = 0  # a class never predicted
    tp, fp, fn = f1_counts(y, pred)
    macro = f1_score(y, pred, average="macro", zero_division=0)
    micro = f1_score(y, pred, average="micro", zero_division=0)
    assert cf1(tp, fp, fn) == pytest.approx(macro, abs=1e-12)
    assert of1(tp, fp, fn) == pytest.approx(micro, abs=1e-12)


# ---------------------------------------------------------------- sample F1 (the Env's reward)


def test_sample_f1_literal_and_mask() -> None:
    y_true = [[1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 1, 1]]
    y_pred = [[1, 0, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0]]
    # row 0: P = {0}, T = {0, 1} -> 2*1 / (1 + 2) = 2/3
    # row 1: nothing to find, nothing predicted -> 1
    # row 2: P = {0}, T = {2, 3} -> 0
    np.testing.assert_allclose(sample_f1(y_true, y_pred), [2.0 / 3.0, 1.0, 0.0])
    # hide label 1 of row 0 (a true label that would otherwise be a miss): P = T = {0} -> 1
    # hide label 0 of row 2 (a predicted label that would otherwise be a false alarm):
    #   P = {}, T = {2, 3} -> 0 / 2 = 0
    mask = [[1, 0, 1, 1], [1, 1, 1, 1], [0, 1, 1, 1]]
    np.testing.assert_allclose(sample_f1(y_true, y_pred, mask), [1.0, 1.0, 0.0])
    # a row whose every label is hidden has nothing to find -> 1
    assert sample_f1([[1, 0]], [[0, 1]], [[0, 0]]).tolist() == [1.0]
    # hidden predicted label is no false positive: T = {2}, P = {2} after masking class 0
    assert sample_f1([[0, 0, 1]], [[1, 0, 1]], [[0, 1, 1]]).tolist() == [1.0]


# ---------------------------------------------------------------- malformed input


def test_value_errors() -> None:
    y = np.array([[1, 0], [0, 1]])
    with pytest.raises(ValueError):
        average_precision_per_class(y, np.zeros((2, 3)))  # shape mismatch
    with pytest.raises(ValueError):
        average_precision_per_class([1, 0], [0.2, 0.3])  # not n x C
    with pytest.raises(ValueError):
        average_precision_per_class([[2, 0]], [[0.1, 0.2]])  # not 0/1
    with pytest.raises(ValueError):
        average_precision_per_class(y, [[0.1, NAN], [0.2, 0.3]])  # non-finite score
    with pytest.raises(ValueError):
        f1_counts(y, np.zeros((3, 2)))
    with pytest.raises(ValueError):
        f1_counts(y, [[0.5, 0], [0, 1]])
    with pytest.raises(ValueError):
        sample_f1(y, y, mask=np.ones((2, 3)))
    with pytest.raises(ValueError):
        sample_f1(y, np.zeros((2, 1)))
    with pytest.raises(ValueError):
        cf1_prs([1, 2], [0, 0], [0])  # counts of different lengths
    with pytest.raises(ValueError):
        of1([1, -1], [0, 0], [0, 0])  # negative count
    with pytest.raises(ValueError):
        cf1([1.5], [0], [0])  # non-integer count
    with pytest.raises(ValueError):
        cf1_prs(TP, FP, FN, classes=[3])  # out of range
    with pytest.raises(ValueError):
        of1(TP, FP, FN, classes=[0, 0])  # repeated
    with pytest.raises(ValueError):
        cf1(TP, FP, FN, classes=[True, False])  # booleans are not indices
    with pytest.raises(ValueError):
        mean_average_precision([[0.5]])
    with pytest.raises(ValueError):
        mean_average_precision([0.5, 0.2], classes=[0.0])


def test_registry_entries() -> None:
    for name in ("map", "average_map", "cf1_prs", "cf1", "of1", "map_forgetting"):
        assert name in METRICS
        assert isinstance(METRICS[name], str) and METRICS[name] and "\n" not in METRICS[name]


def test_ap_of_a_perfect_ranking_is_exactly_one_and_averages() -> None:
    # found by a real run: scikit-learn returns 1.0000000000000002 for this perfect ranking
    # (36 samples, 21 positives), which average_map then refused as outside [0, 1]
    rng = np.random.default_rng(0)
    for _ in range(2000):
        n = int(rng.integers(3, 60))
        y = rng.integers(0, 2, n)
        if y.any():
            ranked = y + rng.random(n) * 0.5  # positives all above negatives
            ap = average_precision_per_class(y[:, None], ranked[:, None])
            assert ap[0] <= 1.0 and ap[0] == pytest.approx(1.0, abs=1e-12)
    assert average_map([1.0, 1.0]) == 1.0
