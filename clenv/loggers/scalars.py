"""The scalars of one evaluation, as the loggers write them: a pure function of the event log
(the start record and the eval records before it), computed incrementally.

Per eval record: ``accuracy`` (anytime accuracy: pooled over the units seen so far), one
accuracy per accuracy-matrix column (``task_j``), ``forgetting`` so far, ``online_accuracy``,
``train_loss`` (the record's mean of learn()'s losses since the previous evaluation) and the
strategy's budget counters. Forgetting so far, over the columns learned by a task-end row
written before this evaluation::

    F = mean_j ( max_{first_row[j] <= l <= k} R[l][j] - a_j )

where k is the last such row and a_j the column's accuracy now; at the last task end it equals
metrics.json's ``average_forgetting`` (Chaudhry et al., ECCV 2018). Multi-label runs have no
accuracy counts: their accuracy, per-column and forgetting fields are empty.
"""

from __future__ import annotations

import numpy as np

from clenv.metrics.anytime import accuracy_from_counts, online_accuracy

BASE_FIELDS = ("kind", "samples", "steps", "task", "row", "wall", "accuracy", "forgetting",
               "online_accuracy", "train_loss")


class EvalScalars:
    """Turns the eval records of one run into flat rows of scalars (None: no value)."""

    def __init__(self, start: dict) -> None:
        self.columns = [np.asarray(c, dtype=np.int64) for c in start["columns"]]
        self.first_row = list(start["first_row"])
        self.rows: dict[int, list[float | None]] = {}  # task-end row -> column accuracies

    @property
    def column_fields(self) -> list[str]:
        return [f"task_{j}" for j in range(len(self.columns))]

    def row(self, record: dict) -> dict:
        """The scalars of an eval record (then remembered, if it is a task-end row)."""
        counts = record["counts"]
        single = "agnostic" in counts and "total" in counts
        acc = ([accuracy_from_counts(counts["agnostic"], counts["total"], c)
                for c in self.columns] if single else [None] * len(self.columns))
        out: dict = {
            "kind": record["kind"], "samples": record["samples"], "steps": record["steps"],
            "task": record["task"], "row": record.get("row"), "wall": record.get("wall"),
            "accuracy": (accuracy_from_counts(counts["agnostic"], counts["total"],
                                              record["seen"]) if single else None),
            "forgetting": self._forgetting(acc) if single else None,
            "online_accuracy": online_accuracy(record["online"]["correct"],
                                               record["online"]["count"]),
            "train_loss": record.get("train_loss"),
        }
        out.update(zip(self.column_fields, acc, strict=True))
        for key, value in (record.get("budget") or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out[f"budget_{key}"] = value
        if record["kind"] == "task_end" and single:
            self.rows[int(record["row"])] = acc
        return out

    def _forgetting(self, acc: list[float | None]) -> float | None:
        if not self.rows:
            return None
        k = max(self.rows)
        terms = []
        for j, now in enumerate(acc):
            first = self.first_row[j]
            if first is None or first > k or now is None:
                continue
            past = [self.rows[lv][j] for lv in range(first, k + 1)
                    if lv in self.rows and self.rows[lv][j] is not None]
            if past:
                terms.append(max(past) - now)
        return float(np.mean(terms)) if terms else None
