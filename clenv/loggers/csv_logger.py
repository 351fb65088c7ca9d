"""The ``csv`` logger: ``evaluations.csv``, one row per evaluation (clenv.loggers.scalars gives
the columns; an empty cell is a value that does not exist, e.g. forgetting before a task end)."""

from __future__ import annotations

import csv
from pathlib import Path

from clenv.loggers.base import Logger
from clenv.loggers.scalars import BASE_FIELDS

FILE = "evaluations.csv"


class CsvLogger(Logger):
    """Appends a row per evaluation (flushed); the file is started afresh when the logger opens
    (a resumed run replays its log) and rewritten whole only if a new column appears."""

    name = "csv"

    def __init__(self, out: Path) -> None:
        super().__init__(out)
        self.rows: list[dict] = []
        self.fields: list[str] = []
        self._fh = None

    def write_row(self, row: dict) -> None:
        self.rows.append(row)
        new = [k for k in row if k not in self.fields]
        if self._fh is None or new:
            if not self.fields:
                self.fields = [*BASE_FIELDS, *self.scalars.column_fields]
            self.fields += [k for k in row if k not in self.fields]  # e.g. a new budget counter
            self.close()
            self._fh = open(self.out / FILE, "w", encoding="utf-8", newline="")
            self._writer = csv.DictWriter(self._fh, fieldnames=self.fields, lineterminator="\n")
            self._writer.writeheader()
            rows = self.rows
        else:
            rows = [row]
        for r in rows:
            self._writer.writerow({k: _cell(r.get(k)) for k in self.fields})
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def _cell(value) -> str:
    if value is None:
        return ""
    return repr(value) if isinstance(value, float) else str(value)
