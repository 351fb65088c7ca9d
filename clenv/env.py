"""The gymnasium Env for supervised continual learning (DESIGN.md, "The loop").

obs = {"x": (B, *shape), "valid": (B,)} (+ "task" when the scenario exposes task ids);
action = predicted labels (B,); reward = exact-match accuracy over the valid rows; info of
step t describes batch t (labels, metadata, names of classes at their first appearance);
obs of step t is batch t+1. Test-then-train: the Runner predicts, steps, then learns.
"""

from __future__ import annotations

import operator
from bisect import bisect_left
from collections.abc import Callable

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from clenv.data.pool import Pool
from clenv.scenarios.stream import Stream


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
        self._ones8 = np.ones(self.B, dtype=np.int8)
        self._task_idx = 0
        self._next_end = 0

    # -- batches -------------------------------------------------------------------------------
    # A batch holds x (n, *shape), ints (5, n) = y, task, major_task, level, sample_id and
    # flags (3, n) = is_new_class, boundary, first_exposure: three block copies per step.
    def _records(self, start: int, stop: int) -> dict:
        rec = self.stream.slice(start, stop)
        index = rec["index"]
        flags = np.stack([rec["is_new_class"], rec["boundary"], rec["first_exposure"]])
        return {"x": self.pool.x[index],
                "ints": np.stack([self.pool.y[index], rec["task"], rec["major_task"],
                                  rec["level"], rec["sample_id"]]),
                "flags": flags, "new": np.flatnonzero(flags[0]).tolist(),
                "all_first": bool(flags[2].all())}

    def _load_chunk(self, k: int) -> None:
        cs = self.stream.chunk_size
        self._chunk = self._records(k * cs, (k + 1) * cs)
        self._chunk_id = k
        self._chunk_start = k * cs

    def _make_batch(self, start: int) -> dict:
        """The batch starting at ``start``: fresh arrays padded to B rows."""
        stop = min(start + self.B, self.stream.length)
        if self.boundaries:
            while self._next_end <= start:
                self._task_idx += 1
                self._next_end = int(self.stream.task_ends[self._task_idx])
            stop = min(stop, self._next_end)
        n = stop - start
        cs = self.stream.chunk_size
        k = start // cs
        if k != self._chunk_id:
            self._load_chunk(k)
        a = start - self._chunk_start
        b = a + n
        if b <= cs:
            rec = self._chunk
            new = rec["new"]
            i = bisect_left(new, a)
            batch = {"x": rec["x"][a:b].copy(), "ints": rec["ints"][:, a:b].copy(),
                     "flags": rec["flags"][:, a:b].copy(),
                     "new": i < len(new) and new[i] < b, "all_first": rec["all_first"]}
        else:  # the batch straddles two chunks
            rec = self._records(start, stop)
            batch = {"x": rec["x"], "ints": rec["ints"], "flags": rec["flags"],
                     "new": bool(rec["new"]), "all_first": rec["all_first"]}
        if n < self.B:
            x = np.zeros((self.B, *batch["x"].shape[1:]), dtype=batch["x"].dtype)
            x[:n] = batch["x"]
            ints = np.zeros((5, self.B), dtype=np.int64)
            ints[:, :n] = batch["ints"]
            flags = np.zeros((3, self.B), dtype=bool)
            flags[:, :n] = batch["flags"]
            batch.update(x=x, ints=ints, flags=flags)
            valid = np.zeros(self.B, dtype=np.int8)
            valid[:n] = 1
        else:
            valid = self._ones8.copy()
        batch["valid"] = valid
        batch["n"] = n
        batch["stop"] = stop
        return batch

    def _obs(self, batch: dict | None) -> dict:
        if batch is None:  # terminal: all-invalid
            obs = {"x": self._pad_x.copy(), "valid": np.zeros(self.B, dtype=np.int8)}
            if self.expose_task:
                obs["task"] = np.int64(self.stream.n_tasks - 1)
            return obs
        obs = {"x": batch["x"], "valid": batch["valid"]}
        if self.expose_task:
            obs["task"] = np.int64(batch["ints"][1, 0])
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
        self._task_idx = 0
        self._next_end = int(self.stream.task_ends[0]) if self.stream.n_tasks else 0
        self._batch = self._make_batch(0) if self.stream.length else None
        return self._obs(self._batch), {"stream_length": self.stream.length,
                                        "n_tasks": self.stream.n_tasks}

    def step(self, action):
        batch = self._batch
        if batch is None:
            raise RuntimeError("step() after the stream ended; call reset()")
        action = np.asarray(action)
        if action.shape != (self.B,) or action.dtype.kind not in "iu":
            raise ValueError(f"action must be an integer array of shape ({self.B},) holding "
                             f"class ids in [0, {self.n_classes}); got {action.dtype} "
                             f"{action.shape}")
        # Small batches are checked and scored on Python lists: after a training step, numpy's
        # ufunc reductions on 10-element arrays cost several microseconds each (measured in
        # benchmarks/loop_overhead.py); larger or padded batches take the numpy path.
        labels = action.tolist()
        if min(labels) < 0 or max(labels) >= self.n_classes:
            raise ValueError(f"action must hold class ids in [0, {self.n_classes}); got values "
                             f"from {min(labels)} to {max(labels)}")
        ints, flags, n = batch["ints"], batch["flags"], batch["n"]
        y = ints[0]
        valid = batch["valid"].astype(bool)
        if n == self.B and batch["all_first"] and n <= 64:
            n_hit = sum(map(operator.eq, labels, y.tolist()))
            self.online_correct += n_hit
            self.online_count += n
        else:
            hit = (action == y) & valid
            n_hit = int(np.count_nonzero(hit))
            first = flags[2]
            self.online_correct += int(np.count_nonzero(hit & first))
            self.online_count += int(np.count_nonzero(first))
        reward = n_hit / n
        info = {"y": y, "valid": valid, "level": ints[3], "is_new_class": flags[0],
                "first_exposure": flags[2], "sample_id": ints[4]}
        if self.boundaries:
            info["task"] = ints[1]
            info["major_task"] = ints[2]
            info["boundary"] = flags[1]
        if self._ancestors is not None:
            info["ancestors"] = self._ancestors[y]
        if batch["new"]:
            ids = y[flags[0]]
            info["new_classes"] = {int(c): self._names[c] for c in ids}
            if self._ancestors is not None:
                info["new_class_parents"] = {int(c): int(self._ancestors[c, -1]) for c in ids}
        self.position = batch["stop"]
        terminated = self.position >= self.stream.length
        self._batch = None if terminated else self._make_batch(self.position)
        return self._obs(self._batch), reward, terminated, False, info
