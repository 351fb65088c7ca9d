"""The event log: one JSON record per line, appended and flushed as the run goes."""

from __future__ import annotations

import json
import os
from pathlib import Path


class EventLog:
    """Appends records to events.jsonl (flushed per record); keeps them in memory too."""

    def __init__(self, path: str | os.PathLike | None) -> None:
        self.records: list[dict] = []
        self._fh = open(Path(path), "w", encoding="utf-8") if path is not None else None

    def write(self, record: dict) -> None:
        self.records.append(record)
        if self._fh is not None:
            self._fh.write(json.dumps(record, separators=(",", ":")) + "\n")
            self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
