"""The label rows of the stream Env, one class per family (envs layer; docs/design.md,
"Families"): the action space, how an action is checked and scored (reward and online counts),
the label fields a chunk carries besides the class id, and the names of new classes in info.
``ContinualEnv`` picks one with :func:`label_rows`; everything else in the Env is shared."""

from __future__ import annotations

import operator

import numpy as np
from gymnasium import spaces

from clenv.data.tree import level_sizes
from clenv.metrics.multilabel import sample_f1


class SingleLabelRows:
    """One class id per row; reward = exact match over valid rows."""

    extra: tuple[str, ...] = ()  # per-row label arrays a chunk carries besides the class id

    def __init__(self, env) -> None:
        self.env = env
        env.action_space = spaces.MultiDiscrete(np.full(env.B, env.n_classes, dtype=np.int64))

    def chunk_fields(self, rec: dict) -> dict:
        return {}

    def labels(self, action, batch: dict) -> np.ndarray:
        """The action as a (B,) integer array of class ids (ValueError when it is not one)."""
        env = self.env
        action = np.asarray(action)
        if action.shape != (env.B,) or action.dtype.kind not in "iu":
            raise ValueError(f"action must be an integer array of shape ({env.B},) holding "
                             f"class ids in [0, {env.n_classes}); got {action.dtype} "
                             f"{action.shape}")
        return action

    def check_range(self, labels: list) -> None:
        n = self.env.n_classes
        if min(labels) < 0 or max(labels) >= n:
            raise ValueError(f"action must hold class ids in [0, {n}); got values "
                             f"from {min(labels)} to {max(labels)}")

    def score(self, batch: dict, action, valid: np.ndarray) -> float:
        """The reward; adds the batch's first-exposure hits to the Env's online counts.
        Small batches are checked and scored on Python lists: after a training step, numpy's
        ufunc reductions on 10-element arrays cost several microseconds each (measured in
        benchmarks/loop_overhead.py); larger or padded batches take the numpy path."""
        env = self.env
        action = self.labels(action, batch)
        labels = action.tolist()
        self.check_range(labels)
        y, n = batch["ints"][0], batch["n"]
        if n == env.B and batch["all_first"] and n <= 64:
            n_hit = sum(map(operator.eq, labels, y.tolist()))
            env.online_correct += n_hit
            env.online_count += n
        else:
            hit = (action == y) & valid
            n_hit = int(np.count_nonzero(hit))
            first = batch["flags"][2]
            env.online_correct += int(np.count_nonzero(hit & first))
            env.online_count += int(np.count_nonzero(first))
        return n_hit / n

    def add_info(self, info: dict, batch: dict) -> None:
        """Label fields of info beyond the class id."""

    def new_classes(self, info: dict, batch: dict, rows: np.ndarray) -> None:
        """Names (and tree parents) of the classes first seen in the batch's rows ``rows``."""
        env = self.env
        ids = batch["ints"][0][rows]
        info["new_classes"] = {int(c): env._names[c] for c in ids}
        if env._ancestors is not None:
            info["new_class_parents"] = {int(c): int(env._ancestors[c, -1]) for c in ids}


class HierarchicalRows(SingleLabelRows):
    """One label per level in the action, the row's level scored (HLE)."""

    def __init__(self, env) -> None:
        self.env = env
        env.level_sizes = level_sizes(env.pool)
        env.action_keys = [f"level_{lv}" for lv in range(env.levels)]
        env.action_space = spaces.Dict({
            k: spaces.MultiDiscrete(np.full(env.B, c, dtype=np.int64))
            for k, c in zip(env.action_keys, env.level_sizes, strict=True)})

    def labels(self, action, batch: dict) -> np.ndarray:
        """{level_l: (B,) labels} -> each row's label at its own level."""
        env = self.env
        if not isinstance(action, dict) or set(action) != set(env.action_keys):
            raise ValueError(f"action must be a dict with keys {env.action_keys}, one (B,) "
                             "integer array of labels per level")
        rows = []
        for k, size in zip(env.action_keys, env.level_sizes, strict=True):
            a = np.asarray(action[k])
            if a.shape != (env.B,) or a.dtype.kind not in "iu" or a.min() < 0 \
                    or a.max() >= size:
                raise ValueError(f"action[{k!r}] must be an integer array of shape ({env.B},) "
                                 f"holding labels in [0, {size})")
            rows.append(a)
        return super().labels(np.stack(rows)[batch["ints"][3], np.arange(env.B)], batch)

    def check_range(self, labels: list) -> None:
        """Each level's range was checked in :meth:`labels`."""

    def new_classes(self, info: dict, batch: dict, rows: np.ndarray) -> None:
        """{level: {id: name}}, parents at the next coarser level."""
        env, ints = self.env, batch["ints"]
        new: dict = {}
        parents: dict = {}
        for r in rows.tolist():
            lv, c = int(ints[3][r]), int(ints[0][r])
            new.setdefault(lv, {})[c] = env._level_names[lv][c]
            if lv > 0:
                parents.setdefault(lv, {})[c] = int(info["ancestors"][r, lv - 1])
        info["new_classes"] = new
        info["new_class_parents"] = parents


class MultiLabelRows(SingleLabelRows):
    """Multi-hot labels with a visibility mask (a hidden label is no negative); the action is
    a 0/1 matrix; reward = mean sample-F1 over valid rows."""

    extra = ("ymat", "mask")

    def __init__(self, env) -> None:
        self.env = env
        env.action_space = spaces.MultiBinary((env.B, env.n_classes))

    def chunk_fields(self, rec: dict) -> dict:
        return {"ymat": rec["y"].astype(np.uint8),
                "mask": self.env.stream.task_mask[rec["task"]]}

    def score(self, batch: dict, action, valid: np.ndarray) -> float:
        env = self.env
        action = np.asarray(action)
        if action.shape != (env.B, env.n_classes) or action.dtype.kind not in "iub" \
                or (action.size and (action.min() < 0 or action.max() > 1)):
            raise ValueError(f"action must be a 0/1 array of shape ({env.B}, {env.n_classes})"
                             f"; got {action.dtype} {action.shape}")
        f1 = sample_f1(batch["ymat"][valid], action[valid], batch["mask"][valid])
        first = batch["flags"][2][valid]
        env.online_correct += float(f1[first].sum())
        env.online_count += int(first.sum())
        return float(f1.mean())

    def add_info(self, info: dict, batch: dict) -> None:
        info["y"] = batch["ymat"]
        info["label_mask"] = batch["mask"]

    def new_classes(self, info: dict, batch: dict, rows: np.ndarray) -> None:
        """Classes first visible in this batch."""
        env = self.env
        f = env.stream.first_position
        lo = batch["stop"] - batch["n"]
        ids = np.flatnonzero((f >= lo) & (f < batch["stop"]) & batch["ymat"][rows].any(0))
        info["new_classes"] = {int(c): env._names[c] for c in ids}


def label_rows(stream) -> type[SingleLabelRows]:
    """The label rows of a stream's family: the one place the Env tells families apart."""
    if getattr(stream, "multi_label", False):
        return MultiLabelRows
    return HierarchicalRows if stream.levels > 1 else SingleLabelRows
