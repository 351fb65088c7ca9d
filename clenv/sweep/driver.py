"""Running a sweep: the sweep.json index, skipping complete runs, recording failures.

``DIR/sweep.json`` lists every run (id, folder, axis values, status, error) and is rewritten
atomically after each run ends; each run writes ``DIR/runs/<id>/`` (a normal results folder).
Re-running the same sweep skips runs whose metrics.json is present and valid and re-runs the
others (from their checkpoint when ``output.checkpoint_every`` is set). A run that crashes is
marked failed with its one-line error (the traceback is in its error.json) and the sweep goes
on. Results files are all written atomically, so Ctrl-C leaves no half-written file.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from clenv.atomic import write_json_atomic
from clenv.errors import UserError
from clenv.sweep.spec import Sweep

INDEX_NAME = "sweep.json"
BACKENDS = ("local", "ray")


def run_sweep(sweep: Sweep, out: str | Path, *, backend: str = "local",
              address: str | None = None, workers: int | None = None,
              echo=print) -> dict:
    """Run every incomplete run of ``sweep`` into ``out``; return the final index."""
    from clenv.sweep.backends import run_local, run_ray

    if backend not in BACKENDS:
        raise UserError(f"--backend: expected one of {', '.join(BACKENDS)}, got {backend!r}")
    out = Path(out)
    run_dirs = {r.id: out / "runs" / r.id for r in sweep.runs}
    check_checkpoints(run_dirs.values())
    out.mkdir(parents=True, exist_ok=True)
    index = sweep.index()
    entries = {e["id"]: e for e in index["runs"]}
    for r in sweep.runs:
        done = is_complete(run_dirs[r.id])
        entries[r.id].update(status="complete" if done else "pending", error=None)
    todo = [r for r in sweep.runs if entries[r.id]["status"] != "complete"]
    skipped = len(sweep.runs) - len(todo)
    index["backend"] = backend
    write_json_atomic(out / INDEX_NAME, index)
    echo(f"sweep {sweep.name}: {len(sweep.runs)} runs, {skipped} complete already, "
         f"{len(todo)} to run ({backend})")
    t0 = time.perf_counter()
    finished = [0]

    def on_result(run, result: dict) -> None:
        e = entries[run.id]
        e["status"] = result["status"]
        e["error"] = result.get("error")
        write_json_atomic(out / INDEX_NAME, index)
        finished[0] += 1
        what = (f"final_accuracy={result['final_accuracy']:.4f}"
                if isinstance(result.get("final_accuracy"), float) else "")
        if result["status"] == "failed":
            what = f"FAILED: {result['error']}"
        echo(f"[{finished[0]}/{len(todo)}] {run.id} {result['status']} {what} "
             f"({time.perf_counter() - t0:.1f} s)")

    if backend == "ray":
        run_ray(todo, run_dirs, sweep.threads, sweep.resources, address, on_result)
    else:
        run_local(todo, run_dirs, sweep.threads, workers or sweep.workers, on_result)
    failed = [e["id"] for e in index["runs"] if e["status"] == "failed"]
    if sweep.select is not None:
        from clenv.sweep.select import write_selection

        write_selection(out, index)
    echo(f"sweep {sweep.name}: {len(index['runs']) - len(failed)} complete, {len(failed)} "
         f"failed; results in {out}")
    return index


def check_checkpoints(run_dirs) -> None:
    """Refuse the sweep (one line) when an incomplete run's checkpoint.pt is unreadable or
    holds anything but tensors and plain values (clenv.checkpoint.load_checkpoint), before
    any run starts."""
    found = [Path(d) for d in run_dirs
             if (Path(d) / "checkpoint.pt").is_file() and not is_complete(d)]
    if found:
        from clenv.checkpoint import verify

        for d in found:
            verify(d)


def is_complete(run_dir: str | Path) -> bool:
    """True when ``run_dir/metrics.json`` exists and parses (it is written atomically, last)."""
    try:
        return isinstance(json.loads((Path(run_dir) / "metrics.json").read_text()), dict)
    except (OSError, ValueError):
        return False


def read_index(d: str | Path) -> dict:
    """DIR/sweep.json, or a UserError naming the fix."""
    path = Path(d) / INDEX_NAME
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        raise UserError(f"{d}: no readable {INDEX_NAME}; give a folder written by clenv "
                        "sweep") from None


def is_sweep_dir(d: str | Path) -> bool:
    return (Path(d) / INDEX_NAME).is_file()
