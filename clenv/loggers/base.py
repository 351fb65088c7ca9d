"""What every logger shares: it subscribes to the run's EventLog, turns each eval record into
flat scalars (clenv.loggers.scalars) and writes them; it never sees anything else."""

from __future__ import annotations

from pathlib import Path

from clenv.loggers.scalars import EvalScalars


class Logger:
    """Receives every record written to events.jsonl, in order; writes files under ``out``."""

    name = ""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.scalars: EvalScalars | None = None

    def __call__(self, record: dict) -> None:
        if record["type"] == "start":
            self.scalars = EvalScalars(record)
        elif record["type"] == "eval" and self.scalars is not None:
            self.write_row(self.scalars.row(record))

    def write_row(self, row: dict) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Flush and close the logger's files."""
