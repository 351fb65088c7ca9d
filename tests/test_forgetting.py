"""The forgetting plug-in: which steps reset, fresh seeded values, optimiser state cleared (Adam
and SGD momentum), probabilistic rows restored exactly, frozen targets never reset, errors,
and the reset events of an end-to-end run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from clenv.cli import main
from clenv.errors import ConfigError
from clenv.models.language_head import CosineHead
from clenv.runner import make_strategy
from clenv.strategies.registry import validate_strategy
from clenv.strategies.spec import StrategySpec
from tests.conftest import one_line
from tests.language_helpers import install_fake


def _strategy(forgetting: dict | None, optimizer: str = "sgd", head: dict | None = None,
              **spec_kw):
    section = {"name": "naive", "optimizer": optimizer, "lr": 0.05, "momentum": 0.9}
    if optimizer == "adam":
        section = {"name": "naive", "optimizer": "adam", "lr": 0.01}
    if forgetting is not None:
        section["forgetting"] = forgetting
    if head is not None:
        section["head"] = head
    s = make_strategy(validate_strategy(section))
    spec = dict(input_shape=(4,), image=False, n_classes=4, batch_size=8, stream_length=800,
                n_tasks=2, seed=0, model={"name": "mlp", "hidden": [8]})
    spec.update(spec_kw)
    s.setup(StrategySpec(**spec))
    return s


def _batch(seed: int, classes=(0, 1, 2, 3)) -> tuple[torch.Tensor, torch.Tensor]:
    g = np.random.default_rng(seed)
    y = torch.from_numpy(g.choice(classes, 8))
    x = torch.from_numpy(g.normal(size=(8, 4)).astype(np.float32)) + y[:, None].float()
    return x, y


def _train(s, n: int, start: int = 0) -> list[dict]:
    s.seen[:] = True
    events = []
    for i in range(start, start + n):
        s.step(*_batch(i))
        events += s.drain_events()
    return events


def _reset_steps(events: list[dict]) -> list[int]:
    return [e["grad_step"] for e in events if e["kind"] == "reset"]


def test_active_resets_every_k_steps_for_the_whole_run():
    s = _strategy({"schedule": "active", "every": 7})
    assert _reset_steps(_train(s, 30)) == [7, 14, 21, 28]


def test_temporary_resets_only_in_the_first_n_steps():
    s = _strategy({"schedule": "temporary", "every": 5, "window": 12})
    assert _reset_steps(_train(s, 40)) == [5, 10]


def test_temporary_per_task_restarts_at_each_task():
    s = _strategy({"schedule": "temporary", "every": 4, "window": 8, "per": "task"})
    s.on_task_start(0)
    first = _reset_steps(_train(s, 20))
    s.on_task_start(1)
    second = _reset_steps(_train(s, 20, start=20))
    assert first == [4, 8] and second == [24, 28]


def test_per_task_needs_exposed_boundaries():
    with pytest.raises(ConfigError) as exc:
        _strategy({"schedule": "temporary", "per": "task"}, boundaries=False)
    one_line(exc, "strategy.forgetting.per", "boundaries")


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_reset_gives_fresh_values_and_clears_optimiser_state(optimizer):
    s = _strategy({"schedule": "active", "every": 5}, optimizer=optimizer)
    head, body = s.model.head, s.model.features[1]
    _train(s, 4)
    before = head.weight.detach().clone()
    key = "momentum_buffer" if optimizer == "sgd" else "exp_avg"
    assert key in s.optimizer.state[head.weight]
    s.step(*_batch(4))  # step 5: reset after the update
    events = s.drain_events()
    assert _reset_steps(events) == [5]
    assert events[0]["target"] == ["head"] and events[0]["n_params"] == head.weight.numel() + 4
    assert not torch.allclose(head.weight, before)
    assert head.weight.abs().max() <= 1 / np.sqrt(8)  # torch's default Linear init range
    assert len(s.optimizer.state.get(head.weight, {})) == 0
    assert len(s.optimizer.state.get(head.bias, {})) == 0
    assert key in s.optimizer.state[body.weight]  # the body keeps its state
    s.step(*_batch(5))
    if optimizer == "adam":  # the head's step count restarts; the body's goes on
        assert int(s.optimizer.state[head.weight]["step"]) == 1
        assert int(s.optimizer.state[body.weight]["step"]) == 6
    else:  # a fresh momentum buffer is the first gradient itself
        assert s.optimizer.state[head.weight]["momentum_buffer"].abs().sum() > 0


def test_resets_are_seeded():
    a = _strategy({"schedule": "active", "every": 3, "target": ["head", "input"]})
    b = _strategy({"schedule": "active", "every": 3, "target": ["head", "input"]})
    _train(a, 9)
    _train(b, 9)
    for pa, pb in zip(a.model.parameters(), b.model.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=0, atol=0)


def test_named_module_and_unknown_name():
    s = _strategy({"schedule": "active", "every": 2, "target": "features.1"})
    w = s.model.features[1].weight.detach().clone()
    head = s.model.head.weight.detach().clone()
    s.seen[:] = True
    s.step(*_batch(0))
    head_after_one = s.model.head.weight.detach().clone()
    s.step(*_batch(1))
    assert _reset_steps(s.drain_events()) == [2]
    assert not torch.allclose(s.model.features[1].weight, w)
    assert not torch.allclose(head_after_one, head)  # the head only trained
    with pytest.raises(ConfigError) as exc:
        _strategy({"schedule": "active", "target": "features.9"})
    one_line(exc, "strategy.forgetting.target", "no module 'features.9'", "features.1")


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_probabilistic_rows_restored_exactly(optimizer):
    s = _strategy({"schedule": "probabilistic", "p": 1.0}, optimizer=optimizer)
    s.seen[:] = True
    head = s.model.head
    _train(s, 3)  # optimiser state exists
    x, y = _batch(50, classes=(0, 2))
    w, b = head.weight.detach().clone(), head.bias.detach().clone()
    st = {k: v.clone() for k, v in s.optimizer.state[head.weight].items() if torch.is_tensor(v)
          and v.shape == head.weight.shape}
    body = s.model.features[1].weight.detach().clone()
    s.step(x, y)
    rows = [0, 2]  # the batch's classes: swapped for the step, then restored, no update
    torch.testing.assert_close(head.weight[rows], w[rows], rtol=0, atol=0)
    torch.testing.assert_close(head.bias[rows], b[rows], rtol=0, atol=0)
    for k, v in st.items():
        torch.testing.assert_close(s.optimizer.state[head.weight][k][rows], v[rows], rtol=0,
                                   atol=0)
    assert not torch.allclose(head.weight[[1, 3]], w[[1, 3]])  # absent classes still train
    assert not torch.allclose(s.model.features[1].weight, body)  # the body trains
    assert s.drain_events() == []  # swaps are not resets


def test_probabilistic_p0_changes_nothing_and_p_draws_are_seeded():
    s = _strategy({"schedule": "probabilistic", "p": 0.0})
    ref = _strategy(None)
    _train(s, 5)
    _train(ref, 5)
    for pa, pb in zip(s.model.parameters(), ref.model.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=0, atol=0)


def test_language_targets_never_reset(tmp_path, monkeypatch):
    install_fake(monkeypatch, tmp_path / "enc")
    head = {"type": "language", "encoder": str(tmp_path / "enc"),
            "cache_dir": str(tmp_path / "c")}
    s = _strategy({"schedule": "active", "every": 2, "target": ["head", "input"]}, head=head)
    cos = s.model.head
    assert isinstance(cos, CosineHead)
    s.head_plan.reveal(s.model, {0: "a", 1: "b", 2: "c", 3: "d"})
    targets = cos.targets.clone()
    proj = cos.projection.weight.detach().clone()
    events = _train(s, 4)
    assert _reset_steps(events) == [2, 4]
    torch.testing.assert_close(cos.targets, targets, rtol=0, atol=0)
    assert not torch.allclose(cos.projection.weight, proj)
    n_proj = sum(p.numel() for p in cos.projection.parameters())
    n_input = sum(p.numel() for p in s.model.features[1].parameters())
    assert events[0]["n_params"] == n_proj + n_input  # no targets, scale or bias


def test_language_head_errors(tmp_path, monkeypatch):
    install_fake(monkeypatch, tmp_path / "enc")
    head = {"type": "language", "encoder": str(tmp_path / "enc"),
            "cache_dir": str(tmp_path / "c")}
    with pytest.raises(ConfigError) as exc:
        validate_strategy({"name": "er", "head": head,
                           "forgetting": {"schedule": "probabilistic"}})
    one_line(exc, "strategy.forgetting.schedule", "frozen")
    with pytest.raises(ConfigError) as exc:  # 16 features, 16-dim targets: no projection
        _strategy({"schedule": "active"}, head=head, model={"name": "mlp", "hidden": [16]})
    one_line(exc, "strategy.forgetting.target", "nothing to reset")


def test_forgetting_rejected_for_multilane():
    with pytest.raises(ConfigError) as exc:
        validate_strategy({"name": "multilane", "forgetting": {"schedule": "active"}})
    one_line(exc, "strategy.forgetting", "builds or trains its own model")


def test_recovery_is_measured_after_a_reset():
    s = _strategy({"schedule": "active", "every": 40, "recovery_window": 5})
    events = _train(s, 80)
    rec = [e for e in events if e["kind"] == "recovered"]
    assert rec and rec[0]["reset_step"] == 40
    assert rec[0]["recovery_steps"] is None or rec[0]["recovery_steps"] >= 1


def test_end_to_end_reset_events_and_plot(tmp_path):
    cfg = {"name": "af", "seed": 0,
           "scenario": {"generator": "disjoint", "seed": 0, "n_tasks": 3, "batch_size": 10},
           "data": {"source": "synthetic", "branching": [6], "dim": 8, "train_per_class": 200,
                    "test_per_class": 10},
           "strategy": "er_active_forgetting", "model": {"name": "mlp", "hidden": [16]},
           "budget": {"memory_size": 50}, "eval": {"every": 60}}
    path = tmp_path / "af.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "out"
    assert main(["run", str(path), "--out", str(out), "--quiet"]) == 0
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    resets = [e for e in events if e["type"] == "event" and e["kind"] == "reset"]
    # the preset resets every 100 steps; 1200 stream samples, one step per batch of 10
    assert [e["grad_step"] for e in resets] == [100]
    assert [(e["env_step"], e["samples"]) for e in resets] == [(100, 1000)]
    assert (out / "forgetting.png").stat().st_size > 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["complete"]
