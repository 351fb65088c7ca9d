"""LwF, EWC (separate, online), SI and MAS: golden values worked by hand, the unit-level
reference checks against Avalanche 0.6 (same weights and batch give the same loss and
gradients to 1e-5), the task-sample memory, families, refusals, preset runs and resume."""

from __future__ import annotations

import copy
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from clenv.config.loader import load_config
from clenv.errors import ConfigError
from clenv.runner import Run
from clenv.strategies.ewc import EWC
from clenv.strategies.lwf import LwF, sigmoid_distillation, softmax_distillation
from clenv.strategies.mas import MAS
from clenv.strategies.penalty import QuadraticPenalty
from clenv.strategies.si import SI
from clenv.strategies.spec import StrategySpec
from tests.checkpoint_killer import _Killing
from tests.conftest import REPO

torch.set_num_threads(1)
THIS = "tests.test_reg_methods"


def make(cls, n_classes: int = 4, **params):
    spec = StrategySpec(input_shape=(3,), image=False, n_classes=n_classes, batch_size=5,
                        stream_length=20, n_tasks=2, task_ends=[10, 20],
                        model={"name": "mlp", "hidden": [6]})
    strat = cls(optimizer="sgd", lr=0.1, **params)
    strat.setup(spec)
    return strat


def data(seed: int, n: int = 10, n_classes: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, generator=g), torch.randint(0, n_classes, (n,), generator=g)


def perturb(model: torch.nn.Module, seed: int, scale: float = 0.1) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))


def keep(strat, x: torch.Tensor, y: torch.Tensor) -> None:
    strat.on_task_start(0)
    strat.task_memory.add(x, y)


def grads_of(loss: torch.Tensor, model: torch.nn.Module) -> list[torch.Tensor]:
    return list(torch.autograd.grad(loss, list(model.parameters())))


def assert_close(a: list[torch.Tensor], b: list[torch.Tensor]) -> None:
    for u, v in zip(a, b, strict=True):
        torch.testing.assert_close(u, v, atol=1e-5, rtol=1e-5)


# -- the shared penalty: golden values ---------------------------------------------------------
def test_quadratic_penalty_golden_values_by_hand():
    theta = [torch.tensor([1.0, 2.0], requires_grad=True)]
    quad = QuadraticPenalty()
    quad.append([torch.tensor([0.5, 2.0])], [torch.tensor([0.0, 1.0])])
    # 0.5 * 1^2 + 2 * 1^2 = 2.5
    assert quad(theta).item() == pytest.approx(2.5)
    quad.append([torch.tensor([1.0, 0.0])], [torch.tensor([3.0, 0.0])])
    # + 1 * (1 - 3)^2 + 0 = 4  ->  6.5; gradient 2 * (0.5*1 + 1*(-2), 2*1 + 0) = (-3, 4)
    assert quad(theta).item() == pytest.approx(6.5)
    assert quad.n_terms == 2
    torch.testing.assert_close(quad.gradient(theta)[0], torch.tensor([-3.0, 4.0]))
    torch.testing.assert_close(torch.autograd.grad(quad(theta), theta)[0],
                               torch.tensor([-3.0, 4.0]))
    quad.replace([torch.tensor([1.0, 1.0])], [torch.tensor([1.0, 1.0])])
    assert quad.n_terms == 1 and quad(theta).item() == pytest.approx(1.0)


# -- EWC ---------------------------------------------------------------------------------------
def _avalanche_strategy(strat, counter: int, dataset=None) -> SimpleNamespace:
    return SimpleNamespace(model=strat.model, optimizer=strat.optimizer, device="cpu",
                           _criterion=torch.nn.CrossEntropyLoss(), train_mb_size=5,
                           clock=SimpleNamespace(train_exp_counter=counter),
                           experience=SimpleNamespace(dataset=dataset),
                           loss=torch.ones(()))


