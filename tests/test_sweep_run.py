"""Running sweeps: the local process pool, skipping complete runs, crashes recorded, a sweep
whose worker is killed mid-run resumed without loss, and the Ray backend giving the same
metrics as the local one, run for run (Ray started once per test session)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from clenv.sweep.driver import run_sweep
from clenv.sweep.select import select_runs
from clenv.sweep.spec import load_sweep
from tests.conftest import REPO, require

CRASH = {"name": "tests.checkpoint_killer:Crashing"}
KILLING_ER = {"name": "tests.checkpoint_killer:KillingER", "memory_size": 50}


def _base(small_cfg: dict) -> dict:
    cfg = json.loads(json.dumps(small_cfg))
    cfg["scenario"]["validation"] = 0.2
    cfg["output"] = {"plots": False, "checkpoint_every": 40}
    cfg["strategy"] = {"name": "er", "memory_size": 50}
    return cfg


def _write(path: Path, sweep: dict) -> Path:
    path.write_text(yaml.safe_dump(sweep))
    return path


def _metrics(run_dir: Path) -> str:
    return re.sub(r'\n "wall_time": \{[^}]*\}', "", (run_dir / "metrics.json").read_text())


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory) -> tuple[Path, Path, dict]:
    """naive / er / a crashing strategy (seed 0) on the local backend (2 workers)."""
    from tests.conftest import small_cfg as small

    d = tmp_path_factory.mktemp("sweep")
    base = _base(small.__wrapped__())
    sweep = {"name": "tiny", "base": base, "strategies": ["naive", {"preset": "er",
             "memory_size": 50}, CRASH], "seeds": [0], "workers": 2}
    f = _write(d / "tiny.yaml", sweep)
    index = run_sweep(load_sweep(f), d / "out", echo=lambda _: None)
    return f, d / "out", index


def test_local_sweep_writes_index_and_records_crashes(local_sweep):
    _, out, index = local_sweep
    status = {e["id"]: e for e in index["runs"]}
    assert len(status) == 3
    on_disk = json.loads((out / "sweep.json").read_text())
    assert on_disk["runs"] == index["runs"] and on_disk["replicates"] == ["seed"]
    crashed = [e for e in index["runs"] if e["params"]["strategy"] == CRASH]
    assert [e["status"] for e in crashed] == ["failed"]
    for e in crashed:
        assert e["error"] == "RuntimeError: boom: this strategy always crashes"
        err = json.loads((out / e["dir"] / "error.json").read_text())
        assert "Traceback" in err["traceback"] and not (out / e["dir"] / "metrics.json").exists()
    ok = [e for e in index["runs"] if e["params"]["strategy"] != CRASH]
    assert [e["status"] for e in ok] == ["complete"] * 2
    for e in ok:
        m = json.loads((out / e["dir"] / "metrics.json").read_text())
        assert m["validation"]["final_accuracy"] is not None
        assert not (out / e["dir"] / "checkpoint.pt").exists()


def test_rerun_skips_complete_runs_and_retries_failed_ones(local_sweep):
    f, out, index = local_sweep
    ok = [e for e in index["runs"] if e["status"] == "complete"]
    stamps = {e["id"]: (out / e["dir"] / "metrics.json").stat().st_mtime_ns for e in ok}
    lines: list[str] = []
    again = run_sweep(load_sweep(f), out, echo=lines.append)
    assert lines[0] == "sweep tiny: 3 runs, 2 complete already, 1 to run (local)"
    assert {e["id"]: e["status"] for e in again["runs"]} == \
        {e["id"]: e["status"] for e in index["runs"]}
    for e in ok:
        assert (out / e["dir"] / "metrics.json").stat().st_mtime_ns == stamps[e["id"]]


def test_selection_over_a_real_sweep_uses_validation(local_sweep):
    _, out, index = local_sweep
    index = {**index, "select": {"metric": "final_accuracy", "on": "validation", "k": None,
                                 "among": ["strategy"], "goal": "max"}}
    metrics = {e["id"]: json.loads((out / e["dir"] / "metrics.json").read_text())
               for e in index["runs"] if e["status"] == "complete"}
    (g,) = select_runs(index, metrics)["groups"]
    by = {}
    for e in index["runs"]:
        if e["id"] in metrics:
            key = json.dumps(e["params"]["strategy"], sort_keys=True)
            by.setdefault(key, []).append(metrics[e["id"]]["validation"]["final_accuracy"])
    best = max(by, key=lambda k: sum(by[k]) / len(by[k]))
    assert json.dumps(g["chosen"]["strategy"], sort_keys=True) == best
    crash = next(c for c in g["candidates"] if c["values"]["strategy"] == CRASH)
    assert crash["score"] is None and crash["n"] == 0


def test_interrupted_sweep_resumes_without_loss(local_sweep, tmp_path):
    """A subprocess sweep SIGKILLed as a whole (driver and worker: the machine going down) in
    its second run, mid-task (after a checkpoint); the re-run sweep skips the complete run,
    resumes the killed one from its checkpoint and is interrupted again mid-task by SIGINT to
    its whole process group (Ctrl-C); the third run finishes it. No half-written file at any
    stage; its metrics equal those of the uninterrupted ER run of the same seed, and the
    complete run is never rerun."""
    f, ref_out, ref_index = local_sweep
    sweep = yaml.safe_load(f.read_text())
    sweep.update(strategies=["naive", KILLING_ER], seeds=[0], workers=1)
    sf = _write(tmp_path / "k.yaml", sweep)
    out = tmp_path / "out"

    def interrupted(kill_at: int, signal: str | None) -> tuple[subprocess.CompletedProcess,
                                                               dict]:
        env = {**os.environ, "PYTHONPATH": str(REPO), "CLENV_KILL_LEARN": str(kill_at)}
        if signal:
            env["CLENV_KILL_SIGNAL"] = signal
        r = subprocess.run([sys.executable, "-m", "clenv.cli", "sweep", str(sf), "--out",
                            str(out)], cwd=REPO, env=env, capture_output=True, text=True,
                           timeout=240, start_new_session=True)
        index = json.loads((out / "sweep.json").read_text())
        return r, {e["params"]["strategy"] if isinstance(e["params"]["strategy"], str)
                   else "killing": e for e in index["runs"]}

    r, status = interrupted(20, "KILLPG")  # SIGKILL of the sweep at learn call 20 (task 1)
    assert r.returncode == -9, r.stderr
    assert status["naive"]["status"] == "complete"
    killed = out / status["killing"]["dir"]
    assert status["killing"]["status"] == "pending"
    assert (killed / "checkpoint.pt").is_file() and not (killed / "metrics.json").exists()
    assert not list(out.rglob("*.tmp"))  # no half-written file
    naive_stamp = (out / status["naive"]["dir"] / "metrics.json").stat().st_mtime_ns
    # learn calls are counted from the checkpoint (16 at position 160): Ctrl-C at call 30
    r, status = interrupted(30, "INT")
    assert r.returncode == 130 and "interrupted" in r.stderr, r.stderr
    assert "1 complete already, 1 to run" in r.stdout
    assert status["killing"]["status"] == "pending"
    assert (killed / "checkpoint.pt").is_file() and not (killed / "metrics.json").exists()
    assert not list(out.rglob("*.tmp"))
    lines: list[str] = []
    again = run_sweep(load_sweep(sf), out, echo=lines.append)
    assert "1 complete already, 1 to run" in lines[0]
    assert [e["status"] for e in again["runs"]] == ["complete", "complete"]
    assert (out / status["naive"]["dir"] / "metrics.json").stat().st_mtime_ns == naive_stamp
    ref = {(json.dumps(e["params"]["strategy"], sort_keys=True), e["params"]["seed"]): e
           for e in ref_index["runs"]}
    er0 = ref[(json.dumps({"preset": "er", "memory_size": 50}, sort_keys=True), 0)]
    naive0 = ref[(json.dumps("naive"), 0)]
    assert _metrics(killed) == _metrics(ref_out / er0["dir"])
    assert _metrics(out / status["naive"]["dir"]) == _metrics(ref_out / naive0["dir"])
    assert status["naive"]["id"] == naive0["id"]  # same resolved config, same id


@pytest.fixture(scope="session")
def ray_session():
    ray = require("ray")
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 1024 ** 2,
             log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_backend_matches_local_run_for_run(local_sweep, ray_session, tmp_path):
    f, ref_out, ref_index = local_sweep
    sweep = yaml.safe_load(f.read_text())
    sweep["strategies"] = sweep["strategies"][:2]  # the runs that complete
    sf = _write(tmp_path / "r.yaml", sweep)
    index = run_sweep(load_sweep(sf), tmp_path / "ray", backend="ray", echo=lambda _: None)
    assert index["backend"] == "ray"
    ref = {e["id"]: e for e in ref_index["runs"]}
    assert len(index["runs"]) == 2
    for e in index["runs"]:
        assert e["status"] == "complete" and e["id"] in ref  # the same ids as locally
        assert _metrics(tmp_path / "ray" / e["dir"]) == _metrics(ref_out / ref[e["id"]]["dir"])
        run = json.loads((tmp_path / "ray" / e["dir"] / "run.json").read_text())
        assert run["torch_threads"] == 1


def test_a_worker_killed_mid_sweep_costs_only_its_own_run(small_cfg, tmp_path, monkeypatch):
    """The worker of seed 1 is SIGKILLed (as by the OOM killer) at each attempt: it breaks the
    pool, is retried on a fresh pool, then alone, and only it is recorded failed; the runs in
    flight or queued beside it all complete."""
    base = _base(small_cfg)
    base["scenario"].pop("validation")
    base["output"] = {"plots": False}
    sweep = {"name": "oom", "base": base, "seeds": [0, 1, 2],
             "strategies": [{"name": "tests.checkpoint_killer:KillingNaive"}], "workers": 2}
    sf = _write(tmp_path / "oom.yaml", sweep)
    monkeypatch.setenv("CLENV_KILL_SEED", "1")  # spawned workers inherit it
    lines: list[str] = []
    index = run_sweep(load_sweep(sf), tmp_path / "out", echo=lines.append)
    status = {e["params"]["seed"]: e for e in index["runs"]}
    assert [status[s]["status"] for s in (0, 2)] == ["complete", "complete"], lines
    assert status[1]["status"] == "failed" and "alone" in status[1]["error"], lines
    assert sum("FAILED" in line for line in lines) == 1, lines
    assert not list((tmp_path / "out").rglob("*.tmp"))
