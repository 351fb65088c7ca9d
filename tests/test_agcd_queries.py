"""AGCD query strategies on hand-made inputs, and the priorities the Env turns into labels."""

from __future__ import annotations

import numpy as np
import pytest

from clenv.agcd.queries import (
    adaptive_order,
    entropy_order,
    kcenter_order,
    margin,
    margin_order,
    novel_margin_order,
    priorities,
    rank_candidates,
)
from clenv.agcd_env import ActiveDiscoveryEnv
from clenv.data.registry import load_pool


def test_margin_and_entropy_orders():
    p = np.array([[0.9, 0.05, 0.05], [0.4, 0.35, 0.25], [1 / 3, 1 / 3, 1 / 3], [0.6, 0.4, 0.0]])
    np.testing.assert_allclose(margin(p), [0.85, 0.05, 0.0, 0.2])
    assert margin_order(p).tolist() == [2, 1, 3, 0]
    assert margin_order(p, descending=True).tolist() == [0, 3, 1, 2]
    assert entropy_order(p)[0] == 2 and entropy_order(p)[-1] == 0


def test_kcenter_picks_the_farthest_point_first():
    labelled = np.array([[0.0, 0.0]])
    x = np.array([[1.0, 0.0], [10.0, 0.0], [0.0, 3.0], [9.0, 0.5], [-4.0, 0.0]])
    order = kcenter_order(x, labelled, budget=3)
    # 1 is farthest from the origin; then -4 (distance 4 beats 3 and 1); then (0, 3)
    assert order[:3].tolist() == [1, 4, 2]
    assert sorted(order.tolist()) == list(range(5))


def _probs(pred: list[int], conf: list[float], K: int) -> np.ndarray:
    """Rows predicting ``pred`` with top probability ``conf`` (rest spread evenly)."""
    p = np.zeros((len(pred), K))
    for i, (k, c) in enumerate(zip(pred, conf, strict=True)):
        p[i] = (1 - c) / (K - 1)
        p[i, k] = c
    return p


# 2 old clusters (0, 1) and 2 new ones (2, 3); rows 0-3 predict new cluster 2, rows 4-5 new
# cluster 3, rows 6-7 old clusters
PRED = [2, 2, 2, 2, 3, 3, 0, 1]
CONF = [0.90, 0.50, 0.70, 0.30, 0.95, 0.40, 0.99, 0.35]


def test_adaptive_switches_from_confident_to_uncertain():
    p = _probs(PRED, CONF, 4)
    # budget 4 over 2 new clusters: quota 2 per predicted-new cluster
    early = adaptive_order(p, n_old=2, budget=4, round_=1, adaptive_round=2)
    assert set(early[:4].tolist()) == {0, 2, 4, 5}  # the 2 most confident of cluster 2, all of 3
    assert early[:4].tolist() == [4, 0, 2, 5]  # in the confident-first order
    late = adaptive_order(p, n_old=2, budget=4, round_=3, adaptive_round=2)
    assert set(late[:4].tolist()) == {3, 1, 5, 4}  # the 2 least confident of cluster 2
    assert late[:4].tolist() == [3, 5, 1, 4]
    # the switch happens after adaptive_round: round 2 is still confident-first
    assert adaptive_order(p, 2, 4, 2, 2)[:4].tolist() == early[:4].tolist()
    # predicted-old rows come last in both phases
    assert set(early[-2:].tolist()) == set(late[-2:].tolist()) == {6, 7}


def test_adaptive_fills_from_further_predicted_new_samples():
    p = _probs(PRED, CONF, 4)
    # budget 5: quota floor(5/2) = 2 per cluster (4 rows), then the next predicted-new row
    order = adaptive_order(p, n_old=2, budget=5, round_=3, adaptive_round=2)
    assert order[:4].tolist() == [3, 5, 1, 4] and order[4] == 2
    # one new cluster only predicted: its quota, then the fill, never an old row before them
    q = _probs([2, 2, 2, 0, 1], [0.9, 0.6, 0.5, 0.5, 0.5], 4)
    o = adaptive_order(q, n_old=2, budget=4, round_=1, adaptive_round=2)
    assert o[:3].tolist() == [0, 1, 2] and set(o[3:].tolist()) == {3, 4}


def test_novel_margin_puts_predicted_new_first():
    p = _probs(PRED, CONF, 4)
    order = novel_margin_order(p, n_old=2)
    assert set(order[:6].tolist()) == {0, 1, 2, 3, 4, 5}
    assert order[:6].tolist() == [3, 5, 1, 2, 0, 4]  # by ascending margin


def test_random_is_seeded():
    kw = dict(logits=np.zeros((20, 3)), features=None, labelled_features=None, n_old=1,
              budget=5, round_=1, adaptive_round=2)
    a = rank_candidates("random", rng=np.random.default_rng(3), **kw)
    b = rank_candidates("random", rng=np.random.default_rng(3), **kw)
    c = rank_candidates("random", rng=np.random.default_rng(4), **kw)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    with pytest.raises(ValueError, match="unknown query"):
        rank_candidates("badge", rng=np.random.default_rng(0), **kw)


def test_priorities_make_the_env_label_the_first_b_of_an_ordering():
    pool = load_pool({"source": "synthetic", "branching": [4], "dim": 3, "train_per_class": 10,
                      "test_per_class": 2})
    env = ActiveDiscoveryEnv(pool, {"seed": 0, "rounds": 2, "budget": 3})
    obs, _ = env.reset()
    open_idx = np.flatnonzero(obs["unlabelled"])
    order = np.random.default_rng(0).permutation(len(open_idx))
    pri = priorities(order, open_idx, env.N)
    assert pri in env.action_space
    _, _, _, _, info = env.step(pri)
    assert info["indices"].tolist() == sorted(open_idx[order[:3]].tolist())
    # second round: the labelled ones get -1 and are skipped
    obs = env._obs()
    open2 = np.flatnonzero(obs["unlabelled"])
    pri2 = priorities(np.arange(len(open2)), open2, env.N)
    assert (pri2[info["indices"]] == -1).all()
    _, _, term, _, info2 = env.step(pri2)
    assert info2["indices"].tolist() == open2[:3].tolist() and term
