"""Checkpoints and `clenv run --resume`: a run interrupted at random points (SIGKILL mid-task
and mid-evaluation, or a crash) and resumed ends with exactly the metrics of an uninterrupted
run; strategies without the state protocol are refused with one line."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from clenv.cli import main
from clenv.config.loader import load_config
from clenv.runner import Run
from tests.conftest import REPO, one_line

KILLER = "tests.checkpoint_killer"


def _cfg(small_cfg: dict, strategy: dict, every: int = 40) -> dict:
    cfg = copy.deepcopy(small_cfg)
    cfg["strategy"] = strategy
    cfg["output"] = {"plots": False, "checkpoint_every": every}
    return cfg


def _without_wall(path: Path) -> str:
    """metrics.json text with the wall_time block removed (the only part that may differ)."""
    text = path.read_text()
    return re.sub(r'\n "wall_time": \{[^}]*\}', "", text)


def _events_without_wall(path: Path) -> list[dict]:
    out = []
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        rec.pop("wall", None)
        out.append(rec)
    return out


def _clenv(args: list[str], env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONHASHSEED": "0"}
    env.pop("CLENV_KILL_LEARN", None)
    env.pop("CLENV_KILL_EVAL", None)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "clenv.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def test_sigkill_mid_task_and_mid_evaluation_then_resume_is_exact(small_cfg, tmp_path,
                                                                  monkeypatch, capsys):
    cfg = _cfg(small_cfg, {"name": f"{KILLER}:KillingER", "memory_size": 50})
    ref = tmp_path / "ref"
    Run(load_config(cfg)).execute(ref)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "killed"
    # 36 learn calls (360 samples, batches of 10); 10 evaluations of 1 predict call each.
    # Random kill points from a seeded generator: one mid-task (task 0 or 1), then one
    # mid-evaluation later than the checkpoint the resume starts from (task 2).
    rng = np.random.default_rng(2024)
    learn_kill = int(rng.integers(6, 20))
    eval_kill = int(rng.integers(7, 10))
    r = _clenv(["run", str(path), "--out", str(out), "--quiet"],
               {"CLENV_KILL_LEARN": str(learn_kill)})
    assert r.returncode == -9, r.stderr
    assert (out / "checkpoint.pt").is_file() and not (out / "metrics.json").exists()
    r = _clenv(["run", "--resume", str(out)], {"CLENV_KILL_EVAL": str(eval_kill)})
    assert r.returncode == -9, (r.stdout, r.stderr)
    assert not (out / "metrics.json").exists()
    monkeypatch.syspath_prepend(str(REPO))
    assert main(["run", "--resume", str(out)]) == 0  # in-process: the last stretch
    assert "resumed from its checkpoint" in capsys.readouterr().out
    assert _without_wall(out / "metrics.json") == _without_wall(ref / "metrics.json")
    assert _events_without_wall(out / "events.jsonl") == _events_without_wall(
        ref / "events.jsonl")
    assert (out / "accuracy_matrix.csv").read_bytes() == (ref / "accuracy_matrix.csv").read_bytes()
    assert not (out / "checkpoint.pt").exists()  # removed once the run is complete
    assert main(["run", "--resume", str(out)]) == 0  # complete: nothing to do


@pytest.mark.parametrize("strategy", [
    {"name": f"{KILLER}:KillingNaive", "optimizer": "adam", "lr": 0.01},
    {"name": f"{KILLER}:KillingJoint", "epochs": 2},
    {"name": f"{KILLER}:KillingPLFMS", "memory_size": 40, "importance_period": 3},
])
def test_crash_then_resume_matches_uninterrupted_for_each_strategy(small_cfg, tmp_path,
                                                                   monkeypatch, strategy):
    """In-process: the run raises at a learn call (optimiser state, joint's store and retrained
    model, PL-FMS's importance memory must all come back), then resumes."""
    cfg = load_config(_cfg(small_cfg, strategy, every=30))
    ref = tmp_path / "ref"
    Run(cfg).execute(ref)
    out = tmp_path / "crashed"
    monkeypatch.setenv("CLENV_RAISE_LEARN", "23")  # task 2 (positions 220-230)
    with pytest.raises(RuntimeError, match="learn call 23"):
        Run(cfg).execute(out)
    assert (out / "checkpoint.pt").is_file()
    monkeypatch.delenv("CLENV_RAISE_LEARN")
    Run(cfg).execute(out, resume=True)
    assert _without_wall(out / "metrics.json") == _without_wall(ref / "metrics.json")


def test_resume_without_checkpoint_reruns_from_start(small_cfg, tmp_path):
    cfg = load_config(_cfg(small_cfg, {"name": "naive"}, every=1000))
    ref = tmp_path / "ref"
    Run(cfg).execute(ref)
    out = tmp_path / "again"
    Run(cfg).execute(out, resume=True)
    assert _without_wall(out / "metrics.json") == _without_wall(ref / "metrics.json")


def test_strategy_without_state_protocol_is_refused_in_one_line(small_cfg, tmp_path, capsys):
    cfg = _cfg(small_cfg, {"name": f"{KILLER}:Stateless"})
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "out"
    assert main(["run", str(path), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "does not support checkpoints" in err
    assert "output.checkpoint_every" in err
    assert not out.exists()  # no partial results folder
    cfg["output"] = {"plots": False}
    path.write_text(yaml.safe_dump(cfg))
    assert main(["run", str(path), "--out", str(out), "--quiet"]) == 0
    (out / "metrics.json").unlink()
    assert main(["run", "--resume", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--resume" in err and "does not support checkpoints" in err


def test_resume_argument_errors_are_one_line(tmp_path, capsys):
    assert main(["run", "--resume", str(tmp_path / "nothing")]) == 2
    assert "no config.yaml" in capsys.readouterr().err
    assert main(["run", "scenarios/quickstart.yaml", "--resume", str(tmp_path)]) == 2
    assert "takes no CONFIG" in capsys.readouterr().err
    assert main(["run"]) == 2
    assert "--resume DIR" in capsys.readouterr().err


def test_bad_checkpoint_every_is_a_config_error(small_cfg):
    from clenv.errors import ConfigError

    cfg = _cfg(small_cfg, {"name": "naive"}, every=0)
    with pytest.raises(ConfigError) as exc:
        load_config(cfg)
    one_line(exc, "output.checkpoint_every", ">= 1")


def test_strategy_state_roundtrip_keeps_shared_generator(small_cfg):
    """ER's buffer and the strategy share one numpy generator; after load_state_dict they
    still do, and both continue the saved stream of draws."""
    from clenv.runner import make_spec, make_strategy

    cfg = load_config(_cfg(small_cfg, {"name": "er", "memory_size": 20}))
    run = Run(cfg)
    a = make_strategy(cfg["strategy"])
    spec = make_spec(cfg, run.env)
    a.setup(spec)
    obs, _ = run.env.reset(seed=0)
    for _ in range(5):
        nxt, _, _, _, info = run.env.step(np.zeros(run.env.B, dtype=np.int64))
        a.learn(obs, info)
        obs = nxt
    state = a.state_dict()
    b = make_strategy(cfg["strategy"])
    b.setup(spec)
    b.load_state_dict(state)
    assert b.memory.rng is b.rng
    assert a.rng.integers(0, 10**9) == b.rng.integers(0, 10**9)
    for pa, pb in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert pa.data.equal(pb.data)
    assert b.counters() == a.counters()


def test_multilane_lanes_and_adam_state_survive_a_resume(tmp_path, monkeypatch):
    """MULTI-LANE grows one lane per task: the resume recreates the lanes, then loads them."""
    from tests.conftest import require

    require("timm")
    cfg = load_config({
        "name": "ml", "seed": 0,
        "scenario": {"generator": "mlcil", "seed": 0, "increment": 2, "batch_size": 16},
        "data": {"source": "canvas", "seed": 0, "canvas": 16, "glyph_scale": 1,
                 "objects": [1, 3], "n_classes": 6, "train_size": 150, "test_size": 40},
        "strategy": {"name": f"{KILLER}:KillingMultiLane", "lr": 0.01, "n_selectors": 2,
                     "n_prompts": 2, "prompt_layers": 1},
        "model": {"name": "vit", "patch_size": 4, "embed_dim": 32, "depth": 2, "num_heads": 4},
        "eval": {"every": 0}, "output": {"plots": False, "checkpoint_every": 48}})
    ref = tmp_path / "ref"
    Run(cfg).execute(ref)
    out = tmp_path / "crashed"
    monkeypatch.setenv("CLENV_RAISE_LEARN", "12")  # in task 1, after a checkpoint at 144
    with pytest.raises(RuntimeError):
        Run(cfg).execute(out)
    import torch

    saved = torch.load(out / "checkpoint.pt", weights_only=True)["strategy"]
    assert len(saved["task_classes"]) >= 2 and saved["optimizer"] is not None
    monkeypatch.delenv("CLENV_RAISE_LEARN")
    Run(cfg).execute(out, resume=True)
    assert _without_wall(out / "metrics.json") == _without_wall(ref / "metrics.json")


class _Opaque:
    """An object with no state_dict(): not in the checkpoint vocabulary."""


def test_unencodable_attribute_is_refused_before_any_work(small_cfg, tmp_path, monkeypatch):
    """A declared state attribute holding a value the explicit state cannot encode fails right
    after setup, naming it, before any file is written."""
    from clenv.strategies.state import CheckpointUnsupported
    from tests.checkpoint_killer import KillingNaive

    class Holder(KillingNaive):
        state_attributes = ("handle",)

        def setup(self, spec):
            super().setup(spec)
            self.handle = {"inner": [1, _Opaque()]}

    cfg = load_config(_cfg(small_cfg, {"name": "naive"}))
    run = Run(cfg)
    monkeypatch.setattr("clenv.runner.make_strategy", lambda section: Holder(
        **{k: v for k, v in section.items() if k != "name"}))
    with pytest.raises(CheckpointUnsupported) as exc:
        run.execute(tmp_path / "out")
    one_line(exc, "output.checkpoint_every", "Holder", "'handle'", "_Opaque",
             "cannot be checkpointed")
    assert not (tmp_path / "out").exists()  # refused before any file was written


@pytest.mark.parametrize("preset", ["er_active_forgetting", "er_temporary_forgetting"])
def test_forgetting_plugin_state_survives_a_resume(small_cfg, tmp_path, monkeypatch, preset):
    """The forgetting plug-in (clenv.plugins) checkpoints its own declared state (schedule
    counters, generators, loss window, pending recovery) beside the strategy's."""
    pytest.importorskip("clenv.plugins.forgetting")
    if not (REPO / "strategies" / f"{preset}.yaml").is_file():
        pytest.skip(f"no {preset} preset")
    cfg = load_config(_cfg(small_cfg, {"preset": preset, "name": f"{KILLER}:KillingER"},
                           every=30))
    ref = tmp_path / "ref"
    Run(cfg).execute(ref)
    out = tmp_path / "crashed"
    monkeypatch.setenv("CLENV_RAISE_LEARN", "23")
    with pytest.raises(RuntimeError):
        Run(cfg).execute(out)
    monkeypatch.delenv("CLENV_RAISE_LEARN")
    Run(cfg).execute(out, resume=True)
    assert _without_wall(out / "metrics.json") == _without_wall(ref / "metrics.json")


@pytest.mark.parametrize("name", ["KillingER", "KillingJoint"])
def test_language_head_state_survives_a_resume(small_cfg, tmp_path, monkeypatch, name):
    """The language head's plan (revealed class vectors, model builds: joint rebuilds its
    model at each task end) is part of the strategy's explicit state."""
    from tests.language_helpers import install_fake

    install_fake(monkeypatch, tmp_path / "enc")
    head = {"type": "language", "encoder": str(tmp_path / "enc"),
            "cache_dir": str(tmp_path / "cache")}
    cfg = load_config(_cfg(small_cfg, {"name": f"{KILLER}:{name}", "head": head}, every=30))
    ref = tmp_path / "ref"
    Run(cfg).execute(ref)
    out = tmp_path / "crashed"
    monkeypatch.setenv("CLENV_RAISE_LEARN", "23")
    with pytest.raises(RuntimeError):
        Run(cfg).execute(out)
    from clenv.checkpoint import load_checkpoint

    state = load_checkpoint(out / "checkpoint.pt")["strategy"]
    assert state["head_plan"]["state"]["builds"] >= 1
    monkeypatch.delenv("CLENV_RAISE_LEARN")
    Run(cfg).execute(out, resume=True)
    assert _without_wall(out / "metrics.json") == _without_wall(ref / "metrics.json")
