"""iCaRL: herding, nearest-mean-of-exemplars, the distillation loss (hand-worked and against
Avalanche 0.6's components), memory reduction at task ends, boundaries, check and resume."""

from __future__ import annotations

import copy
import json
import math
import re
import warnings
from types import SimpleNamespace as NS

import numpy as np
import pytest
import torch

from clenv.config.loader import load_config
from clenv.errors import ConfigError
from clenv.runner import Run, make_env, make_spec
from clenv.strategies.herding import class_means, herding, ncm_scores
from clenv.strategies.icarl import ICaRL
from clenv.strategies.spec import StrategySpec
from tests.checkpoint_killer import _Killing
from tests.conftest import one_line, require


class KillingICaRL(_Killing, ICaRL):
    """iCaRL that raises on request (CLENV_RAISE_LEARN)."""


def test_herding_hand_worked():
    """Class 0: a = (1, 0), b = (0, 1), c = (0.6, 0.8), given at other scales (features are
    L2-normalised first). mu = (0.5333, 0.6). k = 1: <mu, .> = 0.533, 0.6, 0.8 -> c.
    k = 2: || mu - (c + x) / 2 ||: a -> (0.267, -0.2), 0.333; b -> (-0.233, 0.3), 0.380 -> a.
    Class 1 (d = (1, 0), e = (-1, 0)): mu = 0, tie -> the lowest index, d."""
    f = torch.tensor([[2.0, 0.0], [0.0, 0.5], [3.0, 4.0], [1.0, 0.0], [-5.0, 0.0]])
    y = torch.tensor([0, 0, 0, 1, 1])
    idx, rank = herding(f, y, 2)
    assert idx.tolist() == [2, 0, 3, 4] and rank.tolist() == [0, 1, 0, 1]
    idx, rank = herding(f, y, 5)  # fewer samples than m: all of them, in herding order
    assert idx.tolist() == [2, 0, 1, 3, 4] and rank.tolist() == [0, 1, 2, 0, 1]


