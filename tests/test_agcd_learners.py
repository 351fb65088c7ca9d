"""AGCD learners: each SimGCD loss term matters, the stable label mapping, semi-supervised
k-means, seeds, and the query diagnostics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from clenv.agcd.config import AGCD_STRATEGY_FIELDS
from clenv.agcd.kmeans import SemiSupervisedKMeans, constrained_kmeans
from clenv.agcd.label_mapping import apply_mapping, class_to_cluster
from clenv.agcd.simgcd import SimGCD, combine, loss_terms
from clenv.config.schema import validate
from clenv.data.registry import load_pool
from clenv.metrics.active_discovery import novel_coverage, novel_entropy, novel_ratio

PARAMS = validate({"base_epochs": 2, "epochs_per_round": 1, "batch_size": 32},
                  AGCD_STRATEGY_FIELDS, "strategy")
WEIGHTS = dict(sup_weight=0.35, distill_weight=1.0, memax_weight=2.0)


# ----------------------------------------------------------------------------- loss terms
def _grads(weights: dict) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(6, 5, generator=g)
    w = torch.randn(4, 5, generator=g, requires_grad=True)
    noise = 0.3 * torch.randn(6, 5, generator=g)
    cos = [torch.nn.functional.normalize(f, dim=1) @ torch.nn.functional.normalize(w, dim=1).T
           for f in (feats, feats + noise)]
    target = torch.tensor([0, 1, -1, -1, -1, 1])
    loss = combine(loss_terms(cos, target, 0.1, 0.05), **weights)
    (grad,) = torch.autograd.grad(loss, w)
    return grad


@pytest.mark.parametrize("term, key", [("ce", "sup_weight"), ("distill", "distill_weight"),
                                       ("entropy", "memax_weight")])
def test_each_loss_term_changes_the_gradient(term, key):
    full = _grads(WEIGHTS)
    if key == "sup_weight":  # lambda = 0 removes CE (the unsupervised terms get weight 1)
        without = _grads({**WEIGHTS, "sup_weight": 0.0, "distill_weight": 1 / 0.65,
                          "memax_weight": 2.0 / 0.65})
    else:
        without = _grads({**WEIGHTS, key: 0.0})
    assert torch.isfinite(full).all()
    assert (full - without).abs().max() > 1e-4, f"removing {term} left the gradient unchanged"


def test_loss_terms_golden_values():
    # identical views, uniform cosines: distill = ln K, entropy = ln K, CE = ln K
    cos = [torch.zeros(3, 4), torch.zeros(3, 4)]
    t = loss_terms(cos, torch.tensor([1, -1, -1]), 0.1, 0.05)
    for k in ("ce", "distill", "entropy"):
        assert t[k].item() == pytest.approx(math.log(4), abs=1e-6)
    # no labelled row: CE is exactly zero
    assert loss_terms(cos, torch.tensor([-1, -1, -1]), 0.1, 0.05)["ce"].item() == 0.0
    # a sharper teacher: the distillation target is one-hot on the argmax
    c = torch.tensor([[1.0, 0.0]])
    d = loss_terms([c, c], torch.tensor([-1]), 1.0, 1e-4)["distill"].item()
    assert d == pytest.approx(-math.log(math.e / (math.e + 1)), abs=1e-5)


# ----------------------------------------------------------------------------- label mapping
def test_mapping_follows_a_consistent_permutation_of_the_predictions():
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 5, size=200)
    pred = np.where(rng.random(200) < 0.8, (gt + 2) % 7, rng.integers(0, 7, size=200))
    m = class_to_cluster(gt, pred, 7)
    assert m == {c: (c + 2) % 7 for c in range(5)}
    perm = rng.permutation(7)
    m_perm = class_to_cluster(gt, perm[pred], 7)
    assert m_perm == {c: int(perm[k]) for c, k in m.items()}
    # relabelling the ground truth consistently relabels the keys only
    m_gt = class_to_cluster(gt + 10, pred, 7)
    assert m_gt == {c + 10: k for c, k in m.items()}


def test_mapping_is_one_to_one_and_applies():
    gt = np.array([3, 3, 8, 8, 8])
    # both classes prefer cluster 1, but the joint optimum gives it to 3: 3->1, 8->0 matches
    # 2 + 1 = 3 samples, 8->1, 3->0 only 2 + 0
    pred = np.array([1, 1, 1, 1, 0])
    m = class_to_cluster(gt, pred, 2)
    assert m == {3: 1, 8: 0}
    np.testing.assert_array_equal(apply_mapping([8, 3, 8], m), [0, 1, 0])
    with pytest.raises(ValueError, match="no mapped cluster"):
        apply_mapping([4], m)
    with pytest.raises(ValueError, match="one-to-one"):
        class_to_cluster([0, 1, 2], [0, 1, 1], 2)


# ----------------------------------------------------------------------------- SimGCD
@pytest.fixture(scope="module")
def pool():
    return load_pool({"source": "synthetic", "branching": [4], "dim": 6, "train_per_class": 40,
                      "test_per_class": 10, "separation": [3.0]})


def _simgcd(pool, seed: int) -> SimGCD:
    tr = pool.train_indices
    old = np.array([0, 1])
    lab = tr[np.isin(pool.y[tr], old)][::2]
    cand = np.setdiff1d(tr, lab)
    learner = SimGCD(PARAMS, {"name": "mlp", "hidden": [16]}, pool.shape, seed=seed)
    learner.setup(pool.x[lab], pool.y[lab], pool.x[cand], old, 4)
    learner.train(2)
    new_pos = np.flatnonzero(pool.y[cand] >= 2)[:6]
    learner.add_queries(new_pos, pool.y[cand[new_pos]])
    learner.train(1)
    return learner


def test_simgcd_seeds_reproduce_and_the_mapping_covers_queried_classes(pool):
    a, b, c = _simgcd(pool, 0), _simgcd(pool, 0), _simgcd(pool, 1)
    x = pool.x[pool.test_indices]
    np.testing.assert_array_equal(a.logits(x), b.logits(x))
    assert not np.array_equal(a.logits(x), c.logits(x))
    m = a.mapping()
    assert {0, 1} <= set(m) and set(pool.y[pool.y >= 2][:1]) | set(m) == set(m)
    assert len(set(m.values())) == len(m)  # one cluster per class
    assert a.counters()["grad_steps"] > 0 and a.logits(x).shape == (len(x), 4)
    f = a.features(x)
    np.testing.assert_allclose(np.linalg.norm(f, axis=1), 1.0, atol=1e-5)


def test_simgcd_does_not_touch_the_global_torch_rng(pool):
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    _simgcd(pool, 0)
    assert torch.rand(1) == before


# ----------------------------------------------------------------------------- k-means
def test_constrained_kmeans_keeps_fixed_rows_and_finds_the_clusters():
    x = np.array([[0.0, 0.0], [0.2, 0.0], [5.0, 5.0], [5.2, 5.0], [0.1, 0.1], [5.1, 5.1]])
    fixed = np.array([1, -1, -1, -1, -1, 0])  # row 0 forced into cluster 1, row 5 into 0
    centers, assign, _ = constrained_kmeans(x, fixed, np.array([[4.0, 4.0], [1.0, 1.0]]), 20)
    assert assign.tolist() == [1, 1, 0, 0, 1, 0]
    np.testing.assert_allclose(centers[0], [5.1, 5.0 + 0.1 / 3], atol=1e-9)
    # a row fixed against its geometry stays where it is told
    _, assign2, _ = constrained_kmeans(x, np.array([0, -1, -1, -1, -1, 1]),
                                       np.array([[4.0, 4.0], [1.0, 1.0]]), 20)
    assert assign2[0] == 0 and assign2[5] == 1


def test_kmeans_learner_gives_queried_new_classes_their_own_cluster(pool):
    tr = pool.train_indices
    old = np.array([0, 1])
    lab = tr[np.isin(pool.y[tr], old)]
    cand = np.setdiff1d(tr, lab)
    km = SemiSupervisedKMeans(seed=0)
    km.setup(pool.x[lab], pool.y[lab], pool.x[cand], old, 4)
    km.train(0)
    pos = np.flatnonzero(pool.y[cand] == 3)[:2]
    km.add_queries(pos, pool.y[cand[pos]])
    before = km.logits(pool.x[cand[pos]]).argmax(1)
    km.train(0)
    m = km.mapping()
    assert {0: 0, 1: 1} == {c: m[c] for c in (0, 1)} and m[3] in (2, 3)
    assert (before == m[3]).all()  # the free cluster that already held the class takes it
    pred = km.logits(pool.x[pool.test_indices]).argmax(1)
    y = pool.y[pool.test_indices]
    assert (pred[y == 3] == m[3]).mean() > 0.9 and (pred[y == 0] == 0).mean() > 0.9


# ----------------------------------------------------------------------------- diagnostics
def test_query_diagnostics_golden():
    new = [2, 3, 4]
    q = [0, 2, 2, 3, 1, 2]
    assert novel_coverage(q, new) == pytest.approx(2 / 3)
    assert novel_ratio(q, new) == pytest.approx(4 / 6)
    f = np.array([3, 1]) / 4
    assert novel_entropy(q, new) == pytest.approx(-(f * np.log(f)).sum())
    assert novel_entropy([2, 3, 4], new) == pytest.approx(math.log(3))  # the maximum
    assert novel_entropy([0, 1], new) is None and novel_ratio([], new) is None
    assert novel_coverage(q, []) is None
