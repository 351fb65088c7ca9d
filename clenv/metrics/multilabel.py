"""Metrics for multi-label streams (one sample may carry several classes at once).

Notation (see docs/metrics.md, "Multi-label metrics"):

- ``y_true`` is an ``n x C`` 0/1 matrix: ``y_true[i, c] = 1`` when sample ``i`` carries class
  ``c``. ``scores`` is an ``n x C`` matrix of real-valued logits; the predicted probability is
  ``sigmoid(scores)`` and a class is predicted when that probability exceeds a threshold (0.8
  by default, as in MULTI-LANE).
- ``tp``, ``fp``, ``fn`` are per-class counts (length ``C``) of true positives, false positives
  and false negatives of 0/1 predictions.
- ``classes`` restricts a mean to some class indices (e.g. the classes seen so far); ``None``
  means all ``C`` classes.
- Every ratio whose denominator is 0 counts as 0 (zero_division = 0), except the per-sample F1
  of a row with nothing to find and nothing predicted, which is 1.

Every function here is pure and returns numpy arrays, Python floats, or ``None`` when the
metric is undefined. Average precision comes from scikit-learn's ``average_precision_score``
(imported on first use); everything else needs only numpy.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from clenv.metrics.accuracy_matrix import average_forgetting

__all__ = [
    "DEFAULT_THRESHOLD",
    "average_precision_per_class",
    "mean_average_precision",
    "average_map",
    "map_forgetting",
    "predict_at_threshold",
    "f1_counts",
    "cf1",
    "cf1_prs",
    "of1",
    "sample_f1",
]

DEFAULT_THRESHOLD = 0.8


def _binary_matrix(x: ArrayLike, name: str) -> np.ndarray:
    """``x`` as an ``n x C`` int64 array of 0/1 values."""
    try:
        m = np.asarray(x, dtype=float)
    except (TypeError, ValueError) as exc:  # ragged lists, non-numeric cells
        raise ValueError(f"{name} must be an n x C array of 0/1 values: {exc}") from exc
    if m.ndim != 2:
        raise ValueError(f"{name} must be two-dimensional (n x C), got shape {m.shape}")
    if not np.all((m == 0) | (m == 1)):
        raise ValueError(f"{name} must hold only 0/1 values")
    return m.astype(np.int64)


def _score_matrix(x: ArrayLike, name: str) -> np.ndarray:
    try:
        m = np.asarray(x, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be an n x C array of floats: {exc}") from exc
    if m.ndim != 2:
        raise ValueError(f"{name} must be two-dimensional (n x C), got shape {m.shape}")
    if not np.all(np.isfinite(m)):
        raise ValueError(f"{name} must hold only finite values")
    return m


def _same_shape(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{name_a} and {name_b} must have the same shape, got {a.shape} "
                         f"and {b.shape}")


def _class_index(classes: Sequence[int] | np.ndarray | None, C: int) -> np.ndarray:
    """Check ``classes`` (distinct integers in ``[0, C)``); ``None`` means all ``C`` classes."""
    if classes is None:
        return np.arange(C, dtype=np.int64)
    arr = np.asarray(classes)
    if arr.ndim != 1:
        raise ValueError(f"classes must be a one-dimensional sequence of class indices, "
                         f"got {classes!r}")
    out: list[int] = []
    for c in arr.tolist():
        if isinstance(c, bool) or not isinstance(c, int) or not 0 <= c < C:
            raise ValueError(f"classes must hold integers in [0, {C}), got {c!r}")
        out.append(c)
    if len(set(out)) != len(out):
        raise ValueError(f"classes must not repeat a class, got {out}")
    return np.asarray(out, dtype=np.int64)


def _counts(tp: ArrayLike, fp: ArrayLike, fn: ArrayLike) -> tuple[np.ndarray, ...]:
    """Check three per-class count vectors of equal length (non-negative integers)."""
    out = []
    for name, x in (("tp", tp), ("fp", fp), ("fn", fn)):
        try:
            v = np.asarray(x, dtype=float)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name} must be a one-dimensional array of counts: {exc}") from exc
        if v.ndim != 1:
            raise ValueError(f"{name} must be one-dimensional (one count per class), "
                             f"got shape {v.shape}")
        if not np.all(np.isfinite(v) & (v >= 0) & (v == np.floor(v))):
            raise ValueError(f"{name} must hold non-negative integer counts")
        out.append(v)
    if not out[0].shape == out[1].shape == out[2].shape:
        raise ValueError(f"tp, fp and fn must have one entry per class each, got shapes "
                         f"{out[0].shape}, {out[1].shape}, {out[2].shape}")
    return tuple(out)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Elementwise ``num / den`` with 0 where ``den == 0`` (zero_division = 0)."""
    out = np.zeros(np.shape(num), dtype=float)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function."""
    out = np.empty_like(x, dtype=float)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    e = np.exp(x[~pos])
    out[~pos] = e / (1.0 + e)
    return out


def average_precision_per_class(y_true: ArrayLike, scores: ArrayLike) -> np.ndarray:
    """Non-interpolated average precision of each class, ranked by its score.

    Formula (for class ``c``, samples sorted by decreasing ``scores[:, c]``)::

        AP_c = sum_k ( R_k - R_{k-1} ) * P_k

    where ``P_k`` and ``R_k`` are the precision and recall at the ``k``-th distinct score
    threshold (``R_0 = 0``); with distinct scores this is the mean of the precision at the rank
    of each positive. Ties between scores are one threshold. Computed by scikit-learn's
    ``average_precision_score`` on ``scores`` (AP depends only on the ranking, so logits and
    sigmoid probabilities give the same value). ``nan`` for a class with no positive in
    ``y_true`` (its AP is undefined).

    Returns:
        A float array of shape ``(C,)``.

    Raises:
        ValueError: if ``y_true`` is not an ``n x C`` 0/1 matrix, ``scores`` is not a finite
            ``n x C`` matrix, or their shapes differ.

    Source: the AP of the PASCAL VOC / MS-COCO multi-label literature as used in multi-label
    continual learning (Kim et al., "Imbalanced Continual Learning with Partitioning Reservoir
    Sampling", ECCV 2020; MULTI-LANE, De Min et al. 2024, via torchmetrics'
    ``multilabel_average_precision``); scikit-learn, ``sklearn.metrics.average_precision_score``.
    """
    from sklearn.metrics import average_precision_score  # lazy: keeps clenv.metrics light

    y = _binary_matrix(y_true, "y_true")
    s = _score_matrix(scores, "scores")
    _same_shape(y, s, "y_true", "scores")
    C = y.shape[1]
    ap = np.full(C, np.nan)
    for c in range(C):
        if y[:, c].any():
            ap[c] = float(average_precision_score(y[:, c], s[:, c]))
    # scikit-learn's sum of (R_k - R_{k-1}) * P_k can land one rounding step above 1 on a
    # perfect ranking (1.0000000000000002); AP is a probability-like quantity, so clip
    np.clip(ap, 0.0, 1.0, out=ap)
    return ap


def mean_average_precision(
    ap: ArrayLike, classes: Sequence[int] | np.ndarray | None = None
) -> float | None:
    """Mean average precision (``map``) over the given classes that have a positive.

    Formula::

        mAP = mean_{c in classes, AP_c not nan} AP_c

    ``ap`` is the output of :func:`average_precision_per_class` (``nan`` marks a class with no
    positive in the evaluation set, which is skipped). ``classes`` defaults to all classes; in
    clenv it is the set of classes seen so far. ``None`` when no class is left.

    Raises:
        ValueError: if ``ap`` is not one-dimensional or ``classes`` holds an index out of range
            or a repeated one.

    Source: MULTI-LANE (De Min et al., "Less is more: Summarizing Patch Tokens for efficient
    Multi-Label Class-Incremental Learning", CoLLAs 2024), mean AP over seen classes.
    """
    try:
        v = np.asarray(ap, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"ap must be a one-dimensional array of floats: {exc}") from exc
    if v.ndim != 1:
        raise ValueError(f"ap must be one-dimensional (one AP per class), got shape {v.shape}")
    sel = v[_class_index(classes, v.shape[0])]
    sel = sel[~np.isnan(sel)]
    if sel.size == 0:
        return None
    return float(np.mean(sel))


def average_map(task_end_maps: Sequence[float] | np.ndarray) -> float | None:
    """Average mAP over task ends (MULTI-LANE's "Avg"); the last mAP is ``task_end_maps[-1]``.

    Formula::

        Avg = (1 / T) * sum_{i=0}^{T-1} mAP_i

    ``mAP_i`` is the mAP over the classes seen so far, measured at the end of task ``i``.
    ``None`` for an empty sequence.

    Raises:
        ValueError: if ``task_end_maps`` is not one-dimensional or holds a value that is not a
            finite number in ``[0, 1]`` (an undefined mAP cannot be averaged).

    Source: MULTI-LANE (De Min et al., CoLLAs 2024), "Avg" (average mAP) next to "Last".
    """
    try:
        v = np.asarray(task_end_maps, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"task_end_maps must be a sequence of floats: {exc}") from exc
    if v.ndim != 1:
        raise ValueError(f"task_end_maps must be one-dimensional, got shape {v.shape}")
    if v.size == 0:
        return None
    if not np.all(np.isfinite(v) & (v >= 0.0) & (v <= 1.0)):
        raise ValueError("task_end_maps must hold finite values in [0, 1]")
    return float(np.mean(v))


def map_forgetting(M: ArrayLike) -> float | None:
    """Average mAP forgetting: :func:`~clenv.metrics.accuracy_matrix.average_forgetting` on a
    per-task mAP matrix.

    Formula::

        F = (1 / (T-1)) * sum_{j=0}^{T-2} ( max_{j <= l <= T-2} M[l][j] - M[T-1][j] )

    ``M[i][j]`` is the mAP on task ``j``'s classes after training through task ``i``. ``None``
    when ``T < 2``.

    Raises:
        ValueError: if ``M`` is not square ``T x T``.

    Source: Chaudhry et al., ECCV 2018 (average forgetting), applied to mAP instead of accuracy.
    """
    return average_forgetting(M)


def predict_at_threshold(scores: ArrayLike, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """0/1 predictions: a class is predicted when its sigmoid probability exceeds ``threshold``.

    Formula::

        y_pred[i, c] = [ sigmoid(scores[i, c]) > threshold ],   sigmoid(x) = 1 / (1 + e^-x)

    The threshold applies to the sigmoid output, not to the logit: a logit of 1.0 (probability
    0.731) is negative at 0.8, a logit of 2.0 (probability 0.881) is positive.

    Returns:
        An ``n x C`` int8 array of 0/1.

    Raises:
        ValueError: if ``scores`` is not a finite ``n x C`` matrix or ``threshold`` is not a
            number in ``[0, 1]``.

    Source: MULTI-LANE (De Min et al., CoLLAs 2024), prediction = sigmoid(logit) > 0.8.
    """
    s = _score_matrix(scores, "scores")
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) \
            or not (math.isfinite(float(threshold)) and 0.0 <= float(threshold) <= 1.0):
        raise ValueError(f"threshold must be a number in [0, 1], got {threshold!r}")
    return (_sigmoid(s) > float(threshold)).astype(np.int8)


def f1_counts(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class true positives, false positives and false negatives of 0/1 predictions.

    Formula::

        TP_c = sum_i y_pred[i,c] * y_true[i,c]
        FP_c = sum_i y_pred[i,c] * (1 - y_true[i,c])
        FN_c = sum_i (1 - y_pred[i,c]) * y_true[i,c]

    Returns:
        ``(tp, fp, fn)``, three int64 arrays of shape ``(C,)``.

    Raises:
        ValueError: if either input is not an ``n x C`` 0/1 matrix or their shapes differ.

    Source: the standard confusion counts behind CP/CR/CF1 and OP/OR/OF1.
    """
    y = _binary_matrix(y_true, "y_true")
    p = _binary_matrix(y_pred, "y_pred")
    _same_shape(y, p, "y_true", "y_pred")
    tp = np.sum(p * y, axis=0, dtype=np.int64)
    fp = np.sum(p * (1 - y), axis=0, dtype=np.int64)
    fn = np.sum((1 - p) * y, axis=0, dtype=np.int64)
    return tp, fp, fn


def cf1(
    tp: ArrayLike, fp: ArrayLike, fn: ArrayLike, classes: Sequence[int] | np.ndarray | None = None
) -> float | None:
    """CF1 as MULTI-LANE computes it: the mean over classes of each class's F1 (macro F1).

    Formula (``c`` over ``classes``)::

        F1_c = 2 TP_c / (2 TP_c + FP_c + FN_c)    (0 when the denominator is 0)
        CF1 = mean_c F1_c

    ``None`` when ``classes`` is empty.

    Raises:
        ValueError: if the counts are not one-dimensional non-negative integers of one length,
            or ``classes`` holds an index out of range or a repeated one.

    Source: MULTI-LANE (De Min et al., CoLLAs 2024), code ``tdemin16/multi-lane``,
    ``multi_lane/utils.py`` (``f1_score_per_class``: the mean of per-class F1, zero_division 0).
    """
    t, f_p, f_n = _counts(tp, fp, fn)
    idx = _class_index(classes, t.shape[0])
    if idx.size == 0:
        return None
    t, f_p, f_n = t[idx], f_p[idx], f_n[idx]
    return float(np.mean(_ratio(2.0 * t, 2.0 * t + f_p + f_n)))


def cf1_prs(
    tp: ArrayLike, fp: ArrayLike, fn: ArrayLike, classes: Sequence[int] | np.ndarray | None = None
) -> float | None:
    """CF1 in the PRS convention: the harmonic mean of the mean precision and the mean recall
    (``cf1_prs`` in metrics.json).

    Formula (``c`` over ``classes``, each ratio 0 when its denominator is 0)::

        CP  = mean_c TP_c / (TP_c + FP_c)
        CR  = mean_c TP_c / (TP_c + FN_c)
        CF1_PRS = 2 * CP * CR / (CP + CR)      (0 when CP + CR = 0)

    This is not the mean of per-class F1 (see :func:`cf1`, MULTI-LANE's CF1). ``None`` when
    ``classes`` is empty.

    Raises:
        ValueError: if the counts are not one-dimensional non-negative integers of one length,
            or ``classes`` holds an index out of range or a repeated one.

    Source: Kim et al., "Imbalanced Continual Learning with Partitioning Reservoir Sampling",
    ECCV 2020 (code ``cdjkim/PRS``, ``eval.py``: CP, CR, CF1).
    """
    t, f_p, f_n = _counts(tp, fp, fn)
    idx = _class_index(classes, t.shape[0])
    if idx.size == 0:
        return None
    t, f_p, f_n = t[idx], f_p[idx], f_n[idx]
    cp = float(np.mean(_ratio(t, t + f_p)))
    cr = float(np.mean(_ratio(t, t + f_n)))
    return 0.0 if cp + cr == 0 else 2.0 * cp * cr / (cp + cr)


def of1(
    tp: ArrayLike, fp: ArrayLike, fn: ArrayLike, classes: Sequence[int] | np.ndarray | None = None
) -> float | None:
    """Overall (micro) F1 from counts pooled over the classes.

    Formula (sums over ``c`` in ``classes``, each ratio 0 when its denominator is 0)::

        OP  = sum_c TP_c / sum_c (TP_c + FP_c)
        OR  = sum_c TP_c / sum_c (TP_c + FN_c)
        OF1 = 2 * OP * OR / (OP + OR)          (0 when OP + OR = 0)

    ``None`` when ``classes`` is empty.

    Raises:
        ValueError: as :func:`cf1`.

    Source: Kim et al., ECCV 2020 (OP, OR, OF1); MULTI-LANE (De Min et al., CoLLAs 2024).
    """
    t, f_p, f_n = _counts(tp, fp, fn)
    idx = _class_index(classes, t.shape[0])
    if idx.size == 0:
        return None
    st, sp, sn = float(t[idx].sum()), float(f_p[idx].sum()), float(f_n[idx].sum())
    op = st / (st + sp) if st + sp > 0 else 0.0
    orr = st / (st + sn) if st + sn > 0 else 0.0
    return 0.0 if op + orr == 0 else 2.0 * op * orr / (op + orr)


def sample_f1(y_true: ArrayLike, y_pred: ArrayLike, mask: ArrayLike | None = None) -> np.ndarray:
    """Per-sample F1 between the predicted and the true label sets, over visible labels.

    Formula (``P_i``, ``T_i`` the predicted and true classes of sample ``i`` among those with
    ``mask[i, c] = 1``)::

        F1_i = 2 |P_i ∩ T_i| / (|P_i| + |T_i|)      (1 when |P_i| + |T_i| = 0)

    A hidden label (``mask = 0``) counts neither as a positive nor as a negative: predicting it
    is no false positive and missing it is no false negative. A row with nothing to find and
    nothing predicted scores 1. ``mask=None`` shows every label. The Env's multi-label reward
    is the mean of this over the valid rows of a batch.

    Returns:
        A float array of shape ``(n,)``.

    Raises:
        ValueError: if an input is not an ``n x C`` 0/1 matrix or the shapes differ.

    Source: the example-based F1 of multi-label learning (Godbole & Sarawagi, "Discriminative
    Methods for Multi-labeled Classification", PAKDD 2004); masking is clenv's convention for
    partially labelled samples.
    """
    y = _binary_matrix(y_true, "y_true")
    p = _binary_matrix(y_pred, "y_pred")
    _same_shape(y, p, "y_true", "y_pred")
    if mask is not None:
        m = _binary_matrix(mask, "mask")
        _same_shape(y, m, "y_true", "mask")
        y, p = y * m, p * m
    inter = np.sum(y * p, axis=1).astype(float)
    den = (np.sum(y, axis=1) + np.sum(p, axis=1)).astype(float)
    out = np.ones(y.shape[0], dtype=float)
    np.divide(2.0 * inter, den, out=out, where=den > 0)
    return out
