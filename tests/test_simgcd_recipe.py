"""SimGCD as ActiveGCD trains it (clenv.agcd.simgcd, clenv.agcd.contrastive): golden values of the
contrastive terms worked by hand from their definitions (model.py info_nce_logits / SupConLoss),
each term moving the gradient, the teacher-temperature warm-up (DistillLoss's linspace) and the
per-phase cosine rate (CosineAnnealingLR, eta_min = lr * 1e-3)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from clenv.agcd.config import AGCD_STRATEGY_FIELDS
from clenv.agcd.contrastive import info_nce, sup_con
from clenv.agcd.simgcd import SimGCD, combine, cosine_rate, loss_terms, teacher_temperature
from clenv.config.schema import validate
from clenv.data.registry import load_pool


def test_info_nce_golden_value_by_hand():
    # two samples, two views, unit vectors: a = e1, a' = e1, b = e2, b' = (e1 + e2)/sqrt2
    r = 1 / math.sqrt(2)
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [r, r]])  # rows: a, b, a', b'
    # row a: positive a' (s=1); others b (0), b' (r): -1 + log(e^0 + e^1 + e^r)
    la = -1 + math.log(1 + math.e + math.exp(r))
    # row b: positive b' (r); others a (0), a' (0): -r + log(1 + 1 + e^r)
    lb = -r + math.log(2 + math.exp(r))
    # row a': positive a (1); others b (0), b' (r): same as row a
    # row b': positive b (r); others a (r), a' (r): -r + log(3 e^r)
    lbp = -r + math.log(3 * math.exp(r))
    expect = (la + lb + la + lbp) / 4
    assert info_nce(z, temperature=1.0).item() == pytest.approx(expect, rel=1e-6)
    # temperature divides every similarity
    za = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    t = 0.5
    per = -1 / t + math.log(math.exp(1 / t) + 2)  # positive 1, two negatives 0
    assert info_nce(za, temperature=t).item() == pytest.approx(per, rel=1e-6)


def test_sup_con_golden_value_by_hand():
    # three samples x two views; labels [0, 0, 1]; orthonormal-ish vectors
    z = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0],   # view 1: a, b, c
                      [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])  # view 2: a', b', c'
    labels = torch.tensor([0, 0, 1])
    t = 1.0  # base temperature 1 too: no rescaling
    s = (z @ z.T).numpy()
    y = np.array([0, 0, 1, 0, 0, 1])
    total = 0.0
    for i in range(6):  # the definition, row by row
        others = [k for k in range(6) if k != i]
        log_den = math.log(sum(math.exp(s[i, k] / t) for k in others))
        pos = [j for j in others if y[j] == y[i]]
        total += -sum(s[i, j] / t - log_den for j in pos) / len(pos)
    expect = total / 6
    assert sup_con(z, labels, temperature=1.0, base_temperature=1.0).item() == pytest.approx(
        expect, rel=1e-6)
    # temperature t and base temperature t: the factor t / base is 1
    assert sup_con(z, labels, 0.07).item() > 0
    assert sup_con(z[:0], labels[:0]).item() == 0.0


def _grad(weights: dict, use_proj: bool = True) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(6, 5, generator=g)
    w = torch.randn(4, 5, generator=g, requires_grad=True)
    p = torch.randn(5, 3, generator=g, requires_grad=True)
    noise = 0.3 * torch.randn(6, 5, generator=g)
    views = [feats, feats + noise]
    cos = [torch.nn.functional.normalize(f, dim=1) @ torch.nn.functional.normalize(w, dim=1).T
           for f in views]
    proj = [f @ p for f in views] if use_proj else None
    target = torch.tensor([0, 1, 0, -1, -1, 1])
    loss = combine(loss_terms(cos, target, 0.1, 0.04, proj), **weights)
    return torch.cat([t.ravel() for t in torch.autograd.grad(loss, (w, p))])


BASE = dict(sup_weight=0.35, distill_weight=1.0, memax_weight=2.0, infonce_weight=1.0,
            supcon_weight=1.0)


@pytest.mark.parametrize("key", ["infonce_weight", "supcon_weight"])
def test_removing_a_contrastive_term_changes_the_gradient(key):
    full = _grad(BASE)
    assert torch.isfinite(full).all()
    assert (full - _grad({**BASE, key: 0.0})).abs().max() > 1e-4


def test_teacher_warmup_is_distill_loss_linspace():
    sched = np.concatenate([np.linspace(0.07, 0.04, 30), np.full(70, 0.04)])
    for e in (0, 1, 7, 29, 30, 99):
        assert teacher_temperature(e, 0.07, 0.04, 30) == pytest.approx(sched[e])
    assert teacher_temperature(0, 0.04, 0.04, 1) == 0.04


def test_cosine_rate_is_cosine_annealing_with_eta_min():
    lr, eta, T = 0.1, 0.1e-3, 15
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=T, eta_min=eta)
    for e in range(T):
        assert cosine_rate(e, T, lr, eta) == pytest.approx(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()


def _learner(**over) -> tuple[SimGCD, object, np.ndarray]:
    pool = load_pool({"source": "synthetic", "branching": [4], "dim": 6, "train_per_class": 30,
                      "test_per_class": 5, "separation": [3.0]})
    params = validate({"base_epochs": 2, "epochs_per_round": 1, "batch_size": 32,
                       "proj_dim": 8, "proj_hidden": 16, **over}, AGCD_STRATEGY_FIELDS,
                      "strategy")
    tr = pool.train_indices
    old = np.array([0, 1])
    lab = tr[np.isin(pool.y[tr], old)][::2]
    cand = np.setdiff1d(tr, lab)
    learner = SimGCD(params, {"name": "mlp", "hidden": [16]}, pool.shape, seed=0)
    learner.setup(pool.x[lab], pool.y[lab], pool.x[cand], old, 4)
    return learner, pool, cand


def test_teacher_warmup_counts_per_mode():
    for mode, expect in (("base", [0.07, 0.055, 0.04, 0.04]), ("round", [0.07, 0.055, 0.07, 0.07]),
                         ("run", [0.07, 0.055, 0.04, 0.04])):
        learner, _, _ = _learner(teacher_warmup=mode, warmup_teacher_epochs=3)
        seen = []
        real = learner.teacher_temp

        def spy(e, real=real, seen=seen):
            seen.append(real(e))
            return seen[-1]

        learner.teacher_temp = spy
        learner.train(2)  # base: epochs 0, 1
        learner.train(1)  # round 1: phase epoch 0 (run epoch 2)
        learner.train(1)  # round 2: phase epoch 0 (run epoch 3)
        assert seen == pytest.approx(expect), mode


def test_each_phase_gets_a_fresh_optimiser_and_a_cosine_rate():
    learner, pool, cand = _learner(lr=0.2)
    learner.train(2)
    first = learner.opt
    assert first.param_groups[0]["lr"] == pytest.approx(cosine_rate(1, 2, 0.2, 0.2e-3))
    assert first.param_groups[1]["weight_decay"] == 0.0  # biases and norms: no decay
    learner.add_queries(np.arange(4), pool.y[cand[:4]])
    learner.train(1)
    assert learner.opt is not first
    assert learner.opt.param_groups[0]["lr"] == pytest.approx(0.2)  # epoch 0 of 1


def test_no_projection_head_means_no_contrastive_terms():
    learner, _, _ = _learner(proj_dim=0)
    assert learner.net.proj is None
    learner.train(1)
    assert learner.counters()["grad_steps"] > 0
