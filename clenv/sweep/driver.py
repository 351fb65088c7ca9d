"""Running a sweep: the sweep.json index, skipping complete runs, recording failures.

``DIR/sweep.json`` lists every run (id, folder, axis values, status, error) and is rewritten
atomically after each run ends; each run writes ``DIR/runs/<id>/`` (a normal results folder).
Re-running the same sweep skips runs whose metrics.json is present and valid and re-runs the
others (from their checkpoint when ``output.checkpoint_every`` is set). A run that crashes is
marked failed with its one-line error (the traceback is in its error.json) and the sweep goes
on. Results files are all written atomically, so Ctrl-C leaves no half-written file.

The sweep folder is locked for the sweep's life (a second sweep into it gets one line) and
refused when it holds files clenv did not write, unless ``force`` (clenv.results).
"""

from __future__ import annotations

import time
from pathlib import Path

from clenv import results
from clenv.atomic import write_json_atomic
from clenv.errors import UserError
from clenv.sweep.index import INDEX_NAME, check_index, read_index  # noqa: F401 (old path)
from clenv.sweep.spec import Sweep

BACKENDS = ("local", "ray")


def run_sweep(sweep: Sweep, out: str | Path, *, backend: str = "local",
              address: str | None = None, workers: int | None = None,
              echo=print, progress: bool = False, force: bool = False) -> dict:
    """Run every incomplete run of ``sweep`` into ``out``; return the final index.
    ``progress``: one bar of runs done, with an ETA (and each run's own bar when the local
    backend runs one at a time); the per-run lines are then written above the bar."""
    if backend not in BACKENDS:
        raise UserError(f"--backend: expected one of {', '.join(BACKENDS)}, got {backend!r}")
    out = Path(out)
    check_checkpoints(out / "runs" / r.id for r in sweep.runs)  # before the folder is touched
    results.refuse_foreign(out, results.SWEEP_FILES, force)  # before the lock file
    with results.FolderLock(out):
        results.clean_temp(out)
        return _run_sweep(sweep, out, backend=backend, address=address, workers=workers,
                          echo=echo, progress=progress, force=force)


def _run_sweep(sweep: Sweep, out: Path, *, backend: str, address: str | None,
               workers: int | None, echo, progress: bool, force: bool) -> dict:
    from clenv.sweep.backends import run_local, run_ray

    out.mkdir(parents=True, exist_ok=True)
    run_dirs = {r.id: out / "runs" / r.id for r in sweep.runs}
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
    bar, say = None, echo
    if progress and todo:
        from clenv.progress import progress_bar

        bar = progress_bar(len(todo), "run", f"sweep {sweep.name}", leave=True)
        if echo is print:
            say = bar.write  # per-run lines above the bar

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
        say(f"[{finished[0]}/{len(todo)}] {run.id} {result['status']} {what} "
            f"({time.perf_counter() - t0:.1f} s)")
        if bar is not None:
            bar.update(1)

    try:
        if backend == "ray":
            run_ray(todo, run_dirs, sweep.threads, sweep.resources, address, on_result)
        else:
            run_local(todo, run_dirs, sweep.threads, workers or sweep.workers, on_result,
                      force=force, run_bars=progress)
    finally:
        if bar is not None:
            bar.close()
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
    return results.is_complete(run_dir)


def is_sweep_dir(d: str | Path) -> bool:
    return (Path(d) / INDEX_NAME).is_file()
