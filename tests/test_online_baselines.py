"""MIR, SCR and BiC: hand-worked golden values, each loss term, the memory rules, the unit-level
reference against Avalanche 0.6, an end-to-end run of each preset and crash/resume."""

from __future__ import annotations

import copy
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from clenv.cli import main
from clenv.config.loader import load_config
from clenv.errors import ConfigError
from clenv.runner import Run
from clenv.strategies.bic import (
    BiC,
    ValidationMemory,
    bias_forward,
    distillation,
    rank_within_class,
)
from clenv.strategies.mir import MIR, interference, virtual_params
from clenv.strategies.scr import SCR, class_means, ncm_scores
from clenv.strategies.spec import StrategySpec
from tests.checkpoint_killer import _Killing
from tests.test_checkpoint import _cfg, _without_wall

torch.set_num_threads(1)
HERE = "tests.test_online_baselines"


class KillingMIR(_Killing, MIR):
    """MIR that dies on request (tests.checkpoint_killer)."""


class KillingSCR(_Killing, SCR):
    """SCR that dies on request."""


class KillingBiC(_Killing, BiC):
    """BiC that dies on request."""


def _spec(**kw) -> StrategySpec:
    base = dict(input_shape=(8,), image=False, n_classes=4, batch_size=4, stream_length=80,
                n_tasks=2, model={"name": "mlp", "hidden": [16]}, memory_size=20, seed=0)
    base.update(kw)
    return StrategySpec(**base)


def _ready(cls, **params):
    s = cls(**params)
    s.setup(_spec())
    s.seen[:] = True  # every class seen: masking is the identity, as in Avalanche
    return s


def _data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 8, generator=g), torch.randint(0, 4, (n,), generator=g)


def _grads(model) -> list[torch.Tensor]:
    return [p.grad.clone() for p in model.parameters() if p.grad is not None]


# -- MIR -------------------------------------------------------------------------------------
def test_mir_golden_virtual_step_and_retrieval():
    named = {"w": torch.tensor([1.0, -2.0]), "b": torch.tensor([0.5])}
    out = virtual_params(named, (torch.tensor([2.0, 1.0]), None), lr=0.1)
    assert torch.allclose(out["w"], torch.tensor([0.8, -2.1])) and out["b"].item() == 0.5
    before = torch.tensor([1.0, 1.0, 1.0, 2.0])
    after = torch.tensor([1.5, 0.9, 3.0, 2.1])  # increases 0.5, -0.1, 2.0, 0.1
    assert set(interference(before, after, 2).tolist()) == {2, 0}
    assert len(interference(before, after, 10)) == 4  # k capped at the candidates


def test_mir_matches_avalanche_retrieval_loss_and_gradients():
    from avalanche.training.plugins import MIRPlugin

    s = _ready(MIR, lr=0.1, replay_batch_size=3, candidates=8)
    x, y = _data(4, 1)
    cx, cy = _data(8, 2)
    twin = copy.deepcopy(s.model)
    pick = s.retrieve(x, y, cx, cy)
    s._n_stream = len(y)
    ours = s.loss(s.model(torch.cat((x, cx[pick]))), torch.cat((y, cy[pick])))
    s.model.zero_grad()
    ours.backward()

    opt = torch.optim.SGD(twin.parameters(), lr=0.1)
    strat = SimpleNamespace(model=twin, optimizer=opt, device="cpu",
                            _criterion=torch.nn.CrossEntropyLoss())
    strat.loss = strat._criterion(twin(x), y)
    plugin = MIRPlugin(batch_size_mem=3, mem_size=20, subsample=8)
    plugin.replay_loader = iter([(cx, cy, torch.zeros(8, dtype=torch.long))])
    plugin.before_backward(strat)
    twin.zero_grad()
    strat.loss.backward()
    assert torch.allclose(ours, strat.loss, atol=1e-5)
    for a, b in zip(_grads(s.model), _grads(twin), strict=True):
        assert torch.allclose(a, b, atol=1e-5)
    # the pick is the paper's: a copy of the model after one SGD step on the stream batch,
    # the k candidates with the largest loss increase
    probe = _ready(MIR, lr=0.1)
    stepped = copy.deepcopy(probe.model)
    sgd = torch.optim.SGD(stepped.parameters(), lr=0.1)
    F.cross_entropy(stepped(x), y).backward()
    sgd.step()
    with torch.no_grad():
        rise = (F.cross_entropy(stepped(cx), cy, reduction="none")
                - F.cross_entropy(probe.model(cx), cy, reduction="none"))
    assert set(pick.tolist()) == set(torch.argsort(rise)[-3:].tolist())


