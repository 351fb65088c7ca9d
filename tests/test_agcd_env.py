"""The AGCD Env: spaces, check_env, priority selection, the strict query path, the split."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from clenv.agcd_env import ActiveDiscoveryEnv, agcd_split
from clenv.data.registry import load_pool
from clenv.errors import ConfigError

POOL = {"source": "synthetic", "branching": [6], "dim": 4, "train_per_class": 20,
        "test_per_class": 5}
CFG = {"seed": 0, "labelled_fraction": 0.5, "rounds": 3, "budget": 7}


@pytest.fixture(scope="module")
def pool():
    return load_pool(POOL)


def test_split(pool):
    s = agcd_split(pool, CFG)
    assert len(s["old"]) == 3 and len(s["new"]) == 3
    assert np.isin(pool.y[s["labelled"]], s["old"]).all() and len(s["labelled"]) == 3 * 10
    # candidates: the unlabelled old-class samples and every new-class sample
    assert len(s["candidates"]) == 120 - 30
    assert not np.intersect1d(s["candidates"], s["labelled"]).size
    assert np.isin(pool.train_indices[np.isin(pool.y[pool.train_indices], s["new"])],
                   s["candidates"]).all()
    again = agcd_split(pool, CFG)
    assert np.array_equal(again["labelled"], s["labelled"])
    other = agcd_split(pool, {**CFG, "seed": 1})
    assert not np.array_equal(other["labelled"], s["labelled"])
    with pytest.raises(ConfigError, match="^scenario.old_classes"):
        agcd_split(pool, {**CFG, "old_classes": [0, 1, 2, 3, 4, 5]})


def test_check_env(pool):
    env = ActiveDiscoveryEnv(pool, CFG)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(env)


def test_priorities_pick_the_top_b_unlabelled_ties_to_lower_index(pool):
    env = ActiveDiscoveryEnv(pool, CFG)
    obs, info = env.reset()
    assert obs in env.observation_space and obs["unlabelled"].sum() == env.N
    pri = np.zeros(env.N, dtype=np.float32)
    pri[[50, 3, 70]] = [0.9, 0.5, 0.5]
    obs, reward, term, trunc, info = env.step(pri)
    # 50 first, then the ties 3 and 70 (0.5), then the zero ties from the lowest index
    assert info["indices"].tolist() == sorted([50, 3, 70, 0, 1, 2, 4])
    assert reward == 0.0 and not term and obs["round"] == 1
    assert obs["unlabelled"][info["indices"]].sum() == 0
    # oracle labels are the dataset's own labels of those samples
    assert np.array_equal(info["labels"], pool.y[env.candidates[info["indices"]]])
    obs, _, _, _, info2 = env.step(pri)  # labelled samples are never picked again
    assert not np.intersect1d(info["indices"], info2["indices"]).size
    obs, _, term, _, _ = env.step(np.ones(env.N, dtype=np.float32))
    assert term and obs["budget_left"] == 0 and obs in env.observation_space
    with pytest.raises(RuntimeError):
        env.step(pri)


@pytest.mark.parametrize("bad, message", [([1, 1], "duplicate"), ([-1], r"\[0, "),
                                          ([10**6], r"\[0, "), (list(range(8)), "over budget")])
def test_strict_query_rejects_and_changes_nothing(pool, bad, message):
    env = ActiveDiscoveryEnv(pool, CFG)
    env.reset()
    before = env.unlabelled.copy()
    with pytest.raises(ValueError, match=message):
        env.query(bad)
    assert np.array_equal(env.unlabelled, before) and env.round == 0
    obs, _, _, _, info = env.query([5, 2])
    assert info["indices"].tolist() == [2, 5] and env.round == 1
    with pytest.raises(ValueError, match="already labelled"):
        env.query([2, 9])
    assert env.unlabelled[9] == 1 and env.round == 1
