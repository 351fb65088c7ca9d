"""ER-ACE (clenv.strategies.er_ace): the asymmetric loss worked by hand per family, against
Avalanche 0.6's ACECriterion, the loss term that matters, the reservoir memory (ER's), preset
runs on every family and a resume."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from clenv.cli import main
from clenv.config.loader import load_config
from clenv.errors import ConfigError
from clenv.runner import Run
from clenv.strategies.er import ExperienceReplay
from clenv.strategies.er_ace import ERACE
from tests.conftest import REPO, require
from tests.replay_helpers import crash_and_resume, family_config, ready, tiny_spec


def test_loss_worked_by_hand_single_label():
    s = ready(ERACE, tiny_spec(n_classes=3))
    # stream rows: labels 0 and 1 are present, class 2 is not; one replay row of class 2
    out = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [1.0, 2.0, 3.0]])
    y = torch.tensor([0, 1, 2])
    s.n_stream = 2
    row1 = math.log(1 + math.e)  # -log(e^1 / (e^1 + e^2)): class 2 left out
    row2 = math.log(2)  # uniform over the two present classes
    row3 = math.log(1 + math.exp(-1) + math.exp(-2))  # replay: all seen classes
    per = s.loss(out, y, reduction="none")
    assert torch.allclose(per, torch.tensor([row1, row2, row3]), atol=1e-6)
    assert abs(s.loss(out, y).item() - (row1 + row2 + row3) / 3) < 1e-6


def test_loss_worked_by_hand_multi_label():
    s = ready(ERACE, tiny_spec(n_classes=3, multi_label=True))
    # stream row a: positive 0, visible {0, 1, 2}; row b: positive 1, visible {0, 1}
    # present = {0, 1} (a visible positive in some stream row); class 2 is left out of row a
    labels = torch.tensor([[1, 0, 0], [0, 1, 0], [0, 0, 1]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0], [1, 1, 1]])
    y = torch.stack([labels, mask], 1)
    out = torch.tensor([[2.0, 0.0, 5.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    s.n_stream = 2

    def sp(v):  # softplus: BCE of logit z is sp(-z) for a positive, sp(z) for a negative
        return math.log(1 + math.exp(v))

    row_a = (sp(-2.0) + sp(0.0)) / 2  # classes 0 (positive) and 1 (negative); not 2
    row_b = (sp(0.0) + sp(0.0)) / 2
    row_c = (sp(0.0) * 2 + sp(0.0)) / 3  # replay row: all its visible labels
    per = s.loss(out, y, reduction="none")
    assert torch.allclose(per, torch.tensor([row_a, row_b, row_c]), atol=1e-6)


def test_loss_worked_by_hand_hierarchical():
    s = ready(ERACE, tiny_spec(levels=2, level_sizes=[2, 3], n_classes=3), all_seen=False)
    for m in s.level_seen:
        m[:] = True
    # stream rows: (level 0, label 1) and (level 1, label 0); present: {1} at level 0,
    # {0} at level 1, so each stream row's loss is over one class: 0
    out = [torch.tensor([[0.5, 1.0], [3.0, 0.0], [0.0, 0.0]]),
           torch.tensor([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])]
    y = torch.tensor([[1, 0], [0, 1], [2, 1]])
    s.n_stream = 2
    per = s.loss(out, y, reduction="none")
    replay = math.log(1 + math.exp(-1) + math.exp(-2))  # level-1 head, all three classes
    assert torch.allclose(per, torch.tensor([0.0, 0.0, replay]), atol=1e-6)


def test_loss_and_gradient_match_avalanche_ace_criterion():
    """Same logits, stream batch and replay batch (as many rows each, all classes seen):
    clenv's mean over rows equals Avalanche's ACECriterion, (L_in + L_buffer) / 2, and so do
    the gradients, to 1e-5."""
    require("avalanche")
    from avalanche.training import ACECriterion

    g = torch.Generator().manual_seed(0)
    out = torch.randn(8, 5, generator=g)
    y = torch.tensor([0, 1, 1, 0, 2, 3, 4, 1])  # stream: 0, 1; replay: 2, 3, 4, 1
    s = ready(ERACE)
    s.n_stream = 4
    mine = out.clone().requires_grad_()
    theirs = out.clone().requires_grad_()
    a = s.loss(mine, y)
    b = ACECriterion()(theirs[:4], y[:4], theirs[4:], y[4:])
    a.backward()
    b.backward()
    assert abs(a.item() - b.item()) < 1e-5
    assert torch.allclose(mine.grad, theirs.grad, atol=1e-5)


def test_the_asymmetric_term_matters():
    """On the same batch, ACE's gradient differs from ER's plain masked CE: the stream rows
    do not push down the logits of the classes absent from the batch."""
    out = torch.randn(6, 5, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 0, 3, 4, 2])
    s = ready(ERACE)
    ace = out.clone().requires_grad_()
    s.n_stream = 3
    s.loss(ace, y).backward()
    plain = out.clone().requires_grad_()
    s.n_stream = None
    s.loss(plain, y).backward()
    assert (ace.grad - plain.grad).abs().max() > 1e-3
    assert torch.all(ace.grad[:3, 2:] == 0)  # absent classes get no gradient from the stream
    assert torch.all(plain.grad[:3, 2:] > 0)


def test_memory_is_ers_reservoir():
    """ER-ACE draws and stores exactly as ER: same seed and stream, same memory."""
    er, ace = ready(ExperienceReplay, memory_size=7), ready(ERACE, memory_size=7)
    rng = np.random.default_rng(0)
    for _ in range(6):
        x = rng.normal(size=(4, 4)).astype(np.float32)
        info = {"valid": [True] * 4, "y": rng.integers(0, 5, 4)}
        er.learn({"x": x}, info)
        ace.learn({"x": x}, info)
    assert ace.memory.size == 7 and ace.memory.n_seen == 24
    assert torch.equal(er.memory.x, ace.memory.x) and torch.equal(er.memory.y, ace.memory.y)


def test_cutmix_is_refused_in_one_line():
    with pytest.raises(ConfigError, match="strategy.augment.cutmix"):
        ERACE(lr=0.1, augment={"cutmix": 0.5}).setup(tiny_spec())


def test_preset_runs_from_yaml(tmp_path):
    out = tmp_path / "out"
    assert main(["run", str(REPO / "scenarios" / "quickstart.yaml"), "--strategy",
                 str(REPO / "strategies" / "er_ace.yaml"), "--set",
                 "data.train_per_class=20", "--set", "data.test_per_class=5", "--out",
                 str(out), "--quiet"]) == 0
    assert (out / "metrics.json").is_file()


@pytest.mark.parametrize("family", ["multi_label", "hierarchical"])
def test_runs_on_multi_label_and_hierarchical_streams(family, tmp_path):
    metrics = Run(load_config(family_config(family, {"name": "er_ace"}))).execute(tmp_path)
    assert metrics["budget"]["buffer_samples"] == 30
    assert metrics["budget"]["grad_steps"] > 0


def test_crash_then_resume_is_exact(small_cfg, tmp_path, monkeypatch):
    cfg = {**small_cfg, "strategy": {"name": "tests.replay_helpers:KillingERACE",
                                     "memory_size": 40}}
    crash_and_resume(cfg, tmp_path, monkeypatch)
