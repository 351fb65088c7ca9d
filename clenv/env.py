"""The gymnasium Env for supervised continual learning (DESIGN.md, "The loop").

obs = {"x": (B, *shape), "valid": (B,)} (+ "task" when the scenario exposes task ids);
action = predicted labels (B,); reward = exact-match accuracy over the valid rows; info of
step t describes batch t (labels, metadata, names of classes at their first appearance);
obs of step t is batch t+1. Test-then-train: the Runner predicts, steps, then learns.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from clenv.data.pool import Pool
from clenv.env_labels import label_rows
from clenv.scenarios.stream import Stream


class ContinualEnv(gym.Env):
    """Serves a Stream over a Pool in fixed-size batches of B rows.

    ``stream_factory(seed)`` builds the stream for a scenario seed; ``reset(seed=s)`` rebuilds
    it with seed s. With ``boundaries`` exposed a batch never spans two tasks (the last batch
    of a task is padded, valid = 0); with hidden boundaries task ids and boundary flags are
    left out of info. Inputs of non-zero domains are transformed chunk by chunk, with the
    chunk's own generator, so a position's input depends only on (seed, chunk).
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
        self._clip: tuple[float, float] | None = None
        if pool.is_image:
            x_space = spaces.Box(0, 255, shape, dtype=np.uint8)
        else:
            lo, hi = self._float_bounds()
            x_space = spaces.Box(lo, hi, shape, dtype=np.float32)
        obs_spaces = {"x": x_space, "valid": spaces.MultiBinary(self.B)}
        if task_ids:
            obs_spaces["task"] = spaces.Discrete(self.stream.n_tasks)
        self.observation_space = spaces.Dict(obs_spaces)
        self.levels = self.stream.levels
        self.multi_label = bool(getattr(self.stream, "multi_label", False))
        # the family's label rows: action space, scoring, label fields (clenv.env_labels)
        self.rows = label_rows(self.stream)(self)
        self._extra = self.rows.extra
        self._pad_x = np.zeros(shape, dtype=pool.x.dtype)
        self._ancestors = pool.ancestors
        self._names = pool.class_names
        self._level_names = [*(pool.tree_names or []), pool.class_names]
        self._anc_cols = np.arange(pool.depth - 1)
        self.position = 0
        self.online_correct = 0
        self.online_count = 0
        self._batch: dict | None = None
        self._started = False  # reset() (or seek()) starts an episode
        self._chunk_id = -1
        self._ones8 = np.ones(self.B, dtype=np.int8)

    def _float_bounds(self) -> tuple[float, float]:
        """Bounds of float inputs: the pool's range and 0 (padding), widened to hold every
        domain's transform (probed on the pool; inputs are clipped to the bounds)."""
        x = self.pool.x
        lo, hi = min(float(x.min()), 0.0), max(float(x.max()), 0.0)
        if self.stream.n_domains > 1:
            probe = x[: min(len(x), 20000)]
            rng = np.random.default_rng(0)
            for d in range(1, self.stream.n_domains):
                t = self.stream.transform(probe, d, rng)
                lo, hi = min(lo, float(t.min())), max(hi, float(t.max()))
            margin = 0.25 * (hi - lo)
            lo, hi = lo - margin, hi + margin
            self._clip = (lo, hi)
        return lo, hi

    # -- batches -------------------------------------------------------------------------------
    # A batch holds x (n, *shape), ints (5, n) = y, task, major_task, level, sample_id and
    # flags (3, n) = is_new_class, boundary, first_exposure: three block copies per step.
    def _load_chunk(self, k: int) -> None:
        stream = self.stream
        rec = stream.chunk(k)
        index = rec["index"]
        x = self.pool.x[index]
        if stream.n_domains > 1:
            rng = np.random.default_rng(np.random.SeedSequence([stream.seed, k, 0xD0]))
            domain = rec["domain"]
            for d in np.unique(domain):
                if d:
                    sel = domain == d
                    x[sel] = stream.transform(x[sel], int(d), rng)
            if self._clip is not None:
                np.clip(x, *self._clip, out=x)
        flags = np.stack([rec["is_new_class"], rec["boundary"], rec["first_exposure"]])
        y = rec["y"]
        self._chunk = {
            "x": x, "flags": flags,
            "ints": np.stack([y if y.ndim == 1 else np.zeros(len(y), np.int64), rec["task"],
                              rec["major_task"], rec["level"], rec["sample_id"]]),
            "new": np.flatnonzero(flags[0]).tolist(), "all_first": bool(flags[2].all())}
        self._chunk.update(self.rows.chunk_fields(rec))
        self._chunk_id = k
        self._chunk_start = k * stream.chunk_size

    def _batch_stop(self, start: int, limit: int | None = None) -> int:
        stop = min(start + self.B, self.stream.length if limit is None else limit)
        if self.boundaries:
            ends = self._task_ends
            i = bisect_right(ends, start)
            if i < len(ends):
                stop = min(stop, ends[i])
        return stop

    def _take(self, start: int, stop: int) -> dict:
        """Fresh copies of positions [start, stop) from the chunk cache (loading as needed)."""
        cs = self.stream.chunk_size
        parts = []
        while start < stop:
            k = start // cs
            if k != self._chunk_id:
                self._load_chunk(k)
            rec = self._chunk
            a = start - self._chunk_start
            b = min(stop - self._chunk_start, cs)
            new = rec["new"]
            i = bisect_left(new, a)
            part = {"x": rec["x"][a:b].copy(), "ints": rec["ints"][:, a:b].copy(),
                    "flags": rec["flags"][:, a:b].copy(),
                    "new": i < len(new) and new[i] < b, "all_first": rec["all_first"]}
            for f in self._extra:
                part[f] = rec[f][a:b].copy()
            parts.append(part)
            start = self._chunk_start + b
        if len(parts) == 1:
            return parts[0]
        out = {"x": np.concatenate([p["x"] for p in parts]),
               "ints": np.concatenate([p["ints"] for p in parts], axis=1),
               "flags": np.concatenate([p["flags"] for p in parts], axis=1),
               "new": any(p["new"] for p in parts),
               "all_first": all(p["all_first"] for p in parts)}
        for f in self._extra:
            out[f] = np.concatenate([p[f] for p in parts])
        return out

    def _make_batch(self, start: int, limit: int | None = None) -> dict:
        """The batch starting at ``start``: fresh arrays padded to B rows."""
        stop = self._batch_stop(start, limit)
        n = stop - start
        batch = self._take(start, stop)
        if n < self.B:
            x = np.zeros((self.B, *batch["x"].shape[1:]), dtype=batch["x"].dtype)
            x[:n] = batch["x"]
            ints = np.zeros((5, self.B), dtype=np.int64)
            ints[:, :n] = batch["ints"]
            flags = np.zeros((3, self.B), dtype=bool)
            flags[:, :n] = batch["flags"]
            batch.update(x=x, ints=ints, flags=flags)
            for f in self._extra:
                v = np.zeros((self.B, self.n_classes), dtype=np.uint8)
                v[:n] = batch[f]
                batch[f] = v
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

    def _info(self, batch: dict, valid: np.ndarray) -> dict:
        ints, flags = batch["ints"], batch["flags"]
        y = ints[0]
        info = {"y": y, "valid": valid, "level": ints[3], "is_new_class": flags[0],
                "first_exposure": flags[2], "sample_id": ints[4]}
        self.rows.add_info(info, batch)
        if self.boundaries:
            info["task"] = ints[1]
            info["major_task"] = ints[2]
            info["boundary"] = flags[1]
        if self._ancestors is not None:  # labels at the coarser levels; -1 from the row's level
            anc = self._ancestors[self.pool.y[ints[4]]]
            anc[self._anc_cols[None, :] >= ints[3][:, None]] = -1
            info["ancestors"] = anc
        if batch["new"]:
            self.rows.new_classes(info, batch, np.flatnonzero(flags[0]))
        return info

    def iter_batches(self, start: int, stop: int):
        """(obs, info) of the batches covering positions [start, stop), cut as in an episode,
        for replaying part of the stream to another learner (e.g. a from-scratch copy). New
        classes are those new to that learner: first appearances within [start, stop).
        Leaves the episode's position unchanged."""
        pos = start
        known: set[int] = set()
        while pos < stop:
            batch = self._make_batch(pos, limit=stop)
            n = batch["n"]
            y = batch["ints"][0, :n].tolist()
            new = np.zeros(self.B, dtype=bool)
            for i, c in enumerate(y):
                if c not in known:
                    known.add(c)
                    new[i] = True
            batch["flags"][0] = new
            batch["new"] = bool(new.any())
            yield self._obs(batch), self._info(batch, batch["valid"].astype(bool))
            pos = batch["stop"]

    # -- gymnasium API -------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None and seed != self.stream.seed:
            self.stream = self._factory(seed)
            self._chunk_id = -1
        self._task_ends = self.stream.task_ends.tolist()
        self.position = 0
        self.online_correct = 0
        self.online_count = 0
        self._started = True
        self._batch = self._make_batch(0) if self.stream.length else None
        return self._obs(self._batch), {"stream_length": self.stream.length,
                                        "n_tasks": self.stream.n_tasks}

    def seek(self, position: int, online_correct: float = 0, online_count: int = 0):
        """Continue the current episode from stream position ``position`` (a checkpoint): the
        batches are keyed by position, so this needs no replay. Returns the obs there."""
        self._task_ends = self.stream.task_ends.tolist()
        self.position = int(position)
        self.online_correct = online_correct
        self.online_count = online_count
        self._started = True
        self._batch = self._make_batch(self.position) if self.position < self.stream.length \
            else None
        return self._obs(self._batch)

    def step(self, action):
        batch = self._batch
        if batch is None:
            if not self._started:
                raise RuntimeError("step() before reset(): call reset() first to start an "
                                   "episode")
            raise RuntimeError("step() after the stream ended; call reset()")
        valid = batch["valid"].astype(bool)
        reward = self.rows.score(batch, action, valid)
        info = self._info(batch, valid)
        self.position = batch["stop"]
        terminated = self.position >= self.stream.length
        self._batch = None if terminated else self._make_batch(self.position)
        return self._obs(self._batch), reward, terminated, False, info
