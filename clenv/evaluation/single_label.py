"""Evaluation on the pool's test set: per-unit counts of correct predictions under a mask.

A unit is a (domain, class) pair (DESIGN.md: one column of R per task or concept, a concept
being a class set under one input domain). The test rows are the test samples of every unit in
a column, under that unit's domain transform. One predict pass gives the scores; masks decide
which classes compete: task-agnostic (all classes seen so far), task-aware (the classes of the
row's column), or any per-column mask (the FWT baseline at initialisation). Counts, not
accuracies, go to the event log, so every metric is a pure function of the log.
"""

from __future__ import annotations

import numpy as np

from clenv.data.pool import Pool
from clenv.evaluation.base import batched_scores
from clenv.scenarios.stream import Stream


class Evaluator:
    """Scores a strategy on the test rows of the stream's columns."""

    def __init__(self, pool: Pool, stream: Stream, batch_size: int = 1024) -> None:
        self.pool = pool
        self.stream = stream
        self.batch_size = batch_size
        self.C = pool.n_classes
        self.U = stream.n_units
        test = pool.test_indices
        test_y = pool.y[test]
        idx, unit, col = [], [], []
        for j, units in enumerate(stream.columns):
            for u in np.asarray(units, dtype=np.int64):
                rows = test[test_y == u % self.C]
                idx.append(rows)
                unit.append(np.full(len(rows), u))
                col.append(np.full(len(rows), j))
        empty = [np.zeros(0, dtype=np.int64)]
        self.test_idx, self.test_unit, self.test_col = (
            np.concatenate(parts + empty) for parts in (idx, unit, col))
        self.test_y = self.test_unit % self.C
        self.test_domain = self.test_unit // self.C
        self._x = None
        if stream.n_domains > 1:  # transformed test inputs, fixed once per run
            x = pool.x[self.test_idx]
            for d in range(1, stream.n_domains):
                sel = self.test_domain == d
                if sel.any():
                    rng = np.random.default_rng(np.random.SeedSequence([stream.seed, 0x7E57, d]))
                    x[sel] = stream.transform(x[sel], d, rng)
            self._x = x
        self.col_mask = np.zeros((len(stream.columns), self.C), dtype=bool)
        for j, units in enumerate(stream.columns):
            self.col_mask[j, np.asarray(units, dtype=np.int64) % self.C] = True

    def inputs(self, rows: np.ndarray) -> np.ndarray:
        return self._x[rows] if self._x is not None else self.pool.x[self.test_idx[rows]]

    def scores(self, strategy, rows: np.ndarray) -> np.ndarray:
        """Scores (n, C) for the test rows ``rows``, in predict calls of batch_size rows."""
        return batched_scores(strategy, self.inputs, rows, [self.C], self.batch_size)[0]

    def counts(self, scores: np.ndarray, rows: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Per-unit correct counts; ``mask`` is (C,) or per-row (n, C). A row counts as
        correct only when its best allowed score is finite: a row with no allowed class, or
        whose allowed classes the strategy itself masked to -inf, is never correct."""
        masked = np.where(mask, scores, -np.inf)
        pred = masked.argmax(axis=1)
        best = np.take_along_axis(masked, pred[:, None], axis=1)[:, 0]
        ok = (pred == self.test_y[rows]) & np.isfinite(best)
        return np.bincount(self.test_unit[rows][ok], minlength=self.U)

    def evaluate(self, strategy, seen: np.ndarray, *, seen_units: np.ndarray | None = None,
                 task_aware: bool = True, fwt_masks: np.ndarray | None = None,
                 columns: list[int] | None = None) -> tuple[dict, np.ndarray | None]:
        """Counts on the test rows. ``seen``: (C,) classes that compete (task-agnostic).

        seen_units: evaluate only rows of these units (anytime evaluations); columns: only
        rows of these columns; fwt_masks: (n_columns, C) per-column masks for the FWT
        baseline (row j = classes usable when R[j-1][j] is measured).
        """
        keep = np.ones(len(self.test_idx), dtype=bool)
        if seen_units is not None:
            keep &= seen_units[self.test_unit]
        if columns is not None:
            keep &= np.isin(self.test_col, columns)
        rows = np.flatnonzero(keep)
        rec: dict = {"total": np.bincount(self.test_unit[rows], minlength=self.U).tolist()}
        zero = [0] * self.U
        if len(rows) == 0:
            rec["agnostic"] = zero
            if task_aware:
                rec["aware"] = zero
            if fwt_masks is not None:
                rec["fwt_base"] = zero
            return rec, None
        sc = self.scores(strategy, rows)
        rec["agnostic"] = self.counts(sc, rows, seen).tolist()
        cols = self.test_col[rows]
        if task_aware:
            rec["aware"] = self.counts(sc, rows, self.col_mask[cols]).tolist()
        if fwt_masks is not None:
            rec["fwt_base"] = self.counts(sc, rows, fwt_masks[cols]).tolist()
        return rec, sc
