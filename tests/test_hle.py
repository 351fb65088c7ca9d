"""HLE (Lee et al., ICCV 2023, "Online Continual Learning on Hierarchical Label Expansion"):
the ``hle`` stream generator's invariants (dual_label, single_label, multi_depth,
imbalance_ratio, seeds, config errors), PL-FMS's pieces (``fms_keep_probability`` and the
ImportanceMemory's eviction with pseudo-labels) and the ready hle_* scenarios end to end."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from clenv.cli import main
from clenv.data.registry import SOURCES, load_pool
from clenv.data.tree import level_labels, level_sizes, parents
from clenv.errors import ConfigError
from clenv.scenarios.registry import build_stream, validate_scenario
from clenv.strategies.importance_memory import ImportanceMemory
from clenv.strategies.plfms import fms_keep_probability
from tests.conftest import REPO, SCENARIOS

TWO_LEVELS = {"source": "synthetic", "depth": 2, "branching": [5, 4], "dim": 8,
              "train_per_class": 60, "test_per_class": 10}
# 62 per leaf class: not divisible by 4 levels nor by 5 (children + 1), so rounding shows
FOUR_LEVELS = {"source": "synthetic", "depth": 4, "branching": [2, 2, 2, 3], "dim": 8,
               "train_per_class": 62, "test_per_class": 10}


@pytest.fixture(scope="module")
def pool2():
    return load_pool(TWO_LEVELS)


@pytest.fixture(scope="module")
def pool4():
    return load_pool(FOUR_LEVELS)


def _stream(pool, **scenario):
    return build_stream(pool, validate_scenario({"generator": "hle", **scenario}))


def _check_records(pool, stream, rec) -> None:
    """Shared record invariants: y is the sample's label at its level; units and ends agree."""
    lab = level_labels(pool)
    np.testing.assert_array_equal(rec["y"], lab[rec["index"], rec["level"]])
    assert pool.train[rec["index"]].all()  # training samples only
    assert len(rec["index"]) == stream.length == stream.task_ends[-1]
    offsets = np.asarray(stream.level_offsets)
    units = offsets[rec["level"]] + rec["y"]
    for t in range(stream.n_tasks):  # each task's classes are the units it serves
        sel = rec["task"] == t
        np.testing.assert_array_equal(np.unique(units[sel]), stream.task_classes[t])


# --------------------------------------------------------------------------- coarse first


@pytest.mark.parametrize("mode", ["dual_label", "single_label"])
def test_coarse_before_fine_two_levels(pool2, mode: str) -> None:
    stream = _stream(pool2, mode=mode)
    rec = stream.materialize()
    _check_records(pool2, stream, rec)
    level = rec["level"]
    assert set(level.tolist()) == {0, 1}
    assert np.flatnonzero(level == 0).max() < np.flatnonzero(level == 1).min()
    assert stream.levels == 2
    # task 0 is the coarse task (all 5 superclasses), the others are fine tasks
    assert (level[rec["task"] == 0] == 0).all() and (level[rec["task"] > 0] == 1).all()
    np.testing.assert_array_equal(np.unique(rec["y"][level == 0]), np.arange(5))
    np.testing.assert_array_equal(np.unique(rec["y"][level == 1]), np.arange(20))


def test_coarse_before_fine_multi_depth(pool4) -> None:
    stream = _stream(pool4, mode="multi_depth")
    rec = stream.materialize()
    _check_records(pool4, stream, rec)
    level = rec["level"]
    assert (np.diff(level) >= 0).all()  # levels appear in increasing order
    assert stream.n_tasks == 4 and stream.levels == 4
    sizes = level_sizes(pool4)
    assert sizes == [2, 4, 8, 24]
    for t in range(4):  # task l holds level l only, with every class of that level
        sel = rec["task"] == t
        assert (level[sel] == t).all()
        np.testing.assert_array_equal(np.unique(rec["y"][sel]), np.arange(sizes[t]))


# --------------------------------------------------------------------------- modes


