"""The stable label mapping of AGCD (Ma et al. 2024, train_recipes_ema.py): the oracle answers
in the dataset's label space, the classifier has its own cluster indices. An EMA copy of the
model predicts every labelled and queried sample; a Hungarian assignment on the confusion
counts maps each ground-truth class to one classifier index; queried labels are trained through
that map."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def class_to_cluster(gt: ArrayLike, pred: ArrayLike, n_clusters: int) -> dict[int, int]:
    """Ground-truth class -> cluster index maximising the matched samples.

    Formula: W[i, k] = #{samples of the i-th present class predicted as cluster k}; the map is
    scipy's linear_sum_assignment on -W (one cluster per class, classes present in ``gt``
    only). Needs at most ``n_clusters`` distinct classes. Ties go to the lower cluster index
    (scipy's rule), so the result is deterministic.
    """
    from scipy.optimize import linear_sum_assignment

    gt = np.asarray(gt, dtype=np.int64)
    pred = np.asarray(pred, dtype=np.int64)
    if gt.shape != pred.shape or gt.ndim != 1:
        raise ValueError(f"gt and pred must be 1-D of one length, got {gt.shape}, {pred.shape}")
    if gt.size == 0:
        return {}
    if pred.min() < 0 or pred.max() >= n_clusters:
        raise ValueError(f"predicted clusters must lie in [0, {n_clusters})")
    classes, rows = np.unique(gt, return_inverse=True)
    if len(classes) > n_clusters:
        raise ValueError(f"{len(classes)} classes cannot map one-to-one to {n_clusters} clusters")
    W = np.zeros((len(classes), n_clusters), dtype=np.int64)
    np.add.at(W, (rows, pred), 1)
    r, k = linear_sum_assignment(-W)
    return {int(classes[i]): int(c) for i, c in zip(r, k, strict=True)}


def apply_mapping(labels: ArrayLike, mapping: dict[int, int]) -> np.ndarray:
    """Map dataset labels to classifier indices (every label must be in ``mapping``)."""
    labels = np.asarray(labels, dtype=np.int64)
    if labels.size == 0:
        return labels.copy()
    keys = np.fromiter(mapping.keys(), dtype=np.int64, count=len(mapping))
    vals = np.fromiter(mapping.values(), dtype=np.int64, count=len(mapping))
    order = np.argsort(keys)
    pos = np.searchsorted(keys[order], labels)
    pos = np.minimum(pos, len(keys) - 1)
    if not np.array_equal(keys[order][pos], labels):
        raise ValueError("a label has no mapped cluster")
    return vals[order][pos]
