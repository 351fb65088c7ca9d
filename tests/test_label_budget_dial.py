"""The label-budget dial of the agcd scenario (issue 21): ``scenario.budget_per_class: k`` makes
the per-round budget b = k x |new classes|; ``budget`` and ``budget_per_class`` are exclusive
(one line, exit 2, no files, the same refusal from `clenv check` and `clenv run`); the sweep
file sweeps/regime_label_budget.yaml and `clenv compare` on an agcd sweep."""

from __future__ import annotations

import copy
import csv
import json

import numpy as np
import pytest
import yaml

from clenv.agcd_env import ActiveDiscoveryEnv
from clenv.cli import main
from clenv.config.loader import load_config
from clenv.data.registry import load_pool
from clenv.errors import ConfigError
from clenv.metrics.summary import read_events
from clenv.scenarios.agcd import agcd_split
from clenv.sweep.spec import load_sweep
from tests.conftest import REPO, one_line

# 5 classes, 1 old -> 4 new; k = 3 labels per new class per round -> b = 12 per round
TINY = {
    "name": "tiny_budget", "seed": 0,
    "scenario": {"generator": "agcd", "seed": 0, "n_old": 1, "labelled_fraction": 0.5,
                 "rounds": 2, "budget_per_class": 3},
    "data": {"source": "synthetic", "seed": 0, "branching": [5], "dim": 8,
             "separation": [2.0], "train_per_class": 30, "test_per_class": 10},
    "strategy": {"name": "agcd", "learner": "simgcd", "query": "adaptive", "base_epochs": 1,
                 "epochs_per_round": 1, "batch_size": 32, "proj_hidden": 16},
    "model": {"name": "mlp", "hidden": [16]},
    "threads": 1, "output": {"plots": False},
}
POOL = {"source": "synthetic", "branching": [6], "dim": 4, "train_per_class": 20,
        "test_per_class": 5}
SWEEP = REPO / "sweeps" / "regime_label_budget.yaml"


def _write(tmp_path, cfg: dict, name: str = "tiny.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg))
    return path


def _run(tmp_path, cfg: dict = TINY, *sets: str, out: str = "r") -> dict:
    args = ["run", str(_write(tmp_path, cfg)), "--out", str(tmp_path / out), "--quiet"]
    for s in sets:
        args += ["--set", s]
    assert main(args) == 0
    return json.loads((tmp_path / out / "metrics.json").read_text())


def test_split_budget_is_k_times_the_new_classes_and_50_by_default():
    pool = load_pool(POOL)  # 6 classes, half old by default -> 3 new
    base = {"seed": 0, "rounds": 2}
    assert agcd_split(pool, {**base, "rounds": 1})["budget"] == 50  # 90 candidates
    assert agcd_split(pool, {**base, "budget": 7})["budget"] == 7
    for k in (1, 2, 5):
        s = agcd_split(pool, {**base, "budget_per_class": k})
        assert len(s["new"]) == 3 and s["budget"] == 3 * k and s["budget_per_class"] == k
    s = agcd_split(pool, {**base, "n_old": 1, "budget_per_class": 4})  # 5 new classes
    assert s["budget"] == 20
    # a null budget is "not given": the k rule applies
    assert agcd_split(pool, {**base, "budget": None, "budget_per_class": 2})["budget"] == 6


def test_env_spends_k_times_the_new_classes_per_round():
    pool = load_pool(POOL)
    env = ActiveDiscoveryEnv(pool, {"seed": 0, "rounds": 2, "budget_per_class": 4})
    obs, _ = env.reset()
    assert env.b == 12 and obs["budget_left"] == 12
    assert env.observation_space["budget_left"].n == 13
    for _ in range(2):
        obs, _, _, _, info = env.step(np.zeros(env.N, dtype=np.float32))
        assert len(info["indices"]) == 12 and len(info["labels"]) == 12
    assert obs["unlabelled"].sum() == env.N - 24


def test_each_round_queries_k_times_the_new_classes(tmp_path):
    """Hand count: 5 classes, n_old 1 -> 4 new; k = 3 -> 12 labels a round, 24 after 2."""
    m = _run(tmp_path)
    events = read_events(tmp_path / "r" / "events.jsonl")
    start = events[0]
    assert len(start["new_classes"]) == 4
    assert start["budget"] == 12 and start["budget_per_class"] == 3
    queries = [e for e in events if e["type"] == "query"]
    assert [len(q["labels"]) for q in queries] == [12, 12]
    assert len({i for q in queries for i in q["sample_ids"]}) == 24
    assert m["budget_per_round"] == 12 and m["budget_exceeded"] == []
    assert [r["labels_bought"] for r in m["per_round"]] == [0, 12, 24]
    cfg = yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())
    assert cfg["scenario"]["budget_per_class"] == 3 and cfg["scenario"]["budget"] is None
    # the resolved config.yaml is a valid config again (budget: null is "not given")
    assert main(["check", str(tmp_path / "r" / "config.yaml")]) == 0
    # random queries spend the same b
    m = _run(tmp_path, TINY, "strategy.query=random", out="rand")
    assert [r["labels_bought"] for r in m["per_round"]] == [0, 12, 24]