def test_dual_label_reuses_every_sample(pool2) -> None:
    stream = _stream(pool2, mode="dual_label", fine_grouping="child_rank")
    rec = stream.materialize()
    train = set(pool2.train_indices.tolist())
    level, index = rec["level"], rec["index"]
    coarse = index[level == 0]
    fine = index[level == 1]
    assert len(coarse) == len(set(coarse.tolist())) == len(train)  # once each at level 0
    assert len(fine) == len(set(fine.tolist())) == len(train)  # and once each at level 1
    assert set(coarse.tolist()) == set(fine.tolist()) == train
    assert stream.length == 2 * len(train)
    # each fine task holds the k-th child of every coarse class: one child per coarse class
    par = parents(pool2)[0]
    assert stream.n_tasks == 1 + 4  # 4 children per coarse class -> 4 fine tasks
    fine_sets = []
    for t in range(1, stream.n_tasks):
        classes = np.unique(rec["y"][rec["task"] == t])
        assert sorted(par[classes].tolist()) == list(range(5)), t
        fine_sets.append(set(classes.tolist()))
        # a fine task serves all training samples of its classes
        assert (rec["task"] == t).sum() == np.isin(pool2.y[pool2.train_indices], classes).sum()
    assert set().union(*fine_sets) == set(range(20))
    assert sum(len(s) for s in fine_sets) == 20  # disjoint


def test_single_label_is_disjoint_with_balanced_levels() -> None:
    # 50 per leaf, 3 children: round(50 / 4) = 12 go to the coarse task, so a coarse class
    # has 3 * 12 = 36 samples and a fine class 38 (the paper's CIFAR-100 split is 83 / 417)
    pool = load_pool({**TWO_LEVELS, "branching": [4, 3], "train_per_class": 50})
    stream = _stream(pool, mode="single_label", fine_grouping="child_rank")
    rec = stream.materialize()
    _check_records(pool, stream, rec)
    index = rec["index"]
    assert len(index) == len(set(index.tolist()))  # every training sample exactly once
    assert sorted(index.tolist()) == pool.train_indices.tolist()
    level, y = rec["level"], rec["y"]
    coarse_counts = np.bincount(y[level == 0], minlength=4)
    fine_counts = np.bincount(y[level == 1], minlength=12)
    assert coarse_counts.tolist() == [36] * 4
    assert fine_counts.tolist() == [38] * 12
    ratio = coarse_counts[:, None] / fine_counts[None, :]
    assert (np.abs(ratio - 1) <= 0.15).all()
    assert stream.n_tasks == 1 + 3
    par = parents(pool)[0]
    for t in range(1, stream.n_tasks):  # one child of each coarse class per fine task
        classes = np.unique(y[rec["task"] == t])
        assert sorted(par[classes].tolist()) == list(range(4))


def _fine_task_superclasses(pool, stream, rec) -> list[list[int]]:
    """Per fine task: the sorted superclasses it touches, checking that it holds every child."""
    par = parents(pool)[0]
    out = []
    for t in range(1, stream.n_tasks):
        classes = np.unique(rec["y"][rec["task"] == t])
        supers = np.unique(par[classes])
        # whole superclasses: the task's fine classes are exactly their children
        np.testing.assert_array_equal(classes, np.flatnonzero(np.isin(par, supers)))
        out.append(supers.tolist())
    return out


@pytest.mark.parametrize("mode", ["dual_label", "single_label"])
def test_superclass_grouping_is_the_default_uneven_groups_first(mode: str) -> None:
    # 7 superclasses into 3 fine tasks: groups of 3, 2, 2 (earlier groups take one more)
    pool = load_pool({**TWO_LEVELS, "branching": [7, 2], "train_per_class": 12})
    stream = _stream(pool, mode=mode, fine_tasks=3)
    rec = stream.materialize()
    _check_records(pool, stream, rec)
    groups = _fine_task_superclasses(pool, stream, rec)
    assert [len(g) for g in groups] == [3, 2, 2]
    assert sorted(s for g in groups for s in g) == list(range(7))  # a partition


