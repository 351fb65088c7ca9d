"""Rainbow Memory against the official rules (clovaai/rainbow-memory methods/finetune.py:
variance_ratio, uncertainty_sampling, equal_class_sampling, update_memory; main.py's online
loop; i-Blurry methods/rainbow_memory.py: online_memory_train). Expected values are worked by
hand from those definitions, not replayed from clenv."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from clenv.config.loader import load_config
from clenv.errors import ConfigError
from clenv.runner import Run
from clenv.strategies.rainbow import (
    RainbowMemory,
    diverse_selection,
    vote_uncertainty,
    warm_restart_lr,
)
from tests.checkpoint_killer import _Killing
from tests.test_checkpoint import _without_wall


class KillingRainbow(_Killing, RainbowMemory):
    """Rainbow Memory that can crash at a learn call (CLENV_RAISE_LEARN)."""


def test_vote_uncertainty_by_hand() -> None:
    """u = 1 - (votes of the most voted class) / T over T = 4 views."""
    preds = np.array([[1, 0, 0], [1, 2, 1], [1, 2, 2], [1, 1, 3]])  # (T, N)
    # sample 0: class 1 four times -> 0; sample 1: 0, 2, 2, 1 -> 1 - 2/4; sample 2: 0, 1, 2, 3
    np.testing.assert_allclose(vote_uncertainty(preds, 4), [0.0, 0.5, 0.75])


def test_diversity_across_the_uncertainty_ranking_by_hand() -> None:
    """Class 0 has 7 candidates, m = 4 // 2 = 2 slots: jump 7 // 2 = 3 through the ascending
    ranking 1 (0.1), 5 (0.2), 3 (0.3), 0 (0.5), 6 (0.6), 4 (0.7), 2 (0.9) -> 1, 0, 2 -> the
    first two, [1, 0]; class 1 has 2 <= m candidates: both."""
    labels = np.array([0, 0, 0, 0, 0, 0, 0, 1, 1])
    u = np.array([0.5, 0.1, 0.9, 0.3, 0.7, 0.2, 0.6, 0.0, 0.4])
    rng = np.random.default_rng(0)
    keep = diverse_selection(labels, u, np.array([0, 1]), 4, rng)
    assert keep.tolist() == [1, 0, 7, 8]
    # capacity 5: the same four, then one slot filled from the candidates not chosen
    keep = diverse_selection(labels, u, np.array([0, 1]), 5, rng)
    assert keep[:4].tolist() == [1, 0, 7, 8] and keep[4] in (2, 3, 4, 5, 6)
    # ties keep candidate order (the official pandas sort does not promise an order)
    keep = diverse_selection(np.zeros(6, int), np.zeros(6), np.array([0]), 3, rng)
    assert keep.tolist() == [0, 2, 4]


def test_memory_epoch_rates_follow_the_official_schedule() -> None:
    """Epoch 0 at 0.1 lr, epoch 1 at lr, then torch's CosineAnnealingWarmRestarts(T_0=1,
    T_mult=2, eta_min=0.01 lr) stepped once per epoch (i-Blurry online_memory_train)."""
    lr = 0.05
    assert warm_restart_lr(0, lr) == pytest.approx(0.005)
    assert warm_restart_lr(1, lr) == pytest.approx(lr)
    assert warm_restart_lr(3, lr) == pytest.approx(0.0005 + (lr - 0.0005) / 2)  # by hand
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=1, T_mult=2,
                                                                 eta_min=lr * 0.01)
    for epoch in range(2, 12):
        sched.step()
        assert warm_restart_lr(epoch, lr) == pytest.approx(opt.param_groups[0]["lr"]), epoch
    assert math.isclose(warm_restart_lr(5, lr), 0.0005 + (lr - 0.0005)
                        * (1 + math.cos(math.pi / 4)) / 2)


def _cfg(small_cfg: dict, **strategy) -> dict:
    cfg = copy.deepcopy(small_cfg)
    cfg["strategy"] = {"name": "rainbow", "memory_size": 30, **strategy}
    return cfg


def _spy_run(cfg: dict, monkeypatch) -> tuple[RainbowMemory, list[np.ndarray], list[int]]:
    """Run cfg; return the strategy, the class counts of the memory after each task end and
    the batch size of every gradient step."""
    held: list = []
    counts: list[np.ndarray] = []
    steps: list[int] = []
    end, step = RainbowMemory.on_task_end, RainbowMemory.step

    def on_task_end(self, task):
        held[:] = [self]
        end(self, task)
        counts.append(np.bincount(self.memory.y[: self.memory.size].numpy(), minlength=6))

    def spy_step(self, x, y):
        steps.append(len(y))
        return step(self, x, y)

    monkeypatch.setattr(RainbowMemory, "on_task_end", on_task_end)
    monkeypatch.setattr(RainbowMemory, "step", spy_step)
    Run(load_config(cfg)).execute(None)
    return held[0], counts, steps


def test_task_end_memory_is_class_balanced_and_epochs_are_counted(small_cfg,
                                                                  monkeypatch) -> None:
    """3 tasks of 2 classes x 60 samples, memory 30, candidates 30 (a reservoir of the task):
    task 0 ends with 30 + 0 <= 30 candidates -> all kept; task 1: 30 // 4 = 7 per class by
    uncertainty-diversity, 2 free slots drawn from the rest; task 2: 30 // 6 = 5 per class
    (every class has more than 5 candidates). Gradient steps: 36 stream batches of 10 + 4
    replayed (none during task 0, whose memory is empty), and one memory epoch per task of
    ceil(30 / 10) = 3 batches."""
    s, counts, steps = _spy_run(_cfg(small_cfg, replay_batch_size=4), monkeypatch)
    assert counts[0].sum() == 30 and (counts[0] > 0).sum() == 2  # classes in stream order
    assert counts[1].sum() == 30 and (counts[1] > 0).sum() == 4
    assert counts[1][counts[1] > 0].min() >= 7
    assert counts[2].tolist() == [5] * 6
    c = s.counters()
    assert c["grad_steps"] == 36 + 3 * 3 == len(steps)
    # task 0: 12 stream-only steps of 10, then 3 memory steps of 10; later tasks 10 + 4
    assert steps[:15] == [10] * 15 and steps[15:27] == [14] * 12
    assert c["extra_forwards"] == 2 * 12 * 60  # two uncertainty passes over 60 candidates


def test_uncertainty_from_gaussian_views_on_vectors(small_cfg, monkeypatch) -> None:
    """Vector pools: noise_std 0 makes every view the clean input, so every uncertainty is 0
    and each class keeps its candidates at 0, j, 2j, ... in candidate order."""
    s, counts, _ = _spy_run(_cfg(small_cfg, noise_std=0.0, memory_epochs=0), monkeypatch)
    px = torch.randn(5, 8)
    u = vote_uncertainty(s.view_predictions(px), 6)
    assert np.all(u == 0.0)
    assert counts[2].tolist() == [5] * 6


def test_hidden_boundaries_are_refused(small_cfg) -> None:
    cfg = _cfg(small_cfg)
    cfg["scenario"]["boundaries"] = "hidden"
    with pytest.raises(ConfigError, match="task ends"):
        Run(load_config(cfg)).execute(None)


def test_crash_then_resume_is_exact(small_cfg, tmp_path, monkeypatch) -> None:
    cfg = _cfg(small_cfg)
    cfg["strategy"]["name"] = "tests.test_rainbow:KillingRainbow"
    cfg["output"] = {"plots": False, "checkpoint_every": 30}
    cfg = load_config(cfg)
    ref = tmp_path / "ref"
    Run(cfg).execute(ref)
    out = tmp_path / "crashed"
    monkeypatch.setenv("CLENV_RAISE_LEARN", "23")  # mid task 2: candidates and memory held
    with pytest.raises(RuntimeError, match="learn call 23"):
        Run(cfg).execute(out)
    monkeypatch.delenv("CLENV_RAISE_LEARN")
    Run(cfg).execute(out, resume=True)
    assert _without_wall(out / "metrics.json") == _without_wall(ref / "metrics.json")


def test_autoaugment_views_on_image_pools_are_seeded() -> None:
    """Image pools: T AutoAugment draws from the learner's generator; the same generator state
    gives the same views, and the views perturb the images."""
    from clenv.runner import make_spec, make_strategy
    from tests.conftest import REPO

    cfg = load_config(str(REPO / "scenarios" / "iblurry_digits.yaml"))
    cfg["strategy"] = {**cfg["strategy"], "name": "rainbow", "n_views": 3}
    run = Run(cfg)
    s = make_strategy(cfg["strategy"])
    run.env.reset(seed=0)
    s.setup(make_spec(cfg, run.env))
    raw = torch.from_numpy(run.pool.x[:16])
    s.seen[:] = True
    state = s.rng.bit_generator.state
    a = s.view_predictions(raw)
    s.rng.bit_generator.state = state
    b = s.view_predictions(raw)
    assert a.shape == (3, 16) and np.array_equal(a, b)
    s.rng.bit_generator.state = state
    views = [s.views(raw, raw.new_zeros(16), s.rng)[0] for _ in range(3)]
    assert any(not torch.equal(v, raw) for v in views)
