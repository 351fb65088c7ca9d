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


def test_adaptive_switch_follows_the_official_round_rule():
    """Conformance with ActiveGCD (novel_margin_sampling_adaptive.py, rounds from 1 as in
    train_al_ema.py): uncertain-first when round >= adaptive_round, confident-first before.

    Hand-worked from the official query: every row's margin is (4 c - 1) / 3, so margin order
    is confidence order. Confident-first: 6, 4, 0, 2, 1, 5, 7, 3; cluster 2 in that order is
    0, 2, 1, 3 and cluster 3 is 4, 5; quota floor(4 / 2) = 2 -> {0, 2} + {4, 5}.
    Uncertain-first: 3, 7, 5, 1, 2, 0, 4, 6; cluster 2: 3, 1, 2, 0, cluster 3: 5, 4 ->
    {3, 1} + {5, 4}."""
    p = _probs(PRED, CONF, 4)
    confident, uncertain = {0, 2, 4, 5}, {1, 3, 4, 5}

    def chosen(round_: int, adaptive_round: int = 2, budget: int = 4) -> set[int]:
        return set(adaptive_order(p, n_old=2, budget=budget, round_=round_,
                                  adaptive_round=adaptive_round)[:budget].tolist())

    # the default adaptive_round 2: only round 1 is confident-first
    assert chosen(1) == confident
    assert chosen(2) == uncertain  # clenv before the fix: still confident-first here
    assert chosen(3) == uncertain
    # adaptive_round 3: rounds 1 and 2 confident-first; adaptive_round 1: never confident-first
    assert chosen(2, adaptive_round=3) == confident and chosen(3, adaptive_round=3) == uncertain
    assert chosen(1, adaptive_round=1) == uncertain
    # the order itself: the quota rows in margin order, then the rest of the predicted-new
    # rows, then the predicted-old rows (6, 7) last in both phases
    late = adaptive_order(p, n_old=2, budget=4, round_=2, adaptive_round=2)
    assert late.tolist() == [3, 5, 1, 4, 2, 0, 7, 6]
    early = adaptive_order(p, n_old=2, budget=4, round_=1, adaptive_round=2)
    assert early.tolist() == [4, 0, 2, 5, 1, 3, 6, 7]


def test_adaptive_quota_fill_and_shortage_by_hand():
    """floor(b / |new|) per predicted-new cluster, then the official fill: further
    predicted-new rows in margin order. Budget 5 -> quota 2, one fill row: uncertain-first
    the next predicted-new row after 3, 5, 1, 4 is 2; confident-first after 4, 0, 2, 5 it is
    1. Budget 7 -> quota 3: cluster 3 has only 2 rows, so the quota gives 5 rows and the fill
    the 6th (the last predicted-new row). With only 6 predicted-new rows the official code
    asserts; clenv spends the 7th label on the predicted-old row next in the same order."""
    p = _probs(PRED, CONF, 4)
    assert set(adaptive_order(p, 2, 5, 2, 2)[:5].tolist()) == {1, 2, 3, 4, 5}
    assert set(adaptive_order(p, 2, 5, 1, 2)[:5].tolist()) == {0, 1, 2, 4, 5}
    o = adaptive_order(p, 2, 7, 2, 2)
    assert set(o[:5].tolist()) == {3, 1, 2, 5, 4} and o[5] == 0 and o[6] == 7
    o = adaptive_order(p, 2, 7, 1, 2)
    assert set(o[:5].tolist()) == {0, 2, 1, 4, 5} and o[5] == 3 and o[6] == 6


def test_the_loop_numbers_query_rounds_from_one(tmp_path, monkeypatch):
    """The round loop hands the query round r = 1..R (the official loop's numbering), so the
    default adaptive_round 2 makes round 1 the only confident-first round."""
    import clenv.agcd.loop as loop
    from tests.test_agcd_run import TINY, _run

    seen = []

    def spy(name, **kw):
        seen.append(kw["round_"])
        return rank_candidates(name, **kw)

    monkeypatch.setattr(loop, "rank_candidates", spy)
    _run(tmp_path, TINY)
    assert seen == [1, 2]


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