def test_superclass_grouping_depends_on_the_seed(pool2) -> None:
    seen = set()
    for seed in range(6):
        stream = _stream(pool2, mode="single_label", seed=seed)
        groups = _fine_task_superclasses(pool2, stream, stream.materialize())
        assert [len(g) for g in groups] == [2, 1, 1, 1]  # 5 superclasses, 4 fine tasks
        seen.add(tuple(map(tuple, groups)))
    assert len(seen) > 1


def _cifar100_tree_pool(per_class: int = 12):
    """A pool with CIFAR-100's 100 classes under its 20 superclasses, per_class vectors each."""
    from clenv.data.cifar100_names import COARSE_NAMES, FINE_NAMES, coarse_of_fine
    from clenv.data.pool import Pool

    y = np.repeat(np.arange(100), per_class)
    return Pool(x=np.zeros((len(y), 2), dtype=np.float32), y=y, train=np.ones(len(y), bool),
                class_names=list(FINE_NAMES), name="cifar100_tree",
                ancestors=np.asarray(coarse_of_fine())[:, None],
                tree_names=[list(COARSE_NAMES)])


@pytest.mark.parametrize("mode", ["dual_label", "single_label"])
def test_cifar100_fine_tasks_hold_four_whole_superclasses(mode: str) -> None:
    # Hyun1A/HLE data/collections/cifar100_hier_setup{1,2}_split6_n100_m0_rand{0,1,2}: tasks 1-5
    # each hold the 20 fine classes of 4 whole superclasses (rand0 task1: fish,
    # large_carnivores, vehicles_1, vehicles_2), 500 samples per class in setup1, 417 in setup2
    pool = _cifar100_tree_pool()
    stream = _stream(pool, mode=mode)
    rec = stream.materialize()
    assert stream.n_tasks == 6
    groups = _fine_task_superclasses(pool, stream, rec)
    assert [len(g) for g in groups] == [4] * 5
    assert sorted(s for g in groups for s in g) == list(range(20))
    for t in range(1, 6):
        assert len(np.unique(rec["y"][rec["task"] == t])) == 20


def test_cifar100_task_sizes_match_the_official_split_files() -> None:
    # Hyun1A/HLE data/collections, rand0-2: cifar100_hier_setup2 (single-label) task 0 holds
    # 8,300 records at hierarchy 0, 415 per superclass (83 of each child's 500), tasks 1-5
    # 8,340 = 20 x 417; cifar100_hier_setup1 (dual-label) tasks 1-5 hold 10,000 = 20 x 500
    pool = _cifar100_tree_pool(500)
    rec = _stream(pool, mode="single_label").materialize()
    sizes = np.bincount(rec["task"]).tolist()
    assert sizes == [8300] + [8340] * 5
    assert set(np.bincount(rec["y"][rec["task"] == 0]).tolist()) == {415}
    for t in range(1, 6):
        assert set(np.bincount(rec["y"][rec["task"] == t])[rec["y"][rec["task"] == t]]) == {417}
    rec = _stream(pool, mode="dual_label").materialize()
    assert np.bincount(rec["task"]).tolist() == [50_000] + [10_000] * 5


def test_child_rank_grouping_touches_every_superclass() -> None:
    pool = _cifar100_tree_pool()
    stream = _stream(pool, mode="single_label", fine_grouping="child_rank")
    rec = stream.materialize()
    par = parents(pool)[0]
    for t in range(1, 6):
        classes = np.unique(rec["y"][rec["task"] == t])
        assert sorted(par[classes].tolist()) == list(range(20))


def test_too_many_fine_tasks_for_the_superclasses_is_a_config_error(pool2) -> None:
    with pytest.raises(ConfigError, match="fine_tasks"):
        _stream(pool2, mode="dual_label", fine_tasks=6)  # 5 superclasses


