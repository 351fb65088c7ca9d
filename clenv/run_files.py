"""What the stream loop and the query-round loop share (loop layer, docs/design.md): the files
a run writes first (config.yaml, run.json) and the end record it writes last."""

from __future__ import annotations

import time
from pathlib import Path

from clenv import results
from clenv.atomic import write_json_atomic, write_text_atomic
from clenv.config.loader import dump_config
from clenv.events import EventLog
from clenv.provenance import provenance


def begin_results(out: Path, cfg: dict, data_sha: str | None,
                  keep: frozenset[str] = frozenset()) -> None:
    """Clear the (locked) folder of a previous run's files but ``keep``, then write the
    resolved config and the provenance (``data_sha``: the stream's or the split's hash)."""
    results.start_run(out, keep=keep)
    write_text_atomic(out / "config.yaml", dump_config(cfg))
    write_json_atomic(out / "run.json", provenance(cfg, data_sha))


def write_end(log: EventLog, wall: dict, t0: float, **fields) -> None:
    """The end record: the loop's final fields and the phase times, total included."""
    wall["total"] = time.perf_counter() - t0
    log.write({"type": "end", **fields, "wall": wall})
