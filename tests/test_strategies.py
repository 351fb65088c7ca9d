"""Strategy building blocks: the reservoir buffer, masking, the update credit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clenv.strategies.memory import ReservoirBuffer
from clenv.strategies.naive import Naive
from clenv.strategies.spec import StrategySpec


def _buffer(cap=100, seed=0):
    return ReservoirBuffer(cap, (1,), torch.float32, np.random.default_rng(seed))


def test_reservoir_fills_then_keeps_capacity():
    buf = _buffer(50)
    buf.add(torch.arange(30.0)[:, None], torch.arange(30))
    assert buf.size == 30 and buf.n_seen == 30
    assert torch.equal(buf.y[:30], torch.arange(30))
    buf.add(torch.arange(30.0, 100.0)[:, None], torch.arange(30, 100))
    assert buf.size == 50 and buf.n_seen == 100
    assert len(set(buf.y.tolist())) == 50  # no sample stored twice
    assert torch.equal(buf.x[:, 0].long(), buf.y)  # x and y stay paired


def test_reservoir_is_uniform_and_seeded():
    # each of 1000 offered samples should survive with probability 100/1000
    hits = np.zeros(1000)
    for seed in range(200):
        buf = _buffer(100, seed)
        for s in range(0, 1000, 10):
            buf.add(torch.arange(s, s + 10.0)[:, None], torch.arange(s, s + 10))
        hits[buf.y.numpy()] += 1
    rate = hits / 200
    assert abs(rate.mean() - 0.1) < 1e-9
    # early and late samples are kept equally often (a biased buffer fails this)
    assert abs(rate[:500].mean() - rate[500:].mean()) < 0.01
    a, b = _buffer(10, 3), _buffer(10, 3)
    for buf in (a, b):
        buf.add(torch.arange(100.0)[:, None], torch.arange(100))
    assert torch.equal(a.y, b.y)
    assert torch.equal(a.sample(5)[1], b.sample(5)[1])


def test_sample_from_empty_buffer():
    x, y = _buffer().sample(4)
    assert len(x) == 0 and len(y) == 0


def _spec(**kw):
    base = dict(input_shape=(4,), image=False, n_classes=5, batch_size=4, stream_length=100,
                n_tasks=2, model={"name": "mlp", "hidden": [8]})
    return StrategySpec(**{**base, **kw})


def test_unseen_classes_are_masked_and_credit_counts_steps():
    s = Naive(lr=0.1, updates_per_sample=0.75)
    s.setup(_spec())
    obs = {"x": np.random.default_rng(0).normal(size=(4, 4)).astype(np.float32),
           "valid": np.ones(4, dtype=np.int8)}
    assert torch.isinf(s.predict(obs)).all()  # nothing seen yet
    info = {"y": np.array([1, 1, 3, 0]), "valid": np.array([True, True, True, False])}
    s.learn(obs, info)  # 3 valid rows x 0.75 = 2.25 -> 2 steps, 0.25 carried
    assert s.grad_steps == 2
    scores = s.predict(obs)
    assert torch.isfinite(scores[:, [1, 3]]).all() and torch.isinf(scores[:, [0, 2, 4]]).all()
    s.learn(obs, info)  # 0.25 + 2.25 = 2.5 -> 2 steps
    assert s.grad_steps == 4 and s.samples_processed == 12


def test_a_strategy_refuses_a_family_it_does_not_declare(small_cfg):
    from clenv.config.loader import load_config
    from clenv.errors import ConfigError
    from clenv.runner import Run
    from clenv.strategies.naive import Naive

    class MultiLabelOnly(Naive):
        families = ("multi_label",)

    run = Run(load_config(small_cfg))
    from clenv.events import EventLog
    from clenv.runner import episode

    with pytest.raises(ConfigError, match="supports multi_label streams, not single_label"):
        episode(run.cfg, run.env, MultiLabelOnly(), EventLog(None), {}, anytime=False)