def test_multi_depth_serves_each_sample_once_in_equal_parts(pool4) -> None:
    stream = _stream(pool4, mode="multi_depth")
    rec = stream.materialize()
    index, level = rec["index"], rec["level"]
    assert sorted(index.tolist()) == pool4.train_indices.tolist()  # each sample exactly once
    per_level = np.bincount(level, minlength=4)
    assert per_level.sum() == 24 * 62
    # 62 = 16 + 16 + 15 + 15 per leaf class: levels differ by at most one sample per class
    assert per_level.max() - per_level.min() <= 24
    leaf = pool4.y[index]
    table = np.zeros((24, 4), dtype=int)
    np.add.at(table, (leaf, level), 1)
    assert (table.max(axis=1) - table.min(axis=1) <= 1).all()
    assert (table.sum(axis=1) == 62).all()


# --------------------------------------------------------------------------- imbalance


@pytest.mark.parametrize("mode,ratio", [("single_label", 4.0), ("dual_label", 5.0),
                                        ("multi_depth", 3.0)])
def test_imbalance_ratio_within_every_task(pool2, pool4, mode: str, ratio: float) -> None:
    pool = pool4 if mode == "multi_depth" else pool2
    flat = _stream(pool, mode=mode)
    stream = _stream(pool, mode=mode, imbalance_ratio=ratio)
    rec, rec_flat = stream.materialize(), flat.materialize()
    assert stream.length < flat.length
    assert stream.n_tasks == flat.n_tasks
    units = np.asarray(stream.level_offsets)[rec["level"]] + rec["y"]
    for t in range(stream.n_tasks):
        counts = np.array(list(Counter(units[rec["task"] == t].tolist()).values()))
        # every class of the task is kept (at least one sample), head/tail ~ ratio
        assert len(counts) == len(flat.task_classes[t])
        assert abs(counts.max() / counts.min() / ratio - 1) <= 0.2, (t, counts)
        # subsampling only: the kept samples are a subset of the task's samples
        kept = set(zip(rec["index"][rec["task"] == t].tolist(),
                       rec["level"][rec["task"] == t].tolist(), strict=True))
        full = set(zip(rec_flat["index"][rec_flat["task"] == t].tolist(),
                       rec_flat["level"][rec_flat["task"] == t].tolist(), strict=True))
        assert kept < full


def test_imbalance_ratio_one_keeps_everything(pool2) -> None:
    default = _stream(pool2, mode="dual_label").materialize()
    one = _stream(pool2, mode="dual_label", imbalance_ratio=1.0).materialize()
    assert len(one["index"]) == 2 * len(pool2.train_indices)
    for f in default:
        np.testing.assert_array_equal(one[f], default[f])


# --------------------------------------------------------------------------- seeds, errors


@pytest.mark.parametrize("mode", ["dual_label", "single_label", "multi_depth"])
def test_seeds_reproduce(pool2, pool4, mode: str) -> None:
    pool = pool4 if mode == "multi_depth" else pool2
    a = _stream(pool, mode=mode, seed=3).materialize()
    b = _stream(pool, mode=mode, seed=3).materialize()
    c = _stream(pool, mode=mode, seed=4).materialize()
    for f in a:
        np.testing.assert_array_equal(a[f], b[f])
    assert not np.array_equal(a["index"], c["index"])
    assert _stream(pool, mode=mode, seed=3).sha256() == _stream(pool, mode=mode, seed=3).sha256()


def test_flat_pool_is_a_config_error() -> None:
    flat = load_pool({"source": "synthetic", "branching": [6], "dim": 4, "train_per_class": 5,
                      "test_per_class": 2})
    with pytest.raises(ConfigError) as exc:
        _stream(flat, mode="single_label")
    assert exc.value.key == "scenario.generator"
    assert str(exc.value).startswith("scenario.generator:")


