"""The gymnasium Env for supervised continual learning (DESIGN.md, "The loop").

obs = {"x": (B, *shape), "valid": (B,)} (+ "task" when the scenario exposes task ids);
action = predicted labels (B,); reward = exact-match accuracy over the valid rows; info of
step t describes batch t (labels, metadata, names of classes at their first appearance);
obs of step t is batch t+1. Test-then-train: the Runner predicts, steps, then learns.
"""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from clenv.data.pool import Pool
from clenv.scenarios.stream import Stream

_INFO_FIELDS = ("task", "major_task", "level", "is_new_class", "boundary", "first_exposure",
                "sample_id")
_HIDDEN = ("task", "major_task", "boundary")


class ContinualEnv(gym.Env):
    """Serves a Stream over a Pool in fixed-size batches of B rows.

    ``stream_factory(seed)`` builds the stream for a scenario seed; ``reset(seed=s)`` rebuilds
    it with seed s. With ``boundaries`` exposed a batch never spans two tasks (the last batch
    of a task is padded, valid = 0); with hidden boundaries task ids and boundary flags are
    left out of info.
    """

    metadata = {"render_modes": []}

    def __init__(self, pool: Pool, stream_factory: Callable[[int], Stream], *, seed: int,
                 batch_size: int, boundaries: bool = True, task_ids: bool = False) -> None:
        self.pool = pool
        self._factory = stream_factory
        self.default_seed = seed
        self.stream = stream_factory(seed)
        self.B = int(batch_size)
        self.boundaries = boundaries
        self.expose_task = task_ids
        self.n_classes = pool.n_classes
        shape = (self.B, *pool.shape)
        if pool.is_image:
            x_space = spaces.Box(0, 255, shape, dtype=np.uint8)
        else:
            # 0 is inside the bounds: padded rows and the terminal obs are zeros
            lo, hi = min(float(pool.x.min()), 0.0), max(float(pool.x.max()), 0.0)
            x_space = spaces.Box(lo, hi, shape, dtype=np.float32)
        obs_spaces = {"x": x_space, "valid": spaces.MultiBinary(self.B)}
        if task_ids:
            obs_spaces["task"] = spaces.Discrete(self.stream.n_tasks)
        self.observation_space = spaces.Dict(obs_spaces)
        self.action_space = spaces.MultiDiscrete(np.full(self.B, self.n_classes, dtype=np.int64))
        self._pad_x = np.zeros(shape, dtype=pool.x.dtype)
        self._ancestors = pool.ancestors
        self._names = pool.class_names
        self.position = 0
        self.online_correct = 0
        self.online_count = 0
        self._batch: dict | None = None
        self._chunk_id = -1

    # -- batches -------------------------------------------------------------------------------
    def _load_chunk(self, k: int) -> None:
        rec = self.stream.chunk(k)
        rec["y"] = self.pool.y[rec["index"]]
        rec["x"] = self.pool.x[rec["index"]]
        self._chunk = rec
        self._chunk_id = k
        self._chunk_start = k * self.stream.chunk_size

    def _batch_stop(self, start: int) -> int:
        stop = min(start + self.B, self.stream.length)
        if self.boundaries:
            t = np.searchsorted(self.stream.task_ends, start, side="right")
            if t < self.stream.n_tasks:
                stop = min(stop, int(self.stream.task_ends[t]))
        return stop

    def _make_batch(self, start: int) -> dict:
        """Records of the batch starting at ``start`` as fresh arrays of length B."""
        stop = self._batch_stop(start)
        cs = self.stream.chunk_size
        k = start // cs
        if k != self._chunk_id:
            self._load_chunk(k)
        a = start - self._chunk_start
        b = stop - self._chunk_start
        n = stop - start
        if b <= cs:
            rec = self._chunk
            batch = {"x": rec["x"][a:b].copy(), "y": rec["y"][a:b].copy()}
            for f in _INFO_FIELDS:
                batch[f] = rec[f][a:b].copy()
        else:  # the batch straddles two chunks
            part = self.stream.slice(start, stop)
            batch = {f: part[f] for f in _INFO_FIELDS}
            batch["y"] = self.pool.y[part["index"]]
            batch["x"] = self.pool.x[part["index"]]
        if n < self.B:
            for f, v in batch.items():
                padded = np.zeros((self.B, *v.shape[1:]), dtype=v.dtype)
                padded[:n] = v
                batch[f] = padded
            valid = np.zeros(self.B, dtype=bool)
            valid[:n] = True
        else:
            valid = np.ones(self.B, dtype=bool)
        batch["valid"] = valid
        batch["stop"] = stop
        return batch

    def _obs(self, batch: dict | None) -> dict:
        if batch is None:  # terminal: all-invalid
            obs = {"x": self._pad_x.copy(), "valid": np.zeros(self.B, dtype=np.int8)}
            if self.expose_task:
                obs["task"] = np.int64(self.stream.n_tasks - 1)
            return obs
        obs = {"x": batch["x"], "valid": batch["valid"].astype(np.int8)}
        if self.expose_task:
            obs["task"] = np.int64(batch["task"][0])
        return obs

    # -- gymnasium API -------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None and seed != self.stream.seed:
            self.stream = self._factory(seed)
            self._chunk_id = -1
        self.position = 0
        self.online_correct = 0
        self.online_count = 0
        self._batch = self._make_batch(0) if self.stream.length else None
        return self._obs(self._batch), {"stream_length": self.stream.length,
                                        "n_tasks": self.stream.n_tasks}

    def step(self, action):
        batch = self._batch
        if batch is None:
            raise RuntimeError("step() after the stream ended; call reset()")
        action = np.asarray(action)
        if action.shape != (self.B,) or not np.issubdtype(action.dtype, np.integer):
            raise ValueError(f"action must be an integer array of shape ({self.B},) holding "
                             f"class ids in [0, {self.n_classes}); got {action.dtype} "
                             f"{action.shape}")
        if action.min() < 0 or action.max() >= self.n_classes:
            raise ValueError(f"action must hold class ids in [0, {self.n_classes}); got values "
                             f"from {action.min()} to {action.max()}")
        valid = batch["valid"]
        y = batch["y"]
        hit = (action == y) & valid
        n_valid = int(valid.sum())
        reward = float(hit.sum()) / n_valid
        first = batch["first_exposure"] & valid
        self.online_correct += int((hit & first).sum())
        self.online_count += int(first.sum())
        info = {"y": y, "valid": valid, "level": batch["level"],
                "is_new_class": batch["is_new_class"], "first_exposure": batch["first_exposure"],
                "sample_id": batch["sample_id"]}
        if self.boundaries:
            info["task"] = batch["task"]
            info["major_task"] = batch["major_task"]
            info["boundary"] = batch["boundary"]
        if self._ancestors is not None:
            info["ancestors"] = self._ancestors[y]
        new = batch["is_new_class"]
        if new.any():
            ids = y[new & valid]
            info["new_classes"] = {int(c): self._names[c] for c in ids}
            if self._ancestors is not None:
                info["new_class_parents"] = {int(c): int(self._ancestors[c, -1]) for c in ids}
        self.position = batch["stop"]
        terminated = self.position >= self.stream.length
        self._batch = None if terminated else self._make_batch(self.position)
        return self._obs(self._batch), reward, terminated, False, info
