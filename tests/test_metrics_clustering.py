"""Golden tests of the GCD clustering accuracy (one Hungarian assignment over all samples)."""

from __future__ import annotations

import numpy as np
import pytest

from clenv.metrics.clustering import cluster_accuracy, contingency, hungarian_mapping


def test_contingency_counts():
    M = contingency([0, 0, 1, 1, 2, 2], [1, 1, 0, 0, 2, 0])
    assert M.tolist() == [[0, 2, 0], [2, 0, 0], [1, 0, 1]]


def test_golden_all_old_new():
    # true [0,0,1,1,2,2], pred [1,1,0,0,2,0]: best mapping 1->0, 0->1, 2->2 matches 2+2+1 = 5
    M = contingency([0, 0, 1, 1, 2, 2], [1, 1, 0, 0, 2, 0])
    assert hungarian_mapping(M) == {1: 0, 0: 1, 2: 2}
    acc = cluster_accuracy(M, old_classes=[0, 1])
    assert acc["all"] == pytest.approx(5 / 6)
    assert acc["old"] == pytest.approx(4 / 4)  # classes 0 and 1: all 4 right
    assert acc["new"] == pytest.approx(1 / 2)  # class 2: one of two


def test_one_assignment_not_one_per_subset():
    # true [0,0,0,1,1], every sample in cluster 1: globally cluster 1 -> class 0 (3 matches),
    # so class 1 (new) scores 0/2. A separate assignment on the new samples would map
    # cluster 1 -> class 1 and report 2/2 = 1.0 — the trap value.
    M = contingency([0, 0, 0, 1, 1], [1, 1, 1, 1, 1])
    acc = cluster_accuracy(M, old_classes=[0])
    assert acc["all"] == pytest.approx(3 / 5)
    assert acc["old"] == pytest.approx(1.0)
    assert acc["new"] == 0.0 and acc["new"] != 1.0


def test_more_clusters_than_classes_and_empty_subsets():
    # 2 classes, 3 clusters: the third cluster stays unmatched and its samples count as wrong
    M = contingency([0, 0, 1, 1, 1], [0, 2, 1, 1, 2], n_classes=2, n_clusters=3)
    acc = cluster_accuracy(M, old_classes=[0, 1])
    assert acc["all"] == pytest.approx(3 / 5) and acc["new"] is None


def test_bad_input():
    with pytest.raises(ValueError):
        contingency([0, 1], [0])
    with pytest.raises(ValueError):
        contingency([-1], [0])
    assert cluster_accuracy(np.zeros((0, 0)), []) == {"all": None, "old": None, "new": None}