def test_dual_label_needs_two_levels() -> None:
    pool3 = load_pool({"source": "synthetic", "depth": 3, "branching": [2, 2, 2], "dim": 4,
                       "train_per_class": 5, "test_per_class": 2})
    for mode in ("dual_label", "single_label"):
        with pytest.raises(ConfigError) as exc:
            _stream(pool3, mode=mode)
        assert exc.value.key == "scenario.mode"
        assert "multi_depth" in str(exc.value)
    assert _stream(pool3, mode="multi_depth").n_tasks == 3  # fine with multi_depth


def test_unknown_mode_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as exc:
        validate_scenario({"generator": "hle", "mode": "triple_label"})
    assert exc.value.key == "scenario.mode"


# --------------------------------------------------------------------------- PL-FMS pieces


def test_fms_keep_probability_golden() -> None:
    # N / |C_seen| = 1000 / 10 = 100; n - first_seen = 50, 150, 10
    p = fms_keep_probability(150, np.array([100, 0, 140]), 10, 1000)
    np.testing.assert_allclose(p, [0.5, 1.0, 0.1])
    # scale 2: denominator 200 -> 0.25, 0.75 (no longer capped), 0.05
    p2 = fms_keep_probability(150, np.array([100, 0, 140]), 10, 1000, scale=2.0)
    np.testing.assert_allclose(p2, [0.25, 0.75, 0.05])
    # a class first seen just now is never kept; |C_seen| = 0 is guarded (denominator = N)
    np.testing.assert_allclose(fms_keep_probability(150, [150], 10, 1000), [0.0])
    np.testing.assert_allclose(fms_keep_probability(500, [0], 0, 1000), [0.5])
    # more seen classes -> smaller window per class -> kept sooner: 40 / (1000 / 20) = 0.8
    np.testing.assert_allclose(fms_keep_probability(140, [100], 20, 1000), [0.8])


# A 2-level tree: coarse units 0, 1; fine units 2, 3 (parent 0) and 4, 5 (parent 1).
# Memory (capacity 7), slot: unit (pseudo coarse unit), importance
#   0: 0 (-), 0.5    1: 0 (-), 0.1    2: 0 (-), 0.9        <- coarse 0: own count 3
#   3: 1 (-), 0.7    4: 1 (-), 0.2                         <- coarse 1: own count 2
#   5: 4 (1), 0.0    6: 5 (1), 0.05                        <- fine, both predicted coarse 1
# A sample of fine unit 2 arrives (freq[2] += 1 -> 1).
# Without PL: freq = own counts = [3, 2, 1, 0, 1, 1] -> unit 0 -> its least important slot 1.
# With PL:   freq = own + pseudo = [3, 4, 1, 0, 1, 1] -> unit 1 -> its least important slot 4.
# (Slot 5 is the least important overall but belongs to neither chosen class.)
# Capacity 7 rather than 6: with one pseudo-labelled sample coarse 1 could only tie coarse 0.
IMPORTANCE = [0.5, 0.1, 0.9, 0.7, 0.2, 0.0, 0.05]
UNITS = [0, 0, 0, 1, 1, 4, 5]
PSEUDO = [-1, -1, -1, -1, -1, 1, 1]
LEVEL = [0, 0, 0, 0, 0, 1, 1]
OFFSETS = [0, 2]


def _memory(pseudo_labels: bool) -> ImportanceMemory:
    mem = ImportanceMemory(7, (2,), torch.float32, n_units=6, n_levels=2,
                           rng=np.random.default_rng(0), label_shape=(2,),
                           pseudo_labels=pseudo_labels)
    for s, (u, p, lv) in enumerate(zip(UNITS, PSEUDO, LEVEL, strict=True)):
        assert mem.choose_slot(u) == s  # free slots are filled in order
        y = torch.tensor([u - OFFSETS[lv], lv])
        mem.put(s, torch.full((2,), float(s)), y, u, np.array([p]))
    mem.importance[:] = IMPORTANCE
    return mem


def _consistent(mem: ImportanceMemory) -> None:
    n = mem.size
    np.testing.assert_array_equal(mem.counts, np.bincount(mem.unit[:n], minlength=6))
    p = mem.pseudo[:n]
    np.testing.assert_array_equal(mem.pseudo_counts, np.bincount(p[p >= 0], minlength=6))