def test_mir_retrieved_term_changes_the_gradient():
    s = _ready(MIR, replay_batch_size=3, candidates=8)
    x, y = _data(4, 1)
    cx, cy = _data(8, 2)
    pick = s.retrieve(x, y, cx, cy)
    s._n_stream = len(y)
    s.model.zero_grad()
    s.loss(s.model(torch.cat((x, cx[pick]))), torch.cat((y, cy[pick]))).backward()
    with_replay = _grads(s.model)
    s._n_stream = None
    s.model.zero_grad()
    s.loss(s.model(x), y).backward()
    assert any(not torch.allclose(a, b) for a, b in zip(with_replay, _grads(s.model),
                                                        strict=True))


def test_mir_draws_distinct_candidates_and_counts_extra_forwards():
    s = _ready(MIR, replay_batch_size=2, candidates=5)
    x, y = _data(12, 3)
    s.memory.add(x, y)
    cx, _ = s.candidates()
    assert len(cx) == 5 and len(torch.unique(cx, dim=0)) == 5  # without replacement
    xb, yb = _data(4, 4)
    batch = {"x": xb.numpy()}
    info = {"valid": np.ones(4, dtype=bool), "y": yb.numpy()}
    s.learn(batch, info)
    assert s.counters()["extra_forwards"] == 4 + 2 * 5  # stream probe + candidates twice


# -- SCR -------------------------------------------------------------------------------------
def test_scr_supcon_golden_value():
    """B = 2 rows of classes 0 and 1, views identical: z = e1, e2, e1, e2; T = T_b = 1.
    Row e1's positive is its view (dot 1) among 3 others (dots 0, 1, 0):
    loss = -(1 - log(2 + e)) = log(2 + e) - 1 for every row."""
    from clenv.agcd.contrastive import sup_con

    z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    got = sup_con(z, torch.tensor([0, 1]), temperature=1.0, base_temperature=1.0)
    assert got.item() == pytest.approx(math.log(2 + math.e) - 1, abs=1e-6)


def test_scr_loss_matches_avalanche_scrloss():
    from avalanche.training.losses import SCRLoss

    from clenv.agcd.contrastive import sup_con

    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    y = torch.tensor([0, 1, 0, 2, 1, 1])
    a1, b1 = a.clone().requires_grad_(), b.clone().requires_grad_()
    ours = sup_con(torch.cat((a1, b1)), y, temperature=0.1, base_temperature=0.07)
    ours.backward()
    a2, b2 = a.clone().requires_grad_(), b.clone().requires_grad_()
    feats = torch.stack((F.normalize(a2, dim=1), F.normalize(b2, dim=1)), dim=1)
    ref = SCRLoss(temperature=0.1)(feats, y)
    ref.backward()
    assert ours.item() == pytest.approx(ref.item(), abs=1e-5)
    assert torch.allclose(a1.grad, a2.grad, atol=1e-5)
    assert torch.allclose(b1.grad, b2.grad, atol=1e-5)


def test_scr_class_means_golden_and_ncm_matches_avalanche():
    from avalanche.models import NCMClassifier

    feats = torch.tensor([[3.0, 4.0], [0.0, 2.0], [1.0, 0.0]])
    means, has = class_means(feats, torch.tensor([0, 0, 2]), 3)
    # class 0: (0.6, 0.8) + (0, 1) = (0.6, 1.8), normalised (1, 3)/sqrt(10)
    assert torch.allclose(means[0], torch.tensor([1.0, 3.0]) / math.sqrt(10), atol=1e-6)
    assert has.tolist() == [True, False, True]
    q = torch.tensor([[1.0, 0.1], [0.2, 1.0], [-1.0, 0.5]])
    scores = ncm_scores(q, means, has, torch.tensor(float("-inf")))
    assert scores[:, 1].isinf().all()
    ncm = NCMClassifier()
    ncm.replace_class_means_dict({0: means[0], 2: means[2]})
    ref = ncm(q)
    ours_pick = scores.argmax(1)
    ref_pick = torch.tensor([0, 2])[ref[:, [0, 2]].argmax(1)]
    assert ours_pick.tolist() == ref_pick.tolist()


def test_scr_predicts_with_memory_means():
    s = _ready(SCR, replay_batch_size=4)
    x, y = _data(16, 5)
    batch = {"x": x[:4].numpy()}
    s.learn(batch, {"valid": np.ones(4, dtype=bool), "y": y[:4].numpy()})
    s.memory.add(x, y)
    scores = s.predict({"x": x.numpy()})
    present = torch.zeros(4, dtype=torch.bool)
    present[s.memory.y[:s.memory.size]] = True
    assert scores.shape == (16, 4)
    assert torch.isinf(scores[:, ~present]).all() and torch.isfinite(scores[:, present]).all()
    assert s.counters()["extra_forwards"] == s.memory.size


