"""Clustering accuracy for generalized category discovery (GCD): one Hungarian assignment of
predicted clusters to ground-truth classes over all evaluated samples, then the accuracy on all,
old and new classes under that same assignment (Vaze et al. 2022, "Generalized Category
Discovery"; the convention AGCD, Ma et al. 2024, reports). The contingency matrix is the
sufficient statistic an event log keeps."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def contingency(y_true: ArrayLike, y_pred: ArrayLike, n_classes: int | None = None,
                n_clusters: int | None = None) -> np.ndarray:
    """M[c, k] = number of samples of true class c predicted as cluster k."""
    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.int64)
    if t.shape != p.shape or t.ndim != 1:
        raise ValueError(f"y_true and y_pred must be 1-D of one length, got {t.shape}, {p.shape}")
    if t.size and (t.min() < 0 or p.min() < 0):
        raise ValueError("labels and clusters must be non-negative ids")
    C = n_classes if n_classes is not None else (int(t.max()) + 1 if t.size else 0)
    K = n_clusters if n_clusters is not None else (int(p.max()) + 1 if p.size else 0)
    M = np.zeros((C, K), dtype=np.int64)
    np.add.at(M, (t, p), 1)
    return M


def hungarian_mapping(M: ArrayLike) -> dict[int, int]:
    """cluster -> class maximising the matched samples sum_k M[map(k), k] (scipy's
    linear_sum_assignment on -M); clusters left unmatched map to no class."""
    from scipy.optimize import linear_sum_assignment

    M = np.asarray(M)
    if M.size == 0:
        return {}
    rows, cols = linear_sum_assignment(-M)
    return {int(k): int(c) for c, k in zip(rows, cols, strict=True)}


def cluster_accuracy(M: ArrayLike, old_classes: ArrayLike) -> dict[str, float | None]:
    """All / Old / New clustering accuracy under ONE assignment over all samples.

    Formula: with the Hungarian mapping m (cluster -> class) computed on the whole contingency
    matrix M, correct(c) = sum_k M[c, k] [m(k) = c];
    all = sum_c correct(c) / sum M, old = sum_{c in old} correct(c) / sum_{c in old} M[c, :],
    new the same over the other classes; None for an empty subset. Computing a separate
    assignment per subset (a known trap) inflates old and new.
    """
    M = np.asarray(M, dtype=np.int64)
    mapping = hungarian_mapping(M)
    correct = np.zeros(M.shape[0], dtype=np.int64)
    for k, c in mapping.items():
        correct[c] += M[c, k]
    totals = M.sum(axis=1)
    old = np.zeros(M.shape[0], dtype=bool)
    ids = np.asarray(old_classes, dtype=np.int64)
    old[ids[ids < M.shape[0]]] = True

    def acc(mask: np.ndarray) -> float | None:
        n = totals[mask].sum()
        return None if n == 0 else float(correct[mask].sum() / n)

    return {"all": acc(np.ones_like(old)), "old": acc(old), "new": acc(~old)}
