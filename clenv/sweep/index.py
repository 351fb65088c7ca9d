"""A sweep folder's index (sweep.json) and the metrics of its complete runs."""

from __future__ import annotations

import json
from pathlib import Path

from clenv.errors import UserError

INDEX_NAME = "sweep.json"


def read_index(d: str | Path) -> dict:
    """DIR/sweep.json, or a UserError naming the fix."""
    path = Path(d) / INDEX_NAME
    try:
        index = json.loads(path.read_text())
    except (OSError, ValueError):
        raise UserError(f"{d}: no readable {INDEX_NAME}; give a folder written by clenv "
                        "sweep") from None
    check_index(index, path)
    return index


def check_index(index, path: Path) -> None:
    """One line when sweep.json does not have the shape clenv sweep writes."""
    def bad(what: str) -> UserError:
        return UserError(f"{path}: {what}; the file is damaged or not written by clenv sweep: "
                         "run the sweep again")

    if not isinstance(index, dict):
        raise bad(f"expected a JSON object, got a {type(index).__name__}")
    for key, kind in (("runs", list), ("axes", dict), ("replicates", list)):
        if not isinstance(index.get(key), kind):
            raise bad(f"{key!r} is missing or not a {kind.__name__}")
    for i, e in enumerate(index["runs"]):
        if not (isinstance(e, dict) and isinstance(e.get("id"), str)
                and isinstance(e.get("dir"), str) and isinstance(e.get("params"), dict)):
            raise bad(f"runs[{i}] is not an object with id, dir and params")
        if Path(e["dir"]).is_absolute() or ".." in Path(e["dir"]).parts:
            raise bad(f"runs[{i}].dir {e['dir'][:60]!r} leaves the sweep folder")


def load_metrics(d: str | Path, index: dict) -> dict[str, dict]:
    """run id -> parsed metrics.json of each complete run of the sweep in ``d``."""
    out = {}
    for e in index["runs"]:
        path = Path(d) / e["dir"] / "metrics.json"
        try:
            out[e["id"]] = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
    return out