@pytest.mark.parametrize("mode", ["separate", "online"])
def test_ewc_matches_avalanche_fisher_loss_and_gradient(mode):
    from avalanche.training.plugins import EWCPlugin

    strat = make(EWC, ewc_lambda=3.0, mode=mode, decay_factor=0.7)
    strat.seen[:] = True  # all classes seen: clenv's masked loss is Avalanche's plain CE
    plugin = EWCPlugin(3.0, mode=mode, decay_factor=0.7 if mode == "online" else None)
    for t in range(2):
        perturb(strat.model, 10 + t)
        x, y = data(t)
        keep(strat, x, y)
        strat.consolidate(t)
        dataset = TensorDataset(x, y, torch.zeros(len(y), dtype=torch.long))
        plugin.after_training_exp(_avalanche_strategy(strat, t, dataset))
    last = plugin.importances[1]
    if mode == "online":  # the running Fisher: gamma * F_0 + F_1
        assert strat.quad.n_terms == 1
        for imp, (_, ref) in zip(strat.quad.importances, last.items(), strict=True):
            torch.testing.assert_close(imp[0], ref.data, atol=1e-6, rtol=1e-5)
    else:
        assert strat.quad.n_terms == 2
    perturb(strat.model, 99)
    native = strat.penalty(None, None, None)
    fake = _avalanche_strategy(strat, 2)
    plugin.before_backward(fake)
    reference = fake.loss - 1
    assert native.item() == pytest.approx(reference.item(), rel=1e-5)
    assert_close(grads_of(native, strat.model), grads_of(reference, strat.model))


def test_ewc_fisher_golden_on_a_linear_model_by_hand():
    """One linear unit is not possible (CE needs two classes); a 2-class linear head with zero
    weights: p = (1/2, 1/2), dCE/dz = p - onehot, dz/dW = x. Batch 1: x = (1, 0), y = 0 ->
    g_W = [[-1/2, 0], [1/2, 0]], g_b = (-1/2, 1/2); batch 2: x = (0, 2), y = 1 ->
    g_W = [[0, 1], [0, -1]], g_b = (1/2, -1/2). F = mean of the squares."""
    strat = make(EWC, n_classes=2)
    strat.model = torch.nn.Linear(2, 2)
    torch.nn.init.zeros_(strat.model.weight)
    torch.nn.init.zeros_(strat.model.bias)
    strat.seen[:] = True
    strat.spec.batch_size = 1
    from clenv.strategies.memory import ReservoirBuffer

    strat.task_memory = ReservoirBuffer(2, (2,), torch.float32, strat.rng)
    strat.task_memory.add(torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([0, 1]))
    strat.consolidate(0)
    fw, fb = (i[0] for i in strat.quad.importances)
    torch.testing.assert_close(fw, torch.tensor([[0.125, 0.5], [0.125, 0.5]]))
    torch.testing.assert_close(fb, torch.tensor([0.25, 0.25]))


@pytest.mark.parametrize("cls", [EWC, MAS])
def test_per_sample_importance_is_the_papers_mean_over_samples(cls):
    """With both samples of the hand-worked cases above in one batch, importance_grads:
    sample still gives the per-sample means worked by hand; batch-level gradients do not."""
    from clenv.strategies.memory import ReservoirBuffer

    def build(grads: str):
        strat = make(cls, n_classes=2 if cls is EWC else 1, importance_grads=grads)
        strat.model = torch.nn.Linear(2, 2 if cls is EWC else 1)
        with torch.no_grad():
            strat.model.weight.zero_()
            strat.model.bias.zero_()
            if cls is MAS:
                strat.model.weight.copy_(torch.tensor([[1.0, 0.0]]))
        strat.seen[:] = True
        strat.spec.batch_size = 2
        strat.task_memory = ReservoirBuffer(2, (2,), torch.float32, strat.rng)
        x = torch.tensor([[1.0, 0.0], [0.0, 2.0]] if cls is EWC else [[1.0, 2.0], [-1.0, 0.0]])
        strat.task_memory.add(x, torch.tensor([0, 1] if cls is EWC else [0, 0]))
        strat.consolidate(0)
        return [i[0] for i in strat.quad.importances]

    if cls is EWC:
        expected = [torch.tensor([[0.125, 0.5], [0.125, 0.5]]), torch.tensor([0.25, 0.25])]
    else:
        expected = [torch.tensor([[2.0, 2.0]]), torch.tensor([2.0])]
    assert_close(build("sample"), expected)
    assert any(not torch.allclose(a, b) for a, b in zip(build("batch"), expected, strict=True))


