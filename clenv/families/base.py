"""The Family record: everything that differs between problem families, in one place.

A run chooses its family once (clenv.families.registry.choose) and the loop, the strategy spec,
the evaluator and the summary read it from the record instead of testing flags. The Env and the
label codec of the supervised base (clenv.strategies.targets) are the family's lower-layer
parts; the record names them. How to add a family: docs/design.md, "A new family".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from clenv.data.pool import Pool
from clenv.env import ContinualEnv
from clenv.evaluation.base import Evaluator
from clenv.scenarios.registry import build_stream
from clenv.scenarios.stream import Stream


@dataclass(frozen=True)
class Family:
    """One problem family.

    name: the name strategies list in ``families`` (and the spec's ``family``).
    loop: "stream" (test-then-train over Env batches) or "query_rounds" (the loop layer
        maps it to its driver).
    claims: does this family own a config (``stream`` is None before an Env exists)?
    make_env: the Env of a validated config over a pool.
    decoder: cfg -> (scores -> action): how predict's scores become the Env's action.
    evaluator: (pool, stream, cfg) -> the family's Evaluator.
    summarize: events -> metrics (a pure function of the log).
    task_aware: the evaluator also counts task-aware predictions at task ends.
    fwt_baseline: the evaluator counts the FWT baseline at initialisation.
    matrix: the metrics.json key of the per-task matrix, written as ``<matrix>.csv`` and
        drawn as ``<matrix>.png`` (R, the accuracy matrix, unless the family measures else).
    matrix_range: the colour range of its heatmap; None: the matrix's own range.
    column_values: (eval record, columns) -> per column, the value the curves draw (None:
        accuracy from the record's counts); value_label names it on the figures.
    """

    name: str
    loop: str
    claims: Callable[[dict, Stream | None], bool]
    make_env: Callable[[dict, Pool], Any]
    decoder: Callable[[dict], Callable[[Any], Any]] | None = None
    evaluator: Callable[[Pool, Stream, dict], Evaluator] | None = None
    summarize: Callable[[list[dict]], dict] | None = None
    task_aware: bool = True
    fwt_baseline: bool = False
    matrix: str = "accuracy_matrix"
    matrix_range: tuple[float, float] | None = (0.0, 1.0)
    column_values: Callable[[dict, list], list[float | None]] | None = None
    value_label: str = "accuracy"


def make_stream_env(cfg: dict, pool: Pool) -> ContinualEnv:
    """The ContinualEnv of a validated config: the scenario's stream in batches."""
    sc = cfg["scenario"]

    def factory(seed: int):
        return build_stream(pool, {**sc, "seed": seed}, "scenario")

    return ContinualEnv(pool, factory, seed=sc["seed"], batch_size=sc["batch_size"],
                        boundaries=sc["boundaries"] == "exposed", task_ids=sc["task_ids"])


def argmax(scores) -> np.ndarray:
    """Row-wise argmax of a (B, C) score tensor or array, as a numpy array."""
    a = scores.argmax(1)
    if isinstance(a, np.ndarray):
        return a
    return a.numpy() if a.device.type == "cpu" else a.cpu().numpy()


def argmax_decoder(cfg: dict) -> Callable[[Any], np.ndarray]:
    """One label per row: the best score."""
    return argmax
