"""Plasticity plug-ins and diagnostics: each reset rule on a tiny network by hand, optimiser
state, seeding, checkpoints, the YAML section, and the diagnostics on hand-made activations."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch

from clenv.errors import ConfigError
from clenv.plugins.diagnostics import dead_fraction, effective_rank
from clenv.runner import make_strategy
from clenv.strategies.registry import validate_strategy
from clenv.strategies.spec import StrategySpec
from tests.conftest import one_line


def _strategy(plasticity: dict | None = None, diagnostics: bool = False, optimizer="sgd",
              hidden=(8,), boundaries: bool = True, **model_kw):
    section = {"name": "naive", "optimizer": optimizer, "lr": 0.05}
    if optimizer == "sgd":
        section["momentum"] = 0.9
    if plasticity is not None:
        section["plasticity"] = plasticity
    if diagnostics:
        section["diagnostics"] = True
    s = make_strategy(validate_strategy(section))
    s.setup(StrategySpec(input_shape=(4,), image=False, n_classes=4, batch_size=8,
                         stream_length=800, n_tasks=2, seed=0, boundaries=boundaries,
                         model={"name": "mlp", "hidden": list(hidden), **model_kw}))
    s.seen[:] = True
    return s


def _batch(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = np.random.default_rng(seed)
    y = torch.from_numpy(g.choice(4, 8))
    x = torch.from_numpy(g.normal(size=(8, 4)).astype(np.float32)) + y[:, None].float()
    return x, y


# -- shrink-and-perturb ------------------------------------------------------------------------
def test_shrink_perturb_formula_and_state_dropped():
    s = _strategy({"method": "shrink_perturb", "shrink": 0.5, "sigma": 0.1, "every": 3})
    for i in range(2):
        s.step(*_batch(i))
    before = [p.detach().clone() for p in s.model.parameters()]
    assert all(p in s.optimizer.state for p in s.model.parameters())
    # the noise the plug-in will draw: the same generator state, parameter by parameter
    g = torch.Generator()
    g.set_state(s.plasticity.gen.get_state())
    s.step(*_batch(2))  # step 3: SGD update, then theta <- 0.5 theta + 0.1 eps
    assert [e["kind"] for e in s.drain_events()] == ["shrink_perturb"]
    assert not s.optimizer.state  # every parameter's momentum dropped
    # undo: the stepped values are (after - 0.1 eps) / 0.5, within one SGD step of before
    for p, b in zip(s.model.parameters(), before, strict=True):
        eps = torch.randn(p.shape, generator=g)
        stepped = (p.detach() - 0.1 * eps) / 0.5
        assert torch.allclose(stepped, b, atol=0.5)
        assert not torch.allclose(p.detach(), b)


def test_shrink_perturb_at_task_starts_only():
    s = _strategy({"method": "shrink_perturb", "shrink": 0.5, "sigma": 0.0})
    s.on_task_start(0)
    w = s.model.head.weight.detach().clone()
    for i in range(5):
        s.step(*_batch(i))
    assert not s.drain_events()
    w = s.model.head.weight.detach().clone()
    s.on_task_start(1)
    assert torch.allclose(s.model.head.weight, 0.5 * w)  # sigma 0: the shrink alone
    assert s.drain_events()[0]["kind"] == "shrink_perturb"


# -- continual backprop ------------------------------------------------------------------------
def test_continual_backprop_utility_by_hand():
    s = _strategy({"method": "continual_backprop", "maturity": 1000, "decay": 0.5})
    x, y = _batch(0)
    s.step(x, y)
    # the hidden activations of that step's forward, and the head's weights before the update
    # cannot be recovered after it: recompute the utility from a fresh forward instead
    lin, head = s.model.features[1], s.model.head
    util = s.plasticity.utility[0].clone()
    s.plasticity.utility[0].zero_()
    with torch.enable_grad():
        h = torch.relu(lin(x))
    s.plasticity._acts[0] = h.detach()
    s.plasticity.continual_backprop(s.model, s.optimizer)
    expected = 0.5 * h.abs().mean(0) * head.weight.abs().sum(0)  # (1 - eta) * contribution
    assert torch.allclose(s.plasticity.utility[0], expected.detach())
    assert util.shape == (8,) and float(util.sum()) > 0
    assert s.plasticity.age[0].tolist() == [2] * 8


def test_continual_backprop_replaces_lowest_mature_unit():
    s = _strategy({"method": "continual_backprop", "maturity": 2, "replacement_rate": 0.25,
                   "decay": 0.0})
    p = s.plasticity
    lin, head = s.model.features[1], s.model.head
    s.step(*_batch(0))  # momentum state exists for every parameter
    p.age[0][:] = torch.tensor([0, 5, 5, 5, 5, 0, 0, 0])  # units 1-4 mature after +1
    p.pending[0] = 0.0
    h = torch.zeros(8, 8)
    h[:, 1:5] = 1.0
    head.weight.data[:] = 1.0
    head.weight.data[:, 3] = 0.25  # unit 3: the lowest contribution among the mature ones
    p._acts[0] = h
    w_before = lin.weight.detach().clone()
    p.continual_backprop(s.model, s.optimizer)
    # 4 mature units * 0.25 = one replacement: unit 3
    ev = s.drain_events()
    assert ev == [{"kind": "unit_reset", "grad_step": 1, "layer": 0, "units": [3]}]
    assert torch.all(head.weight[:, 3] == 0)  # outgoing weights zeroed
    assert not torch.allclose(lin.weight[3], w_before[3])  # fresh incoming weights
    assert torch.all(lin.weight[3].abs() <= 1 / math.sqrt(4))  # U(+-1/sqrt(fan_in))
    assert torch.equal(lin.weight[[0, 1, 2, 4]], w_before[[0, 1, 2, 4]])
    assert p.utility[0][3] == 0 and p.age[0][3] == 0 and p.age[0][1] == 6
    mom = s.optimizer.state[lin.weight]["momentum_buffer"]
    assert torch.all(mom[3] == 0) and torch.any(mom[1] != 0)
    assert torch.all(s.optimizer.state[head.weight]["momentum_buffer"][:, 3] == 0)
    assert p.pending[0] == 0.0


def _adaptable_case(**cfg):
    """Hidden activations of 2 rows x 8 units (unit 0 and units 3-7: 1 then 3; unit 1: 1, 1;
    unit 2: 2, 2), incoming weights all 0.5, head weights all 2 (official gnt.py's terms)."""
    s = _strategy({"method": "continual_backprop", "utility": "adaptable_contribution", **cfg})
    p, lin, head = s.plasticity, s.model.features[1], s.model.head
    lin.weight.data[:] = 0.5
    head.weight.data[:] = 2.0
    h = torch.tensor([[1.0, 1.0, 2.0] + [1.0] * 5, [3.0, 1.0, 2.0] + [3.0] * 5])
    p._acts[0] = h
    return s, p, lin, head


def test_adaptable_contribution_utility_by_hand():
    s, p, lin, head = _adaptable_case(maturity=1000, decay=0.5)
    p.continual_backprop(s.model, s.optimizer)
    # age 1, correction c = 1 - 0.5 = 0.5, running mean a = 0.5 * batch mean, a / c = the
    # batch mean; unit 0: mean |h - 2| = 1, new utility = mean|w_out| 2 * 1 / mean|w_in| 0.5
    # = 4, averaged: (1 - 0.5) * 4 = 2; units 1 and 2 do not vary: 0
    assert p.age[0].tolist() == [1] * 8
    assert p.utility[0].tolist() == [2.0, 0.0, 0.0] + [2.0] * 5
    assert p.mean_act[0].tolist() == [1.0, 0.5, 1.0] + [1.0] * 5


def test_adaptable_contribution_replacement_by_hand():
    s, p, lin, head = _adaptable_case(maturity=0, decay=0.5, replacement_rate=0.125)
    bias = head.bias.detach().clone()
    p.continual_backprop(s.model, s.optimizer)
    # 8 mature units * 0.125 = one replacement: the lowest bias-corrected utility, unit 1
    # (tied with unit 2 at 0, the lower index first); its mean output w_k1 * a_1 / c_1 =
    # 2 * 1 moves into the head's bias, outgoing weights 0, incoming U(+-sqrt(6/4)), bias 0
    assert s.drain_events() == [{"kind": "unit_reset", "grad_step": 0, "layer": 0,
                                 "units": [1]}]
    assert torch.allclose(head.bias, bias + 2.0)
    assert torch.all(head.weight[:, 1] == 0) and torch.all(head.weight[:, 2] == 2.0)
    assert lin.bias[1] == 0 and torch.all(lin.weight[1].abs() <= math.sqrt(6 / 4))
    assert not torch.all(lin.weight[1] == 0.5)
    assert p.mean_act[0][1] == 0 and p.age[0][1] == 0 and p.utility[0][1] == 0


def test_continual_backprop_refuses_non_relu():
    with pytest.raises(ConfigError) as e:
        _strategy({"method": "continual_backprop"}, activation="tanh")
    one_line(e, "ReLU MLP")


# -- L2 towards init ---------------------------------------------------------------------------
def test_l2_init_penalty_by_hand():
    s = _strategy({"method": "l2_init", "l2": 0.5})
    assert float(s.plasticity.penalty(s.model).detach()) == 0.0
    with torch.no_grad():
        s.model.head.bias.add_(torch.tensor([1.0, 0.0, -2.0, 0.0]))
    assert float(s.plasticity.penalty(s.model).detach()) == pytest.approx(0.5 * (1 + 4))


def test_l2_init_pulls_towards_init():
    free, reg = _strategy(), _strategy({"method": "l2_init", "l2": 1.0})
    init = [p.detach().clone() for p in reg.model.parameters()]
    for i in range(50):
        free.step(*_batch(i))
        reg.step(*_batch(i))

    def dist(s):
        return sum(float(((p.detach() - q) ** 2).sum()) for p, q in zip(s.model.parameters(), init,
                                                                 strict=True))
    assert dist(reg) < dist(free)


# -- seeding, checkpoints, YAML ----------------------------------------------------------------
@pytest.mark.parametrize("utility", ["contribution", "adaptable_contribution"])
def test_seeded_and_checkpointed(utility):
    cfg = {"method": "continual_backprop", "maturity": 3, "replacement_rate": 0.2,
           "utility": utility}
    a = _strategy(cfg, diagnostics=True)
    for i in range(10):
        a.step(*_batch(i))
    buf = io.BytesIO()  # as a checkpoint file holds it
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b = _strategy(cfg, diagnostics=True)
    b.load_state_dict(torch.load(buf, weights_only=True))
    for i in range(10, 20):
        a.step(*_batch(i))
        b.step(*_batch(i))
    assert a.drain_events() == b.drain_events()
    for p, q in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert torch.equal(p, q)
    assert a.plasticity.replaced > 0


def test_yaml_section_validated_without_torch_errors():
    out = validate_strategy({"name": "er", "plasticity": {"method": "shrink_perturb"},
                             "diagnostics": True})
    assert out["plasticity"]["shrink"] == 0.4 and out["diagnostics"] is True
    cbp = validate_strategy({"name": "naive", "plasticity": {"method": "continual_backprop"}})
    assert (cbp["plasticity"]["replacement_rate"], cbp["plasticity"]["maturity"],
            cbp["plasticity"]["decay"]) == (1e-4, 100, 0.99)
    with pytest.raises(ConfigError) as e:
        validate_strategy({"name": "er", "plasticity": {"method": "dropout"}})
    one_line(e, "strategy.plasticity.method")
    with pytest.raises(ConfigError) as e:
        validate_strategy({"name": "er", "diagnostics": "yes"})
    one_line(e, "strategy.diagnostics")
    with pytest.raises(ConfigError) as e:
        validate_strategy({"name": "gdumb", "plasticity": {"method": "l2_init"}})
    one_line(e, "strategy.plasticity", "gdumb retrains")


# -- diagnostics -------------------------------------------------------------------------------
def test_dead_fraction_hand_made():
    a = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 2.0]])  # unit 0 dead
    conv = torch.zeros(2, 2, 2, 2)
    conv[1, 0, 1, 1] = 3.0  # channel 0 alive at one position of one input; channel 1 dead
    assert dead_fraction([a]) == pytest.approx(1 / 3)
    assert dead_fraction([a, conv]) == pytest.approx(2 / 5)


