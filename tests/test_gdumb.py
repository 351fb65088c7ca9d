"""GDumb: the greedy class-balanced memory, the SGDR rate, retraining from scratch at each
evaluation point (or at task ends only), its budget, the reference loss, check and resume."""

from __future__ import annotations

import copy
import json
import math
import re

import numpy as np
import pytest
import torch
import yaml

from clenv.cli import main
from clenv.config.loader import load_config
from clenv.errors import ConfigError
from clenv.runner import Run
from clenv.strategies.balanced_memory import ClassBalancedMemory
from clenv.strategies.gdumb import GDumb, sgdr_lr
from tests.checkpoint_killer import _Killing
from tests.conftest import one_line


class KillingGDumb(_Killing, GDumb):
    """GDumb that raises on request (CLENV_RAISE_LEARN)."""


def _memory(cap=4, n_classes=4, seed=0):
    return ClassBalancedMemory(cap, (1,), torch.float32, n_classes, np.random.default_rng(seed))


def _offer(mem, ids, labels):
    mem.add(torch.tensor(ids, dtype=torch.float32)[:, None], torch.tensor(labels))


def test_greedy_memory_hand_worked_sequence():
    """Algorithm 1 of the paper by hand, capacity 4: the share of a class is 4 / |Y|."""
    mem = _memory()
    label_of = {}

    def offer(i, c, want):
        label_of[i] = c
        _offer(mem, [i], [c])
        assert mem.counts.tolist() == want, (i, c)

    for i in range(4):  # free slots: every sample is kept
        offer(i, 0, [i + 1, 0, 0, 0])
    offer(4, 1, [3, 1, 0, 0])  # |Y| = 2, share 2: admitted, a class-0 sample evicted
    offer(5, 1, [2, 2, 0, 0])
    offer(6, 1, [2, 2, 0, 0])  # class 1 holds its share: refused
    offer(7, 2, [1, 2, 1, 0])  # |Y| = 3, share 4/3; tie 0/1 largest: the lowest id loses
    offer(8, 2, [1, 1, 2, 0])  # largest: class 1
    offer(9, 0, [2, 1, 1, 0])  # 1 < 4/3: admitted, class 2 (largest) loses one
    assert 6 not in mem.x[:, 0].long().tolist()
    ids = mem.x[:, 0].long().tolist()
    assert [label_of[i] for i in ids] == mem.y.tolist() == mem.labels.tolist()  # x, y paired
    assert {4, 5} & set(ids) or {7, 8} & set(ids)


def test_batch_add_equals_one_at_a_time():
    """The vectorised write of a batch (a slot refilled twice keeps the later sample) gives
    the memory that offering the samples one by one gives, same seed."""
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 6, 300)
    a, b = _memory(20, 6, seed=3), _memory(20, 6, seed=3)
    for s in range(0, 300, 10):
        _offer(a, list(range(s, s + 10)), labels[s:s + 10].tolist())
        for i in range(s, s + 10):
            _offer(b, [i], [int(labels[i])])
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert a.counts.tolist() == np.bincount(a.y.numpy(), minlength=6).tolist()
    assert a.counts.max() - a.counts.min() <= 1  # balanced over the 6 classes


def test_sgdr_matches_the_official_loop():
    """The official code: epoch 0 at lr/10, epoch 1 at lr, then
    CosineAnnealingWarmRestarts(T_0=1, T_mult=2, eta_min) stepped once per epoch."""
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.05)
    sched = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=1, T_mult=2,
                                                                 eta_min=0.0005)
    for epoch in range(40):
        if epoch == 0:
            expected = 0.005
        elif epoch == 1:
            expected = 0.05
        else:
            sched.step()
            expected = opt.param_groups[0]["lr"]
        assert math.isclose(sgdr_lr(epoch, 0.05, 0.0005, True), expected, rel_tol=1e-12)
    assert sgdr_lr(0, 0.05, 0.0005, False) == 0.05


def _cfg(small_cfg, **strategy):
    cfg = copy.deepcopy(small_cfg)
    cfg["strategy"] = {"name": "gdumb", "memory_size": 30, "epochs": 2, "batch_size": 8,
                       **strategy}
    return cfg


def _records(out):
    return [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]


def test_retrains_at_each_evaluation_point_and_counts_it(small_cfg, tmp_path):
    """Every evaluation after a memory change retrains: epochs * ceil(size / batch) steps,
    nothing between evaluations (no stream training), counted in grad_steps."""
    out = tmp_path / "r"
    Run(load_config(_cfg(small_cfg))).execute(out)
    evals = [r for r in _records(out) if r["type"] == "eval"]
    steps = [r["budget"]["grad_steps"] for r in evals]
    sizes = [r["budget"]["buffer_samples"] for r in evals]
    n_retrain = [r["budget"]["retrainings"] for r in evals]
    assert steps[0] == 0 and n_retrain[0] == 0
    assert n_retrain[-1] >= 3  # at least once per task (new classes enter the memory)
    for i in range(1, len(evals)):
        retrained = n_retrain[i] - n_retrain[i - 1]
        assert retrained in (0, 1)
        assert steps[i] - steps[i - 1] == retrained * 2 * math.ceil(sizes[i] / 8)
    assert evals[-1]["budget"]["samples_processed"] == sum(
        (n_retrain[i] - n_retrain[i - 1]) * 2 * sizes[i] for i in range(1, len(evals)))


