"""Where sweep runs execute: a local process pool (default) or a Ray cluster.

Both call clenv.sweep.worker.execute_run with the run's resolved config and folder, and hand
each result to ``on_result`` as it arrives. Workers get the same environment (PYTHONHASHSEED,
OMP/MKL threads; clenv.sweep.worker.worker_env); the config fixes torch's thread count.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from clenv.errors import UserError
from clenv.sweep.spec import RunSpec
from clenv.sweep.worker import execute_run, worker_env

OnResult = Callable[[RunSpec, dict], None]


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def run_local(runs: list[RunSpec], run_dirs: dict[str, Path], threads: int,
              workers: int | None, on_result: OnResult, run_bars: bool = False) -> None:
    """A spawn-context process pool of ``workers`` processes (default: cores // threads).
    Spawned workers are fresh interpreters, so PYTHONHASHSEED from worker_env takes effect.
    ``run_bars``: each run draws its progress bar too, when runs go one at a time."""
    if not runs:
        return
    n = workers or max(1, available_cores() // threads)
    n = max(1, min(n, len(runs)))
    bars = run_bars and n == 1
    env = worker_env(threads)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        with ProcessPoolExecutor(max_workers=n, mp_context=mp.get_context("spawn")) as pool:
            futures = {pool.submit(execute_run, r.config, str(run_dirs[r.id]), bars): r
                       for r in runs}
            try:
                for fut in as_completed(futures):
                    run = futures[fut]
                    try:
                        result = fut.result()
                    except BrokenProcessPool:
                        result = {"status": "failed", "error": "the worker process died "
                                  "(killed, or out of memory)"}
                    on_result(run, result)
            except KeyboardInterrupt:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_ray(runs: list[RunSpec], run_dirs: dict[str, Path], threads: int, resources: dict,
            address: str | None, on_result: OnResult) -> None:
    """One Ray task per run with ``resources`` ({cpus, gpus}). Connects to ``address`` ("auto"
    or ray://host:port), starts a local instance when None, or reuses the Ray already
    initialised in this process. On a cluster the sweep folder must be on storage every node
    sees."""
    try:
        import ray
    except ImportError:
        raise UserError("--backend ray needs the ray package; pip install 'clenv[ray]'") from None
    started = False
    if not ray.is_initialized():
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise UserError(f"--address {address}: cannot connect to Ray "
                            f"({' '.join(str(exc).split())[:200]}); start a cluster with "
                            "`ray start --head` or leave --address out") from None
        started = True
    task = ray.remote(execute_run).options(
        num_cpus=resources.get("cpus", 1.0), num_gpus=resources.get("gpus", 0.0), max_retries=0,
        runtime_env={"env_vars": worker_env(threads)})
    pending = {task.remote(r.config, str(run_dirs[r.id].resolve())): r for r in runs}
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            run = pending.pop(done[0])
            try:
                result = ray.get(done[0])
            except Exception as exc:  # noqa: BLE001 - a lost worker fails that run only
                result = {"status": "failed",
                          "error": " ".join(f"{type(exc).__name__}: {exc}".split())[:500]}
            on_result(run, result)
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    finally:
        if started:
            ray.shutdown()
