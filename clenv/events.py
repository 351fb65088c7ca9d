"""The event log: one JSON record per line, appended and flushed as the run goes."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path


class EventLog:
    """Appends records to events.jsonl (flushed per record); keeps them in memory too, and
    passes each to its subscribers (the loggers, clenv.loggers) once it is written."""

    def __init__(self, path: str | os.PathLike | None) -> None:
        self.records: list[dict] = []
        self._fh = open(Path(path), "w", encoding="utf-8") if path is not None else None
        self._subscribers: list[Callable[[dict], None]] = []

    def subscribe(self, callback: Callable[[dict], None]) -> None:
        """Call ``callback(record)`` for every record written from now on."""
        self._subscribers.append(callback)

    def write(self, record: dict) -> None:
        self.records.append(record)
        if self._fh is not None:
            self._fh.write(json.dumps(record, separators=(",", ":")) + "\n")
            self._fh.flush()
        for callback in self._subscribers:
            callback(record)

    @property
    def offset(self) -> int:
        """Bytes written to the file so far (0 without a file)."""
        return self._fh.tell() if self._fh is not None else 0

    @classmethod
    def reopen(cls, path: str | os.PathLike, offset: int) -> EventLog:
        """Continue a log from a checkpoint: the file is cut back to ``offset`` bytes (records
        written after the checkpoint are dropped), its records are read, appending goes on."""
        from clenv.metrics.summary import read_events

        with open(path, "r+b") as fh:
            fh.truncate(offset)
        log = cls(None)
        log.records = read_events(path)
        log._fh = open(Path(path), "a", encoding="utf-8")
        return log

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