def test_importance_memory_fill_and_counts() -> None:
    mem = _memory(True)
    assert mem.size == 7 and mem.use_pseudo
    assert mem.counts.tolist() == [3, 2, 0, 0, 1, 1]
    assert mem.pseudo_counts.tolist() == [0, 2, 0, 0, 0, 0]
    assert mem.frequency().tolist() == [3, 4, 0, 0, 1, 1]
    assert _memory(False).frequency().tolist() == [3, 2, 0, 0, 1, 1]
    assert not ImportanceMemory(3, (2,), torch.float32, 6, 1, np.random.default_rng(0),
                                pseudo_labels=True).use_pseudo  # one level: no PL
    _consistent(mem)


def test_pseudo_labels_change_the_evicted_class() -> None:
    assert _memory(False).choose_slot(2) == 1  # largest own class 0, its least important
    assert _memory(True).choose_slot(2) == 4  # with pseudo counts coarse 1 is the largest
    # the newcomer's own +1 counts: a coarse-0 sample without PL: [4, 2, ...] -> still slot 1
    assert _memory(False).choose_slot(0) == 1
    # choose_slot changes nothing
    mem = _memory(True)
    before = (mem.counts.copy(), mem.pseudo_counts.copy(), mem.importance.copy())
    mem.choose_slot(2)
    for a, b in zip(before, (mem.counts, mem.pseudo_counts, mem.importance), strict=True):
        np.testing.assert_array_equal(a, b)


def test_put_replacement_keeps_counts_consistent() -> None:
    mem = _memory(True)
    slot = mem.choose_slot(2)
    assert slot == 4
    mean_before = float(np.mean(IMPORTANCE))
    mem.put(slot, torch.tensor([9.0, 9.0]), torch.tensor([0, 1]), 2, np.array([0]))
    assert mem.size == 7
    assert mem.unit[4] == 2 and mem.pseudo[4].tolist() == [0]
    assert mem.counts.tolist() == [3, 1, 1, 0, 1, 1]
    assert mem.pseudo_counts.tolist() == [1, 2, 0, 0, 0, 0]
    _consistent(mem)
    assert mem.replaced == [4]
    assert mem.importance[4] == pytest.approx(mean_before)  # a newcomer starts at the mean
    assert mem.x[4].tolist() == [9.0, 9.0] and mem.y[4].tolist() == [0, 1]
    # replacing a pseudo-labelled fine sample removes its pseudo count
    mem.put(5, torch.zeros(2), torch.tensor([1, 0]), 1, np.array([-1]))
    assert mem.pseudo_counts.tolist() == [1, 1, 0, 0, 0, 0]
    assert mem.counts.tolist() == [3, 2, 1, 0, 0, 1]
    _consistent(mem)
    # set_pseudo recounts from scratch: both fine rows now predicted coarse 0
    new = mem.pseudo[:7].copy()
    new[[4, 6], 0] = 0
    mem.set_pseudo(new)
    assert mem.pseudo_counts.tolist() == [2, 0, 0, 0, 0, 0]
    _consistent(mem)
    # and the eviction follows: freq [5, 2, 1, ...] with a newcomer of coarse 0 -> class 0
    assert mem.choose_slot(0) == 1


def test_update_importance_credits_drawn_slots_and_evicts_the_least_important() -> None:
    """The eviction follows the importance; the update's arithmetic is pinned by hand in
    tests/test_plfms_official.py."""
    mem = _memory(True)
    mem.importance[:] = 0.0
    mem.record_draw(np.array([1, 2]))
    # the loss went up by 1 everywhere: drawn slots lose (1 - 0.5) * (1 - 0) = 0.5
    mem.update_importance(np.full(7, 1.0), np.full(7, 2.0), ema=0.5)
    np.testing.assert_allclose(mem.importance, [0, -0.5, -0.5, 0, 0, 0, 0])
    assert len(mem.drawn) == 0 and mem.replaced == []
    # class 0 (own 3 = largest without PL) gives up its least important slot, the earlier of
    # the tied slots 1 and 2
    mem.use_pseudo = False
    assert mem.choose_slot(0) == 1


