"""Aggregation of a sweep folder (golden values computed by hand on a tiny fake sweep) and
CL-legal selection (validation / first tasks)."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import pytest

from clenv.cli import main
from clenv.sweep.aggregate import table
from clenv.sweep.select import select_runs, selection_score
from clenv.sweep.stats import mean_std, paired_difference

T975_2 = 4.302652729911275  # Student t, 97.5% quantile, 2 degrees of freedom


def fake_sweep(d: Path, axes: dict, runs: list[tuple[dict, dict | None]], *,
               replicates=("seed",), select=None) -> Path:
    """A sweep folder: sweep.json plus runs/<id>/metrics.json (None: a failed run)."""
    entries = []
    for i, (params, metrics) in enumerate(runs):
        rid = f"r{i}"
        entries.append({"id": rid, "dir": f"runs/{rid}", "params": params,
                        "status": "failed" if metrics is None else "complete",
                        "error": "boom" if metrics is None else None})
        (d / "runs" / rid).mkdir(parents=True)
        if metrics is not None:
            (d / "runs" / rid / "metrics.json").write_text(json.dumps(metrics))
    (d / "sweep.json").write_text(json.dumps({
        "name": "fake", "mode": "grid", "axes": axes, "replicates": list(replicates),
        "select": select, "runs": entries}))
    return d


@pytest.fixture
def two_strategies(tmp_path) -> Path:
    fa = {"a": [0.5, 0.6, 0.7], "b": [0.7, 0.9, 0.8]}
    forg = {"a": [0.3, 0.1, 0.2], "b": [0.1, 0.1, 0.1]}
    runs = [({"strategy": s, "seed": k}, {"final_accuracy": fa[s][k],
                                          "average_forgetting": forg[s][k],
                                          "wall_time": {"total": 2.0 + k}})
            for s in ("a", "b") for k in range(3)]
    runs.append(({"strategy": "b", "seed": 3}, None))
    return fake_sweep(tmp_path, {"strategy": ["a", "b"], "seed": [0, 1, 2, 3]}, runs)


def test_stats_golden():
    assert mean_std([0.5, 0.6, 0.7]) == pytest.approx((0.6, 0.1))
    assert mean_std([0.4])[1] is None
    m, lo, hi = paired_difference([0.7, 0.9, 0.8], [0.5, 0.6, 0.7])
    half = T975_2 * 0.1 / math.sqrt(3)  # sd of the differences (0.2, 0.3, 0.1) is 0.1
    assert (m, lo, hi) == pytest.approx((0.2, 0.2 - half, 0.2 + half))
    assert lo == pytest.approx(-0.0484138, abs=1e-6)


def test_grouped_table_golden_values(two_strategies):
    header, raw, md = table(two_strategies, metrics=["final_accuracy", "average_forgetting"],
                            baseline="strategy=a")
    assert header == ["strategy", "n", "failed", "final_accuracy_mean", "final_accuracy_std",
                      "average_forgetting_mean", "average_forgetting_std",
                      "final_accuracy_diff", "final_accuracy_ci_low", "final_accuracy_ci_high",
                      "pairs", "wall_s_mean"]
    a, b = raw
    assert a[:3] == ["a", 3, 0] and b[:3] == ["b", 3, 1]
    assert a[3:7] == pytest.approx([0.6, 0.1, 0.2, 0.1])
    assert b[3:7] == pytest.approx([0.8, 0.1, 0.1, 0.0])
    half = T975_2 * 0.1 / math.sqrt(3)
    assert b[7:11] == pytest.approx([0.2, 0.2 - half, 0.2 + half, 3])
    assert a[7:11] == pytest.approx([0.0, 0.0, 0.0, 3])
    assert a[11] == pytest.approx(3.0)
    assert md[0][-2] == "Δ final_accuracy vs strategy=a [95% CI]"
    assert md[1][3] == "60.0 ± 10.0" and md[1][-2] == "baseline"
    assert md[2][-2] == "+20.0 [-4.8, +44.8]"


def test_sort_and_files(two_strategies, capsys):
    assert main(["compare", str(two_strategies), "--baseline", "strategy=a", "--sort",
                 "average_forgetting", "--metrics", "final_accuracy,average_forgetting",
                 "--format", "csv"]) == 0
    out = capsys.readouterr().out
    rows = list(csv.reader(io.StringIO(out.split("wrote")[0])))
    assert [r[0] for r in rows[1:]] == ["a", "b"]  # descending forgetting
    assert rows[2][3] == "0.800000"
    assert (two_strategies / "summary.csv").read_text() == out.split("wrote")[0]
    md = (two_strategies / "summary.md").read_text()
    assert md.startswith("| strategy | n | failed | final_accuracy |")
    _, raw, _ = table(two_strategies, sort="final_accuracy", ascending=True)
    assert [r[0] for r in raw] == ["a", "b"]
    _, raw, _ = table(two_strategies, sort="final_accuracy")
    assert [r[0] for r in raw] == ["b", "a"]


@pytest.mark.parametrize("args, part", [
    (["--baseline", "method=a"], "--baseline"),
    (["--sort", "nothing"], "--sort"),
    (["--metrics", "map"], "--metrics"),
])
def test_compare_errors_are_one_line(two_strategies, capsys, args, part):
    assert main(["compare", str(two_strategies), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and part in err


def test_compare_refuses_mixed_metrics_versions(tmp_path, capsys):
    """metrics_version 2 renamed cf1 (PRS's -> MULTI-LANE's) and changed f_last: a sweep or a
    set of folders mixing versions (absent = 1) is refused with one line, exit 2."""
    runs = [({"strategy": "a", "seed": 0}, {"final_accuracy": 0.5, "cf1": 0.4}),
            ({"strategy": "a", "seed": 1}, {"final_accuracy": 0.6, "cf1": 0.3,
                                            "metrics_version": 2})]
    d = fake_sweep(tmp_path / "sweep", {"strategy": ["a"], "seed": [0, 1]}, runs)
    assert main(["compare", str(d)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "versions differ" in err and "version 1" in err
    assert not (d / "summary.csv").exists()
    folders = []
    for i, extra in enumerate(({}, {"metrics_version": 2})):
        f = tmp_path / f"run{i}"
        f.mkdir()
        (f / "metrics.json").write_text(json.dumps({"name": f"r{i}", "cf1": 0.5, **extra}))
        folders.append(str(f))
    assert main(["compare", *folders]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "versions differ" in err
    # one version: compared as usual
    (tmp_path / "run0" / "metrics.json").write_text(json.dumps(
        {"name": "r0", "cf1": 0.5, "metrics_version": 2}))
    assert main(["compare", *folders]) == 0
    assert "0.5000" in capsys.readouterr().out


def _lr_sweep(d: Path, select: dict) -> Path:
    # validation prefers lr 0.1 (mean 0.75 vs 0.65); the test set would prefer lr 0.01
    val = {0.01: [0.6, 0.7], 0.1: [0.8, 0.7]}
    test = {0.01: [0.9, 0.9], 0.1: [0.4, 0.6]}
    R = {0.01: [[1.0, 0.0], [0.5, 0.5]], 0.1: [[0.6, 0.0], [0.3, 0.9]]}
    runs = [({"strategy": "er", "strategy.lr": lr, "seed": k},
             {"final_accuracy": test[lr][k], "accuracy_matrix": R[lr],
              "validation": {"final_accuracy": val[lr][k]}})
            for lr in (0.01, 0.1) for k in range(2)]
    return fake_sweep(d, {"strategy": ["er"], "strategy.lr": [0.01, 0.1], "seed": [0, 1]},
                      runs, select=select)


def test_selection_on_validation_reports_only_the_selected_config(tmp_path):
    sel = {"metric": "final_accuracy", "on": "validation", "k": None,
           "among": ["strategy.lr"], "goal": "max"}
    d = _lr_sweep(tmp_path, sel)
    index = json.loads((d / "sweep.json").read_text())
    metrics = {f"r{i}": json.loads((d / f"runs/r{i}/metrics.json").read_text())
               for i in range(4)}
    result = select_runs(index, metrics)
    (g,) = result["groups"]
    assert g["fixed"] == {"strategy": "er"} and g["chosen"] == {"strategy.lr": 0.1}
    assert [c["score"] for c in g["candidates"]] == pytest.approx([0.65, 0.75])
    assert g["chosen_runs"] == ["r2", "r3"]
    header, raw, md = table(d, metrics=["final_accuracy"])
    assert header[:5] == ["strategy", "strategy.lr", "n", "failed", "select_final_accuracy"]
    (row,) = raw  # only the selected configuration, with its test metrics
    assert row[:5] == ["er", 0.1, 2, 0, pytest.approx(0.75)]
    assert row[5:7] == pytest.approx([0.5, math.sqrt(0.02)])
    _, raw_all, _ = table(d, metrics=["final_accuracy"], all_configs=True)
    assert len(raw_all) == 2


def test_selection_on_first_tasks_uses_the_truncated_matrix(tmp_path):
    sel = {"metric": "final_accuracy", "on": "first_tasks", "k": 1,
           "among": ["strategy.lr"], "goal": "max"}
    run = {"accuracy_matrix": [[0.6, 0.0], [0.3, 0.9]]}
    assert selection_score(run, sel) == pytest.approx(0.6)
    assert selection_score(run, {**sel, "k": 2}) == pytest.approx(0.6)  # (0.3 + 0.9) / 2
    assert selection_score({"accuracy_matrix": [[0.6, 0.0], [0.3, 0.9]],
                            "validation": {"accuracy_matrix": [[0.2, 0.0], [0.1, 0.1]]}},
                           sel) == pytest.approx(0.2)
    d = _lr_sweep(tmp_path, sel)
    for i in range(4):  # no validation split: the test matrix of the first task decides
        p = d / f"runs/r{i}/metrics.json"
        m = json.loads(p.read_text())
        m.pop("validation")
        p.write_text(json.dumps(m))
    _, raw, _ = table(d, metrics=["final_accuracy"])
    assert raw[0][:2] == ["er", 0.01] and raw[0][4] == pytest.approx(1.0)
