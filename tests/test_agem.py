"""A-GEM (clenv.strategies.agem): the projection worked by hand, the reference gradient and
projection against Avalanche 0.6's AGEMPlugin, the memory sample, a preset run and a resume."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from clenv.cli import main
from clenv.errors import ConfigError
from clenv.strategies.agem import AGEM, project
from tests.conftest import REPO, require
from tests.replay_helpers import crash_and_resume, delta, ready, tiny_spec, twin


def test_projection_worked_by_hand():
    # g = (1, 0), g_ref = (-1, 1): g.g_ref = -1, |g_ref|^2 = 2, so g - (-1/2) g_ref = (.5, .5)
    g, g_ref = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0])
    out = project(g, g_ref)
    assert torch.allclose(out, torch.tensor([0.5, 0.5]))
    assert torch.dot(out, g_ref).abs() < 1e-7  # the projected step no longer conflicts
    # no conflict (g.g_ref = 1 >= 0), orthogonal (= 0) and a zero reference: g unchanged
    for ref in ([1.0, 1.0], [0.0, 3.0], [0.0, 0.0]):
        assert torch.equal(project(g, torch.tensor(ref)), g)


def _batches():
    g = torch.Generator().manual_seed(3)
    x, mx = torch.randn(4, 4, generator=g), torch.randn(6, 4, generator=g)
    # stream rows of classes 0-1, memory rows of 2-4: the two gradients conflict
    return x, torch.tensor([0, 1, 0, 1]), mx, torch.tensor([2, 3, 4, 2, 3, 4])


def test_step_matches_avalanche_agem_plugin():
    """Same weights, stream batch and memory sample: the projected update equals the one of
    Avalanche's AGEMPlugin (reference gradient before the iteration, projection after
    backward) to 1e-5. All classes seen, so clenv's masked loss is Avalanche's plain CE."""
    require("avalanche")
    from avalanche.training.plugins import AGEMPlugin

    x, y, mx, my = _batches()
    s = ready(AGEM)
    ref_model, ref_opt = twin(s.model)
    start = copy.deepcopy(s.model)
    s.g_ref = s.reference_gradient(mx, my)
    s.step(x, y)
    plugin = AGEMPlugin(patterns_per_experience=6, sample_size=6)
    plugin.buffers = [object()]  # one experience in memory; its draw is ours
    plugin.buffer_dliter = iter([(mx, my, torch.zeros(6, dtype=torch.long))])
    stub = SimpleNamespace(model=ref_model, optimizer=ref_opt, device="cpu",
                           _criterion=torch.nn.CrossEntropyLoss())
    plugin.before_training_iteration(stub)
    ref_opt.zero_grad()
    F.cross_entropy(ref_model(x), y).backward()
    g = torch.cat([p.grad.reshape(-1) for p in ref_model.parameters()]).clone()
    assert torch.dot(g, plugin.reference_gradients) < 0  # the projection is exercised
    plugin.after_backward(stub)
    ref_opt.step()
    assert torch.allclose(s.g_ref, plugin.reference_gradients, atol=1e-6)
    assert torch.allclose(delta(start, s.model), delta(start, ref_model), atol=1e-5)
    # and the projection mattered: plain SGD would have moved the weights elsewhere
    assert (delta(start, s.model) + g).abs().max() > 1e-3


def _feed(s, batches: int, first: int = 0) -> None:
    for t in range(first, first + batches):
        x = np.full((4, 4), t, dtype=np.float32) + np.arange(4, dtype=np.float32)[:, None] / 10
        s.learn({"x": x}, {"valid": [True] * 4, "y": (np.arange(4) + t) % 5})


def test_episodic_memory_holds_past_tasks_only():
    """Exposed boundaries: memory_size // n_tasks samples of each task, a uniform sample of
    it, enter the memory at its end; no reference gradient during the first task."""
    s = ready(AGEM, memory_size=12, sample_size=256)  # 2 tasks: 6 per task
    _feed(s, 5)
    assert s.memory.size == 0 and s.staged.size == 6 and s.counters()["extra_forwards"] == 0
    assert s.counters()["buffer_samples"] == 6
    s.on_task_end(0)
    assert s.memory.size == 6 and s.staged.size == 0 and s.staged.n_seen == 0
    assert set(s.memory.x[:6, 0].floor().tolist()) <= set(range(5))  # task-0 batches only
    _feed(s, 3, first=10)
    assert s.counters()["extra_forwards"] == 3  # one reference gradient per step
    assert s.memory.size == 6 and s.staged.size == 6  # task 1 stays staged until its end
    assert set(s.memory.x[:6, 0].floor().tolist()) <= set(range(5))


def test_memory_sample_is_distinct_and_never_crashes():
    """The reference sample holds min(sample_size, memory) distinct samples: a sample size
    above the memory or of 1 works (Avalanche's per-experience split of sample_size can give
    a batch of 0 and fail). Hidden boundaries: one reservoir over the stream."""
    for size in (1, 1000):
        s = ready(AGEM, tiny_spec(boundaries=False), memory_size=12, sample_size=size)
        _feed(s, 5)
        assert s.staged is None and s.memory.size == 12
        idx = s.memory.sample_indices(size, replace=False)
        assert len(idx) == min(size, 12) and len(set(idx.tolist())) == len(idx)
        assert s.counters()["extra_forwards"] == 4  # a reference gradient from step 2 on
        assert s.counters()["buffer_samples"] == 12


def test_no_reference_while_memory_is_empty_means_plain_sgd():
    x, y, _, _ = _batches()
    s = ready(AGEM)
    ref_model, ref_opt = twin(s.model)
    start = copy.deepcopy(s.model)
    s.learn({"x": x.numpy()}, {"valid": [True] * 4, "y": y.numpy()})
    ref_opt.zero_grad()
    F.cross_entropy(torch.where(s.seen, ref_model(x), float("-inf")), y).backward()
    ref_opt.step()
    assert torch.allclose(delta(start, s.model), delta(start, ref_model), atol=1e-6)


def test_preset_runs_from_yaml(tmp_path):
    out = tmp_path / "out"
    assert main(["run", str(REPO / "scenarios" / "quickstart.yaml"), "--strategy",
                 str(REPO / "strategies" / "agem.yaml"), "--set",
                 "data.train_per_class=20", "--set", "data.test_per_class=5", "--out",
                 str(out), "--quiet"]) == 0
    assert (out / "metrics.json").is_file()
    assert main(["check", str(REPO / "scenarios" / "quickstart.yaml"), "--strategy",
                 str(REPO / "strategies" / "agem.yaml")]) == 0


def test_only_single_label_streams():
    with pytest.raises(ConfigError, match="supports single_label streams, not multi_label"):
        AGEM(lr=0.1).setup(tiny_spec(multi_label=True))


@pytest.mark.parametrize("boundaries", ["exposed", "hidden"])
def test_crash_then_resume_is_exact(boundaries, small_cfg, tmp_path, monkeypatch):
    """Mid-task 2: the staged sample (exposed) or the reservoir (hidden) comes back."""
    cfg = {**small_cfg, "strategy": {"name": "tests.replay_helpers:KillingAGEM",
                                     "memory_size": 40, "sample_size": 16},
           "scenario": {**small_cfg["scenario"], "boundaries": boundaries}}
    crash_and_resume(cfg, tmp_path, monkeypatch)


def test_mask_unseen_false_trains_plain_cross_entropy():
    """mask_unseen: false (clenv.strategies.unmasked): the loss is plain CE over all classes,
    so unseen classes' logits get gradient; predictions stay masked."""
    out = torch.randn(3, 5, generator=torch.Generator().manual_seed(2))
    y = torch.tensor([0, 1, 1])
    masked, plain = ready(AGEM, all_seen=False), ready(AGEM, all_seen=False, mask_unseen=False)
    for s in (masked, plain):
        s.seen[:2] = True
    a, b = out.clone().requires_grad_(), out.clone().requires_grad_()
    masked.loss(a, y).backward()
    plain.loss(b, y).backward()
    assert abs(plain.loss(out, y).item() - F.cross_entropy(out, y).item()) < 1e-6
    assert torch.all(a.grad[:, 2:] == 0) and torch.all(b.grad[:, 2:] > 0)
    pred = plain.predict({"x": np.zeros((1, 4), dtype=np.float32)})
    assert torch.isinf(pred[0, 2:]).all()