def _plfms(**params):
    from clenv.strategies.plfms import PLFMS
    from clenv.strategies.spec import StrategySpec

    s = PLFMS(lr=0.05, memory_size=5, **params)
    s.setup(StrategySpec(input_shape=(3,), image=False, n_classes=4, batch_size=4,
                         stream_length=100, n_tasks=2, levels=2, level_sizes=[2, 4],
                         parents=[np.array([0, 0, 1, 1])], model={"name": "mlp",
                                                                  "hidden": [8]}))
    return s


def test_plfms_learn_records_first_sight_and_fills_memory() -> None:
    s = _plfms()
    x = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    # rows: coarse 1, coarse 1, fine 2 (unit 2 + 2 = 4), coarse 1; units 1, 1, 4, 1
    info = {"y": np.array([1, 1, 2, 1]), "level": np.array([0, 0, 1, 0]),
            "valid": np.ones(4, dtype=bool), "new_classes": {0: {1: "b"}, 1: {2: "c"}}}
    s.learn({"x": x, "valid": np.ones(4, dtype=np.int8)}, info)
    assert s.n_stream == 4
    # first_seen is the stream count at the class's FIRST row: unit 1 at row 0, unit 4 at row 2
    assert s.first_seen.tolist() == [-1, 0, -1, -1, 4 - 2, -1]
    mem = s.memory
    assert mem.size == 4 and mem.unit[:4].tolist() == [1, 1, 4, 1]
    assert mem.y[:4].tolist() == [[1, 0], [1, 0], [2, 1], [1, 0]]
    # the fine row got a pseudo coarse unit (coarse 1 is the only coarse class seen); coarse
    # rows have none
    assert mem.pseudo[:4, 0].tolist() == [-1, -1, 1, -1]
    _consistent_units(mem, 6)
    # a second batch fills the last slot, then replaces: the memory stays at capacity with
    # its counts consistent
    s.learn({"x": x, "valid": np.ones(4, dtype=np.int8)}, info)
    assert mem.size == 5 and s.n_stream == 8
    _consistent_units(mem, 6)
    assert s.first_seen.tolist() == [-1, 0, -1, -1, 2, -1]  # unchanged by later rows


def _consistent_units(mem: ImportanceMemory, n_units: int) -> None:
    n = mem.size
    np.testing.assert_array_equal(mem.counts, np.bincount(mem.unit[:n], minlength=n_units))
    p = mem.pseudo[:n]
    np.testing.assert_array_equal(mem.pseudo_counts, np.bincount(p[p >= 0], minlength=n_units))


# --------------------------------------------------------------------------- end to end


def _root_free_hle() -> list[Path]:
    out = []
    for p in sorted(SCENARIOS.glob("hle_*.yaml")):
        cfg = yaml.safe_load(p.read_text()) or {}
        source = (cfg.get("data") or {}).get("source", "synthetic")
        if (cfg.get("scenario") or {}).get("generator") == "hle" and \
                not SOURCES[source].needs_root:
            out.append(p)
    return out


HLE_READY = _root_free_hle()


def test_ready_hle_scenarios_found() -> None:
    names = {p.stem for p in HLE_READY}
    assert {"hle_dual_label", "hle_single_label", "hle_multi_depth", "hle_digits"} <= names
    assert "hle_cifar100" not in names


@pytest.mark.parametrize("strategy", ["naive", "er", str(REPO / "strategies/hle_plfms.yaml")],
                         ids=["naive", "er", "hle_plfms"])
