"""Evaluation of continual regression: per unit (function) of the stream's columns, the sum of
squared errors and the number of test rows, so the MSE matrix and every other regression
metric is a pure function of the event log (clenv.metrics.regression)."""

from __future__ import annotations

import numpy as np

from clenv.data.pool import Pool
from clenv.data.sine import sine_targets
from clenv.evaluation.base import batched_scores
from clenv.scenarios.stream import Stream


class RegressionEvaluator:
    """Squared-error sums of a strategy's one-output predictions on the test rows."""

    def __init__(self, pool: Pool, stream: Stream, batch_size: int = 1024) -> None:
        self.pool, self.batch_size = pool, batch_size
        self.U = stream.n_units
        C = pool.n_classes
        test = pool.test_indices
        test_y = pool.y[test]
        units = np.concatenate([np.asarray(u, dtype=np.int64) for u in stream.columns]
                               + [np.zeros(0, dtype=np.int64)])
        idx = [test[test_y == u % C] for u in units]
        self.test_idx = np.concatenate(idx + [np.zeros(0, dtype=np.int64)])
        self.test_unit = np.concatenate([np.full(len(r), u) for r, u in zip(idx, units,
                                                                             strict=True)]
                                        + [np.zeros(0, dtype=np.int64)])
        self.target = sine_targets(pool, pool.x[self.test_idx], pool.y[self.test_idx])

    def inputs(self, rows: np.ndarray) -> np.ndarray:
        return self.pool.x[self.test_idx[rows]]

    def evaluate(self, strategy, seen: np.ndarray, *, seen_units: np.ndarray | None = None,
                 task_aware: bool = True, fwt_masks: np.ndarray | None = None,
                 columns: list[int] | None = None) -> tuple[dict, np.ndarray | None]:
        """{"sse": per-unit sum of squared errors, "count": per-unit test rows} and the
        (n, 1) predictions. ``seen_units``: only rows of these units (anytime evaluations).
        A regression run has no task-aware or FWT-baseline counts (the family record asks
        for none) and no column subsets: asking for them is a programming error."""
        if task_aware or fwt_masks is not None or columns is not None:
            raise ValueError("the regression evaluator counts squared errors only: no "
                             "task-aware, FWT-baseline or per-column evaluation")
        keep = np.ones(len(self.test_idx), dtype=bool)
        if seen_units is not None:
            keep &= seen_units[self.test_unit]
        rows = np.flatnonzero(keep)
        count = np.bincount(self.test_unit[rows], minlength=self.U)
        if not len(rows):
            return {"sse": [0.0] * self.U, "count": count.tolist()}, None
        pred = batched_scores(strategy, self.inputs, rows, [1], self.batch_size)[0]
        se = (pred[:, 0].astype(np.float64) - self.target[rows]) ** 2
        sse = np.bincount(self.test_unit[rows], weights=se, minlength=self.U)
        return {"sse": sse.tolist(), "count": count.tolist()}, pred