def test_per_sample_importance_is_refused_for_per_level_heads(small_cfg):
    hier = {"source": "synthetic", "depth": 2, "branching": [3, 2], "dim": 8,
            "train_per_class": 20, "test_per_class": 5}
    with pytest.raises(ConfigError, match="importance_grads"):
        _run(small_cfg, {"name": "ewc", "importance_grads": "sample"}, data=hier,
             scenario={"generator": "hle", "mode": "single_label", "batch_size": 10})


def test_ewc_penalty_term_changes_the_gradient():
    strat = make(EWC, ewc_lambda=5.0)
    strat.seen[:] = True
    x, y = data(0)
    keep(strat, x, y)
    strat.consolidate(0)
    perturb(strat.model, 3)
    out = strat.model(x)
    with_pen = grads_of(strat.loss(out, y) + strat.penalty(x, out, y), strat.model)
    without = grads_of(strat.loss(strat.model(x), y), strat.model)
    assert any(not torch.allclose(a, b) for a, b in zip(with_pen, without, strict=True))


# -- MAS ---------------------------------------------------------------------------------------
def test_mas_matches_avalanche_importance_loss_and_gradient():
    from avalanche.training.plugins import MASPlugin

    strat = make(MAS, lambda_reg=2.0, alpha=0.3)
    plugin = MASPlugin(lambda_reg=2.0, alpha=0.3)
    for t in range(2):
        perturb(strat.model, 20 + t)
        x, y = data(5 + t)
        keep(strat, x, y)
        strat.consolidate(t)
        dataset = TensorDataset(x, y, torch.zeros(len(y), dtype=torch.long))
        plugin.after_training_exp(_avalanche_strategy(strat, t, dataset))
    for imp, (_, ref) in zip(strat.quad.importances, plugin.importance.items(), strict=True):
        torch.testing.assert_close(imp[0], ref.data, atol=1e-6, rtol=1e-5)
    perturb(strat.model, 98)
    native = strat.penalty(None, None, None)
    fake = _avalanche_strategy(strat, 2)
    plugin.before_backward(fake)
    reference = fake.loss - 1
    assert native.item() == pytest.approx(reference.item(), rel=1e-5)
    assert_close(grads_of(native, strat.model), grads_of(reference, strat.model))


def test_mas_importance_golden_on_a_linear_model_by_hand():
    """f(x) = W x + b, ||f||^2 = sum_j (W_j x + b_j)^2; W = [[1, 0]], b = 0 (one output).
    x = (1, 2): d/dW = 2 f x = 2 * 1 * (1, 2) = (2, 4), d/db = 2. x = (-1, 0): f = -1,
    d/dW = (2, 0), d/db = -2 -> |.| averaged over the two batches of one: W (2, 2), b 2."""
    strat = make(MAS, n_classes=1)
    strat.model = torch.nn.Linear(2, 1)
    with torch.no_grad():
        strat.model.weight.copy_(torch.tensor([[1.0, 0.0]]))
        strat.model.bias.zero_()
    strat.spec.batch_size = 1
    from clenv.strategies.memory import ReservoirBuffer

    strat.task_memory = ReservoirBuffer(2, (2,), torch.float32, strat.rng)
    strat.task_memory.add(torch.tensor([[1.0, 2.0], [-1.0, 0.0]]), torch.tensor([0, 0]))
    strat.consolidate(0)
    w, b = (i[0] for i in strat.quad.importances)
    torch.testing.assert_close(w, torch.tensor([[2.0, 2.0]]))
    torch.testing.assert_close(b, torch.tensor([2.0]))


