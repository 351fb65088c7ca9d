"""Evaluation on the pool's test set: per-class counts of correct predictions under a mask.

One predict pass over the test samples gives the scores; masks decide which classes compete:
task-agnostic (all classes seen so far), task-aware (the classes of the sample's task), or any
per-task mask (the FWT baseline at initialisation). Counts, not accuracies, go to the event log,
so every metric is a pure function of the log.
"""

from __future__ import annotations

import numpy as np

from clenv.data.pool import Pool
from clenv.scenarios.stream import Stream


class Evaluator:
    """Scores the strategy on test samples of the stream's classes."""

    def __init__(self, pool: Pool, stream: Stream, batch_size: int = 1024) -> None:
        self.pool = pool
        self.stream = stream
        self.batch_size = batch_size
        self.C = pool.n_classes
        test = pool.test_indices
        in_stream = stream.major_task[pool.y[test]] >= 0
        self.test_idx = test[in_stream]
        self.test_y = pool.y[self.test_idx]
        self.test_task = stream.major_task[self.test_y]
        self.task_mask = np.zeros((stream.n_tasks, self.C), dtype=bool)
        for t, cls in enumerate(stream.task_classes):
            self.task_mask[t, cls] = True
        self.totals = np.bincount(self.test_y, minlength=self.C)

    def scores(self, strategy, rows: np.ndarray) -> np.ndarray:
        """Scores (n, C) for the test rows ``rows`` (indices into test_idx), batched."""
        out = np.empty((len(rows), self.C), dtype=np.float32)
        for s in range(0, len(rows), self.batch_size):
            idx = self.test_idx[rows[s:s + self.batch_size]]
            x = self.pool.x[idx]
            obs = {"x": x, "valid": np.ones(len(x), dtype=np.int8)}
            sc = strategy.predict(obs)
            out[s:s + len(x)] = sc.detach().cpu().numpy() if hasattr(sc, "detach") else sc
        return out

    def counts(self, scores: np.ndarray, rows: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Per-class correct counts; ``mask`` is (C,) or per-row (n, C). A row counts as
        correct only when its best allowed score is finite: a row with no allowed class, or
        whose allowed classes the strategy itself masked to -inf, is never correct."""
        y = self.test_y[rows]
        masked = np.where(mask, scores, -np.inf)
        pred = masked.argmax(axis=1)
        best = np.take_along_axis(masked, pred[:, None], axis=1)[:, 0]
        ok = (pred == y) & np.isfinite(best)
        return np.bincount(y[ok], minlength=self.C)

    def evaluate(self, strategy, seen: np.ndarray, *, task_aware: bool,
                 fwt_masks: np.ndarray | None = None, only_seen: bool = False) -> dict:
        """Counts on the test set. ``seen`` is the (C,) mask of classes seen so far.

        only_seen: evaluate only test samples of seen classes (anytime evaluations).
        fwt_masks: (T, C) per-task masks for the FWT baseline (row j = classes usable when
        R[j-1][j] is measured).
        """
        rows = (np.flatnonzero(seen[self.test_y]) if only_seen
                else np.arange(len(self.test_idx)))
        totals = np.bincount(self.test_y[rows], minlength=self.C)
        if len(rows) == 0:
            zero = np.zeros(self.C, dtype=np.int64)
            rec = {"total": totals.tolist(), "agnostic": zero.tolist()}
            if task_aware:
                rec["aware"] = zero.tolist()
            if fwt_masks is not None:
                rec["fwt_base"] = zero.tolist()
            return rec, None
        sc = self.scores(strategy, rows)
        rec = {"total": totals.tolist(), "agnostic": self.counts(sc, rows, seen).tolist()}
        tasks = self.test_task[rows]
        if task_aware:
            rec["aware"] = self.counts(sc, rows, self.task_mask[tasks]).tolist()
        if fwt_masks is not None:
            rec["fwt_base"] = self.counts(sc, rows, fwt_masks[tasks]).tolist()
        return rec, sc
