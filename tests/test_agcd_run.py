"""AGCD end to end: `clenv run` on tiny configs, the results folder, metrics as a pure function
of the log, seeds, `clenv plot`, ready files, and bad YAML (one line, exit 2, no files)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from clenv.cli import main
from clenv.config.loader import load_config
from clenv.errors import ConfigError
from clenv.metrics.active_discovery import summarize_agcd
from clenv.metrics.summary import read_events
from tests.conftest import SCENARIOS, mnist_root, one_line

TINY = {
    "name": "tiny_agcd", "seed": 0,
    "scenario": {"generator": "agcd", "seed": 0, "n_old": 2, "labelled_fraction": 0.5,
                 "rounds": 2, "budget": 6},
    "data": {"source": "synthetic", "seed": 0, "branching": [5], "dim": 8,
             "separation": [2.0], "train_per_class": 30, "test_per_class": 10},
    "strategy": {"name": "agcd", "learner": "simgcd", "query": "adaptive", "base_epochs": 2,
                 "epochs_per_round": 1, "batch_size": 32},
    "model": {"name": "mlp", "hidden": [16]},
}


def _write(tmp_path, cfg: dict, name: str = "tiny.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg))
    return path


def _run(tmp_path, cfg=TINY, *sets: str, out: str = "r") -> dict:
    args = ["run", str(_write(tmp_path, cfg)), "--out", str(tmp_path / out), "--quiet"]
    for s in sets:
        args += ["--set", s]
    assert main(args) == 0
    return json.loads((tmp_path / out / "metrics.json").read_text())


def _no_wall(m: dict) -> dict:
    m = {k: v for k, v in m.items() if k != "wall_time"}
    m["per_round"] = [{k: v for k, v in r.items() if k != "wall"} for r in m["per_round"]]
    return m


def test_run_writes_the_results_folder(tmp_path):
    m = _run(tmp_path)
    out = tmp_path / "r"
    assert {"config.yaml", "run.json", "events.jsonl", "metrics.json",
            "agcd_rounds.png"} <= {p.name for p in out.iterdir()}
    events = read_events(out / "events.jsonl")
    assert [e["type"] for e in events] == ["start", "eval", "query", "eval", "query", "eval",
                                           "end"]
    assert m == json.loads(json.dumps(summarize_agcd(events)))  # a pure function of the log
    assert m["complete"] and m["rounds"] == 2 and len(m["per_round"]) == 3
    start = events[0]
    assert len(start["old_classes"]) == 2 and len(start["new_classes"]) == 3
    queries = [e for e in events if e["type"] == "query"]
    ids = [i for q in queries for i in q["sample_ids"]]
    assert all(len(q["labels"]) == 6 for q in queries) and len(set(ids)) == 12
    # the oracle answered in the dataset's label space
    pool_cfg = load_config(_write(tmp_path, TINY))
    from clenv.data.registry import load_pool

    pool = load_pool(pool_cfg["data"])
    assert [lab for q in queries for lab in q["labels"]] == pool.y[ids].tolist()
    ev = events[-2]
    M = np.array(ev["inductive"])
    assert M.shape == (5, 5) and M.sum() == 50 and np.array(ev["transductive"]).sum() == \
        start["n_candidates"]
    assert m["per_round"][-1]["labels_bought"] == 12
    assert m["per_round"][1]["grad_steps"] > m["per_round"][0]["grad_steps"] > 0
    for k in ("gcd_all", "gcd_old", "gcd_new", "gcd_all_transductive", "novel_coverage"):
        assert m[k] is not None and 0.0 <= m[k] <= 1.0
    assert m["budget_exceeded"] == []
    # clenv plot draws the per-round figure
    assert main(["plot", str(out), "--out", str(tmp_path / "p.png")]) == 0
    assert (tmp_path / "p.png").stat().st_size > 1000


def test_same_seed_same_result_other_seed_differs(tmp_path):
    a = _run(tmp_path, TINY, out="a")
    b = _run(tmp_path, TINY, out="b")
    assert _no_wall(a) == _no_wall(b)
    ea = [e for e in read_events(tmp_path / "a" / "events.jsonl") if e["type"] == "query"]
    c = _run(tmp_path, TINY, "seed=1", out="c")
    ec = [e for e in read_events(tmp_path / "c" / "events.jsonl") if e["type"] == "query"]
    assert _no_wall(a) != _no_wall(c) or ea != ec


@pytest.mark.parametrize("query", ["random", "entropy", "margin", "kcenter", "novel_margin"])
def test_every_query_strategy_runs(tmp_path, query):
    m = _run(tmp_path, TINY, f"strategy.query={query}", "strategy.base_epochs=1",
             "output.plots=false")
    assert m["complete"] and m["per_round"][-1]["labels_bought"] == 12


def test_references_and_the_kmeans_learner(tmp_path):
    none = _run(tmp_path, TINY, "strategy.query=none", "output.plots=false", out="n")
    assert none["per_round"][-1]["labels_bought"] == 0 and none["novel_coverage"] == 0.0
    everything = _run(tmp_path, TINY, "strategy.query=all", "output.plots=false", out="a")
    n_cand = read_events(tmp_path / "a" / "events.jsonl")[0]["n_candidates"]
    assert everything["per_round"][-1]["labels_bought"] == n_cand
    assert everything["novel_coverage"] == 1.0 and everything["budget_exceeded"]
    km = _run(tmp_path, TINY, "strategy.learner=kmeans", "output.plots=false", out="k")
    assert km["complete"] and km["budget"]["lloyd_iterations"] > 0


@pytest.mark.parametrize("sets, parts", [
    (["strategy.query=badge"], ["strategy.query", "expected one of"]),
    (["strategy={name: naive}"], ["strategy.name", "agcd strategy"]),
    (["scenario.n_old=5"], ["scenario.n_old", "fewer than the 5"]),
    (["scenario.old_classes=[0, 1]"], ["scenario.n_old", "together with old_classes"]),
    (["scenario.old_classes=[0, 9]", "scenario.n_old=null"], ["scenario.old_classes"]),
    (["scenario.budget=500"], ["scenario.budget", "exceeds"]),
    (["scenario.labelled_fraction=1.5"], ["scenario.labelled_fraction", "<= 1"]),
    (["strategy.teacher_temp=0.2"], ["strategy.teacher_temp", "sharper"]),
    (["scenario.rounds=two"], ["scenario.rounds", "integer"]),
    (["eval.reference=joint"], ["eval.reference", "no joint reference"]),
    (["data={source: canvas}"], ["data.source", "multi-label"]),
])
def test_bad_yaml_is_one_line_exit_2_and_no_files(tmp_path, capsys, sets, parts):
    out = tmp_path / "bad"
    args = ["run", str(_write(tmp_path, TINY)), "--out", str(out), "--quiet"]
    for s in sets:
        args += ["--set", s]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    for p in parts:
        assert p in err, err
    assert not out.exists()


def test_an_agcd_strategy_needs_an_agcd_scenario(tmp_path):
    cfg = {**TINY, "scenario": {"generator": "disjoint", "n_tasks": 2}}
    with pytest.raises(ConfigError) as exc:
        load_config(cfg)
    one_line(exc, "strategy.name", "agcd scenario")


def test_ready_files_check(capsys):
    for name in ("agcd_synthetic", "agcd_digits"):
        assert main(["check", str(SCENARIOS / f"{name}.yaml")]) == 0
        assert main(["check", str(SCENARIOS / f"{name}.yaml"), "--strategy", "agcd_kmeans"]) == 0
    if mnist_root().is_dir():
        assert main(["check", str(SCENARIOS / "agcd_mnist.yaml"), "--set",
                     f"data.root={mnist_root()}"]) == 0
    assert main(["list"]) == 0
    listing = capsys.readouterr().out
    assert "agcd_synthetic.yaml" in listing and "agcd_digits.yaml" in listing


def test_ready_digits_scenario_runs_small(tmp_path):
    m = _run(tmp_path, yaml.safe_load((SCENARIOS / "agcd_digits.yaml").read_text()),
             "strategy.base_epochs=2", "strategy.epochs_per_round=1", "scenario.rounds=2",
             "output.plots=false")
    assert m["complete"] and len(m["old_classes"]) == 3 and len(m["new_classes"]) == 7
    assert m["gcd_old"] > 0.5  # real digits: the labelled old classes are learned
