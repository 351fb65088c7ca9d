"""The active generalized category discovery (AGCD) Env (DESIGN.md, "AGCD Env"; Ma et al.,
CVPR 2024): R query rounds over a pool of unlabelled samples (the unlabelled old-class samples
and every new-class sample); in each round the learner asks an oracle for the labels of b
samples (``scenario.budget``, or ``scenario.budget_per_class`` k times the number of new
classes; ``self.b`` is that effective b).

obs = {"round": Discrete(R+1), "budget_left": Discrete(b+1), "unlabelled": MultiBinary(N)};
action = Box(-1, 1, (N,)) priorities: the Env labels the b highest-priority samples that are
still unlabelled (ties to the lower index), so every action is valid; info holds the chosen
candidate indices, their pool ids and the oracle's labels in the dataset's own label space
(the learner must map them to its clusters); reward = 0. The split is drawn from the scenario
seed at construction (it fixes N); ``reset(seed=s)`` seeds ``np_random`` only, so every reset
replays the same rounds. ``query(indices)`` is the strict path:
it raises ValueError for duplicate, already-labelled, out-of-range or over-budget indices and
changes nothing.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from clenv.data.pool import Pool
from clenv.scenarios.agcd import AGCD_FIELDS, agcd_split  # noqa: F401 (their old path)


class ActiveDiscoveryEnv(gym.Env):
    """Query rounds over a fixed candidate set (see the module doc)."""

    metadata = {"render_modes": []}

    def __init__(self, pool: Pool, cfg: dict, key: str = "scenario") -> None:
        self.pool = pool
        self.cfg = dict(cfg)
        self._key = key
        self._split(self.cfg.get("seed", 0))
        self.observation_space = spaces.Dict({
            "round": spaces.Discrete(self.R + 1), "budget_left": spaces.Discrete(self.b + 1),
            "unlabelled": spaces.MultiBinary(self.N)})
        self.action_space = spaces.Box(-1.0, 1.0, (self.N,), dtype=np.float32)

    def _split(self, seed: int) -> None:
        split = agcd_split(self.pool, {**self.cfg, "seed": seed}, self._key)
        self.split = split
        self.candidates = split["candidates"]
        self.N, self.R, self.b = len(self.candidates), split["rounds"], split["budget"]
        self.round = 0
        self.unlabelled = np.ones(self.N, dtype=np.int8)

    def _obs(self) -> dict:
        return {"round": np.int64(self.round),
                "budget_left": np.int64(self.b if self.round < self.R else 0),
                "unlabelled": self.unlabelled.copy()}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        # the split (hence N and the spaces) is fixed by the scenario seed at construction; a
        # reset seed only seeds np_random: build a new Env for another split
        super().reset(seed=seed)
        self.round = 0
        self.unlabelled[:] = 1
        return self._obs(), {"old_classes": self.split["old"].copy(),
                             "labelled": self.split["labelled"].copy(),
                             "labelled_y": self.pool.y[self.split["labelled"]].copy(),
                             "candidates": self.candidates.copy()}

    def _label(self, chosen: np.ndarray):
        self.unlabelled[chosen] = 0
        self.round += 1
        ids = self.candidates[chosen]
        info = {"indices": chosen.copy(), "sample_ids": ids.copy(),
                "labels": self.pool.y[ids].copy()}
        return self._obs(), 0.0, self.round >= self.R, False, info

    def step(self, action):
        if self.round >= self.R:
            raise RuntimeError("all query rounds are used; call reset()")
        pri = np.asarray(action, dtype=np.float64).reshape(-1)
        if pri.shape != (self.N,):
            raise ValueError(f"action must hold {self.N} priorities, got shape {pri.shape}")
        open_idx = np.flatnonzero(self.unlabelled)
        # highest priority first, ties to the lower index (lexsort: last key is primary)
        order = open_idx[np.lexsort((open_idx, -pri[open_idx]))]
        return self._label(np.sort(order[: self.b]))

    def query(self, indices) -> tuple:
        """Label exactly these candidate indices this round (strict: invalid input raises
        ValueError and changes nothing)."""
        if self.round >= self.R:
            raise ValueError("no query round left")
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if len(idx) > self.b:
            raise ValueError(f"over budget: {len(idx)} indices for a budget of {self.b}")
        if len(np.unique(idx)) != len(idx):
            raise ValueError("duplicate indices")
        if len(idx) and (idx.min() < 0 or idx.max() >= self.N):
            raise ValueError(f"indices must be in [0, {self.N})")
        if len(idx) and not self.unlabelled[idx].all():
            raise ValueError(f"already labelled: {idx[self.unlabelled[idx] == 0].tolist()}")
        return self._label(np.sort(idx))
