"""What a sweep worker runs: one run into its results folder, crash recorded, not raised.

The same function serves the local process pool and Ray tasks, so both paths run identical
code; the run's config fixes the torch thread count, and the backends give every worker the
same PYTHONHASHSEED.
"""

from __future__ import annotations

import os
import traceback
from pathlib import Path

from clenv.atomic import write_json_atomic

ERROR_NAME = "error.json"
WORKER_ENV = {"PYTHONHASHSEED": "0", "CLENV_BAR_POSITION": "1"}  # a run's bar under the sweep's


def worker_env(threads: int) -> dict[str, str]:
    """Environment variables every sweep worker gets."""
    t = str(threads)
    return {**WORKER_ENV, "OMP_NUM_THREADS": t, "MKL_NUM_THREADS": t}


def execute_run(cfg: dict, run_dir: str, progress: bool = False) -> dict:
    """Run ``cfg`` into ``run_dir`` (continuing from its checkpoint if it has one; with
    ``progress``, drawing the run's bar on stderr). Returns
    {"status": "complete", "final_accuracy": ...} or {"status": "failed", "error": one line};
    a failure also writes run_dir/error.json with the traceback."""
    out = Path(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / ERROR_NAME).unlink(missing_ok=True)
    try:
        import torch

        torch.set_num_threads(cfg["threads"])
        from clenv.runner import Run

        metrics = Run(cfg).execute(out, resume=True, progress=progress)
    except Exception as exc:  # noqa: BLE001 - a crashing run is recorded, the sweep goes on
        line = " ".join(f"{type(exc).__name__}: {exc}".split())
        write_json_atomic(out / ERROR_NAME, {"error": line, "traceback": traceback.format_exc(),
                                             "pid": os.getpid()})
        return {"status": "failed", "error": line}
    return {"status": "complete", "final_accuracy": metrics.get("final_accuracy")}
