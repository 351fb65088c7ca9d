"""The Evaluator protocol and the one batched-predict helper every evaluator uses."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np


class Evaluator(Protocol):
    """What the loop asks of a family's evaluator: counts (sufficient statistics for the
    metrics) on the test rows, and the raw scores when there is one score matrix."""

    def evaluate(self, strategy, seen: np.ndarray, *, seen_units: np.ndarray | None = None,
                 task_aware: bool = True, fwt_masks: np.ndarray | None = None,
                 columns: list[int] | None = None) -> tuple[dict, np.ndarray | None]: ...


def _numpy(scores) -> np.ndarray:
    return scores.detach().cpu().numpy() if hasattr(scores, "detach") else scores


def batched_scores(strategy, inputs: Callable[[np.ndarray], np.ndarray], rows: np.ndarray,
                   widths: Sequence[int], batch_size: int) -> list[np.ndarray]:
    """Scores of ``strategy.predict`` on the test rows ``rows``, in calls of ``batch_size``
    rows; ``inputs(rows)`` gives their inputs. One (n, width) float32 matrix per entry of
    ``widths``: a single-head predict returns one (B, C) matrix, a multi-head predict a
    mapping {level: (B, C_level)} (one width per level)."""
    out = [np.empty((len(rows), c), dtype=np.float32) for c in widths]
    for s in range(0, len(rows), batch_size):
        x = inputs(rows[s:s + batch_size])
        sc = strategy.predict({"x": x, "valid": np.ones(len(x), dtype=np.int8)})
        heads = [sc] if len(widths) == 1 and not isinstance(sc, dict) else \
            [sc[k] for k in range(len(widths))]
        for o, v in zip(out, heads, strict=True):
            o[s:s + len(x)] = _numpy(v)
    return out
