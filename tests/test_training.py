"""Training recipes (clenv.training): seeded augmentation, optimisers, learning-rate schedules and
CLIB's adaptive rate. Expected values are worked by hand from the definitions (torch's
CosineAnnealingLR, i-Blurry's cutmix_data / exp_reset / adaptive_lr), never from our own code."""

from __future__ import annotations

import copy
import math
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from clenv.cli import main
from clenv.config.loader import load_config
from clenv.errors import ConfigError
from clenv.runner import Run
from clenv.training.adaptive_lr import BURN_IN, AdaptiveLR
from clenv.training.augment import Augmenter, partners
from clenv.training.config import validate_augment, validate_schedule
from clenv.training.schedule import LRSchedule

AUG_OFF = validate_augment({}, "augment")


def _aug(**kw) -> Augmenter:
    return Augmenter({**AUG_OFF, **kw}, (1, 4, 4))


def _batch(n: int = 3) -> torch.Tensor:
    return (torch.arange(n * 16, dtype=torch.uint8) + 1).reshape(n, 1, 4, 4)


# -- augmentation --------------------------------------------------------------------------------
def test_crop_takes_the_window_at_the_drawn_offsets_of_the_zero_padded_image():
    x = _batch()
    out, mix = _aug(crop=1)(x, torch.zeros(3, dtype=torch.long), np.random.default_rng(7))
    assert mix is None and out.dtype == torch.uint8 and out.shape == x.shape
    draws = np.random.default_rng(7)
    dy, dx = draws.integers(0, 3, 3), draws.integers(0, 3, 3)
    for i in range(3):  # by hand: pad one zero pixel per side, cut the 4x4 window at (dy, dx)
        padded = np.zeros((6, 6), dtype=np.uint8)
        padded[1:5, 1:5] = x[i, 0].numpy()
        assert np.array_equal(out[i, 0].numpy(), padded[dy[i]:dy[i] + 4, dx[i]:dx[i] + 4])


def test_flip_mirrors_exactly_the_rows_whose_draw_is_below_one_half():
    x = _batch(6)
    out, _ = _aug(flip=True)(x, torch.zeros(6, dtype=torch.long), np.random.default_rng(3))
    flip = np.random.default_rng(3).random(6) < 0.5
    assert 0 < flip.sum() < 6
    for i in range(6):
        expect = x[i].flip(-1) if flip[i] else x[i]
        assert torch.equal(out[i], expect)


def test_autoaugment_draws_per_sample_and_leaves_torch_global_generator_alone():
    pytest.importorskip("torchvision")
    x = torch.randint(0, 256, (1, 1, 8, 8), dtype=torch.uint8).repeat(16, 1, 1, 1)
    aug = Augmenter({**AUG_OFF, "autoaugment": "cifar10"}, (1, 8, 8))
    before = torch.get_rng_state()
    a, _ = aug(x, torch.zeros(16, dtype=torch.long), np.random.default_rng(0))
    assert torch.equal(torch.get_rng_state(), before)
    b, _ = aug(x, torch.zeros(16, dtype=torch.long), np.random.default_rng(0))
    assert torch.equal(a, b)  # same seed, same result
    distinct = {bytes(a[i].numpy()) for i in range(16)}
    assert len(distinct) > 2  # one policy draw per sample, not one per batch


