"""Evaluation of hierarchical (HLE) streams: every test sample is scored at every level.

Units are (level, class) pairs, id ``level_offset[l] + label``. One predict pass returns one
score matrix per level; per level the seen classes compete (task-agnostic), or the classes of
the unit's task (task-aware). For every level but the finest, the coarse accuracy that also
credits the parent of the next finer prediction and the consistency of the two predictions are
counted too (clenv.metrics.hierarchy).
"""

from __future__ import annotations

import numpy as np

from clenv.data.pool import Pool
from clenv.data.tree import level_labels, level_sizes, parents
from clenv.evaluation.base import batched_scores
from clenv.metrics.hierarchy import coarse_correct_with_parent, consistent_predictions
from clenv.scenarios.stream import Stream


class HierarchyEvaluator:
    """Per-level counts on the pool's test samples."""

    def __init__(self, pool: Pool, stream: Stream, batch_size: int = 1024) -> None:
        self.pool = pool
        self.batch_size = batch_size
        self.sizes = level_sizes(pool)
        self.L = len(self.sizes)
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)[:-1]]).astype(np.int64)
        self.U = int(sum(self.sizes))
        self.parents = parents(pool)
        in_stream = np.zeros(self.U, dtype=bool)
        self.col_of_unit = np.full(self.U, -1, dtype=np.int64)
        for j, units in enumerate(stream.columns):
            in_stream[units] = True
            self.col_of_unit[units] = j
        test = pool.test_indices
        lab = level_labels(pool)[test]
        units = self.offsets[None, :] + lab
        keep = in_stream[units].any(axis=1)
        self.test_idx, self.labels, self.units = test[keep], lab[keep], units[keep]
        self.in_stream = in_stream
        self.col_mask = []  # per column: its classes at its level
        for units_j in stream.columns:
            lv = int(np.searchsorted(self.offsets, units_j[0], side="right") - 1)
            m = np.zeros(self.sizes[lv], dtype=bool)
            m[units_j - self.offsets[lv]] = True
            self.col_mask.append((lv, m))

    def inputs(self, rows: np.ndarray) -> np.ndarray:
        return self.pool.x[self.test_idx[rows]]

    def scores(self, strategy, rows: np.ndarray) -> list[np.ndarray]:
        """One score matrix per level for the test rows ``rows``."""
        return batched_scores(strategy, self.inputs, rows, self.sizes, self.batch_size)

    @staticmethod
    def _predict(scores: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        masked = np.where(mask, scores, -np.inf)
        pred = masked.argmax(axis=1)
        valid = np.isfinite(np.take_along_axis(masked, pred[:, None], axis=1)[:, 0])
        return pred, valid

    def evaluate(self, strategy, seen: np.ndarray, *, seen_units: np.ndarray | None = None,
                 task_aware: bool = True, fwt_masks: np.ndarray | None = None,
                 columns: list[int] | None = None) -> tuple[dict, None]:
        """Counts per unit: total, agnostic (the level's head, seen classes compete), aware,
        sup (coarse head or parent of the finer prediction) and consistent. ``columns``: only
        units of these columns count. A hierarchy has no FWT baseline: ``fwt_masks`` is
        refused."""
        if fwt_masks is not None:
            raise ValueError("hierarchical evaluation has no FWT baseline; pass no fwt_masks")
        rows = np.arange(len(self.test_idx))
        if columns is not None:
            seen_units = np.isin(self.col_of_unit, columns) & (
                seen_units if seen_units is not None else True)
        if seen_units is not None:
            rows = rows[seen_units[self.units].any(axis=1)]
        rec = {k: np.zeros(self.U, dtype=np.int64)
               for k in ("total", "agnostic", "sup", "consistent", *(("aware",) if task_aware
                                                                     else ()))}
        if len(rows):
            sc = self.scores(strategy, rows)
            preds = []
            for lv in range(self.L):
                off, size = self.offsets[lv], self.sizes[lv]
                preds.append(self._predict(sc[lv], seen[off:off + size]))
            for lv in range(self.L):
                u = self.units[rows, lv]
                y = self.labels[rows, lv]
                keep = self.in_stream[u] & (seen_units[u] if seen_units is not None else True)
                pred, valid = preds[lv]
                ok = (pred == y) & valid
                rec["total"] += np.bincount(u[keep], minlength=self.U)
                rec["agnostic"] += np.bincount(u[keep & ok], minlength=self.U)
                if task_aware:
                    cols = self.col_of_unit[u]
                    mask = np.zeros((len(u), self.sizes[lv]), dtype=bool)
                    for j in np.unique(cols[cols >= 0]):
                        mask[cols == j] = self.col_mask[j][1]
                    p2, v2 = self._predict(sc[lv], mask)
                    rec["aware"] += np.bincount(u[keep & (p2 == y) & v2], minlength=self.U)
                if lv < self.L - 1:
                    fpred, fvalid = preds[lv + 1]
                    par = self.parents[lv]
                    sup = coarse_correct_with_parent(pred, fpred, par, y, valid, fvalid)
                    con = consistent_predictions(pred, fpred, par, valid, fvalid)
                    rec["sup"] += np.bincount(u[keep & sup], minlength=self.U)
                    rec["consistent"] += np.bincount(u[keep & con], minlength=self.U)
                else:
                    rec["sup"] += np.bincount(u[keep & ok], minlength=self.U)
        return {k: v.tolist() for k, v in rec.items()}, None
