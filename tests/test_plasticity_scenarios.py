"""Plasticity streams (permuted and random-label tasks): reproducible, seekable, keyed labels,
own samples; the plasticity metrics by hand; the ready scenarios shrunk, end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest

from clenv.cli import main
from clenv.config.loader import load_config
from clenv.data.registry import load_pool
from clenv.errors import ConfigError
from clenv.metrics.plasticity import (
    diagnostics_series,
    own_accuracy_curve,
    plasticity_curve,
    plasticity_drop,
    plasticity_from_events,
    plasticity_summary,
    plasticity_tenths,
)
from clenv.scenarios.registry import build_stream, validate_scenario
from tests.conftest import SCENARIOS, mnist_root, one_line


@pytest.fixture(scope="module")
def digits():
    return load_pool({"source": "digits", "test_fraction": 0.2})


def _stream(pool, **kw):
    cfg = validate_scenario({"generator": "plasticity", "seed": 3, "n_tasks": 4,
                             "task_length": 60, "chunk_size": 25, **kw})
    return build_stream(pool, cfg)


def test_permuted_tasks_are_concepts_under_their_own_permutation(digits):
    s = _stream(digits, tasks="permuted")
    assert s.n_tasks == 4 and len(s.columns) == 4 and s.n_domains == 4
    rec = s.materialize()
    assert rec["domain"].tolist() == np.repeat(np.arange(4), 60).tolist()
    assert np.array_equal(rec["y"], digits.y[rec["index"]])  # true labels
    assert [d.get("seed") for d in s.meta["domains"][1:]] == [1, 2, 3]


def test_random_labels_keyed_seekable_and_own_samples(digits):
    s = _stream(digits, tasks="random_labels", samples_per_task=20)
    rec = s.materialize()
    again = _stream(digits, tasks="random_labels", samples_per_task=20)
    assert np.array_equal(again.chunk(5)["y"], s.chunk(5)["y"])  # chunk k alone, same values
    for t in range(4):
        sel = rec["task"] == t
        idx, labels, domain = s.task_samples(t)
        assert domain == 0 and len(idx) == 20
        # three passes over the same 20 samples, each sample with one label throughout
        assert sorted(set(rec["index"][sel].tolist())) == idx.tolist()
        lab = dict(zip(idx.tolist(), labels.tolist(), strict=True))
        assert [lab[i] for i in rec["index"][sel].tolist()] == rec["y"][sel].tolist()
        assert np.bincount(rec["index"][sel], minlength=len(digits.y))[idx].tolist() == [3] * 20
    # first appearances are those of the served labels (the classes the learner is taught)
    new = np.flatnonzero(rec["is_new_class"])
    assert sorted(rec["y"][new].tolist()) == sorted(set(rec["y"].tolist()))
    assert all(not (rec["y"][:p] == rec["y"][p]).any() for p in new)
    # labels ignore the true classes: far from agreeing with them
    assert np.mean(rec["y"] == digits.y[rec["index"]]) < 0.5
    other = _stream(digits, tasks="random_labels", samples_per_task=20, seed=4)
    assert not np.array_equal(other.task_samples(0)[1], s.task_samples(0)[1])


def test_random_labels_refuse_more_samples_than_the_task_serves():
    with pytest.raises(ConfigError) as e:
        load_config({"scenario": {"generator": "plasticity", "tasks": "random_labels",
                                  "task_length": 10, "samples_per_task": 20}})
    one_line(e, "scenario.samples_per_task")


def test_plasticity_curve_and_drop_by_hand():
    R = [[0.9, 0.1, 0.0], [0.5, 0.8, 0.1], [0.2, 0.3, 0.6]]
    assert plasticity_curve(R, [0, 1, 2]) == [0.9, 0.8, 0.6]
    assert plasticity_curve(R, [2, 0, 1]) == [0.0, 0.5, 0.3]
    # 20 tasks: tenths of 2; (1.0 + 0.8) / 2 - (0.3 + 0.1) / 2 = 0.7
    curve = [1.0, 0.8] + [0.5] * 16 + [0.3, 0.1]
    assert plasticity_drop(curve) == pytest.approx(0.7)
    assert plasticity_drop([0.4, 0.2, 0.1]) == pytest.approx(0.3)  # a tenth of 3: one task
    assert plasticity_drop([]) is None
    assert plasticity_tenths(curve) == pytest.approx((0.9, 0.2))
    # 11 tasks: a tenth is ceil(1.1) = 2 tasks
    assert plasticity_tenths([1.0, 0.6] + [0.5] * 7 + [0.2, 0.0]) == pytest.approx((0.8, 0.1))


def _log(tasks: str) -> list[dict]:
    """A hand-made log: 2 tasks, columns = concept units, counts per unit."""
    start = {"type": "start", "columns": [[0, 1], [2, 3]],
             "lifelong": {"segments": [{"columns": [1]}, {"columns": [0]}], "tasks": tasks}}
    rows = [{"type": "eval", "kind": "task_end", "row": 0, "samples": 10, "own_accuracy": 0.5,
             "counts": {"agnostic": [1, 1, 3, 1], "total": [2, 2, 4, 4]},
             "diagnostics": {"dead_fraction": 0.25, "effective_rank": 3.0,
                             "weight_magnitude": 0.1, "grad_norm": 1.0}},
            {"type": "eval", "kind": "task_end", "row": 1, "samples": 20, "own_accuracy": 0.25,
             "counts": {"agnostic": [2, 0, 0, 0], "total": [2, 2, 4, 4]}}]
    return [start, rows[1], rows[0]]


def test_plasticity_from_a_hand_made_log():
    ev = _log("permuted")
    # row 0 trains concept 1 (units 2, 3): (3 + 1) / 8; row 1 concept 0 (units 0, 1): 2 / 4
    assert plasticity_from_events(ev) == [0.5, 0.5]
    assert own_accuracy_curve(ev) == [0.5, 0.25]
    assert plasticity_summary(ev)["source"] == "test_accuracy"
    rl = plasticity_summary(_log("random_labels"))
    assert rl["curve"] == [0.5, 0.25] and rl["drop"] == pytest.approx(0.25)
    d = diagnostics_series(ev)
    assert d["samples"] == [10] and d["dead_fraction"] == [0.25]


@pytest.mark.parametrize("name", ["plasticity_permuted_digits", "plasticity_random_labels_mnist"])
def test_ready_scenario_shrunk_end_to_end(name, tmp_path):
    path = SCENARIOS / f"{name}.yaml"
    out = tmp_path / "r"
    sets = ["output.plots=false", "threads=1", "scenario.n_tasks=3", "scenario.task_length=60",
            "scenario.samples_per_task=20", "eval.every=60",
            *([f"data.root={mnist_root()}", "data.max_train_per_class=30"] if "mnist" in name
              else []),
            "strategy.plasticity.method=continual_backprop",
            "strategy.plasticity.maturity=2", "strategy.plasticity.replacement_rate=0.05"]
    args = ["run", str(path), "--out", str(out), "--quiet"]
    for s in sets:
        args += ["--set", s]
    assert main(args) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["complete"] and len(m["plasticity"]["curve"]) == 3
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    ends = [e for e in events if e["type"] == "eval" and e["kind"] == "task_end"]
    assert all(0 <= e["own_accuracy"] <= 1 for e in ends)
    assert all(np.isfinite(e["train_loss"]) for e in ends)  # every taught label is seen
    assert all(e["diagnostics"]["probe_size"] == 60 for e in ends)  # < 256: the whole task
    assert any(e["type"] == "event" and e["kind"] == "unit_reset" for e in events)
    assert main(["plot", str(out)]) == 0
    assert (out / "plasticity.png").stat().st_size > 0