def test_same_seed_same_result(tmp_path):
    a = _run(tmp_path, out="a")
    b = _run(tmp_path, out="b")
    wall = ("wall_time", "wall")

    def strip(m: dict) -> dict:
        m = {k: v for k, v in m.items() if k not in wall}
        m["per_round"] = [{k: v for k, v in r.items() if k not in wall} for r in m["per_round"]]
        return m

    assert strip(a) == strip(b)
    qa, qb = ([e["sample_ids"] for e in read_events(tmp_path / d / "events.jsonl")
               if e["type"] == "query"] for d in ("a", "b"))
    assert qa == qb


BAD = [
    (["scenario.budget=12"], ["scenario.budget_per_class", "at most one of budget and "
                              "budget_per_class", "budget: 12", "budget_per_class: 3",
                              "remove scenario.budget"]),
    (["scenario.budget_per_class=0"], ["scenario.budget_per_class", ">= 1"]),
    (["scenario.budget_per_class=true"], ["scenario.budget_per_class", "integer"]),
    # 5 x 4 new classes x 2 rounds = 160 > the 135 candidates
    (["scenario.budget_per_class=20"], ["scenario.budget_per_class", "160 exceeds the 135",
                                        "lower scenario.budget_per_class"]),
]


@pytest.mark.parametrize("sets, parts", BAD)
def test_check_and_run_refuse_alike_in_one_line(tmp_path, capsys, sets, parts):
    path = _write(tmp_path, TINY)
    extra = [a for s in sets for a in ("--set", s)]
    errors = []
    for cmd in (["check", str(path)], ["run", str(path), "--out", str(tmp_path / "bad"),
                                       "--quiet"]):
        assert main(cmd + extra) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
        for p in parts:
            assert p in err, err
        errors.append(err)
    assert errors[0] == errors[1]
    assert not (tmp_path / "bad").exists()


def test_both_keys_in_the_yaml_are_refused_by_the_loader(tmp_path):
    cfg = copy.deepcopy(TINY)
    cfg["scenario"]["budget"] = 30
    with pytest.raises(ConfigError) as exc:
        load_config(_write(tmp_path, cfg))
    one_line(exc, "scenario.budget_per_class", "budget: 30")