def test_effective_rank_known_matrices():
    assert effective_rank(torch.eye(4)) == pytest.approx(4.0)  # sigma = (1,1,1,1)
    assert effective_rank(torch.ones(5, 3)) == pytest.approx(1.0)  # rank one
    # singular values (3, 1): p = (3/4, 1/4), erank = exp(-(.75 ln .75 + .25 ln .25))
    m = torch.diag(torch.tensor([3.0, 1.0]))
    assert effective_rank(m) == pytest.approx(math.exp(-(0.75 * math.log(0.75)
                                                         + 0.25 * math.log(0.25))))
    assert effective_rank(torch.zeros(3, 3)) == 0.0


def test_diagnostics_record():
    s = _strategy(diagnostics=True)
    assert s.diagnostics_record()["dead_fraction"] is None  # no probe yet
    for i in range(3):
        s.step(*_batch(i))
    rec = s.diagnostics_record()
    assert rec["probe_size"] == 24 and rec["grad_norm"] > 0
    assert 0 <= rec["dead_fraction"] <= 1 and 1 <= rec["effective_rank"] <= 8
    n = sum(p.numel() for p in s.model.parameters())
    assert rec["weight_magnitude"] == pytest.approx(
        sum(float(p.abs().sum()) for p in s.model.parameters()) / n)
    with torch.no_grad():  # kill hidden unit 0 on every input
        s.model.features[1].weight[0] = 0
        s.model.features[1].bias[0] = -1
    assert s.diagnostics_record()["dead_fraction"] >= 1 / 8
    assert s.diagnostics_record()["grad_norm"] is None  # no step since the last record