def test_offline_retrains_at_task_ends_only_and_needs_boundaries(small_cfg, tmp_path):
    out = tmp_path / "o"
    Run(load_config(_cfg(small_cfg, retrain="task_end"))).execute(out)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["budget"]["retrainings"] == 3
    cfg = _cfg(small_cfg, retrain="task_end")
    cfg["scenario"]["boundaries"] = "hidden"
    with pytest.raises(ConfigError) as exc:
        Run(load_config(cfg)).execute(tmp_path / "h")
    one_line(exc, "strategy.retrain", "boundaries")
    cfg["strategy"]["retrain"] = "evaluation"  # hidden boundaries: evaluation points suffice
    Run(load_config(cfg)).execute(tmp_path / "h2")


def test_stream_predictions_use_the_last_retrained_model(small_cfg):
    """learn never trains: predictions change only when an evaluation retrains."""
    from clenv.runner import make_env, make_spec

    cfg = load_config(_cfg(small_cfg))
    run = Run(cfg)
    env = make_env(cfg, run.pool)
    obs, _ = env.reset(seed=0)
    s = GDumb(memory_size=30, epochs=1, batch_size=8)
    s.setup(make_spec(cfg, env))
    probe = {"x": obs["x"], "valid": obs["valid"]}
    s.seen[:] = True
    before = s.predict(probe).clone()
    for _ in range(5):
        obs, _, _, _, info = env.step(np.zeros(env.B, dtype=np.int64))
        s.learn(obs, info)
    s.seen[:] = True
    assert torch.equal(s.predict(probe), before) and s.grad_steps == 0
    s.prepare_evaluation()
    assert s.grad_steps == math.ceil(s.memory.size / 8) and s.retrainings == 1
    assert not torch.equal(s.predict(probe), before)
    s.prepare_evaluation()  # memory unchanged: no second retraining
    assert s.retrainings == 1


def test_loss_is_avalanche_gdumb_criterion_when_all_classes_are_seen():
    """Avalanche's GDumb trains its template's criterion, CrossEntropyLoss over every output.
    Same weights and memory batch: the same loss and gradients once every class is seen;
    with unseen classes clenv masks them (the documented difference)."""
    from clenv.strategies.spec import StrategySpec

    spec = StrategySpec(input_shape=(4,), image=False, n_classes=3, batch_size=4,
                        stream_length=40, n_tasks=1, model={"name": "mlp", "hidden": [8]})
    s = GDumb(lr=0.1)
    s.setup(spec)
    x, y = torch.randn(6, 4, generator=torch.Generator().manual_seed(0)), torch.tensor(
        [0, 1, 2, 0, 1, 2])
    s.seen[:] = True
    ref = copy.deepcopy(s.model)
    out = s.model(x)
    ours = s.loss(out, y)
    ours.backward()
    theirs = torch.nn.CrossEntropyLoss()(ref(x), y)
    theirs.backward()
    assert abs(ours.item() - theirs.item()) < 1e-6
    for a, b in zip(s.model.parameters(), ref.parameters(), strict=True):
        assert torch.allclose(a.grad, b.grad, atol=1e-6)
    s.seen[2] = False
    assert abs(s.loss(s.model(x[:4][[0, 1, 3]]), y[[0, 1, 3]]).item()
               - torch.nn.CrossEntropyLoss()(ref(x[[0, 1, 3]]), y[[0, 1, 3]]).item()) > 1e-4


def _without_wall(path):
    return re.sub(r'\n "wall_time": \{[^}]*\}', "", path.read_text())


def test_crash_then_resume_matches_uninterrupted(small_cfg, tmp_path, monkeypatch):
    cfg = _cfg(small_cfg)
    cfg["strategy"]["name"] = "tests.test_gdumb:KillingGDumb"
    cfg["output"] = {"plots": False, "checkpoint_every": 40}
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


def test_preset_runs_and_checks_from_yaml(small_cfg, tmp_path, capsys):
    cfg = copy.deepcopy(small_cfg)
    cfg["strategy"] = {"preset": "gdumb", "epochs": 2}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["check", str(path)]) == 0
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["final_accuracy"] > 0.5 and metrics["budget"]["retrainings"] > 0
    cfg["strategy"] = {"name": "gdumb", "schedule": {"type": "cosine"}}
    path.write_text(yaml.safe_dump(cfg))
    capsys.readouterr()
    for command in (["check", str(path)], ["run", str(path), "--out", str(tmp_path / "bad")]):
        assert main(command) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and "strategy.schedule" in err
    assert not (tmp_path / "bad").exists()


def test_each_retraining_starts_from_the_initial_weights():
    """With lr = 0 a retraining leaves the fresh model as built: the setup's initial weights
    (Avalanche's GDumbPlugin restarts from a copy of its initial model)."""
    from clenv.strategies.spec import StrategySpec

    spec = StrategySpec(input_shape=(4,), image=False, n_classes=3, batch_size=4,
                        stream_length=40, n_tasks=1, model={"name": "mlp", "hidden": [8]})
    s = GDumb(lr=0.0, epochs=1, warmup=False, sgdr=False)
    s.setup(spec)
    init = copy.deepcopy(s.model.state_dict())
    for p in s.model.parameters():
        p.data.add_(1.0)  # anything the model went through before
    s.mark_seen(torch.tensor([0, 1]))
    s.memory.add(torch.randn(6, 4), torch.tensor([0, 1, 0, 1, 0, 1]))
    s.prepare_evaluation()
    assert s.retrainings == 1
    for k, v in s.model.state_dict().items():
        assert torch.equal(v, init[k]), k