# -- SI ----------------------------------------------------------------------------------------
def _fake_step(strat, grad: float, delta: float) -> None:
    """An optimiser step by hand: gradient ``grad`` on every weight, then a move by ``delta``."""
    for p in strat.model.parameters():
        p.grad = torch.full_like(p, grad)
    strat.before_update()
    with torch.no_grad():
        for p in strat.model.parameters():
            p.add_(delta)
    strat.after_update()


def test_si_path_integral_and_importance_by_hand_paper_formula():
    """Zenke et al. 2017 eq. 4-5, worked by hand. Task 0: steps (g, d) = (0.5, -0.1) and
    (-0.2, 0.3): omega = -(0.5 * -0.1) - (-0.2 * 0.3) = 0.11; Delta = 0.2, xi = 0.01:
    Omega = 0.11 / (0.04 + 0.01) = 2.2. Task 1 with c = 0.5: at theta = theta* + 0.1 the loss
    gradient holds the penalty's 2 c Omega 0.1 = 0.22; a step with total gradient 0.32 and
    move -0.1 adds -(0.32 - 0.22) * -0.1 = 0.01 to omega (the task gradient, as the paper)."""
    strat = make(SI, c=0.5, xi=0.01)
    strat.on_task_start(0)
    _fake_step(strat, 0.5, -0.1)
    _fake_step(strat, -0.2, 0.3)
    for w in strat.omega_path:
        torch.testing.assert_close(w, torch.full_like(w, 0.11))
    strat.consolidate(0)
    for big in strat.quad.importances:
        torch.testing.assert_close(big, torch.full_like(big, 2.2))
    n = sum(p.numel() for p in strat.model.parameters())
    strat.on_task_start(1)
    with torch.no_grad():
        for p in strat.model.parameters():
            p.add_(0.1)
    # penalty c * sum Omega (0.1)^2 = 0.5 * 2.2 * 0.01 * n
    assert strat.penalty(None, None, None).item() == pytest.approx(0.011 * n, rel=1e-5)
    _fake_step(strat, 0.32, -0.1)
    for w in strat.omega_path:
        torch.testing.assert_close(w, torch.full_like(w, 0.01))
    total = make(SI, c=0.5, xi=0.01, path_gradient="total")
    total.on_task_start(0)
    _fake_step(total, 0.5, -0.1)
    total.consolidate(0)
    total.on_task_start(1)
    with torch.no_grad():
        for p in total.model.parameters():
            p.add_(0.1)
    _fake_step(total, 0.32, -0.1)
    for w in total.omega_path:  # Avalanche's choice: the whole gradient, 0.032
        torch.testing.assert_close(w, torch.full_like(w, 0.032))


def test_avalanche_si_penalty_is_zero_on_cpu():
    """The documented Avalanche 0.6 defect: on CPU its weight snapshots alias the parameters
    (``param.detach().cpu()`` is the same storage), so every step's (new - old) is 0, the
    path integral is 0 and so are the importances and the penalty."""
    from avalanche.training.plugins import SynapticIntelligencePlugin as SIP

    model = torch.nn.Linear(3, 2)
    ewc_data, syn_data = (dict(), dict()), {k: dict() for k in (
        "old_theta", "new_theta", "grad", "trajectory", "cum_trajectory")}
    SIP.create_syn_data(model, ewc_data, syn_data, set())
    SIP.init_batch(model, ewc_data, syn_data, set())
    SIP.pre_update(model, syn_data, set())
    loss = model(torch.ones(1, 3)).sum()
    loss.backward()
    with torch.no_grad():
        for p in model.parameters():
            p.sub_(0.1 * p.grad)
    SIP.post_update(model, syn_data, set())
    assert all(t.data.abs().max() == 0 for t in syn_data["trajectory"].values())


