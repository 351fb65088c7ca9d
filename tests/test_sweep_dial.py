"""The regime dial view of a sweep (clenv.sweep.dial): paired differences to a baseline at
every value of one axis, golden values worked by hand on a tiny fake sweep."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from clenv.cli import main
from clenv.errors import UserError
from clenv.sweep.dial import dial_lines, dial_table
from tests.test_sweep_aggregate import T975_2, fake_sweep

# final accuracy of (query, k, seed): adaptive minus random is +0.1 at every seed for k=1 and
# (0.2, 0.3, 0.1) at k=4; kcenter minus random is -0.1 at k=1 and 0 at k=4
FA = {("random", 1): [0.5, 0.6, 0.7], ("adaptive", 1): [0.6, 0.7, 0.8],
      ("kcenter", 1): [0.4, 0.5, 0.6], ("random", 4): [0.5, 0.6, 0.7],
      ("adaptive", 4): [0.7, 0.9, 0.8], ("kcenter", 4): [0.5, 0.6, 0.7]}


@pytest.fixture
def dial_sweep(tmp_path) -> Path:
    runs = [({"strategy.query": q, "scenario.budget_per_class": k, "seed": s},
             {"final_accuracy": FA[q, k][s], "gcd_new": 1 - FA[q, k][s]})
            for (q, k) in FA for s in range(3)]
    return fake_sweep(tmp_path, {"strategy.query": ["adaptive", "random", "kcenter"],
                                 "scenario.budget_per_class": [1, 4], "seed": [0, 1, 2]}, runs)


def test_dial_lines_golden(dial_sweep):
    lines = dial_lines(dial_sweep, "scenario.budget_per_class", "strategy.query=random",
                       "final_accuracy")
    by = {ln.key["strategy.query"]: ln for ln in lines}
    assert set(by) == {"adaptive", "kcenter"}  # the baseline is not a line
    assert by["adaptive"].values == [1, 4]
    mu, lo, hi, n = by["adaptive"].diffs[0]
    assert (mu, lo, hi, n) == pytest.approx((0.1, 0.1, 0.1, 3))  # sd of the differences is 0
    mu, lo, hi, n = by["adaptive"].diffs[1]
    half = T975_2 * 0.1 / math.sqrt(3)
    assert (mu, lo, hi, n) == pytest.approx((0.2, 0.2 - half, 0.2 + half, 3))
    assert by["kcenter"].diffs[0][0] == pytest.approx(-0.1)
    assert by["kcenter"].diffs[1][0] == pytest.approx(0.0, abs=1e-12)


def test_dial_table_and_cli(dial_sweep, capsys, tmp_path):
    text = dial_table(dial_lines(dial_sweep, "scenario.budget_per_class",
                                 "strategy.query=random", "final_accuracy"),
                      "scenario.budget_per_class", "final_accuracy", "strategy.query=random")
    assert "| strategy.query=adaptive | +10.0 [+10.0, +10.0] | +20.0 [-4.8, +44.8] |" in text
    assert main(["compare", str(dial_sweep), "--dial", "scenario.budget_per_class",
                 "--baseline", "strategy.query=random", "--metrics",
                 "final_accuracy,gcd_new"]) == 0
    out = capsys.readouterr().out
    assert "Δ final_accuracy vs strategy.query=random" in out
    assert "Δ gcd_new vs strategy.query=random" in out
    assert "| strategy.query=adaptive | -10.0 [-10.0, -10.0] | -20.0 [-44.8, +4.8] |" in out
    fig = tmp_path / "dial.png"
    assert main(["plot", str(dial_sweep), "--dial", "scenario.budget_per_class", "--baseline",
                 "strategy.query=random", "--metrics", "final_accuracy,gcd_new",
                 "--out", str(fig)]) == 0
    assert fig.stat().st_size > 10_000


@pytest.mark.parametrize("dial, baseline, metric, says", [
    ("seed", "strategy.query=random", "final_accuracy", "--dial: expected one of"),
    ("strategy.query", "strategy.query=random", "final_accuracy", "fixes the dial axis"),
    ("scenario.budget_per_class", "", "final_accuracy", "needs --baseline"),
    ("scenario.budget_per_class", "strategy.query=random", "map", "no complete run"),
])
def test_dial_bad_arguments(dial_sweep, dial, baseline, metric, says):
    with pytest.raises(UserError, match=says):
        dial_lines(dial_sweep, dial, baseline, metric)


def test_dial_cli_errors_write_nothing(dial_sweep, tmp_path, capsys):
    fig = tmp_path / "d.png"
    assert main(["plot", str(dial_sweep), "--dial", "seed", "--baseline",
                 "strategy.query=random", "--out", str(fig)]) == 2
    assert not fig.exists()
    assert "--dial: expected one of" in capsys.readouterr().err
    run = tmp_path / "run"
    run.mkdir()
    assert main(["compare", str(run), "--dial", "k"]) == 2
    assert "apply to one sweep folder" in capsys.readouterr().err