def test_the_label_budget_sweep_file(tmp_path, capsys):
    """150 runs: 2 scenarios x 3 queries x k in {1,2,4,8,16} x 5 seeds, each with b = k x new;
    `clenv sweep --dry-run` lists them and writes nothing."""
    assert main(["sweep", str(SWEEP), "--out", str(tmp_path / "sw"), "--dry-run"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 151 and lines[-1].startswith("150 runs")
    assert not (tmp_path / "sw").exists()
    sweep = load_sweep(SWEEP)
    assert len(sweep.runs) == 150
    assert sweep.axes["strategy.query"] == ["adaptive", "random", "kcenter"]
    assert sweep.axes["scenario.budget_per_class"] == [1, 2, 4, 8, 16]
    assert sweep.axes["seed"] == [0, 1, 2, 3, 4] and sweep.threads == 1
    assert sweep.metrics == ["gcd_new", "gcd_all", "gcd_old"]
    names = set()
    for r in sweep.runs:
        sc = r.config["scenario"]
        assert sc["generator"] == "agcd" and sc["budget"] is None
        assert sc["budget_per_class"] == r.params["scenario.budget_per_class"]
        assert r.config["strategy"]["query"] == r.params["strategy.query"]
        assert r.config["output"]["plots"] is False and r.config["threads"] == 1
        names.add(r.config["name"])
    assert names == {"agcd_synthetic", "agcd_mnist"}


def test_compare_shows_new_accuracy_of_an_agcd_sweep(tmp_path, capsys):
    base = copy.deepcopy(TINY)
    base["strategy"] = {**base["strategy"], "base_epochs": 0}
    spec = {"name": "tiny_dial", "base": base, "strategies": [base["strategy"]],
            "axes": {"strategy.query": ["adaptive", "random"],
                     "scenario.budget_per_class": [1, 2]},
            "seeds": [0, 1], "threads": 1, "metrics": ["gcd_new", "gcd_all", "gcd_old"]}
    path = _write(tmp_path, spec, "sweep.yaml")
    out = tmp_path / "sw"
    assert main(["sweep", str(path), "--out", str(out), "--quiet", "--workers", "1"]) == 0
    capsys.readouterr()
    assert main(["compare", str(out), "--baseline", "strategy.query=random"]) == 0
    rows = list(csv.DictReader((out / "summary.csv").open()))
    assert len(rows) == 4  # query x k groups, each over 2 seeds
    index = json.loads((out / "sweep.json").read_text())
    new_acc = {}
    for e in index["runs"]:
        p = e["params"]
        m = json.loads((out / e["dir"] / "metrics.json").read_text())
        new_acc[p["strategy.query"], p["scenario.budget_per_class"], p["seed"]] = m["gcd_new"]
        assert m["budget_per_round"] == 4 * p["scenario.budget_per_class"]
    for row in rows:
        q, k = row["strategy.query"], int(row["scenario.budget_per_class"])
        assert row["n"] == "2" and row["failed"] == "0"
        assert float(row["gcd_new_mean"]) == pytest.approx(
            np.mean([new_acc[q, k, s] for s in (0, 1)]), abs=1e-6)
        paired = np.mean([new_acc[q, k, s] - new_acc["random", k, s] for s in (0, 1)])
        assert float(row["gcd_new_diff"]) == pytest.approx(paired, abs=1e-6)
    md = (out / "summary.md").read_text()
    assert "Δ gcd_new vs strategy.query=random" in md and "| gcd_new | gcd_all | gcd_old |" in md
    # the dial view: adaptive minus random along k, one line per non-baseline query
    capsys.readouterr()
    assert main(["compare", str(out), "--dial", "scenario.budget_per_class", "--baseline",
                 "strategy.query=random", "--metrics", "gcd_new"]) == 0
    text = capsys.readouterr().out
    assert "Δ gcd_new vs strategy.query=random" in text and "strategy.query=adaptive" in text
    for k in (1, 2):
        d = np.mean([new_acc["adaptive", k, s] - new_acc["random", k, s] for s in (0, 1)])
        assert f"{100 * d:+.1f} [" in text


def test_resume_of_an_agcd_folder_is_one_line(tmp_path, capsys):
    """agcd runs write no checkpoint: `clenv run --resume` of an unfinished agcd folder is
    refused in one line (exit 2), where it used to end in an AttributeError traceback."""
    _run(tmp_path)
    (tmp_path / "r" / "metrics.json").unlink()
    capsys.readouterr()
    assert main(["run", "--resume", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "does not support checkpoints" in err
