"""Metrics computed from the accuracy matrix R.

Notation (see docs/metrics.md): ``R[i][j]`` is the accuracy on task ``j``'s test set after
training through task ``i``; tasks are 0-based and there are ``T`` of them, so ``R`` is a
``T x T`` matrix. Cells above the diagonal (``j > i``) are accuracies on tasks not trained yet.

Every function here is pure: it takes plain sequences (lists of lists or numpy arrays) and
returns Python floats (or ``None`` when the metric is undefined). Only numpy is used.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "as_accuracy_matrix",
    "final_accuracy",
    "avg_incremental_accuracy",
    "per_task_forgetting",
    "average_forgetting",
    "forgetting_chaudhry",
    "bwt",
    "fwt",
    "intransigence",
    "FWT_REASON_FEW_TASKS",
    "FWT_REASON_NO_USABLE",
]

FWT_REASON_FEW_TASKS = "fewer than two tasks"
FWT_REASON_NO_USABLE = (
    "no task has classes with a usable output before its own task (e.g. disjoint class-incremental)"
)


def as_accuracy_matrix(R: ArrayLike) -> np.ndarray:
    """Return ``R`` as a float ``T x T`` numpy array, checking its shape.

    Raises:
        ValueError: if ``R`` is not two-dimensional and square with ``T >= 1``.
    """
    try:
        m = np.asarray(R, dtype=float)
    except (TypeError, ValueError) as exc:  # ragged lists, non-numeric cells
        raise ValueError(
            f"accuracy matrix R must be a square T x T array of floats: {exc}"
        ) from exc
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] < 1:
        raise ValueError(f"accuracy matrix R must be square T x T with T >= 1, got shape {m.shape}")
    return m


def _vector(x: ArrayLike, T: int, name: str) -> np.ndarray:
    v = np.asarray(x, dtype=float)
    if v.ndim != 1 or v.shape[0] != T:
        raise ValueError(f"{name} must have one entry per task (T={T}), got shape {v.shape}")
    return v


def final_accuracy(R: ArrayLike) -> float:
    """Average accuracy over all tasks after training on the last task.

    Formula::

        ACC = (1 / T) * sum_{j=0}^{T-1} R[T-1][j]

    Source: the "average accuracy" ACC of Lopez-Paz & Ranzato, "Gradient Episodic Memory for
    Continual Learning", NeurIPS 2017 (also Chaudhry et al. 2018, A_T).
    """
    m = as_accuracy_matrix(R)
    return float(np.mean(m[-1]))


def avg_incremental_accuracy(R: ArrayLike) -> float:
    """Average incremental accuracy: the mean over training stages of the accuracy on the
    tasks seen so far.

    Formula::

        AIA = (1 / T) * sum_{i=0}^{T-1} [ (1 / (i+1)) * sum_{j=0}^{i} R[i][j] ]

    Each row is first averaged over the tasks seen so far (task-weighted, not sample-weighted);
    then the rows are averaged.

    Source: Rebuffi et al., "iCaRL: Incremental Classifier and Representation Learning",
    CVPR 2017.
    """
    m = as_accuracy_matrix(R)
    T = m.shape[0]
    return float(np.mean([np.mean(m[i, : i + 1]) for i in range(T)]))


def per_task_forgetting(R: ArrayLike) -> list[float]:
    """Forgetting of each task ``j < T-1`` at the end of training (the terms of
    :func:`average_forgetting`).

    Formula::

        f_j = max_{j <= l <= T-2} R[l][j] - R[T-1][j]      for j = 0 .. T-2

    The maximum runs over the rows from the end of task ``j`` up to the row *before* the last
    one; the final row is never part of the maximum (including it would clip every term at 0).
    Returns an empty list when ``T < 2``.

    Source: Chaudhry et al., "Riemannian Walk for Incremental Learning: Understanding
    Forgetting and Intransigence", ECCV 2018 (restricted to rows after task j was learned).
    """
    m = as_accuracy_matrix(R)
    T = m.shape[0]
    return [float(np.max(m[j : T - 1, j]) - m[T - 1, j]) for j in range(T - 1)]


def average_forgetting(R: ArrayLike) -> float | None:
    """Average forgetting at the end of training.

    Formula::

        F = (1 / (T-1)) * sum_{j=0}^{T-2} ( max_{j <= l <= T-2} R[l][j] - R[T-1][j] )

    The max excludes the last row ``T-1`` and starts at the row where task ``j`` was learned.
    ``None`` when ``T < 2`` (nothing can be forgotten).

    Source: Chaudhry et al., "Riemannian Walk for Incremental Learning: Understanding
    Forgetting and Intransigence", ECCV 2018; the ``l >= j`` restriction is the common
    "best accuracy since the task was learned" reading (see docs/metrics.md).
    """
    terms = per_task_forgetting(R)
    if not terms:
        return None
    return float(np.mean(terms))


def forgetting_chaudhry(R: ArrayLike) -> float | None:
    """Average forgetting with the max over every earlier row, as written by Chaudhry et al.

    Formula::

        F = (1 / (T-1)) * sum_{j=0}^{T-2} ( max_{0 <= l <= T-2} R[l][j] - R[T-1][j] )

    Differs from :func:`average_forgetting` only when some ``R[l][j]`` with ``l < j`` (the
    accuracy on task ``j`` *before* it was trained, e.g. in blurry or overlapping streams)
    exceeds every later value. ``None`` when ``T < 2``.

    Source: Chaudhry et al., "Riemannian Walk for Incremental Learning: Understanding
    Forgetting and Intransigence", ECCV 2018, eq. for f_j^k with k = T-1.
    """
    m = as_accuracy_matrix(R)
    T = m.shape[0]
    if T < 2:
        return None
    terms = [np.max(m[: T - 1, j]) - m[T - 1, j] for j in range(T - 1)]
    return float(np.mean(terms))


def bwt(R: ArrayLike) -> float | None:
    """Backward transfer: how training on later tasks changed the accuracy on earlier ones.

    Formula::

        BWT = (1 / (T-1)) * sum_{j=0}^{T-2} ( R[T-1][j] - R[j][j] )

    Negative values mean forgetting. ``None`` when ``T < 2``.

    Source: Lopez-Paz & Ranzato, "Gradient Episodic Memory for Continual Learning",
    NeurIPS 2017.
    """
    m = as_accuracy_matrix(R)
    T = m.shape[0]
    if T < 2:
        return None
    return float(np.mean(m[T - 1, : T - 1] - np.diag(m)[: T - 1]))


def fwt(
    R: ArrayLike, b: ArrayLike, usable: Sequence[bool] | np.ndarray
) -> tuple[float | None, str | None]:
    """Forward transfer: how training on earlier tasks helps a task before it is trained.

    Formula::

        FWT = mean_{j >= 1, usable[j]} ( R[j-1][j] - b[j] )

    ``b[j]`` is the accuracy on task ``j`` of the model at initialisation (evaluated with the
    same output mask as ``R[j-1][j]``); it is required: ``mean R[j-1][j]`` alone is not FWT.
    ``usable[j]`` is False when task ``j``'s classes have no usable output before task ``j``
    (e.g. their logits are not yet active): that term is dropped. ``b[0]`` and ``usable[0]``
    are ignored.

    Returns:
        ``(value, None)``, or ``(None, reason)`` when ``T < 2`` ("fewer than two tasks") or
        when no term remains ("no task has classes with a usable output before its own task
        (e.g. disjoint class-incremental)").

    Source: Lopez-Paz & Ranzato, "Gradient Episodic Memory for Continual Learning",
    NeurIPS 2017.
    """
    m = as_accuracy_matrix(R)
    T = m.shape[0]
    bv = _vector(b, T, "b")
    uv = np.asarray(usable, dtype=bool)
    if uv.ndim != 1 or uv.shape[0] != T:
        raise ValueError(f"usable must have one entry per task (T={T}), got shape {uv.shape}")
    if T < 2:
        return None, FWT_REASON_FEW_TASKS
    terms = [m[j - 1, j] - bv[j] for j in range(1, T) if uv[j]]
    if not terms:
        return None, FWT_REASON_NO_USABLE
    return float(np.mean(terms)), None


def intransigence(R: ArrayLike, R_star: ArrayLike) -> float:
    """Intransigence: how much worse the learner does on each new task than a joint reference.

    Formula::

        I = (1 / T) * sum_{j=0}^{T-1} ( R_star[j] - R[j][j] )

    ``R_star[j]`` is the accuracy on task ``j`` of the reference model trained jointly on all
    tasks ``<= j`` (clenv's ``joint`` strategy at the same updates per sample).

    Source: Chaudhry et al., "Riemannian Walk for Incremental Learning: Understanding
    Forgetting and Intransigence", ECCV 2018 (averaged over tasks).
    """
    m = as_accuracy_matrix(R)
    T = m.shape[0]
    star = _vector(R_star, T, "R_star")
    return float(np.mean(star - np.diag(m)))
