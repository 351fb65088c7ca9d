"""DER and DER++ (clenv.strategies.der): the replay terms worked by hand, one step against
Avalanche 0.6's DER, each term changing the gradient, the logit memory rule, preset runs on
every declared family and a resume."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from clenv.cli import main
from clenv.config.loader import load_config
from clenv.errors import ConfigError
from clenv.runner import Run
from clenv.strategies.der import DER, DERPlusPlus
from tests.conftest import REPO, require
from tests.replay_helpers import crash_and_resume, delta, family_config, ready, tiny_spec, twin

B = [1.0, 0.0, -1.0, 0.0, 2.0]  # the head bias of a model whose other weights are 0
Z = [0.0, 1.0, 1.0, 0.0, 0.0]  # the logits stored with every memory sample


def _constant_model(s) -> None:
    with torch.no_grad():
        for p in s.model.parameters():
            p.zero_()
        s.model.head.bias.copy_(torch.tensor(B))


def _fill(s, n: int, label: int) -> None:
    s.memory.add(torch.randn(n, 4), torch.full((n,), label), torch.tensor([Z] * n))


def test_replay_terms_worked_by_hand():
    # every output is B; MSE = mean_c (B_c - Z_c)^2 = (1 + 1 + 4 + 0 + 4) / 5 = 2
    mse = 2.0
    ce = math.log(sum(math.exp(v) for v in B)) - B[4]  # CE of the constant logits at class 4
    for cls, params, want in ((DER, {"alpha": 0.3}, 0.3 * mse),
                              (DERPlusPlus, {"alpha": 0.1, "beta": 0.5},
                               0.1 * mse + 0.5 * ce)):
        s = ready(cls, **params)
        _constant_model(s)
        _fill(s, 6, label=4)
        got = s.penalty(torch.zeros(4, 4), s.model(torch.zeros(4, 4)), torch.zeros(4))
        assert abs(got.item() - want) < 1e-6, cls.__name__


def test_one_step_matches_avalanche_der():
    """Same weights, stream batch and memory (all of it drawn, so both DER++ batches hold
    the same samples, Avalanche's single memory batch): loss and update equal Avalanche's
    DER.training_epoch to 1e-5 (all classes seen: clenv's masked CE is Avalanche's CE)."""
    require("avalanche")
    import warnings

    from avalanche.training import DER as AvalancheDER

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(4, 4, generator=g), torch.tensor([0, 1, 1, 2])
    mx, my, ml = torch.randn(3, 4, generator=g), torch.tensor([3, 4, 3]), torch.randn(
        3, 5, generator=g)
    s = ready(DERPlusPlus, alpha=0.3, beta=0.5, replay_batch_size=3)
    s.memory.add(mx, my, ml)
    ref_model, ref_opt = twin(s.model)
    start = copy.deepcopy(s.model)
    loss = s.step(x, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        avl = AvalancheDER(model=ref_model, optimizer=ref_opt, mem_size=3, batch_size_mem=3,
                           alpha=0.3, beta=0.5, train_mb_size=4, evaluator=None)
    avl.dataloader = [[x, y, torch.zeros(4, dtype=torch.long)]]
    avl.replay_loader = iter([(mx, my, torch.zeros(3, dtype=torch.long), ml)])
    avl.model.train()
    avl.training_epoch()
    assert abs(loss.item() - float(avl.loss.detach())) < 1e-5
    assert torch.allclose(delta(start, s.model), delta(start, ref_model), atol=1e-5)


def _grad(cls, **params) -> torch.Tensor:
    s = ready(cls, replay_batch_size=3, **params)
    g = torch.Generator().manual_seed(1)
    s.memory.add(torch.randn(5, 4, generator=g), torch.tensor([3, 4, 3, 2, 4]),
                 torch.randn(5, 5, generator=g))
    x = torch.randn(4, 4, generator=g)
    inp = x
    out = s.model(inp)
    loss = s.loss(out, torch.tensor([0, 1, 1, 0])) + s.penalty(inp, out, None)
    s.model.zero_grad()
    loss.backward()
    return torch.cat([p.grad.reshape(-1) for p in s.model.parameters()])


def test_each_term_changes_the_gradient():
    full = _grad(DERPlusPlus, alpha=0.1, beta=0.5)
    assert (full - _grad(DERPlusPlus, alpha=0.0, beta=0.5)).abs().max() > 1e-4  # MSE term
    assert (full - _grad(DERPlusPlus, alpha=0.1, beta=0.0)).abs().max() > 1e-4  # label term
    assert (_grad(DER, alpha=0.3) - _grad(DER, alpha=0.0)).abs().max() > 1e-4


def test_memory_keeps_each_sample_with_its_logits_at_training_time():
    """Each stored logit row is the output the model gave that sample in the step that
    trained on it (before the update), paired with it through reservoir replacements."""
    s = ready(DERPlusPlus, memory_size=6)
    rng = np.random.default_rng(0)
    before = {}
    for t in range(8):
        x = (np.arange(4, dtype=np.float32)[:, None] + 4 * t + np.zeros((1, 4),
                                                                        dtype=np.float32))
        with torch.no_grad():
            out = s.model(torch.from_numpy(x))
        for row, logit in zip(x[:, 0].tolist(), out, strict=True):
            before[row] = logit
        s.learn({"x": x}, {"valid": [True] * 4, "y": rng.integers(0, 5, 4)})
    assert s.memory.size == 6 and s.memory.n_seen == 32
    for xi, zi in zip(s.memory.x[:, 0].tolist(), s.memory.logits, strict=True):
        assert torch.allclose(zi, before[xi], atol=1e-6)
    assert len(set(s.memory.x[:, 0].tolist())) == 6
    c = s.counters()
    assert c["buffer_bytes"] == 6 * (4 * 4 + 8 + 5 * 4)  # x, label and logit rows
    assert c["extra_forwards"] == 7  # one memory forward per step once memory is non-empty


def test_a_batch_without_a_step_still_enters_the_memory():
    s = ready(DER, memory_size=20, updates_per_sample=0.05)  # one step per 20 samples
    for t in range(3):
        s.learn({"x": np.full((4, 4), t, dtype=np.float32)},
                {"valid": [True] * 4, "y": np.arange(4)})
    assert s.grad_steps == 0 and s.memory.size == 12
    with torch.no_grad():
        want = s.model(torch.full((1, 4), 2.0))[0]
    assert torch.allclose(s.memory.logits[8], want, atol=1e-6)
    assert s.counters()["extra_forwards"] == 3


def test_memory_batches_are_distinct_samples():
    s = ready(DER, memory_size=10)
    _fill(s, 10, label=0)
    idx = s.memory.sample_indices(25, replace=False)
    assert sorted(idx.tolist()) == list(range(10))


def test_der_is_single_label_only_der_plus_plus_all_families(tmp_path):
    with pytest.raises(ConfigError, match="supports single_label streams, not multi_label"):
        DER(lr=0.1).setup(tiny_spec(multi_label=True))
    for family in ("multi_label", "hierarchical"):
        metrics = Run(load_config(family_config(family, {"name": "derpp"}))).execute(
            tmp_path / family)
        assert metrics["budget"]["buffer_samples"] == 30


@pytest.mark.parametrize("preset", ["der", "derpp"])
def test_presets_run_from_yaml(preset, tmp_path):
    out = tmp_path / "out"
    assert main(["run", str(REPO / "scenarios" / "quickstart.yaml"), "--strategy",
                 str(REPO / "strategies" / f"{preset}.yaml"), "--set",
                 "data.train_per_class=20", "--set", "data.test_per_class=5", "--out",
                 str(out), "--quiet"]) == 0


@pytest.mark.parametrize("cls", ["KillingDER", "KillingDERPlusPlus"])
def test_crash_then_resume_is_exact(cls, small_cfg, tmp_path, monkeypatch):
    cfg = {**small_cfg, "strategy": {"name": f"tests.replay_helpers:{cls}", "memory_size": 40}}
    crash_and_resume(cfg, tmp_path, monkeypatch)
