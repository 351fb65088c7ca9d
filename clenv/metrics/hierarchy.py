"""Hierarchy-level rules (HLE, Lee et al. ICCV 2023): the coarse accuracy that also credits the
parent of the fine prediction, and the consistency of predictions across levels. Elementwise
rules on predictions (the evaluator applies them) and rates from their counts."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def coarse_correct_with_parent(coarse_pred: ArrayLike, fine_pred: ArrayLike,
                               parent_of_fine: ArrayLike, y_coarse: ArrayLike,
                               coarse_valid: ArrayLike | None = None,
                               fine_valid: ArrayLike | None = None) -> np.ndarray:
    """Per sample: is the coarse label right by the coarse head OR by the parent of the fine
    head's prediction?

    Formula: ok_i = [coarse_pred_i = y_i and coarse_valid_i]
                    or [parent(fine_pred_i) = y_i and fine_valid_i]

    ``*_valid`` mark predictions that exist (a head with at least one seen class and a finite
    best score); default all valid. Source: Lee et al. 2023 (HLE), single-depth coarse accuracy
    ("sup"); the coarse head alone is ``coarse_pred == y`` ("sup_only").
    """
    cp, fp, y = (np.asarray(a, dtype=np.int64) for a in (coarse_pred, fine_pred, y_coarse))
    par = np.asarray(parent_of_fine)
    cv = np.ones(len(cp), dtype=bool) if coarse_valid is None else np.asarray(coarse_valid, bool)
    fv = np.ones(len(fp), dtype=bool) if fine_valid is None else np.asarray(fine_valid, bool)
    via_fine = np.zeros(len(fp), dtype=bool)
    via_fine[fv] = par[fp[fv]] == y[fv]
    return ((cp == y) & cv) | via_fine


def consistent_predictions(coarse_pred: ArrayLike, fine_pred: ArrayLike,
                           parent_of_fine: ArrayLike, coarse_valid: ArrayLike | None = None,
                           fine_valid: ArrayLike | None = None) -> np.ndarray:
    """Per sample: does the fine prediction's parent equal the coarse prediction?

    Formula: c_i = [parent(fine_pred_i) = coarse_pred_i], false where either prediction is
    missing. The hierarchy-consistency rate is the mean of c_i (see ``rate``).
    """
    cp, fp = np.asarray(coarse_pred, dtype=np.int64), np.asarray(fine_pred, dtype=np.int64)
    par = np.asarray(parent_of_fine)
    cv = np.ones(len(cp), dtype=bool) if coarse_valid is None else np.asarray(coarse_valid, bool)
    fv = np.ones(len(fp), dtype=bool) if fine_valid is None else np.asarray(fine_valid, bool)
    out = np.zeros(len(cp), dtype=bool)
    both = cv & fv
    out[both] = par[fp[both]] == cp[both]
    return out


def rate(count: ArrayLike, total: ArrayLike, units: ArrayLike) -> float | None:
    """sum_{u in units} count[u] / sum_{u in units} total[u]; None when the total is 0.

    Used for per-level accuracy (count = correct), coarse accuracy with the parent rule and the
    hierarchy-consistency rate (count = consistent predictions)."""
    c, t = np.asarray(count, dtype=float), np.asarray(total, dtype=float)
    idx = np.asarray(units, dtype=np.int64)
    denom = float(t[idx].sum())
    return None if denom == 0 else float(c[idx].sum()) / denom
