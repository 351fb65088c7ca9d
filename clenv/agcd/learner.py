"""The GCD learner interface the AGCD round loop drives, and the learner registry."""

from __future__ import annotations

from typing import Protocol

import numpy as np


class GCDLearner(Protocol):
    """A learner for (active) generalized category discovery.

    ``setup`` gets the initially labelled samples (dataset labels of old classes), every
    unlabelled candidate and K = |old| + |new| clusters; old class ``old_classes[i]`` owns
    cluster i. ``add_queries`` adds oracle answers (candidate positions, dataset labels) that
    the learner maps to its clusters itself. ``logits`` / ``features`` serve evaluation and
    queries; cluster indices >= len(old_classes) are the predicted-new clusters.
    """

    def setup(self, x_labelled: np.ndarray, y_labelled: np.ndarray, x_unlabelled: np.ndarray,
              old_classes: np.ndarray, n_clusters: int) -> None: ...

    def add_queries(self, positions: np.ndarray, labels: np.ndarray) -> None: ...

    def train(self, epochs: int) -> None: ...

    def logits(self, x: np.ndarray) -> np.ndarray: ...

    def features(self, x: np.ndarray) -> np.ndarray: ...

    def mapping(self) -> dict[int, int]: ...

    def counters(self) -> dict[str, int]: ...


def build_learner(params: dict, model_cfg: dict, input_shape: tuple[int, ...], seed: int,
                  device: str) -> GCDLearner:
    """The learner a validated ``agcd`` strategy section names."""
    if params["learner"] == "kmeans":
        from clenv.agcd.kmeans import SemiSupervisedKMeans

        return SemiSupervisedKMeans(iters=params["kmeans_iters"], seed=seed)
    from clenv.agcd.simgcd import SimGCD

    return SimGCD(params, model_cfg, input_shape, seed=seed, device=device)