def test_diagnostics_refuse_other_models():
    with pytest.raises(ConfigError) as e:
        _strategy(diagnostics=True, activation="tanh")
    one_line(e, "ReLU MLPs and the cnn only")


def test_fresh_reference_reinitialises_everything_at_task_starts():
    s = _strategy({"method": "fresh"})
    s.on_task_start(0)  # the first task keeps the setup's initialisation
    first = [p.detach().clone() for p in s.model.parameters()]
    for i in range(5):
        s.step(*_batch(i))
    s.on_task_start(1)
    assert not s.optimizer.state  # momentum dropped
    ev = s.drain_events()
    assert ev == [{"kind": "fresh", "grad_step": 5,
                   "n_params": sum(p.numel() for p in s.model.parameters())}]
    for p, q in zip(s.model.parameters(), first, strict=True):
        fan_in = p.shape[-1] if p.dim() > 1 else None
        assert not torch.equal(p, q)
        if fan_in is not None:  # torch's Linear init: U(+-1/sqrt(fan_in))
            assert float(p.abs().max()) <= 1 / math.sqrt(fan_in)
    again = _strategy({"method": "fresh"})  # seeded: the same fresh values
    for i in range(5):
        again.step(*_batch(i))
    again.on_task_start(1)
    for p, q in zip(s.model.parameters(), again.model.parameters(), strict=True):
        assert torch.equal(p, q)


