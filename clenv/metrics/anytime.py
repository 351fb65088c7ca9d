"""Anytime, online and count-based accuracy metrics.

These work on accuracies measured during the stream (every ``eval.every`` samples), on
per-class correct/total counts, and on the running test-then-train counts of an online
learner. Pure numpy; see docs/metrics.md for the conventions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "a_auc",
    "a_last",
    "a_avg",
    "online_accuracy",
    "min_acc",
    "wc_acc",
    "accuracy_from_counts",
    "column_accuracies",
    "old_new_accuracy",
]


def _floats(x: ArrayLike, name: str) -> np.ndarray:
    v = np.asarray(x, dtype=float)
    if v.ndim != 1:
        raise ValueError(f"{name} must be a one-dimensional sequence, got shape {v.shape}")
    return v


def _counts(correct: ArrayLike, total: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Per-class correct and total counts as float vectors of one length."""
    c = _floats(correct, "correct")
    t = _floats(total, "total")
    if c.shape != t.shape:
        raise ValueError(
            f"correct and total must have the same length, got {c.shape} and {t.shape}"
        )
    return c, t


def a_auc(accuracies: Sequence[float]) -> float | None:
    """Area under the anytime-accuracy curve, with a constant evaluation period.

    Formula::

        A_auc = (1 / N) * sum_{n=1}^{N} A(f_n)

    where ``A(f_n)`` is the sample-weighted accuracy on the test samples of all classes seen so
    far, measured after every ``eval.every`` stream samples. With a constant period the area
    (sum of ``A * delta``) divided by the stream length is this plain mean. ``None`` for an
    empty list.

    Source: Koh et al., "Online Continual Learning on Class Incremental Blurry Task
    Configuration with Anytime Inference" (i-Blurry / CLIB), ICLR 2022.
    """
    v = _floats(accuracies, "accuracies")
    if v.size == 0:
        return None
    return float(np.mean(v))


def a_last(accuracies: Sequence[float]) -> float | None:
    """The last anytime accuracy (accuracy on seen classes at the end of the stream).

    Formula: ``A_last = A(f_N)``. ``None`` for an empty list.

    Source: Koh et al., "Online Continual Learning on Class Incremental Blurry Task
    Configuration with Anytime Inference", ICLR 2022.
    """
    v = _floats(accuracies, "accuracies")
    if v.size == 0:
        return None
    return float(v[-1])


def a_avg(task_end_accuracies: Sequence[float]) -> float | None:
    """Mean over task ends of the sample-weighted accuracy on all classes seen so far.

    Formula::

        A_avg = (1 / T) * sum_{i=0}^{T-1} A_i

    where ``A_i`` is computed from the pooled test samples of the classes seen through task
    ``i`` (sample-weighted, unlike :func:`avg_incremental_accuracy`, which averages task
    accuracies). ``None`` for an empty list.

    Source: Koh et al., "Online Continual Learning on Class Incremental Blurry Task
    Configuration with Anytime Inference", ICLR 2022 (A_avg); the same idea as Rebuffi et al.,
    "iCaRL", CVPR 2017.
    """
    v = _floats(task_end_accuracies, "task_end_accuracies")
    if v.size == 0:
        return None
    return float(np.mean(v))


def online_accuracy(correct: float, count: float) -> float | None:
    """Online (test-then-train) accuracy over first-exposure stream samples.

    Formula: ``online_acc = correct / count``, where each stream sample is predicted before
    the learner trains on it, and only its first exposure counts. ``None`` when ``count == 0``.

    Source: Cai, Sener & Koltun, "Online Continual Learning with Natural Distribution Shifts:
    An Empirical Study with Visual Data", ICCV 2021 (CLOC); the prequential evaluation of
    Gama et al., 2013.
    """
    if count < 0 or correct < 0 or correct > count:
        raise ValueError(f"need 0 <= correct <= count, got correct={correct}, count={count}")
    if count == 0:
        return None
    return float(correct) / float(count)


def min_acc(
    positions: Sequence[float],
    task_accuracies: ArrayLike,
    task_ends: Sequence[float],
) -> float | None:
    """Average minimum accuracy of the earlier tasks after they were learned.

    Formula (evaluated at the end of the stream, task ``T-1``)::

        min-ACC = (1 / (T-1)) * sum_{j=0}^{T-2} min_{n : positions[n] > task_ends[j]}
                  task_accuracies[j][n]

    ``positions[n]`` is the number of stream samples seen at anytime evaluation ``n``;
    ``task_accuracies[j][n]`` is the accuracy on task ``j``'s test set at that evaluation (nan
    where not measured, which is ignored); ``task_ends[j]`` is the number of samples seen at
    the end of task ``j``. Only evaluations strictly after task ``j`` was learned count, up to
    the end of the stream. Tasks with no such evaluation are skipped (and the mean runs over
    the remaining ones). ``None`` when ``T < 2`` or no task has such an evaluation.

    Source: De Lange, van de Ven & Tuytelaars, "Continual evaluation for lifelong learning:
    Identifying the stability gap", ICLR 2023.
    """
    pos = _floats(positions, "positions")
    ends = _floats(task_ends, "task_ends")
    acc = np.asarray(task_accuracies, dtype=float)
    T = ends.shape[0]
    if acc.ndim != 2 or acc.shape != (T, pos.shape[0]):
        raise ValueError(
            "task_accuracies must have shape (T, len(positions)) = "
            f"({T}, {pos.shape[0]}), got {acc.shape}"
        )
    if T < 2:
        return None
    minima: list[float] = []
    for j in range(T - 1):
        row = acc[j, pos > ends[j]]
        row = row[~np.isnan(row)]
        if row.size:
            minima.append(float(np.min(row)))
    if not minima:
        return None
    return float(np.mean(minima))