# -- BiC -------------------------------------------------------------------------------------
def test_bic_golden_bias_layer_matches_avalanche():
    from avalanche.models.bic_model import BiasLayer

    o = torch.tensor([[1.0, 2.0, 3.0]])
    mask = torch.tensor([False, True, True])
    got = bias_forward(o, torch.tensor([2.0]), torch.tensor([0.5]), mask)
    assert got.tolist() == [[1.0, 4.5, 6.5]]
    layer = BiasLayer([1, 2])
    with torch.no_grad():
        layer.alpha.fill_(2.0)
        layer.beta.fill_(0.5)
    assert torch.equal(layer(o), got)
    # gradients of alpha and beta: d/dalpha sum = 2 + 3, d/dbeta sum = 2
    a = torch.tensor([2.0], requires_grad=True)
    b = torch.tensor([0.5], requires_grad=True)
    bias_forward(o, a, b, mask).sum().backward()
    layer(o).sum().backward()
    assert a.grad.item() == layer.alpha.grad.item() == 5.0
    assert b.grad.item() == layer.beta.grad.item() == 2.0


def test_bic_distillation_golden_and_the_avalanche_difference():
    """Old logits (0, 0), new (0, 2 ln 3), T = 2: target (1/2, 1/2), log-probs
    log(1/4), log(3/4): L_d = -(log 1/4 + log 3/4) / 2. Avalanche 0.6 takes the softmax of the
    old logits over the batch (dim 0): with two different rows the two differ."""
    from avalanche.training.plugins import BiCPlugin

    old = torch.tensor([[0.0, 0.0]])
    new = torch.tensor([[0.0, 2 * math.log(3)]])
    all_old = torch.tensor([True, True])
    expected = -(math.log(0.25) + math.log(0.75)) / 2
    assert distillation(new, old, all_old, 2.0).item() == pytest.approx(expected, abs=1e-6)
    old2 = torch.tensor([[0.0, 1.0], [2.0, -1.0]])
    new2 = torch.tensor([[0.5, 0.0], [0.0, 1.0]])
    ava = BiCPlugin().cross_entropy(new2, old2)
    per_class = distillation(new2, old2, all_old, 2.0)
    assert not torch.isclose(ava, per_class)


def test_bic_rank_and_validation_memory_rule():
    assert rank_within_class(torch.tensor([3, 1, 3, 3, 1])).tolist() == [0, 0, 1, 2, 1]
    val = ValidationMemory(4, (1,), torch.float32, 3, torch.device("cpu"))
    x = torch.arange(5.0)[:, None]
    # one class seen: quota 4, the first four samples of class 0 are held out
    took = val.offer(x, torch.zeros(5, dtype=torch.long), n_seen=1)
    assert took.tolist() == [True, True, True, True, False] and val.size == 4
    # a second class: quota 2 each; class 0 keeps its first two, class 1 gets two
    took = val.offer(x + 10, torch.tensor([1, 1, 1, 0, 0]), n_seen=2)
    assert took.tolist() == [True, True, False, False, False]
    assert val.y[:val.size].tolist() == [0, 0, 1, 1]
    assert val.x[:val.size, 0].tolist() == [0.0, 1.0, 10.0, 11.0]


def test_bic_loss_weights_and_distillation_term_matter():
    s = _ready(BiC, replay_batch_size=4)
    s.class_task[:] = torch.tensor([0, 0, 1, 1])
    s.task = 1
    x, y = _data(6, 7)
    out = s.model(x)
    plain = s.loss(out, y)
    assert plain.item() == pytest.approx(F.cross_entropy(out, y).item())  # lam = 0
    s.has_old = True  # old model = a copy: lam = 2 old / 4 seen
    with torch.no_grad():
        for p in s.old_model.parameters():
            p.add_(0.3)
    inp = x
    total = s.loss(out, y) + s.penalty(inp, out, y)
    with torch.no_grad():
        old_out = s.old_model(x)
    t = F.softmax(old_out[:, :2] / 2, 1)
    kd = -(t * F.log_softmax(out[:, :2] / 2, 1)).sum(1).mean()
    assert total.item() == pytest.approx(0.5 * F.cross_entropy(out, y).item() + 0.5 * kd.item(),
                                         abs=1e-6)
    s.model.zero_grad()
    total.backward()
    with_kd = _grads(s.model)
    s.model.zero_grad()
    s.loss(s.model(x), y).backward()
    assert any(not torch.allclose(a, b) for a, b in zip(with_kd, _grads(s.model), strict=True))


