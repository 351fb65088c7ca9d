"""Where sweep runs execute: a local process pool (default) or a Ray cluster.

Both call clenv.sweep.worker.execute_run with the run's resolved config and folder, and hand
each result to ``on_result`` as it arrives. Workers get the same environment (PYTHONHASHSEED,
OMP/MKL threads; clenv.sweep.worker.worker_env); the config fixes torch's thread count.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from clenv.errors import UserError
from clenv.results import started_after
from clenv.sweep.spec import RunSpec
from clenv.sweep.worker import execute_run, worker_env

OnResult = Callable[[RunSpec, dict], None]


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


DIED = "the worker process died (killed, or out of memory)"


def run_local(runs: list[RunSpec], run_dirs: dict[str, Path], threads: int,
              workers: int | None, on_result: OnResult, force: bool = False,
              run_bars: bool = False) -> None:
    """A spawn-context process pool of ``workers`` processes (default: cores // threads).
    Spawned workers are fresh interpreters, so PYTHONHASHSEED from worker_env takes effect.

    A worker killed by the OS (or an abort in user code) breaks the whole pool: the runs that
    were in flight then are resubmitted on a fresh pool with the queued ones; a run in flight at
    a second break is rerun alone, and only a run that breaks a pool alone is recorded as failed
    (at most 2 retries). The runs in flight are those whose folder lock was taken after the
    pool started (clenv.results.started_after). ``run_bars``: each run draws its progress
    bar too, when runs go one at a time."""
    if not runs:
        return
    n = workers or max(1, available_cores() // threads)
    n = max(1, min(n, len(runs)))
    bars = run_bars and n == 1
    env = worker_env(threads)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        strikes = {r.id: 0 for r in runs}
        pending, blind = list(runs), 0
        while pending:
            alone = [r for r in pending if strikes[r.id] >= 2]
            shared = [r for r in pending if strikes[r.id] < 2]
            pending = []
            for i in range(0, len(alone), n):  # up to n lone pools side by side
                for run in _lone_pools(alone[i:i + n], run_dirs, on_result, force, bars):
                    on_result(run, {"status": "failed", "error": f"{DIED}; it did so again "
                                    "when rerun alone (2 retries)"})
            if not shared:
                continue
            t0 = time.time_ns()
            broken = _pool(shared, run_dirs, min(n, len(shared)), on_result, force, bars)
            in_flight = [r for r in broken if started_after(run_dirs[r.id], t0)]
            for r in in_flight:
                strikes[r.id] += 1
            blind = 0 if in_flight else blind + 1
            if blind >= 2:  # the pool dies before any run starts: nothing to isolate
                for r in broken:
                    on_result(r, {"status": "failed", "error": f"{DIED} before the run "
                                  "started, twice"})
                break
            pending = broken
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _lone_pools(runs: list[RunSpec], run_dirs: dict[str, Path], on_result: OnResult,
                force: bool, bars: bool = False) -> list[RunSpec]:
    """Each run on a pool of its own (the pools side by side); return the runs whose pool
    broke."""
    ctx = mp.get_context("spawn")
    pools = [ProcessPoolExecutor(max_workers=1, mp_context=ctx) for _ in runs]
    broken: list[RunSpec] = []
    try:
        futures = {pool.submit(execute_run, r.config, str(run_dirs[r.id]), bars, force): r
                   for pool, r in zip(pools, runs, strict=True)}
        broken = _collect(futures, on_result)
    except KeyboardInterrupt:
        for pool in pools:
            pool.shutdown(wait=False, cancel_futures=True)
        raise
    finally:
        for pool in pools:
            pool.shutdown(wait=True)
    return broken


def _collect(futures: dict, on_result: OnResult) -> list[RunSpec]:
    """Hand each finished run's result to ``on_result`` as it comes; return the runs whose
    futures a broken pool took."""
    broken: list[RunSpec] = []
    for fut in as_completed(futures):
        try:
            result = fut.result()
        except BrokenProcessPool:
            broken.append(futures[fut])
            continue
        on_result(futures[fut], result)
    return broken


def _pool(runs: list[RunSpec], run_dirs: dict[str, Path], n: int, on_result: OnResult,
          force: bool, bars: bool = False) -> list[RunSpec]:
    """Run ``runs`` on a fresh pool of ``n`` workers, handing each result to ``on_result``;
    return the runs whose futures the pool's breakage took (in submission order)."""
    broken: list[RunSpec] = []
    with ProcessPoolExecutor(max_workers=n, mp_context=mp.get_context("spawn")) as pool:
        futures = {pool.submit(execute_run, r.config, str(run_dirs[r.id]), bars, force): r
                   for r in runs}
        try:
            broken = _collect(futures, on_result)
        except KeyboardInterrupt:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    order = {r.id: i for i, r in enumerate(runs)}
    return sorted(broken, key=lambda r: order[r.id])


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