def wc_acc(min_acc_value: float | None, final_current_task_accuracy: float, T: int) -> float | None:
    """Worst-case accuracy: a trade-off between the accuracy on the current (last) task and
    the worst accuracy seen on the earlier tasks.

    Formula::

        WC-ACC_T = (1 / T) * A(T_{T-1}, f_final) + (1 - 1 / T) * min-ACC

    ``final_current_task_accuracy`` is the accuracy on the last task's test set at the end of
    the stream; ``min_acc_value`` is :func:`min_acc`. For ``T == 1`` this is the final current
    task accuracy; otherwise ``None`` when ``min_acc_value`` is ``None``.

    Source: De Lange, van de Ven & Tuytelaars, "Continual evaluation for lifelong learning:
    Identifying the stability gap", ICLR 2023.
    """
    if T < 1:
        raise ValueError(f"T must be >= 1, got {T}")
    if T == 1:
        return float(final_current_task_accuracy)
    if min_acc_value is None:
        return None
    return float(final_current_task_accuracy / T + (1.0 - 1.0 / T) * min_acc_value)


def accuracy_from_counts(
    correct: ArrayLike, total: ArrayLike, classes: Sequence[int] | np.ndarray
) -> float | None:
    """Sample-weighted accuracy over a set of classes, from per-class counts.

    Formula::

        acc = sum_{c in classes} correct[c] / sum_{c in classes} total[c]

    ``correct`` and ``total`` have one entry per class (length ``C``). ``None`` when the
    total is 0 (e.g. an empty class set). This is how the cells of the accuracy matrix R are
    built from per-class counts.

    Source: standard top-1 accuracy (sample-weighted; pooled over the classes).
    """
    c, t = _counts(correct, total)
    idx = np.asarray(classes, dtype=np.int64).reshape(-1)
    if idx.size and (idx.min() < 0 or idx.max() >= t.shape[0]):
        raise ValueError(f"class index out of range [0, {t.shape[0]}): {idx.tolist()}")
    denom = float(np.sum(t[idx]))
    if denom == 0:
        return None
    return float(np.sum(c[idx])) / denom


def column_accuracies(
    correct: ArrayLike, total: ArrayLike, columns: Sequence[np.ndarray]
) -> list[float | None]:
    """``accuracy_from_counts`` of every column (a set of classes) of one evaluation at once.

    Formula::

        acc_j = sum_{c in columns[j]} correct[c] / sum_{c in columns[j]} total[c]

    (None where the column has no test sample). One pass over the concatenated columns
    instead of one per column, so a row of the accuracy matrix of a T-task stream with C
    classes costs O(C + sum_j |columns[j]|), not O(T * C).
    """
    c, t = _counts(correct, total)
    J = len(columns)
    if J == 0:
        return []
    lengths = np.fromiter((len(col) for col in columns), dtype=np.int64, count=J)
    idx = np.concatenate([np.asarray(col, dtype=np.int64).reshape(-1) for col in columns])
    if idx.size and (idx.min() < 0 or idx.max() >= t.shape[0]):
        raise ValueError(f"class index out of range [0, {t.shape[0]})")
    owner = np.repeat(np.arange(J), lengths)
    num = np.bincount(owner, weights=c[idx], minlength=J)
    den = np.bincount(owner, weights=t[idx], minlength=J)
    return [None if d == 0 else float(n) / float(d) for n, d in zip(num, den, strict=True)]


def old_new_accuracy(
    correct: ArrayLike,
    total: ArrayLike,
    old_classes: Sequence[int] | np.ndarray,
    new_classes: Sequence[int] | np.ndarray,
) -> tuple[float | None, float | None]:
    """Sample-weighted accuracy over the old classes and over the new classes.

    Formula::

        old = sum_{c in old} correct[c] / sum_{c in old} total[c]
        new = sum_{c in new} correct[c] / sum_{c in new} total[c]

    ``None`` for a class set that is empty or has no test samples. Old classes are those seen
    in earlier tasks, new classes those introduced in the current task.

    Source: the old/new split used e.g. by Hou et al., "Learning a Unified Classifier
    Incrementally via Rebalancing" (LUCIR), CVPR 2019, and Wu et al., "Large Scale Incremental
    Learning" (BiC), CVPR 2019.
    """
    return (
        accuracy_from_counts(correct, total, old_classes),
        accuracy_from_counts(correct, total, new_classes),
    )
