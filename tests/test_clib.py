"""CLIB against i-Blurry's methods/clib.py (online_step, online_train with stream_batch_size 0,
samplewise_importance_memory, samplewise_loss_update with imp_update_period 1, adaptive_lr).
Expected values are worked by hand from those definitions."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from clenv.config.loader import load_config
from clenv.runner import Run, make_spec, make_strategy
from clenv.strategies.clib import CLIB
from clenv.training.adaptive_lr import AdaptiveLR
from tests.checkpoint_killer import _Killing
from tests.test_checkpoint import _without_wall


class KillingCLIB(_Killing, CLIB):
    """CLIB that can crash at a learn call (CLENV_RAISE_LEARN)."""


def _strategy(small_cfg: dict, **params) -> tuple[CLIB, dict]:
    cfg = copy.deepcopy(small_cfg)
    cfg["strategy"] = {"name": "clib", "memory_size": 3, **params}
    cfg = load_config(cfg)
    run = Run(cfg)
    s = make_strategy(cfg["strategy"])
    run.env.reset(seed=0)
    s.setup(make_spec(cfg, run.env))
    return s, cfg


def _batch(labels: list[int], dim: int = 8) -> tuple[dict, dict]:
    n = len(labels)
    x = np.arange(n * dim, dtype=np.float32).reshape(n, dim)
    info = {"valid": np.ones(n, bool), "y": np.array(labels, dtype=np.int64),
            "new_classes": {}}
    return {"x": x}, info


def test_eviction_by_hand(small_cfg) -> None:
    """No training (updates_per_sample 0). Memory 3 holds [0, 0, 1] with importance
    [0.5, 0.2, 0.0]. A class-1 sample: frequencies [2, 1] + 1 on class 1 = [2, 2]; np.argmax
    takes class 0, its lowest importance is slot 1 -> slot 1 now holds class 1, starting at
    class 1's other samples' mean importance (slot 2: 0.0). A class-2 sample: [1, 2, 0] + 1
    on class 2 -> class 1, importance [0.0 (slot 2), 0.0 (slot 1)], argmin over class 1's
    index list in order of arrival (slot 2 first) -> slot 2."""
    s, _ = _strategy(small_cfg, updates_per_sample=0.0)
    s.learn(*_batch([0, 0, 1]))
    s.memory.importance[:3] = [0.5, 0.2, 0.0]
    s.learn(*_batch([1]))
    assert s.memory.unit[:3].tolist() == [0, 1, 1]
    assert s.memory.importance[1] == 0.0
    s.learn(*_batch([2]))
    assert s.memory.unit[:3].tolist() == [0, 1, 2]
    assert s.grad_steps == 0


def test_steps_train_on_memory_only_and_update_importance_every_step(small_cfg,
                                                                     monkeypatch) -> None:
    """online_train(stream_batch_size=0): the batch is min(len(memory), batch_size) memory
    samples drawn without replacement, and no stream row; importance period 1: every step
    recomputes the memory losses and clears the record of draws."""
    s, _ = _strategy(small_cfg, memory_size=20, updates_per_sample=0.2)
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    step = CLIB.step

    def spy(self, x, y):
        seen.append((x.clone(), y.clone()))
        out = step(self, x, y)
        return out

    monkeypatch.setattr(CLIB, "step", spy)
    batch, info = _batch([0, 1, 2, 3, 4])
    batch["x"] = batch["x"] + 1000.0  # stream rows distinguishable from later memory writes
    s.learn(batch, info)  # memory 5 samples; 0.2 * 5 = 1 step on min(5, 10) = 5 samples
    assert len(seen) == 1 and len(seen[0][1]) == 5
    mem = {tuple(r.tolist()) for r in s.memory.x[: s.memory.size]}
    assert all(tuple(r.tolist()) in mem for r in seen[0][0])
    assert len({tuple(r.tolist()) for r in seen[0][0]}) == 5  # without replacement
    assert s.memory.drawn.size == 0 and s.loss_prev is not None and len(s.loss_prev) == 5
    s.learn(*_batch([0, 1, 2, 3, 4, 5, 0, 1, 2, 3]))  # 15 in memory, 2 steps of 10
    assert [len(y) for _, y in seen[1:]] == [10, 10]
    assert s.grad_steps == 3


def test_adaptive_rate_observes_every_importance_update(small_cfg) -> None:
    """The preset's schedule is CLIB's adaptive rate: it sees the memory losses after each
    step (period 1) and the slots the stream batch overwrote."""
    s, _ = _strategy(small_cfg, memory_size=4, schedule={"type": "adaptive", "lr_period": 2})
    assert isinstance(s.lr_schedule, AdaptiveLR)
    s.learn(*_batch([0, 1, 2, 3]))
    s.learn(*_batch([4, 5]))  # full: two replaced slots noted for the next switch
    assert s.lr_schedule.count == s.grad_steps == 2
    assert s.lr_schedule.prev is not None  # count 2 is a switch: the losses are kept
    assert s.lr_schedule.is_high is False
    s.learn(*_batch([0]))
    assert len(s.lr_schedule.replaced) == 1


def test_single_label_only(small_cfg) -> None:
    from clenv.errors import ConfigError

    cfg = copy.deepcopy(small_cfg)
    cfg["strategy"] = {"name": "clib"}
    cfg["scenario"] = {"generator": "hle", "mode": "multi_depth", "seed": 0, "batch_size": 10}
    cfg["data"] = {"source": "synthetic", "seed": 0, "depth": 2, "branching": [2, 2],
                   "separation": [1.0, 1.0], "noise": 1.0, "dim": 8, "train_per_class": 10,
                   "test_per_class": 5}
    cfg = load_config(cfg)
    with pytest.raises(ConfigError, match="single_label"):
        Run(cfg).execute(None)


def test_crash_then_resume_is_exact(small_cfg, tmp_path, monkeypatch) -> None:
    cfg = copy.deepcopy(small_cfg)
    cfg["strategy"] = {"name": "tests.test_clib:KillingCLIB", "memory_size": 40,
                       "schedule": {"type": "adaptive", "lr_period": 3}}
    cfg["output"] = {"plots": False, "checkpoint_every": 30}
    cfg = load_config(cfg)
    ref = tmp_path / "ref"
    Run(cfg).execute(ref)
    out = tmp_path / "crashed"
    monkeypatch.setenv("CLENV_RAISE_LEARN", "23")
    with pytest.raises(RuntimeError, match="learn call 23"):
        Run(cfg).execute(out)
    monkeypatch.delenv("CLENV_RAISE_LEARN")
    Run(cfg).execute(out, resume=True)
    assert _without_wall(out / "metrics.json") == _without_wall(ref / "metrics.json")