# -- LwF ---------------------------------------------------------------------------------------
def test_distillation_golden_values_by_hand():
    z_old = torch.tensor([[2.0, 0.0]])
    z = torch.tensor([[0.0, 0.0]])
    # T = 2: q = softmax(1, 0) = (e/(e+1), 1/(e+1)), p = (1/2, 1/2): KL = sum q log(2 q)
    q = torch.tensor([math.e / (math.e + 1), 1 / (math.e + 1)])
    expected = float((q * torch.log(2 * q)).sum())
    assert softmax_distillation(z, z_old, 2.0).item() == pytest.approx(expected, rel=1e-6)
    # sigmoid, T = 2, one class: q = sigmoid(1), p = 1/2: q log(2q) + (1-q) log(2(1-q))
    s = 1 / (1 + math.exp(-1))
    expected = s * math.log(2 * s) + (1 - s) * math.log(2 * (1 - s))
    got = sigmoid_distillation(z[:, :1], z_old[:, :1], 2.0).item()
    assert got == pytest.approx(expected, rel=1e-5)
    assert softmax_distillation(z_old, z_old, 2.0).item() == pytest.approx(0.0, abs=1e-7)


def test_lwf_matches_avalanche_loss_and_gradient():
    from avalanche.training.plugins import LwFPlugin

    strat = make(LwF, alpha=0.7, temperature=2.0)
    strat.seen[[0, 2]] = True
    strat.on_task_end(0)  # teacher frozen; old classes {0, 2}
    perturb(strat.model, 5)
    strat.seen[:] = True
    x, y = data(1)
    plugin = LwFPlugin(alpha=0.7, temperature=2)
    plugin.lwf.prev_model = copy.deepcopy(strat.teacher)
    plugin.lwf.prev_classes_by_task = {0: {0, 2}}
    plugin.lwf.expcount = 1
    out = strat.model(x)
    native = strat.penalty(x, out, y)
    reference = plugin.lwf(x, strat.model(x), strat.model)
    assert native.item() == pytest.approx(reference.item(), rel=1e-5)
    assert native.item() > 0
    assert_close(grads_of(native, strat.model), grads_of(reference, strat.model))
    assert strat.counters()["extra_forwards"] == len(x)


def test_lwf_distillation_term_changes_the_gradient_and_ignores_new_classes():
    strat = make(LwF)
    strat.seen[[0, 1]] = True
    strat.on_task_end(0)
    perturb(strat.model, 7)
    strat.seen[:] = True
    x, y = data(2)
    out = strat.model(x)
    pen = strat.penalty(x, out, y)
    base = grads_of(strat.loss(strat.model(x), y), strat.model)
    assert any(not torch.allclose(a, b) for a, b in
               zip(grads_of(strat.loss(out, y) + pen, strat.model), base, strict=True))
    # moving only the new classes' logits (rows 2, 3 of the head) leaves D unchanged
    head = list(strat.model.modules())[-1]
    with torch.no_grad():
        head.weight[2:] += 1.0
        head.bias[2:] += 1.0
    assert strat.penalty(x, strat.model(x), y).item() == pytest.approx(pen.item(), rel=1e-5)


