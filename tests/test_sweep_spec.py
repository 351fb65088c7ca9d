"""Sweep files: grid/zip expansion, stable run ids, one-line errors for bad sweep YAML."""

from __future__ import annotations

import copy

import pytest
import yaml

from clenv.cli import main
from clenv.errors import ConfigError
from clenv.sweep.spec import combinations, config_hash, load_sweep
from tests.conftest import SCENARIOS, one_line

BASE = str(SCENARIOS / "quickstart.yaml")


def _sweep(**kw) -> dict:
    return {"base": BASE, **kw}


def test_grid_is_the_full_product_in_declared_order():
    sw = load_sweep(_sweep(strategies=["naive", "er"], seeds=[0, 1, 2],
                           axes={"strategy.lr": [0.01, 0.1]}))
    assert len(sw.runs) == 2 * 2 * 3
    assert list(sw.axes) == ["strategy", "strategy.lr", "seed"]
    assert [r.params for r in sw.runs[:4]] == [
        {"strategy": "naive", "strategy.lr": 0.01, "seed": 0},
        {"strategy": "naive", "strategy.lr": 0.01, "seed": 1},
        {"strategy": "naive", "strategy.lr": 0.01, "seed": 2},
        {"strategy": "naive", "strategy.lr": 0.1, "seed": 0}]
    r = sw.runs[3]
    assert r.config["strategy"]["name"] == "naive" and r.config["strategy"]["lr"] == 0.1
    # the seed axis pairs the learner's and the stream's seeds
    assert r.config["seed"] == 0 and r.config["scenario"]["seed"] == 0
    assert sw.runs[2].config["seed"] == 2 and sw.runs[2].config["scenario"]["seed"] == 2
    assert sw.replicates == ["seed"]


def test_zip_pairs_the_non_replicate_axes_and_crosses_the_seeds():
    sw = load_sweep(_sweep(mode="zip", strategies=["naive", "er"], seeds=[0, 1],
                           axes={"strategy.lr": [0.01, 0.1]}))
    assert [(r.params["strategy"], r.params["strategy.lr"], r.params["seed"])
            for r in sw.runs] == [("naive", 0.01, 0), ("naive", 0.01, 1), ("er", 0.1, 0),
                                  ("er", 0.1, 1)]
    assert combinations({"a": [1, 2], "b": [3, 4]}, "zip", []) == [{"a": 1, "b": 3},
                                                                   {"a": 2, "b": 4}]
    with pytest.raises(ConfigError) as exc:
        load_sweep(_sweep(mode="zip", strategies=["naive", "er"], axes={"strategy.lr": [0.1]}))
    one_line(exc, "mode", "equal length", "strategy: 2", "strategy.lr: 1")


def test_run_ids_are_stable_readable_and_config_derived(tmp_path):
    a = load_sweep(_sweep(strategies=["er"], seeds=[3], axes={"strategy.lr": [0.02]}))
    b = load_sweep(_sweep(seeds=[3], axes={"strategy.lr": [0.02]}, strategies=["er"],
                          threads=1))
    assert a.runs[0].id == b.runs[0].id
    rid = a.runs[0].id
    assert rid.startswith("er_lr0.02_s3_") and rid.endswith(config_hash(a.runs[0].config))
    # the hash ignores where results go, and changes with anything that changes the run
    cfg = copy.deepcopy(a.runs[0].config)
    cfg["output"]["dir"] = "elsewhere"
    assert config_hash(cfg) == config_hash(a.runs[0].config)
    cfg["budget"]["memory_size"] = 7
    assert config_hash(cfg) != config_hash(a.runs[0].config)
    c = load_sweep(_sweep(strategies=["er"], seeds=[3], axes={"strategy.lr": [0.03]}))
    assert c.runs[0].id != rid
    # a sweep file: the base is relative to it; set refines every run
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump({"base": BASE, "set": {"budget.memory_size": 50},
                                 "strategies": ["er"], "seeds": [3],
                                 "axes": {"strategy.lr": [0.02]}}))
    d = load_sweep(f)
    assert d.name == "s" and d.runs[0].config["budget"]["memory_size"] == 50
    assert d.runs[0].id != rid


