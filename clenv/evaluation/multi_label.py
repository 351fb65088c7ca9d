"""Evaluation of multi-label streams (MLCIL protocol): after each task, the test images with at
least one seen class, scored on the seen classes only.

Per evaluation the log keeps, per class: its average precision on those images (scikit-learn's
non-interpolated AP; null for unseen classes or classes without a positive), its number of
positives, and TP / FP / FN at the sigmoid threshold — enough for mAP, CF1 (MULTI-LANE's),
CF1-PRS and OF1 as pure functions of the log.
"""

from __future__ import annotations

import numpy as np

from clenv.data.pool import Pool
from clenv.evaluation.base import batched_scores
from clenv.metrics.multilabel import average_precision_per_class, f1_counts, predict_at_threshold
from clenv.scenarios.stream import Stream


class MultiLabelEvaluator:
    """Scores a strategy on the multi-label test images."""

    def __init__(self, pool: Pool, stream: Stream, batch_size: int = 1024,
                 threshold: float = 0.8) -> None:
        self.pool = pool
        self.batch_size = batch_size
        self.threshold = threshold
        self.C = pool.n_classes
        self.test_idx = pool.test_indices
        self.y = pool.y[self.test_idx].astype(np.int64)

    def inputs(self, rows: np.ndarray) -> np.ndarray:
        return self.pool.x[self.test_idx[rows]]

    def scores(self, strategy, rows: np.ndarray) -> np.ndarray:
        """Scores (n, C) for the test images ``rows``."""
        return batched_scores(strategy, self.inputs, rows, [self.C], self.batch_size)[0]

    def evaluate(self, strategy, seen: np.ndarray, *, seen_units: np.ndarray | None = None,
                 task_aware: bool = False, fwt_masks: np.ndarray | None = None,
                 columns: list[int] | None = None) -> tuple[dict, np.ndarray | None]:
        """Counts on the test images with at least one seen class (seen: (C,) mask; a unit is
        a class, so ``seen_units``, when given, must equal it). The MLCIL protocol has no
        task-aware score, FWT baseline or column subset: asking for one raises."""
        if task_aware or fwt_masks is not None or columns is not None:
            raise ValueError("multi-label evaluation has no task-aware score, FWT baseline or "
                             "column subset")
        if seen_units is not None and not np.array_equal(seen_units, seen):
            raise ValueError("multi-label units are classes: seen_units must equal seen")
        rows = np.flatnonzero(self.y[:, seen].any(axis=1)) if seen.any() else np.zeros(0, int)
        rec: dict = {"n_images": int(len(rows)), "ap": [None] * self.C,
                     "pos": [0] * self.C, "tp": [0] * self.C, "fp": [0] * self.C,
                     "fn": [0] * self.C}
        if len(rows) == 0:
            return rec, None
        sc = self.scores(strategy, rows)
        y = self.y[rows]
        cls = np.flatnonzero(seen)
        sc_seen = np.nan_to_num(sc[:, cls], nan=0.0, neginf=-1e9, posinf=1e9)
        ap = average_precision_per_class(y[:, cls], sc_seen)
        tp, fp, fn = f1_counts(y[:, cls], predict_at_threshold(sc_seen, self.threshold))
        pos = y[:, cls].sum(axis=0)
        for i, c in enumerate(cls.tolist()):
            rec["ap"][c] = None if np.isnan(ap[i]) else float(ap[i])
            rec["pos"][c] = int(pos[i])
            rec["tp"][c], rec["fp"][c], rec["fn"][c] = int(tp[i]), int(fp[i]), int(fn[i])
        return rec, sc