def _avalanche_herding(x, y, m_total):
    require("avalanche")
    from avalanche.benchmarks.utils import _make_taskaware_tensor_classification_dataset
    from avalanche.training.supervised.icarl import _ICaRLPlugin

    plugin = _ICaRLPlugin(memory_size=m_total, fixed_memory=True)
    plugin.observed_classes = [0, 1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = _make_taskaware_tensor_classification_dataset(x, y)
    strategy = NS(experience=NS(benchmark=NS(n_classes_per_exp=[2], classes_order=[0, 1]),
                                dataset=ds),
                  clock=NS(train_exp_counter=0), model=NS(feature_extractor=lambda t: t),
                  eval_mb_size=100, device="cpu")
    plugin.construct_exemplar_set(strategy)
    return plugin


def test_herding_matches_avalanche_until_its_loop_repeats_a_pick():
    """Avalanche (and the official Theano code) iterate w_{k+1} = w_k + mu - phi(x_k),
    x_k = argmax <w_k, phi>, skipping a pick already chosen but still updating w. With
    normalised features that is the paper's argmin while no pick repeats; we take the
    argmin over the samples not chosen yet (the documented difference). Here class 1 never
    repeats (identical exemplars and order); class 0's loop re-picks sample 16 at step 6,
    so the first five agree and the sixth differs."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 5, generator=g), torch.tensor([0, 1] * 20)
    plugin = _avalanche_herding(x, y, 12)
    idx, _ = herding(x, y, 6)
    for c in (0, 1):
        ours = x[idx[y[idx] == c]]
        theirs = plugin.x_memory[c][torch.argsort(plugin.order[c])]
        if c == 1:
            assert torch.equal(ours, theirs)
        else:
            assert torch.equal(ours[:5], theirs[:5]) and not torch.equal(ours[5], theirs[5])


def test_class_means_and_ncm_match_avalanche():
    """compute_class_means of Avalanche's iCaRL plugin (vector inputs: no flipped copies)
    and its NCMClassifier(normalize=True) give our means and scores."""
    require("avalanche")
    from avalanche.models import NCMClassifier
    from avalanche.training.supervised.icarl import _ICaRLPlugin

    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(30, 6, generator=g), torch.arange(3).repeat(10)
    plugin = _ICaRLPlugin(memory_size=30)
    plugin.embedding_size = 6
    plugin.x_memory = [x[y == c] for c in range(3)]
    plugin.y_memory = [[c] * 10 for c in range(3)]
    ncm = NCMClassifier(normalize=True)
    strategy = NS(experience=NS(benchmark=NS(n_classes_per_exp=[3])), device="cpu",
                  model=NS(feature_extractor=lambda t: t, eval_classifier=ncm))
    plugin.compute_class_means(strategy)
    means, has = class_means(x, y, 4)  # class 3 unseen
    for c in range(3):
        assert torch.allclose(means[c], plugin.class_means[c], atol=1e-6)
    assert has.tolist() == [True, True, True, False]
    q = torch.randn(7, 6, generator=g)
    ours = ncm_scores(q, means, has)
    assert torch.allclose(ours[:, :3], ncm(q), atol=1e-5)
    assert torch.isinf(ours[:, 3]).all()
    assert (ours.argmax(1) == torch.cdist(torch.nn.functional.normalize(q, dim=1),
                                          means[:3]).argmin(1)).all()


def _strategy(n_classes=3, hidden=(5,), **params):
    spec = StrategySpec(input_shape=(4,), image=False, n_classes=n_classes, batch_size=4,
                        stream_length=40, n_tasks=2, task_ends=[20, 40],
                        model={"name": "mlp", "hidden": list(hidden)})
    s = ICaRL(lr=0.1, **params)
    s.setup(spec)
    return s


def _bce(z: float, t: float) -> float:
    p = 1 / (1 + math.exp(-z))
    return -(t * math.log(p) + (1 - t) * math.log(1 - p))


def test_loss_hand_worked():
    """One row, label 2, classes {0, 1, 2} seen of 4, class 0 old with teacher output q0:
    L = [BCE(z0, q0) + BCE(z1, 0) + BCE(z2, 1)] / 3; the unseen class 3 takes no part."""
    s = _strategy(n_classes=4)
    s.seen[:3] = True
    s.old_seen[0] = True
    s.has_old = True
    z = torch.tensor([[0.5, -1.0, 2.0, 7.0]])
    old_z = torch.tensor([[1.5, 0.0, 0.0, 0.0]])
    s.old_model = lambda inp: old_z  # the teacher's logits on this input
    y = torch.tensor([2])
    total = (s.loss(z, y) + s.penalty(torch.zeros(1, 4), z, y)).item()
    q0 = 1 / (1 + math.exp(-1.5))
    expected = (_bce(0.5, q0) + _bce(-1.0, 0.0) + _bce(2.0, 1.0)) / 3
    assert abs(total - expected) < 1e-6
    assert abs(s.loss(z, y).item() - (_bce(-1.0, 0.0) + _bce(2.0, 1.0)) / 3) < 1e-6


def test_loss_equals_avalanche_icarl_loss_when_all_classes_are_seen():
    """Avalanche's ICaRLLossPlugin: BCELoss (mean over rows and all outputs) of sigmoid
    outputs against one-hot targets with the old classes' columns replaced by the old model's
    sigmoid outputs. Same weights, teacher and batch: same loss and gradients once every
    output class is seen (Avalanche averages over all outputs, unseen ones as negatives; we
    over the seen classes: the documented difference)."""
    require("avalanche")
    from avalanche.training.losses import ICaRLLossPlugin

    s = _strategy(n_classes=3)
    g = torch.Generator().manual_seed(2)
    teacher = copy.deepcopy(s.model)
    for p in teacher.parameters():
        p.data.normal_(generator=g)
    s.old_model.load_state_dict(teacher.state_dict())
    s.has_old = True
    s.seen[:] = True
    s.old_seen[:2] = True
    x, y = torch.randn(6, 4, generator=g), torch.tensor([2, 2, 0, 1, 2, 2])
    ref = copy.deepcopy(s.model)
    out = s.model(x)
    ours = s.loss(out, y) + s.penalty(x, out, y)
    ours.backward()
    crit = ICaRLLossPlugin()
    crit.old_classes = [0, 1]
    crit.old_logits = teacher(x).detach()
    theirs = crit(ref(x), y)
    theirs.backward()
    assert abs(ours.item() - theirs.item()) < 1e-6
    for a, b in zip(s.model.parameters(), ref.parameters(), strict=True):
        assert torch.allclose(a.grad, b.grad, atol=1e-6)


def _grads(s, x, y, with_loss=True, with_penalty=True):
    s.model.zero_grad()
    out = s.model(x)
    total = 0.0
    if with_loss:
        total = total + s.loss(out, y)
    if with_penalty:
        total = total + s.penalty(x, out, y)
    total.backward()
    return torch.cat([p.grad.flatten() for p in s.model.parameters()])


def test_each_loss_term_changes_the_gradient():
    s = _strategy(n_classes=3)
    g = torch.Generator().manual_seed(3)
    for p in s.old_model.parameters():
        p.data.normal_(generator=g)
    s.has_old = True
    s.seen[:] = True
    s.old_seen[:2] = True
    x, y = torch.randn(5, 4, generator=g), torch.tensor([2, 2, 2, 0, 1])
    full = _grads(s, x, y)
    assert not torch.allclose(full, _grads(s, x, y, with_penalty=False))
    assert not torch.allclose(full, _grads(s, x, y, with_loss=False))


def _drive(cfg, strategy):
    """Run the stream through ``strategy`` (learn, and on_task_end at the task ends),
    returning a snapshot of the exemplar memory after each task end."""
    run = Run(cfg)
    env = make_env(cfg, run.pool)
    obs, _ = env.reset(seed=cfg["scenario"]["seed"])
    strategy.setup(make_spec(cfg, env))
    ends, task, snaps = env.stream.task_ends.tolist(), 0, []
    done = False
    while not done:
        new_obs, _, done, _, info = env.step(np.zeros(env.B, dtype=np.int64))
        strategy.learn(obs, info)
        obs = new_obs
        while task < len(ends) and env.position >= ends[task]:
            strategy.on_task_end(task)
            n = strategy.ex_size
            snaps.append((strategy.ex_x[:n].clone(), strategy.ex_y[:n].clone(),
                          strategy.ex_rank[:n].clone()))
            task += 1
    return snaps


def test_memory_reduction_keeps_the_first_m_in_herding_order(small_cfg):
    """6 classes in 3 tasks of 2, memory 12: m = 6, 3, 2 after each task end; an old class
    keeps the first m of its exemplars in herding order."""
    cfg = load_config({**small_cfg, "strategy": {"name": "icarl"}})
    snaps = _drive(cfg, ICaRL(memory_size=12, lr=0.1))
    for t, m in enumerate((6, 3, 2)):
        x, y, rank = snaps[t]
        counts = torch.bincount(y, minlength=6)
        assert sorted(counts.tolist()) == [0] * (4 - 2 * t) + [m] * 2 * (t + 1)
        assert len(y) <= 12 and rank.max().item() == m - 1
    for c in snaps[0][1].unique().tolist():  # the classes of task 0
        x0, y0, r0 = snaps[0]
        x2, y2, r2 = snaps[2]
        first = x0[y0 == c][torch.argsort(r0[y0 == c])][:2]
        kept = x2[y2 == c][torch.argsort(r2[y2 == c])]
        assert torch.equal(first, kept)


def test_hidden_boundaries_are_refused_in_one_line(small_cfg, tmp_path):
    cfg = copy.deepcopy(small_cfg)
    cfg["strategy"] = {"name": "icarl"}
    cfg["scenario"]["boundaries"] = "hidden"
    with pytest.raises(ConfigError) as exc:
        Run(load_config(cfg)).execute(tmp_path / "h")
    one_line(exc, "scenario.boundaries", "exposed", "icarl")


def _without_wall(path):
    return re.sub(r'\n "wall_time": \{[^}]*\}', "", path.read_text())


def test_crash_then_resume_matches_uninterrupted(small_cfg, tmp_path, monkeypatch):
    cfg = copy.deepcopy(small_cfg)
    cfg["strategy"] = {"name": "tests.test_icarl:KillingICaRL", "memory_size": 12}
    cfg["output"] = {"plots": False, "checkpoint_every": 40}
    cfg = load_config(cfg)
    ref = tmp_path / "ref"
    Run(cfg).execute(ref)
    out = tmp_path / "crashed"
    monkeypatch.setenv("CLENV_RAISE_LEARN", "27")  # task 2, after two teachers and herdings
    with pytest.raises(RuntimeError, match="learn call 27"):
        Run(cfg).execute(out)
    monkeypatch.delenv("CLENV_RAISE_LEARN")
    Run(cfg).execute(out, resume=True)
    assert _without_wall(out / "metrics.json") == _without_wall(ref / "metrics.json")


def test_preset_runs_and_checks_from_yaml(small_cfg, tmp_path):
    import yaml

    from clenv.cli import main

    cfg = copy.deepcopy(small_cfg)
    cfg["strategy"] = {"preset": "icarl", "memory_size": 30}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["check", str(path)]) == 0
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    budget = metrics["budget"]
    assert budget["buffer_samples"] == 30 and budget["extra_forwards"] > 0
    assert metrics["final_accuracy"] > 0.4


def test_anytime_means_cover_the_current_task_and_refresh_only_after_training(small_cfg):
    """Mid-task (no exemplars yet) an evaluation's means come from the task's samples so
    far; stream predictions are NCM scores over those classes; the means are recomputed
    only when the model has trained since."""
    cfg = load_config({**small_cfg, "strategy": {"name": "icarl"}})
    run = Run(cfg)
    env = make_env(cfg, run.pool)
    obs, _ = env.reset(seed=0)
    s = ICaRL(memory_size=12, lr=0.1)
    s.setup(make_spec(cfg, env))
    before = s.predict(obs)  # no class mean yet: the network's masked outputs
    assert torch.isinf(before).all()  # nothing seen yet: every class masked
    for _ in range(4):
        new_obs, _, _, _, info = env.step(np.zeros(env.B, dtype=np.int64))
        s.learn(obs, info)
        obs = new_obs
    assert s.ex_size == 0 and s.stored == 40
    s.prepare_evaluation()
    seen = s.seen.clone()
    assert torch.equal(s.has_mean, seen)
    stored_y = s.store_y[:s.stored]
    f = torch.nn.functional.normalize(s.model.features(s.store_x[:s.stored]), dim=1)
    c = int(stored_y[0])
    mean = torch.nn.functional.normalize(f[stored_y == c].mean(0), dim=0)
    assert torch.allclose(s.means[c], mean, atol=1e-5)
    scores = s.predict(obs)
    assert torch.isfinite(scores[:, seen]).all() and torch.isinf(scores[:, ~seen]).all()
    forwards = s.extra_forwards
    s.prepare_evaluation()  # no training since: nothing recomputed
    assert s.extra_forwards == forwards