def test_task_start_methods_need_boundaries_and_copies_do_not_count():
    with pytest.raises(ConfigError) as e:
        _strategy({"method": "fresh"}, boundaries=False)
    one_line(e, "strategy.plasticity.method", "boundaries")
    s = _strategy({"method": "continual_backprop"})
    copy = __import__("copy").deepcopy(s.model)  # e.g. a distillation teacher
    s.step(*_batch(0))
    mine = s.plasticity._acts[0]
    with torch.enable_grad():
        copy(_batch(1)[0])
    assert s.plasticity._acts[0] is mine  # the copy's forward is not captured


@pytest.mark.parametrize("plasticity", [
    {"method": "continual_backprop", "maturity": 5, "replacement_rate": 0.05},
    {"method": "shrink_perturb", "every": 7},
    {"method": "l2_init", "l2": 0.1},
])
def test_crash_then_resume_matches_uninterrupted(small_cfg, tmp_path, monkeypatch, plasticity):
    """The plug-in's and the diagnostics' state come back from a checkpoint: the resumed run's
    events (interventions and diagnostics included) equal an uninterrupted run's."""
    import copy
    import json

    from clenv.config.loader import load_config
    from clenv.runner import Run

    cfg = copy.deepcopy(small_cfg)
    cfg["strategy"] = {"name": "tests.checkpoint_killer:KillingNaive", "optimizer": "adam",
                       "lr": 0.01, "plasticity": plasticity, "diagnostics": True}
    cfg["output"] = {"plots": False, "checkpoint_every": 30}
    cfg = load_config(cfg)
    Run(cfg).execute(tmp_path / "ref")
    monkeypatch.setenv("CLENV_RAISE_LEARN", "23")
    with pytest.raises(RuntimeError, match="learn call 23"):
        Run(cfg).execute(tmp_path / "crashed")
    monkeypatch.delenv("CLENV_RAISE_LEARN")
    Run(cfg).execute(tmp_path / "crashed", resume=True)

    def events(d):
        out = []
        for line in (d / "events.jsonl").read_text().splitlines():
            rec = json.loads(line)
            rec.pop("wall", None)
            if rec["type"] not in ("start", "end", "resume"):
                out.append(rec)
        return out
    ref, got = events(tmp_path / "ref"), events(tmp_path / "crashed")
    assert got == ref
    assert any("diagnostics" in e for e in ref)
    assert plasticity["method"] == "l2_init" or any(e["type"] == "event" for e in ref)


def test_continual_backprop_zeroes_every_level_head_of_a_multi_head_model():
    from types import SimpleNamespace

    from clenv.models.mlp import MLP
    from clenv.models.multihead import MultiHead
    from clenv.plugins.plasticity import Plasticity

    model = MultiHead(MLP((4,), 3, hidden=[6]), [2, 5])
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    p = Plasticity({"method": "continual_backprop", "maturity": 0, "replacement_rate": 1 / 6,
                    "decay": 0.0}, SimpleNamespace(seed=0, boundaries=True), model)
    with torch.no_grad():
        model.heads[0].weight[:] = 1.0
        model.heads[1].weight[:] = 1.0
        model.heads[1].weight[:, 4] = 0.0  # unit 4: outgoing |w| 2 (level 0) + 0 (level 1)
    p._acts[0] = torch.ones(3, 6)
    p.continual_backprop(model, opt)
    # utility = |h| * (2 + 5) for every unit but unit 4 (2): 6 mature units * 1/6 = one reset
    assert p.drain()[0]["units"] == [4]
    assert all(torch.all(h.weight[:, 4] == 0) for h in model.heads)
    assert torch.all(model.heads[0].weight[:, 3] == 1)
