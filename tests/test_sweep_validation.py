"""scenario.validation: a seeded per-class hold-out of the training pool, never trained on,
evaluated at initialisation and task ends, its metrics in metrics.json ``validation``."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from clenv.config.loader import load_config
from clenv.data.registry import load_pool
from clenv.errors import ConfigError
from clenv.runner import Run
from clenv.validation import carve_validation, held_out_indices
from tests.conftest import one_line


def _cfg(small_cfg: dict, fraction: float | None = 0.25) -> dict:
    cfg = copy.deepcopy(small_cfg)
    if fraction is not None:
        cfg["scenario"]["validation"] = fraction
    return load_config(cfg)


def test_hold_out_is_per_class_seeded_and_disjoint_from_training(small_cfg):
    cfg = _cfg(small_cfg)
    pool = load_pool(cfg["data"])
    idx = held_out_indices(pool, 0.25, seed=0)
    assert np.array_equal(idx, held_out_indices(pool, 0.25, seed=0))
    assert not np.array_equal(idx, held_out_indices(pool, 0.25, seed=1))
    assert pool.train[idx].all()  # taken from the training samples only
    assert np.bincount(pool.y[idx]).tolist() == [15] * 6  # round(0.25 * 60) per class
    rest, val = carve_validation(pool, 0.25, seed=0)
    assert len(val.y) == 90 and not val.train.any()
    assert rest.train.sum() == pool.train.sum() - 90
    assert (~rest.train).sum() == (~pool.train).sum()  # the test set is untouched
    held = {row.tobytes() for row in val.x}
    assert not any(row.tobytes() in held for row in rest.x[rest.train])


def test_run_evaluates_validation_at_task_ends(small_cfg):
    cfg = _cfg(small_cfg)
    run = Run(cfg)
    assert run.env.stream.length == 6 * 45  # trained on the rest only
    metrics = run.execute(None)
    val = metrics["validation"]
    assert len(val["accuracy_matrix"]) == 3 and len(val["accuracy_matrix"][0]) == 3
    R = np.asarray(val["accuracy_matrix"])
    assert val["final_accuracy"] == pytest.approx(R[-1].mean())
    assert val["accuracy_matrix"] != metrics["accuracy_matrix"]  # another sample set


def test_validation_key_only_when_set_and_range_checked(small_cfg):
    assert "validation" not in _cfg(small_cfg, None)["scenario"]
    assert "validation" not in _cfg(small_cfg, 0)["scenario"]
    with pytest.raises(ConfigError) as exc:
        _cfg(small_cfg, 0.95)
    one_line(exc, "scenario.validation", "<= 0.9")
    with pytest.raises(ConfigError) as exc:
        _cfg(small_cfg, "a lot")
    one_line(exc, "scenario.validation", "a number")