def test_strategy_mappings_and_presets_refined_by_set():
    sw = load_sweep(_sweep(strategies=["er", {"name": "naive", "lr": 0.2}],
                           set={"strategy.momentum": 0.5}))
    assert sw.runs[0].config["strategy"]["momentum"] == 0.5
    assert sw.runs[1].config["strategy"] == {**sw.runs[1].config["strategy"], "lr": 0.2,
                                             "momentum": 0.5, "name": "naive"}
    assert sw.replicates == []


@pytest.mark.parametrize("sweep, parts", [
    ({"strategies": "er"}, ("strategies", "expected a list")),
    ({"seeds": [0, "a"]}, ("seeds[1]", "integer")),
    ({"axes": {"strategy.lr": []}}, ("axes.strategy.lr", "non-empty list")),
    ({"axes": {"strategy.lr": [-1.0]}}, ("strategy.lr", ">= 0", "run (strategy.lr=-1)")),
    ({"strategies": ["nope"]}, ("run (strategy=nope)", "strategy.preset", "no preset 'nope'")),
    ({"replicates": ["seed"]}, ("replicates[0]", "'seed' is not an axis")),
    ({"mode": "cartesian"}, ("mode", "grid, zip")),
    ({"colour": 1}, ("colour", "unknown key")),
    ({"select": {"among": ["strategy.lr"]}, "seeds": [0]},
     ("select.among[0]", "not a non-replicate axis")),
    ({"select": {"among": ["strategy"], "on": "first_tasks"}, "strategies": ["er"]},
     ("select.k", "first_tasks needs k")),
    ({"select": {"among": ["strategy"]}, "strategies": ["er"]},
     ("select.on", "scenario.validation")),
    ({"axes": {"seed": [0]}, "seeds": [1]}, ("seeds", "axes.seed")),
    ({"resources": {"cpus": -1}}, ("resources.cpus", ">= 0")),
])
def test_bad_sweeps_fail_in_one_line_naming_the_key(sweep, parts):
    with pytest.raises(ConfigError) as exc:
        load_sweep(_sweep(**sweep))
    one_line(exc, *parts)


def test_cli_bad_sweep_exits_2_and_writes_nothing(tmp_path, capsys):
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump({"base": BASE, "strategies": ["er"],
                                 "axes": {"scenario.n_tasks": [0]}}))
    out = tmp_path / "out"
    assert main(["sweep", str(f), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "scenario.n_tasks" in err and ">= 1" in err
    assert not out.exists()
    f.write_text("base: [unclosed\n")
    assert main(["sweep", str(f), "--out", str(out)]) == 2
    assert "YAML syntax error" in capsys.readouterr().err
    assert main(["sweep", str(tmp_path / "missing.yaml")]) == 2
    assert "file not found" in capsys.readouterr().err


def test_cli_dry_run_lists_the_runs(tmp_path, capsys):
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump({"base": BASE, "strategies": ["naive", "er"], "seeds": [0, 1]}))
    assert main(["sweep", str(f), "--dry-run", "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "4 runs" in out and "strategy=er seed=1" in out
    assert not (tmp_path / "o").exists()


def test_seed_keys_set_every_named_key_and_default_to_learner_and_stream():
    base = {"scenario": {"generator": "disjoint", "n_tasks": 2},
            "data": {"source": "synthetic"}}
    plain = load_sweep({"base": base, "seeds": [3]}).runs[0].config
    assert (plain["seed"], plain["scenario"]["seed"], plain["data"]["seed"]) == (3, 3, 0)
    sw = load_sweep({"base": base, "seeds": [3, 4],
                     "seed_keys": ["seed", "scenario.seed", "data.seed"]})
    assert [(r.config["seed"], r.config["scenario"]["seed"], r.config["data"]["seed"])
            for r in sw.runs] == [(3, 3, 3), (4, 4, 4)]
    with pytest.raises(ConfigError, match="seed_keys: expected a list holding seed"):
        load_sweep({"base": base, "seeds": [3], "seed_keys": ["data.seed"]})