# -- memory rule, families, refusals -----------------------------------------------------------
def test_task_samples_are_first_exposures_of_the_current_task_only():
    strat = make(EWC)
    x = np.arange(30, dtype=np.float32).reshape(10, 3)
    info = {"y": np.arange(10) % 4, "valid": np.ones(10, bool),
            "first_exposure": np.array([1, 1, 0, 1, 1, 1, 1, 1, 1, 0], bool)}
    strat.on_task_start(0)
    strat.learn({"x": x}, info)
    assert strat.task_memory.size == 8
    torch.testing.assert_close(strat.task_memory.x[:2], torch.from_numpy(x[:2]))
    assert strat.counters()["buffer_samples"] == 8
    assert strat.counters()["buffer_bytes"] == 8 * (3 * 4 + 8)
    strat.on_task_end(0)
    strat.on_task_start(1)
    assert strat.task_memory.size == 0
    small = make(EWC, importance_samples=3)
    small.on_task_start(0)
    small.learn({"x": x}, info)
    assert small.task_memory.size == 3 and small.task_memory.n_seen == 8


def _run(small_cfg, strategy, **over) -> dict:
    cfg = copy.deepcopy(small_cfg)
    cfg["strategy"] = strategy
    for k, v in over.items():  # a new generator replaces the scenario section
        cfg[k] = {**v, "seed": 0} if "generator" in v else {**cfg.get(k, {}), **v}
    return Run(load_config(cfg)).execute(None)


@pytest.mark.parametrize("name", ["lwf", "ewc", "mas", "si"])
def test_hidden_boundaries_are_refused_in_one_line(small_cfg, name):
    with pytest.raises(ConfigError, match="needs them exposed"):
        _run(small_cfg, {"name": name}, scenario={"boundaries": "hidden"})


def test_mas_and_si_refuse_multi_label_and_hierarchical(small_cfg):
    hier = {"source": "synthetic", "depth": 2, "branching": [3, 2], "dim": 8,
            "train_per_class": 20, "test_per_class": 5}
    for name in ("mas", "si"):
        with pytest.raises(ConfigError, match="not hierarchical"):
            _run(small_cfg, {"name": name}, data=hier,
                 scenario={"generator": "hle", "mode": "single_label", "batch_size": 10})


@pytest.mark.parametrize("strategy", [{"name": "lwf"}, {"name": "ewc", "mode": "online"}])
def test_lwf_and_ewc_run_on_hierarchical_and_multi_label_streams(small_cfg, strategy):
    hier = {"source": "synthetic", "depth": 2, "branching": [3, 2], "dim": 8,
            "train_per_class": 20, "test_per_class": 5}
    m = _run(small_cfg, strategy, data=hier,
             scenario={"generator": "hle", "mode": "single_label", "batch_size": 10})
    assert m["complete"]
    cfg = copy.deepcopy(small_cfg)
    cfg["scenario"] = {"generator": "mlcil", "seed": 0, "increment": 2, "batch_size": 16}
    cfg["data"] = {"source": "canvas", "seed": 0, "canvas": 16, "glyph_scale": 1,
                   "objects": [1, 3], "n_classes": 6, "train_size": 120, "test_size": 40}
    cfg["strategy"] = strategy
    assert Run(load_config(cfg)).execute(None)["complete"]


# -- presets, clenv run, resume ----------------------------------------------------------------
class KillingLwF(_Killing, LwF):
    """LwF that dies on request."""


class KillingEWC(_Killing, EWC):
    """EWC that dies on request."""


class KillingSI(_Killing, SI):
    """SI that dies on request."""


class KillingMAS(_Killing, MAS):
    """MAS that dies on request."""