def test_bic_bias_fit_corrects_new_class_logits():
    """With the new classes' logits inflated by +3, the fitted layer lowers them (beta < 0 or
    alpha < 1) and the corrected predictions are more accurate on the held-out slice."""
    s = _ready(BiC, bias_epochs=40, memory_size=200)  # 20 held out: 5 per class
    with torch.no_grad():
        s.model.head.bias[2:] += 3.0
    x, y = _data(40, 9)
    s.val.offer(x, y, 4)
    assert s.val.size >= 12
    new = torch.tensor([False, False, True, True])
    with torch.no_grad():
        vx, vy = s.val.x[:s.val.size], s.val.y[:s.val.size]
        before = (s.model(vx).argmax(1) == vy).float().mean()
    s.correct_bias(new)
    assert s.beta.item() < 0 or s.alpha.item() < 1
    with torch.no_grad():
        q = bias_forward(s.model(vx), s.alpha, s.beta, new)
    after = (q.argmax(1) == vy).float().mean()
    assert after > before


def test_bic_refuses_hidden_boundaries_in_one_line():
    s = BiC()
    with pytest.raises(ConfigError) as exc:
        s.setup(_spec(boundaries=False))
    assert "\n" not in str(exc.value) and "scenario.boundaries" in str(exc.value)


# -- end to end: the presets, and crash/resume -------------------------------------------------
@pytest.mark.parametrize("preset", ["mir", "scr", "bic"])
def test_preset_runs_end_to_end(preset, small_cfg, tmp_path):
    cfg = copy.deepcopy(small_cfg)
    cfg["strategy"] = yaml.safe_load((_repo() / "strategies" / f"{preset}.yaml").read_text())
    cfg["strategy"]["memory_size"] = 40
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["check", str(path)]) == 0
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    import json

    m = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert m["complete"] and m["final_accuracy"] > 1 / 6


@pytest.mark.parametrize("cls", ["KillingMIR", "KillingSCR", "KillingBiC"])
def test_crash_and_resume_gives_identical_metrics(cls, small_cfg, tmp_path, monkeypatch):
    cfg = load_config(_cfg(small_cfg, {"name": f"{HERE}:{cls}", "memory_size": 30,
                                       "bias_epochs": 5} if cls == "KillingBiC" else
                           {"name": f"{HERE}:{cls}", "memory_size": 30}, every=30))
    ref = tmp_path / "ref"
    Run(cfg).execute(ref)
    out = tmp_path / "crashed"
    monkeypatch.setenv("CLENV_RAISE_LEARN", "23")  # task 2, after a task end and a checkpoint
    with pytest.raises(RuntimeError, match="learn call 23"):
        Run(cfg).execute(out)
    monkeypatch.delenv("CLENV_RAISE_LEARN")
    Run(cfg).execute(out, resume=True)
    assert _without_wall(out / "metrics.json") == _without_wall(ref / "metrics.json")


def _repo():
    from tests.conftest import REPO

    return REPO


def test_scr_image_views_are_seeded_crops_and_flips_and_cutmix_is_refused():
    spec = _spec(input_shape=(1, 8, 8), image=True)
    s = SCR()
    s.setup(spec)
    raw = torch.randint(0, 256, (16, 1, 8, 8), dtype=torch.uint8)
    y = torch.zeros(16, dtype=torch.long)
    v = s.view(raw, y)
    assert v.dtype == torch.uint8 and v.shape == raw.shape and not torch.equal(v, raw)
    twin = SCR()
    twin.setup(spec)
    assert torch.equal(twin.view(raw, y), v)  # drawn from the seeded generator
    bad = SCR(augment={"crop": 0, "flip": True, "autoaugment": None, "cutmix": 0.5,
                       "cutmix_alpha": 1.0})
    with pytest.raises(ConfigError) as exc:
        bad.setup(spec)
    assert "\n" not in str(exc.value) and "strategy.augment.cutmix" in str(exc.value)


def test_bic_predictions_use_the_bias_layer():
    s = _ready(BiC)
    x, _ = _data(5, 11)
    plain = s.predict({"x": x.numpy()})
    s.alpha, s.beta = torch.tensor([0.5]), torch.tensor([-1.0])
    s.bias_mask = torch.tensor([False, False, True, True])
    s.has_bias = True
    with torch.no_grad():
        o = s.model(x)
    expected = torch.cat((o[:, :2], 0.5 * o[:, 2:] - 1.0), 1)
    assert torch.allclose(s.predict({"x": x.numpy()}), expected, atol=1e-6)
    assert not torch.allclose(plain, expected)


def test_check_refuses_bic_with_hidden_boundaries(small_cfg, tmp_path, capsys):
    """`clenv check` refuses what BiC's setup would (loader.TASK_END_STRATEGIES)."""
    cfg = copy.deepcopy(small_cfg)
    cfg["scenario"]["boundaries"] = "hidden"
    cfg["strategy"] = {"name": "bic"}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    capsys.readouterr()
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "boundaries" in err and "bic" in err
    cfg["strategy"] = {"name": "mir"}  # MIR and SCR need no boundaries
    path.write_text(yaml.safe_dump(cfg))
    assert main(["check", str(path)]) == 0