def test_cutmix_pastes_a_box_and_mixes_the_loss_by_the_unpasted_fraction():
    x = _batch(4)
    y = torch.tensor([0, 1, 2, 3])
    aug = _aug(cutmix=1.0)
    out, mix = aug(x, y, np.random.default_rng(5))
    assert mix is not None
    # by hand: the same draws as i-Blurry's cutmix_data (lam ~ Beta(1, 1), a partner per row,
    # a box of side sqrt(1 - lam) around a uniform centre, lam reset to the unpasted fraction)
    d = np.random.default_rng(5)
    d.random()  # the batch's CutMix coin
    lam = d.beta(1.0, 1.0)
    perm = d.permutation(4)
    cut = math.sqrt(1 - lam)
    ch = cw = int(4 * cut)
    cy, cx = d.integers(4), d.integers(4)
    y1, y2 = max(cy - ch // 2, 0), min(cy + ch // 2, 4)
    x1, x2 = max(cx - cw // 2, 0), min(cx + cw // 2, 4)
    expect = x.clone()
    expect[:, :, y1:y2, x1:x2] = x[perm][:, :, y1:y2, x1:x2]
    assert torch.equal(out, expect)
    assert mix.lam == pytest.approx(1 - (y2 - y1) * (x2 - x1) / 16)
    logits = torch.randn(4, 4)
    ce = F.cross_entropy
    assert mix.loss(ce, logits, y).item() == pytest.approx(
        (mix.lam * ce(logits, y) + (1 - mix.lam) * ce(logits, y[perm])).item())


def test_cutmix_partners_share_the_label_level_on_hierarchical_batches():
    y = torch.tensor([[0, 0], [5, 1], [1, 0], [7, 1], [2, 0], [6, 1], [9, 1]])
    for seed in range(20):
        p = partners(y, np.random.default_rng(seed))
        assert sorted(p.tolist()) == list(range(7))
        assert torch.equal(y[p, 1], y[:, 1])


def test_augment_on_vector_data_is_one_config_line(small_cfg, capsys, tmp_path):
    cfg = copy.deepcopy(small_cfg)
    cfg["strategy"] = {"name": "er", "augment": {"flip": True}}
    with pytest.raises(ConfigError, match=r"strategy\.augment: augmentation needs an image"):
        Run(load_config(cfg)).execute(None)


# -- optimisers and schedules -------------------------------------------------------------------
def _schedule(**kw) -> dict:
    return validate_schedule(kw, "schedule", "er")


def test_cosine_matches_torch_cosine_annealing_closed_form():
    base, T, eta = 0.1, 12, 0.01
    s = LRSchedule(_schedule(type="cosine", min_lr=eta), base, run_steps=T)
    for k in range(T + 3):
        t = min(k, T)
        assert s.lr == pytest.approx(eta + (base - eta) * (1 + math.cos(math.pi * t / T)) / 2)
        s.after_step()


def test_cosine_per_task_restarts_at_each_task_start_and_warms_up_linearly():
    s = LRSchedule(_schedule(type="cosine", per="task", warmup=2), 1.0, run_steps=30,
                   task_steps=[10, 20])
    s.on_task_start(0)
    lrs = []
    for _ in range(10):
        lrs.append(s.lr)
        s.after_step()
    assert lrs[:2] == [0.5, 1.0]  # warm-up: (k + 1) / 2 of the base
    assert lrs[2] == pytest.approx(1.0) and lrs[-1] == pytest.approx(
        (1 + math.cos(math.pi * 7 / 8)) / 2)
    s.on_task_start(1)
    assert s.lr == 0.5 and s.period == 20


def test_step_and_exponential_with_the_i_blurry_reset_on_a_new_class():
    s = LRSchedule(_schedule(type="step", every=3, gamma=0.5), 0.8, run_steps=100)
    got = []
    for _ in range(7):
        got.append(s.lr)
        s.after_step()
    assert got == [0.8, 0.8, 0.8, 0.4, 0.4, 0.4, 0.2]
    e = LRSchedule(_schedule(type="exponential"), 1.0, run_steps=100)  # gamma 0.9999
    for _ in range(5):
        e.after_step()
    assert e.lr == pytest.approx(0.9999 ** 5)
    e.on_new_class()
    assert e.lr == 1.0


def test_schedule_drives_the_optimiser_rate_in_a_run(small_cfg):
    from clenv.events import EventLog
    from clenv.runner import episode, make_strategy

    cfg = copy.deepcopy(small_cfg)
    cfg["strategy"] = {"name": "naive", "optimizer": "adamw", "lr": 0.01,
                       "schedule": {"type": "cosine"}}
    cfg = load_config(cfg)
    strategy = make_strategy(cfg["strategy"])
    episode(cfg, Run(cfg).env, strategy, EventLog(None), {}, anytime=False)
    assert isinstance(strategy.optimizer, torch.optim.AdamW)
    # 6 classes x 60 training samples in 3 tasks of 120, batches of 10: 12 steps a task, 36 in
    # all; the last step (k = 35) ran at min_lr + (lr - min_lr)(1 + cos(pi 35/36)) / 2
    assert strategy.lr_schedule.run_steps == 36 and strategy.grad_steps == 36
    assert strategy.optimizer.param_groups[0]["lr"] == pytest.approx(
        0.01 * (1 + math.cos(math.pi * 35 / 36)) / 2)


@pytest.mark.parametrize("section,message", [
    ({"name": "er", "schedule": {"type": "adaptive"}}, "strategy.schedule.type"),
    ({"name": "er", "optimizer": "sgd", "nesterov": True}, "strategy.nesterov"),
    ({"name": "joint", "schedule": {"type": "cosine"}}, "strategy.schedule"),
    ({"name": "er", "augment": {"cutmix": 1.5}}, "strategy.augment.cutmix"),
    ({"name": "er", "schedule": {"type": "cosine", "per": "epoch"}}, "strategy.schedule.per"),
])
def test_bad_recipe_sections_are_one_line_exit_2(section, message, tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: t\nscenario: {generator: disjoint, n_tasks: 2}\n"
                   "data: {source: synthetic, branching: [4], dim: 4}\n"
                   f"strategy: {section!r}\n".replace("'", '"').replace("True", "true"))
    assert main(["check", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and message in err, err


# -- CLIB's adaptive learning rate --------------------------------------------------------------
def _feed(lr: AdaptiveLR, n: int, decrease: float, level: list[float]) -> None:
    """n importance updates whose memory losses fall by ``decrease`` each (a 3-sample memory)."""
    for _ in range(n):
        level[0] -= decrease
        lr.observe(np.full(3, level[0]))


def test_adaptive_rate_alternates_every_period_and_waits_for_the_burn_in():
    lr = AdaptiveLR(1.0, lr_step=0.5, lr_period=2, lr_length=2)
    seen = []
    for i in range(1, 9):
        lr.observe(np.full(3, 10.0 - i))
        seen.append(lr.lr)
    # switches after updates 2, 4, 6, 8: high (1.0) -> low (0.5) -> high -> ...
    assert seen == [1.0, 0.5, 0.5, 1.0, 1.0, 0.5, 0.5, 1.0]
    assert lr.high_window == [] and lr.low_window == []  # nothing before update 21


def test_adaptive_rate_moves_down_when_the_low_rate_decreases_the_loss_more():
    lr = AdaptiveLR(1.0, lr_step=0.5, lr_period=1, lr_length=2)
    level = [100.0]
    _feed(lr, BURN_IN, 0.0, level)  # burn-in: 20 updates, rate back to high (even count)
    assert lr.is_high
    # updates 21-23 switch high -> low -> high -> low; each records the loss decrease since the
    # previous switch in the window of the rate that was in force
    for dec in (0.1, 1.0, 0.12):
        _feed(lr, 1, dec, level)
    assert lr.high_window == pytest.approx([0.1, 0.12]) and lr.low_window == pytest.approx([1.0])
    _feed(lr, 1, 1.01, level)  # low window [1.0, 1.01] vs high [0.1, 0.12]: p << 0.05
    # by hand: high <- low (0.5), low <- 0.5 * 0.5; windows empty; the low rate was in force
    # before this switch, so the low rate stays in force
    assert (lr.high, lr.low) == (0.5, 0.25)
    assert lr.high_window == [] and lr.low_window == []
    assert not lr.is_high and lr.lr == 0.25


def test_adaptive_rate_ignores_replaced_memory_slots():
    lr = AdaptiveLR(1.0, lr_step=0.5, lr_period=1, lr_length=5)
    for _ in range(BURN_IN):
        lr.observe(np.zeros(3))
    lr.note_replaced([2])
    lr.observe(np.array([-1.0, -3.0, 100.0]))  # slot 2 got a new sample: left out
    assert lr.high_window == pytest.approx([2.0])


def test_adaptive_rate_state_round_trips_as_plain_values():
    lr = AdaptiveLR(0.3, lr_period=1)
    for i in range(25):
        lr.observe(np.full(4, 5.0 - 0.1 * i))
    state = lr.state_dict()
    other = AdaptiveLR(0.3, lr_period=1)
    other.load_state_dict(state)
    for i in range(5):
        lr.observe(np.full(4, 2.0 - 0.3 * i))
        other.observe(np.full(4, 2.0 - 0.3 * i))
    assert other.state_dict()["high_window"] == lr.state_dict()["high_window"]
    assert other.lr == lr.lr


# -- end to end ----------------------------------------------------------------------------------
def _digits_cfg(strategy: dict) -> dict:
    return {"name": "aug", "seed": 3,
            "scenario": {"generator": "disjoint", "seed": 0, "n_tasks": 2, "batch_size": 10},
            "data": {"source": "digits", "test_fraction": 0.25},
            "strategy": strategy, "model": {"name": "mlp", "hidden": [32]},
            "eval": {"every": 0}, "output": {"plots": False}}


RECIPE = {"name": "er", "optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True,
          "augment": {"crop": 1, "flip": True, "autoaugment": "cifar10", "cutmix": 0.5},
          "schedule": {"type": "cosine"}}


def _no_wall(text: str) -> str:
    return re.sub(r'\n "wall_time": \{[^}]*\}', "", text)


def test_recipe_from_yaml_is_reproducible_and_changes_training(tmp_path):
    a, b, plain = tmp_path / "a", tmp_path / "b", tmp_path / "plain"
    Run(load_config(_digits_cfg(dict(RECIPE)))).execute(a)
    Run(load_config(_digits_cfg(dict(RECIPE)))).execute(b)
    assert (a / "metrics.json").read_text() != ""
    assert _no_wall((a / "metrics.json").read_text()) == _no_wall((b / "metrics.json").read_text())
    Run(load_config(_digits_cfg({"name": "er", "momentum": 0.9, "nesterov": True}))).execute(
        plain)
    assert _no_wall((a / "metrics.json").read_text()) != _no_wall(
        (plain / "metrics.json").read_text())


def test_recipe_survives_a_crash_and_resume_exactly(tmp_path, monkeypatch):
    strategy = {**RECIPE, "name": "tests.checkpoint_killer:KillingER"}
    cfg = _digits_cfg(strategy)
    cfg["output"]["checkpoint_every"] = 200
    cfg = load_config(cfg)
    ref = tmp_path / "ref"
    Run(cfg).execute(ref)
    out = tmp_path / "crashed"
    monkeypatch.setenv("CLENV_RAISE_LEARN", "57")
    with pytest.raises(RuntimeError):
        Run(cfg).execute(out)
    monkeypatch.delenv("CLENV_RAISE_LEARN")
    Run(cfg).execute(out, resume=True)
    assert _no_wall((out / "metrics.json").read_text()) == _no_wall(
        (ref / "metrics.json").read_text())


def test_plfms_preset_trains_with_adam_and_the_adaptive_rate_and_resumes_exactly(tmp_path,
                                                                                monkeypatch):
    cfg = {"name": "hle_adaptive", "seed": 0,
           "scenario": {"generator": "hle", "mode": "single_label", "seed": 0,
                        "batch_size": 10},
           "data": {"source": "synthetic", "depth": 2, "branching": [3, 2], "dim": 8,
                    "separation": [1.0, 1.0], "train_per_class": 40, "test_per_class": 10},
           "strategy": {"preset": "hle_plfms", "name": "tests.checkpoint_killer:KillingPLFMS",
                        "importance_period": 1,
                        "schedule": {"type": "adaptive", "lr_period": 2, "lr_length": 2}},
           "model": {"name": "mlp", "hidden": [16]}, "budget": {"memory_size": 40},
           "eval": {"every": 0}, "output": {"plots": False, "checkpoint_every": 50}}
    cfg = load_config(cfg)
    assert cfg["strategy"]["optimizer"] == "adam" and cfg["strategy"]["lr"] == 3e-4
    from clenv.events import EventLog
    from clenv.runner import episode, make_strategy

    s = make_strategy(cfg["strategy"])
    episode(cfg, Run(cfg).env, s, EventLog(None), {}, anytime=False)
    assert isinstance(s.lr_schedule, AdaptiveLR) and s.lr_schedule.count > BURN_IN
    assert s.optimizer.param_groups[0]["lr"] in (s.lr_schedule.high, s.lr_schedule.low)
    assert s.lr_schedule.high_window or s.lr_schedule.low_window
    ref, out = tmp_path / "ref", tmp_path / "out"
    Run(cfg).execute(ref)
    monkeypatch.setenv("CLENV_RAISE_LEARN", "15")
    with pytest.raises(RuntimeError):
        Run(cfg).execute(out)
    monkeypatch.delenv("CLENV_RAISE_LEARN")
    Run(cfg).execute(out, resume=True)
    assert _no_wall((out / "metrics.json").read_text()) == _no_wall(
        (ref / "metrics.json").read_text())
