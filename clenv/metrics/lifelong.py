"""Metrics for task-free / lifelong streams.

Notation (see docs/metrics.md, "Lifelong (task-free) streams"):

- A *unit* is a class, or a (class, domain) pair; ``acc[n, u]`` is the accuracy on unit
  ``u``'s test samples at evaluation ``n`` (stream order), nan where it was not measured.
- A *concept* is a class set under one input domain, one column of the rectangular accuracy
  matrix ``R``. ``R[i][j]`` is the accuracy on concept ``j``'s test set at the end of segment
  ``i``; there are ``T`` rows. ``first_row[j]`` is the row of the segment in which concept
  ``j`` was first trained (``None`` if it never was).
- A *related pair* ``A -> B`` is two consecutive segments whose concepts are related; forward
  and backward transfer are measured on such pairs.

Every function here is pure: it takes plain numbers or sequences and returns Python floats
(or ``None`` when the metric is undefined). Only numpy is used.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "f_last",
    "concept_forgetting",
    "concept_final_accuracy",
    "pair_forward_transfer",
    "pair_backward_transfer",
    "few_shot_summary",
]


def _matrix(x: ArrayLike, name: str) -> np.ndarray:
    try:
        m = np.asarray(x, dtype=float)
    except (TypeError, ValueError) as exc:  # ragged lists, non-numeric cells
        raise ValueError(f"{name} must be a two-dimensional array of floats: {exc}") from exc
    if m.ndim != 2:
        raise ValueError(f"{name} must be two-dimensional, got shape {m.shape}")
    return m


def _accuracy(x: object, name: str) -> float:
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise ValueError(f"{name} must be a real number in [0, 1], got {x!r}")
    v = float(x)
    if not (math.isfinite(v) and 0.0 <= v <= 1.0):
        raise ValueError(f"{name} must be a real number in [0, 1], got {v!r}")
    return v


def _rows(R: ArrayLike, first_row: Sequence[int | None]) -> tuple[np.ndarray, list[int | None]]:
    """Check ``R`` (T x C, T >= 1) and ``first_row`` (C entries, each None or 0 <= r < T)."""
    m = _matrix(R, "accuracy matrix R")
    T, C = m.shape
    if T < 1:
        raise ValueError(f"accuracy matrix R needs at least one row, got shape {m.shape}")
    rows = list(first_row)
    if len(rows) != C:
        raise ValueError(
            f"first_row must have one entry per column of R (C={C}), got {len(rows)} entries"
        )
    out: list[int | None] = []
    for j, r in enumerate(rows):
        if r is None:
            out.append(None)
            continue
        if isinstance(r, bool) or not isinstance(r, numbers.Integral) or not 0 <= int(r) < T:
            raise ValueError(f"first_row[{j}] must be None or an integer in [0, {T}), got {r!r}")
        out.append(int(r))
    return m, out


def f_last(unit_accuracies: ArrayLike) -> float | None:
    """Class-wise forgetting at the end of the stream (F_last), as the i-Blurry code computes it.

    Formula::

        F_last = mean_{u in Q} ( max_{n < N-1} acc[n, u] - acc[N-1, u] )

        Q = { u : max_{n < N-1} acc[n, u] > 0 and acc[N-1, u] is measured }

    ``unit_accuracies`` has shape ``(N, U)``: ``acc[n, u]`` is the accuracy of unit ``u`` (a
    class, or a (class, domain) pair) at evaluation ``n`` in stream order, nan where the unit
    was not measured (not seen yet, or no test samples). clenv's ``f_last`` passes the
    task-end rows (one per task end, each model evaluated once); ``f_last_anytime`` passes
    every evaluation in stream order, one per position. The max runs over the measured rows
    *before* the last one, so a unit that improves at the end gives a negative term. A unit
    whose best earlier accuracy is 0 (or never measured) is skipped, as in the official code
    (``if max(cls_acc[:-1, j]) > 0``). ``None`` when ``N < 2`` or no unit qualifies.

    Source: Koh et al., "Online Continual Learning on Class Incremental Blurry Task
    Configuration with Anytime Inference" (i-Blurry / CLIB), ICLR 2022; naver-ai/i-Blurry
    ``main.py`` (end of ``main``).
    """
    acc = _matrix(unit_accuracies, "unit_accuracies")
    N = acc.shape[0]
    if N < 2 or acc.shape[1] == 0:
        return None
    earlier = acc[: N - 1]
    measured = ~np.isnan(earlier).all(axis=0)
    best = np.full(acc.shape[1], np.nan)
    best[measured] = np.nanmax(earlier[:, measured], axis=0)
    last = acc[N - 1]
    keep = measured & (np.nan_to_num(best, nan=0.0) > 0) & ~np.isnan(last)
    if not keep.any():
        return None
    return float(np.mean(best[keep] - last[keep]))


def concept_forgetting(R: ArrayLike, first_row: Sequence[int | None]) -> float | None:
    """Average forgetting of the trained concepts of a rectangular accuracy matrix.

    Formula::

        F = mean_{j in Q} ( max_{first_row[j] <= l <= T-2} R[l][j] - R[T-1][j] )

        Q = { j : first_row[j] is not None and first_row[j] < T-1 }

    ``R`` has ``T`` rows (segment ends) and one column per concept; concept ``j`` is first
    trained in row ``first_row[j]`` (``None`` if never). The max starts at the row where the
    concept was first trained and never includes the last row ``T-1``. nan cells (not
    measured) are ignored in the max; a concept whose last cell is nan, or with no measured
    cell in the range, is skipped. For a square ``R`` with ``first_row[j] = j`` this equals
    :func:`clenv.metrics.accuracy_matrix.average_forgetting`. ``None`` when no term exists.

    Raises:
        ValueError: if ``R`` is not two-dimensional with ``T >= 1`` rows, or ``first_row``
            does not have one entry (None or an integer in ``[0, T)``) per column.

    Source: Chaudhry et al., "Riemannian Walk for Incremental Learning: Understanding
    Forgetting and Intransigence", ECCV 2018, with columns indexed by concept instead of task.
    """
    m, rows = _rows(R, first_row)
    T = m.shape[0]
    terms: list[float] = []
    for j, r in enumerate(rows):
        if r is None or r >= T - 1 or math.isnan(m[T - 1, j]):
            continue
        col = m[r : T - 1, j]
        col = col[~np.isnan(col)]
        if col.size == 0:
            continue
        terms.append(float(np.max(col) - m[T - 1, j]))
    if not terms:
        return None
    return float(np.mean(terms))


def concept_final_accuracy(R: ArrayLike, first_row: Sequence[int | None]) -> float | None:
    """Mean final accuracy over the concepts that were trained.

    Formula::

        ACC = mean_{j : first_row[j] is not None} R[T-1][j]

    Concepts never trained (``first_row[j] is None``) are left out, and so is a nan final
    cell (not measured). ``None`` when no term exists.

    Raises:
        ValueError: as :func:`concept_forgetting`.

    Source: the "average accuracy" ACC of Lopez-Paz & Ranzato, "Gradient Episodic Memory for
    Continual Learning", NeurIPS 2017, restricted to trained concepts.
    """
    m, rows = _rows(R, first_row)
    final = [m[-1, j] for j, r in enumerate(rows) if r is not None and not math.isnan(m[-1, j])]
    if not final:
        return None
    return float(np.mean(final))


def pair_forward_transfer(learner_after_k: float, scratch_after_k: float) -> float:
    """Forward transfer of a related pair ``A -> B``.

    Formula::

        FWT(A -> B) = acc_B(learner after A, then k samples of B)
                      - acc_B(from-scratch copy after the same k samples of B)

    Both terms are accuracies on B's test set: ``learner_after_k`` for the continual learner
    after the first ``k`` samples of B's segment, ``scratch_after_k`` for a fresh copy of the
    learner (same strategy, same seed) trained only on those ``k`` samples. Positive means
    what was learned before (A) helped B.

    Raises:
        ValueError: if an argument is not a finite number in ``[0, 1]``.

    Source: Ling & Bohn, "A Deep Learning Framework for Lifelong Machine Learning",
    arXiv 2105.00157, 2021 (forward transfer as a property); the from-scratch baseline follows
    the forward transfer against an independently trained learner of Díaz-Rodríguez et al.,
    "Don't forget, there is more than forgetting: new metrics for Continual Learning", 2018.
    """
    a = _accuracy(learner_after_k, "learner_after_k")
    b = _accuracy(scratch_after_k, "scratch_after_k")
    return a - b


def pair_backward_transfer(before: float, after: float) -> float:
    """Backward transfer of a related pair ``A -> B``.

    Formula::

        BWT(A -> B) = acc_A(end of B's segment) - acc_A(start of B's segment)

    ``before`` and ``after`` are accuracies on A's test set at the start and at the end of B's
    segment. Positive means training on B helped A; negative means B made the learner forget A.

    Raises:
        ValueError: if an argument is not a finite number in ``[0, 1]``.

    Source: Lopez-Paz & Ranzato, "Gradient Episodic Memory for Continual Learning",
    NeurIPS 2017 (BWT, for one pair of tasks); Ling & Bohn, arXiv 2105.00157, 2021.
    """
    b = _accuracy(before, "before")
    a = _accuracy(after, "after")
    return a - b


def few_shot_summary(curve: Sequence[float]) -> dict[str, float] | None:
    """Summary of a few-shot concept's learning curve.

    Formula (``R = len(curve)``; ``curve[r]`` is the accuracy on the concept's test set after
    ``r+1`` passes over its ``k`` training examples)::

        after_k = curve[0]
        final   = curve[R-1]
        mean    = (1 / R) * sum_r curve[r]
        gain    = curve[R-1] - curve[0]

    ``None`` for an empty curve.

    Raises:
        ValueError: if ``curve`` is not one-dimensional or holds a value that is not finite.

    Source: the usual k-shot accuracy of few-shot learning (``after_k``); the curve over
    repeated passes and its summary are clenv's convention.
    """
    v = np.asarray(curve, dtype=float)
    if v.ndim != 1:
        raise ValueError(f"curve must be a one-dimensional sequence, got shape {v.shape}")
    if v.size == 0:
        return None
    if not np.all(np.isfinite(v)):
        raise ValueError(f"curve must hold finite accuracies, got {v.tolist()}")
    return {
        "after_k": float(v[0]),
        "final": float(v[-1]),
        "mean": float(np.mean(v)),
        "gain": float(v[-1] - v[0]),
    }