@pytest.mark.parametrize("path", HLE_READY, ids=lambda p: p.stem)
def test_ready_hle_scenarios_run(path: Path, strategy: str, tmp_path: Path) -> None:
    out = tmp_path / "res"
    assert main(["run", str(path), "--out", str(out), "--quiet", "--strategy", strategy,
                 "--set", "output.plots=false"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["complete"] is True
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    pool = load_pool(cfg["data"])
    sizes = level_sizes(pool)
    levels = metrics["levels"]
    assert [lv["level"] for lv in levels] == list(range(len(sizes)))
    assert [lv["classes"] for lv in levels] == sizes
    for lv in levels:
        for key in ("a_auc", "a_last", "f_last_anytime"):
            assert lv[key] is not None, (lv["level"], key)
        assert 0.0 <= lv["a_auc"] <= 1.0 and 0.0 <= lv["a_last"] <= 1.0
        # f_last (task-end rows, i-Blurry's rule) is null for a level whose classes first
        # appear in the last task (multi-depth's finest level): no earlier task end measured it
        if lv["f_last"] is None:
            assert "multi_depth" in path.stem and lv["level"] == len(sizes) - 1
        else:
            assert -1.0 <= lv["f_last"] <= 1.0
    for lv in levels[:-1]:  # coarse levels: the parent rule only adds correct rows
        assert lv["a_auc_with_finer"] >= lv["a_auc"] - 1e-9
        assert lv["a_last_with_finer"] >= lv["a_last"] - 1e-9
        for key in ("consistency_last", "consistency_mean"):
            assert 0.0 <= lv[key] <= 1.0
    assert "a_auc_with_finer" not in levels[-1]  # the finest level has no finer one


def _clenv(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clenv.cli", *args], capture_output=True,
                          text=True, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})


def _fake_cifar100(root: Path, train_per_class: int = 6, test_per_class: int = 1) -> None:
    """A tiny CIFAR-100 in the python-pickle format: 100 fine classes, fine c under coarse
    c % 20 (so 5 children per superclass)."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, k in (("train", train_per_class), ("test", test_per_class)):
        fine = np.repeat(np.arange(100), k)
        data = rng.integers(0, 256, (len(fine), 3072), dtype=np.uint8)
        with (folder / name).open("wb") as fh:
            pickle.dump({b"data": data, b"fine_labels": fine.tolist(),
                         b"coarse_labels": (fine % 20).tolist()}, fh)
    with (folder / "meta").open("wb") as fh:
        pickle.dump({b"fine_label_names": [f"f{i}".encode() for i in range(100)],
                     b"coarse_label_names": [f"c{i}".encode() for i in range(20)]}, fh)


def test_hle_cifar100_needs_a_root(tmp_path: Path) -> None:
    path = SCENARIOS / "hle_cifar100.yaml"
    cfg = yaml.safe_load(path.read_text())
    default = Path(os.path.expanduser(cfg["data"]["root"]))
    if not default.exists():
        out = _clenv("check", str(path))
        assert out.returncode == 2, out.stderr
        assert "data.root" in out.stderr and "\n" not in out.stderr.strip()
    missing = _clenv("check", str(path), "--set", f"data.root={tmp_path / 'nowhere'}")
    assert missing.returncode == 2 and "data.root" in missing.stderr
    root = tmp_path / "cifar"
    _fake_cifar100(root)
    ok = _clenv("check", str(path), "--set", f"data.root={root}")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("ok:") and "hle" in ok.stdout
    # the paper's structure: 20 superclasses, then 5 tasks of 20 fine classes (4 superclasses)
    pool = load_pool({**cfg["data"], "root": str(root)})
    stream = build_stream(pool, validate_scenario(cfg["scenario"]))
    assert stream.n_tasks == 6
    assert [len(c) for c in stream.task_classes] == [20] * 6
    rec = stream.materialize()
    # single-label: 6 per fine class, 1 goes to the coarse task -> 5 per class at both levels
    assert np.bincount(rec["y"][rec["level"] == 0]).tolist() == [5] * 20
    assert np.bincount(rec["y"][rec["level"] == 1]).tolist() == [5] * 100
    assert sorted(rec["index"].tolist()) == pool.train_indices.tolist()
