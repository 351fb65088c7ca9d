"""A clenv stream as plain tensors, task by task: what the Avalanche export is built from.

``export_stream(cfg_or_path)`` reads a clenv config (YAML path or dict), builds its pool and
stream exactly as ``clenv run`` does, and returns the training samples in the order the Env
serves them (every pass of every task, domain transforms applied) and one test set per
accuracy-matrix column (the test rows clenv's evaluator scores for that column). No Avalanche
import here: the arrays are useful on their own and cheap to test.

Labels: single-label streams keep their class ids. Hierarchical (HLE) streams use one flat
label space, ``level_offset[level] + label`` (the same unit ids as clenv's hierarchical
evaluator), so a flat classifier with ``n_classes = sum(level sizes)`` outputs can learn them.
Inputs are float32; uint8 images are scaled to [0, 1] exactly as clenv strategies do
(``x.float() / 255``), so both sides see bit-identical tensors.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import torch

from clenv.errors import UserError


@dataclass
class TaskData:
    """One training experience: the samples of one task (row) in served order."""

    x: torch.Tensor
    y: torch.Tensor
    sample_id: np.ndarray  # pool index of each sample
    position: np.ndarray  # stream position of each sample
    task: int


@dataclass
class ExportedStream:
    """A clenv stream cut into tasks, with one test set per accuracy-matrix column."""

    name: str
    train: list[TaskData]
    test: list[TaskData]  # test[j]: column j's test rows (position = -1)
    n_classes: int
    batch_size: int
    input_shape: tuple[int, ...]
    task_ids: bool
    column_names: list[str]
    config: dict = field(default_factory=dict)


def as_float(x: np.ndarray) -> torch.Tensor:
    """Inputs as clenv strategies feed them to a model: uint8 -> float / 255, else float32."""
    t = torch.from_numpy(np.ascontiguousarray(x))
    return t.float().div_(255.0) if t.dtype == torch.uint8 else t.float()


def resolve(cfg_or_path: str | os.PathLike | dict, overrides: list[str] | None = None) -> dict:
    from clenv.config.loader import load_config

    return load_config(cfg_or_path, overrides=overrides)


def export_stream(cfg_or_path: str | os.PathLike | dict,
                  overrides: list[str] | None = None) -> ExportedStream:
    """The config's stream as tensors per task and test sets per column (see module doc)."""
    from clenv.data.registry import load_pool
    from clenv.runner import make_env

    cfg = resolve(cfg_or_path, overrides)
    pool = load_pool(cfg["data"])
    if pool.multi_label:
        raise UserError(f"{cfg['name']}: multi-label streams cannot be exported to Avalanche "
                        "(it has no multi-label classification support); use a single-label "
                        "or hierarchical scenario")
    env = make_env(cfg, pool)
    env.reset(seed=cfg["scenario"]["seed"])
    stream = env.stream
    hierarchical = stream.levels > 1
    xs, ys, ids, levels = [], [], [], []
    for obs, info in env.iter_batches(0, stream.length):
        keep = info["valid"]
        xs.append(obs["x"][keep])
        ys.append(info["y"][keep])
        ids.append(info["sample_id"][keep])
        levels.append(info["level"][keep])
    x = np.concatenate(xs) if xs else np.zeros((0, *pool.shape), pool.x.dtype)
    y = np.concatenate(ys).astype(np.int64) if ys else np.zeros(0, np.int64)
    sid = np.concatenate(ids) if ids else np.zeros(0, np.int64)
    if hierarchical:
        offsets = np.asarray(stream.level_offsets, dtype=np.int64)
        y = offsets[np.concatenate(levels)] + y
        n_classes = int(sum(stream.level_sizes))
    else:
        n_classes = pool.n_classes
    X, Y = as_float(x), torch.from_numpy(y)
    train = []
    for t, (a, b) in enumerate(zip(stream.task_starts.tolist(), stream.task_ends.tolist(),
                                   strict=True)):
        train.append(TaskData(X[a:b], Y[a:b], sid[a:b], np.arange(a, b), t))
    test = hierarchical_tests(pool, stream) if hierarchical else flat_tests(pool, stream)
    return ExportedStream(cfg["name"], train, test, n_classes, env.B, tuple(pool.shape),
                          bool(cfg["scenario"]["task_ids"]), list(stream.column_names), cfg)


def flat_tests(pool, stream) -> list[TaskData]:
    """Column j's test rows as clenv's Evaluator scores them (domain transforms applied)."""
    from clenv.evaluation.single_label import Evaluator

    ev = Evaluator(pool, stream)
    out = []
    for j in range(len(stream.columns)):
        rows = np.flatnonzero(ev.test_col == j)
        out.append(TaskData(as_float(ev.inputs(rows)), torch.from_numpy(ev.test_y[rows]),
                            ev.test_idx[rows], np.full(len(rows), -1), j))
    return out


def hierarchical_tests(pool, stream) -> list[TaskData]:
    """Column j (classes of one level): test samples whose label at that level is one of the
    column's classes, labelled with the flat unit id."""
    from clenv.evaluation.hierarchical import HierarchyEvaluator

    ev = HierarchyEvaluator(pool, stream)
    out = []
    for j, units in enumerate(stream.columns):
        units = np.asarray(units, dtype=np.int64)
        lv = int(np.searchsorted(ev.offsets, units[0], side="right") - 1)
        rows = np.flatnonzero(np.isin(ev.units[:, lv], units))
        out.append(TaskData(as_float(pool.x[ev.test_idx[rows]]),
                            torch.from_numpy(ev.units[rows, lv]), ev.test_idx[rows],
                            np.full(len(rows), -1), j))
    return out