@pytest.mark.parametrize("strategy", [
    {"name": f"{THIS}:KillingLwF"},
    {"name": f"{THIS}:KillingEWC", "mode": "separate"},
    {"name": f"{THIS}:KillingEWC", "mode": "online", "decay_factor": 0.5,
     "importance_samples": 15},
    {"name": f"{THIS}:KillingSI", "momentum": 0.9},
    {"name": f"{THIS}:KillingMAS", "importance_grads": "sample"},
])
def test_crash_then_resume_matches_uninterrupted(small_cfg, tmp_path, monkeypatch, strategy):
    import re

    cfg = copy.deepcopy(small_cfg)
    cfg["strategy"] = strategy
    cfg["output"] = {"plots": False, "checkpoint_every": 30}
    cfg = load_config(cfg)
    Run(cfg).execute(tmp_path / "ref")
    out = tmp_path / "crashed"
    monkeypatch.setenv("CLENV_RAISE_LEARN", "23")  # in task 2, after the first task end
    with pytest.raises(RuntimeError, match="learn call 23"):
        Run(cfg).execute(out)
    monkeypatch.delenv("CLENV_RAISE_LEARN")
    Run(cfg).execute(out, resume=True)

    def strip(p):
        return re.sub(r'\n "wall_time": \{[^}]*\}', "", p.read_text())
    assert strip(out / "metrics.json") == strip(tmp_path / "ref" / "metrics.json")


@pytest.mark.parametrize("preset", ["lwf", "ewc", "ewc_online", "si", "mas"])
def test_presets_run_from_yaml(small_cfg, tmp_path, preset):
    import yaml

    from clenv.cli import main

    assert (REPO / "strategies" / f"{preset}.yaml").read_text().startswith("# ")
    cfg = copy.deepcopy(small_cfg)
    cfg["strategy"] = preset
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "metrics.json").is_file()


def test_penalty_counters_and_extra_forwards(small_cfg):
    m = _run(small_cfg, {"name": "ewc"})
    assert m["complete"]
    strat = make(LwF)
    assert strat.counters()["extra_forwards"] == 0
    assert F is not None


def test_penalty_state_round_trip_through_a_weights_only_load(tmp_path):
    quad = QuadraticPenalty("cpu")
    quad.append([torch.tensor([1.0])], [torch.tensor([2.0])])
    quad.append([torch.tensor([3.0])], [torch.tensor([4.0])])
    torch.save(quad.state_dict(), tmp_path / "q.pt")
    fresh = QuadraticPenalty("cpu")
    fresh.load_state_dict(torch.load(tmp_path / "q.pt", weights_only=True))
    assert fresh.n_terms == 2
    # 1 * (0 - 2)^2 + 3 * (0 - 4)^2
    assert fresh([torch.tensor([0.0])]).item() == pytest.approx(1 * 4 + 3 * 16)


def test_strategy_fields_are_validated_by_check(tmp_path):
    import yaml

    from clenv.cli import main

    for bad in ({"name": "ewc", "mode": "both"}, {"name": "si", "path_gradient": "half"},
                {"name": "mas", "alpha": 2.0}, {"name": "lwf", "temperature": 0}):
        cfg = {"name": "t", "scenario": {"generator": "disjoint", "n_tasks": 2},
               "data": {"source": "synthetic", "branching": [4], "dim": 4},
               "strategy": bad}
        path = tmp_path / "c.yaml"
        path.write_text(yaml.safe_dump(cfg))
        assert main(["check", str(path)]) == 2


def test_offline_epochs_keep_each_task_sample_once(small_cfg):
    """scenario.epochs: 2 repeats each task; the Fisher's task memory keeps first exposures
    only (a task of 2 classes x 60 samples: 120, not 240)."""
    m = _run(small_cfg, {"name": "ewc"}, scenario={"epochs": 2})
    assert m["complete"]
    assert m["budget"]["buffer_samples"] == 120
    m = _run(small_cfg, {"name": "si"}, scenario={"epochs": 2})
    assert m["complete"] and m["budget"]["buffer_samples"] == 0


def test_check_refuses_hidden_boundaries_as_run_does(tmp_path):
    import yaml

    from clenv.cli import main

    cfg = {"name": "t", "scenario": {"generator": "disjoint", "n_tasks": 2,
                                     "boundaries": "hidden"},
           "data": {"source": "synthetic", "branching": [4], "dim": 4},
           "strategy": {"name": "ewc"}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["check", str(path)]) == 2
    cfg["scenario"]["boundaries"] = "exposed"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["check", str(path)]) == 0
