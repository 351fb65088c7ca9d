"""The fifth family, continual regression (docs/design.md, "A new family: continual
regression"): the sine source, the Env's real-valued actions and -MSE reward, the codec of the
supervised base, the evaluator's squared-error sums, the MSE metrics (goldens by hand), and
`clenv run` / `plot` / `list` end to end."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
import torch
import yaml
from gymnasium.utils.env_checker import check_env

import clenv
from clenv.cli import main
from clenv.data.registry import load_pool
from clenv.errors import ConfigError
from clenv.evaluation.regression import RegressionEvaluator
from clenv.metrics.regression import (
    final_mse,
    mse_bwt,
    mse_forgetting,
    mse_from_counts,
    summarize_regression,
)
from clenv.scenarios.registry import build_stream, validate_scenario
from clenv.strategies.regression_codec import RegressionCodec
from tests.conftest import SCENARIOS

SCENARIO = SCENARIOS / "sine_regression.yaml"
# three tasks; task 0 improves after task 1 (0.5 < 1.0), so forgetting (against the best
# earlier error) and BWT (against the error just after learning) differ
M = [[1.0, 4.0, 9.0],
     [0.5, 0.5, 6.0],
     [3.0, 1.5, 0.25]]


def _hand_target(pool, row: int) -> float:
    """A_y sin(x + phi_y) of one pool row, with math.sin."""
    y = int(pool.y[row])
    return pool.meta["amplitude"][y] * math.sin(float(pool.x[row, 0]) + pool.meta["phase"][y])


# -- metrics: goldens by hand ----------------------------------------------------------------

def test_final_mse_by_hand():
    assert final_mse(M) == pytest.approx((3.0 + 1.5 + 0.25) / 3)


def test_mse_forgetting_by_hand():
    # j=0: 3.0 - min(1.0, 0.5) = 2.5; j=1: 1.5 - min(0.5) = 1.0; mean 1.75 (> 0: it forgot)
    assert mse_forgetting(M) == pytest.approx(1.75)
    assert mse_forgetting([[2.0]]) is None


def test_mse_bwt_by_hand():
    # j=0: M[0][0] - M[2][0] = 1.0 - 3.0; j=1: 0.5 - 1.5; mean -1.5 (< 0: later tasks hurt)
    assert mse_bwt(M) == pytest.approx(-1.5)
    assert mse_bwt([[2.0]]) is None
    improved = [[2.0, 5.0], [1.0, 1.0]]  # learning task 1 lowered task 0's error
    assert mse_bwt(improved) == pytest.approx(1.0)
    assert mse_forgetting(improved) == pytest.approx(-1.0)


def test_mse_from_counts_by_hand():
    assert mse_from_counts([2.0, 3.0, 10.0], [4, 2, 5], [0, 1]) == pytest.approx(5 / 6)
    assert mse_from_counts([2.0, 0.0], [4, 0], [1]) is None


def test_summary_of_a_hand_written_log():
    def ev(kind, samples, sse, count, seen, **extra):
        return {"type": "eval", "kind": kind, "samples": samples, "seen": seen,
                "counts": {"sse": sse, "count": count}, **extra}

    events = [
        {"type": "start", "name": "hand", "n_tasks": 2, "columns": [[0], [1]],
         "column_names": ["sine_0", "sine_1"], "square": True, "stream_length": 20,
         "budget_limits": {}},
        ev("init", 0, [8.0, 18.0], [2, 2], []),
        ev("anytime", 5, [2.0, 0.0], [4, 0], [0]),
        ev("task_end", 10, [1.0, 10.0], [2, 2], [0], row=0),
        ev("task_end", 20, [3.0, 0.4], [2, 2], [0, 1], row=1),
        {"type": "end", "online": {"correct": 6.0, "count": 3}, "budget": {"grad_steps": 4},
         "budget_exceeded": [], "wall": {"total": 1.0}},
    ]
    m = summarize_regression(events)
    assert m["complete"] and m["family"] == "regression"
    assert m["init_mse"] == [4.0, 9.0]
    assert m["mse_matrix"] == [[0.5, 5.0], [1.5, pytest.approx(0.2)]]
    assert m["final_mse"] == pytest.approx((1.5 + 0.2) / 2)
    assert m["mse_forgetting"] == pytest.approx(1.0)  # 1.5 - 0.5
    assert m["mse_bwt"] == pytest.approx(-1.0)  # 0.5 - 1.5
    assert m["anytime"] == {"samples": [5], "mse": [0.5]}
    assert m["online_mse"] == pytest.approx(2.0)
    assert summarize_regression(events[:-1])["final_mse"] is None  # no end record


# -- data, Env, codec, evaluator -------------------------------------------------------------

def test_sine_source_is_seeded_and_follows_the_formula():
    a = load_pool({"source": "sine", "seed": 3, "n_functions": 4})
    b = load_pool({"source": "sine", "seed": 3, "n_functions": 4})
    c = load_pool({"source": "sine", "seed": 4, "n_functions": 4})
    np.testing.assert_array_equal(a.x, b.x)
    assert a.meta == b.meta and a.meta != c.meta
    assert all(0.1 <= v <= 5.0 for v in a.meta["amplitude"])
    assert all(0.0 <= v <= math.pi for v in a.meta["phase"])
    assert a.x.shape == (4 * 300, 5) and a.n_classes == 4  # x, then the one-hot function id
    np.testing.assert_array_equal(a.x[:, 1:].argmax(1), a.y)
    assert ((a.x[:, 0] >= -5) & (a.x[:, 0] <= 5)).all()
    assert a.train.sum() == 4 * 200
    bare = load_pool({"source": "sine", "n_functions": 2, "one_hot": False})
    assert bare.x.shape == (600, 1)


def test_sine_source_refuses_a_reversed_range():
    with pytest.raises(ConfigError, match=r"data\.amplitude"):
        load_pool({"source": "sine", "amplitude": [5.0, 1.0]})


def test_env_passes_check_env_and_scores_minus_the_mse():
    env = clenv.make(str(SCENARIO))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no spec, cannot test render modes"
        check_env(env.unwrapped)
    obs, _ = env.reset(seed=0)
    action = np.full(env.B, 0.5, dtype=np.float32)
    _, reward, _, _, info = env.step(action)
    valid = info["valid"]
    rows = info["sample_id"][valid]
    hand = np.array([_hand_target(env.pool, int(r)) for r in rows])
    np.testing.assert_allclose(info["target"][valid], hand, rtol=1e-5, atol=1e-6)
    assert reward == pytest.approx(-np.mean((0.5 - hand) ** 2), rel=1e-5)
    assert env.online_count == valid.sum()
    assert env.online_correct == pytest.approx(np.sum((0.5 - hand) ** 2), rel=1e-5)
    with pytest.raises(ValueError, match="finite real array"):
        env.step(np.full(env.B + 1, 0.5))


def test_codec_keeps_real_targets_in_int64_labels_and_its_loss_is_the_mse():
    y = RegressionCodec.targets({"target": np.array([0.5, -1.25], dtype=np.float32)})
    assert y.dtype == np.int64  # what replay buffers and the joint store hold
    stored = torch.zeros(2, dtype=torch.int64)
    stored[:] = torch.from_numpy(y)
    assert RegressionCodec.values(stored).tolist() == [0.5, -1.25]
    out = torch.tensor([[1.0], [0.0]])
    loss = RegressionCodec.loss(None, out, stored, "mean")
    assert loss.item() == pytest.approx((0.5 ** 2 + 1.25 ** 2) / 2)
    assert RegressionCodec.loss(None, out, stored, "none").tolist() == [0.25, 1.5625]


class _Constant:
    """A strategy that predicts c for every row."""

    def __init__(self, c: float) -> None:
        self.c = c

    def predict(self, obs: dict) -> np.ndarray:
        return np.full((len(obs["x"]), 1), self.c, dtype=np.float32)


def test_evaluator_counts_squared_errors_per_unit():
    pool = load_pool({"source": "sine", "n_functions": 3, "test_per_function": 7})
    stream = build_stream(pool, validate_scenario({"generator": "disjoint", "n_tasks": 3,
                                                   "seed": 0}, "scenario"), "scenario")
    counts, pred = RegressionEvaluator(pool, stream, batch_size=4).evaluate(
        _Constant(1.0), np.ones(3, dtype=bool), task_aware=False)
    test = np.flatnonzero(~pool.train)
    for u in range(3):
        rows = test[pool.y[test] == u]
        hand = sum((1.0 - _hand_target(pool, int(r))) ** 2 for r in rows)
        assert counts["count"][u] == 7
        assert counts["sse"][u] == pytest.approx(hand, rel=1e-5)
    assert pred.shape == (21, 1)
    only = np.array([False, True, False])  # anytime: the seen units' rows only
    part, _ = RegressionEvaluator(pool, stream).evaluate(_Constant(1.0), only,
                                                         seen_units=only, task_aware=False)
    assert part["count"] == [0, 7, 0] and part["sse"][0] == 0.0


# -- end to end -------------------------------------------------------------------------------

@pytest.mark.parametrize("strategy", ["naive", "er", "joint"])
def test_clenv_run_end_to_end(strategy, tmp_path):
    out = tmp_path / strategy
    plots = "true" if strategy == "naive" else "false"
    assert main(["run", str(SCENARIO), "--strategy", strategy, "--out", str(out), "--quiet",
                 "--set", "threads=1", "--set", f"output.plots={plots}"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["complete"] and m["family"] == "regression" and m["n_tasks"] == 5
    M = np.array(m["mse_matrix"])
    assert M.shape == (5, 5) and (M >= 0).all()
    assert m["final_mse"] == pytest.approx(M[-1].mean())
    lines = (out / "mse_matrix.csv").read_text().splitlines()
    assert lines[0] == "row," + ",".join(f"task_{j}" for j in range(5))
    np.testing.assert_allclose([float(v) for v in lines[-1].split(",")[1:]], M[-1], atol=1e-6)
    assert not (out / "accuracy_matrix.csv").exists()
    if strategy == "naive":  # fine-tuning forgets: each task's error grows after it
        assert m["mse_forgetting"] > 0 and m["mse_bwt"] < 0
        assert (out / "mse_matrix.png").is_file() and (out / "forgetting.png").is_file()
    if strategy == "er":
        assert m["budget"]["buffer_samples"] == 200


def test_replay_forgets_less_than_fine_tuning(tmp_path):
    got = {}
    for strategy in ("naive", "er"):
        out = tmp_path / strategy
        assert main(["run", str(SCENARIO), "--strategy", strategy, "--out", str(out),
                     "--quiet", "--set", "threads=1", "--set", "output.plots=false"]) == 0
        got[strategy] = json.loads((out / "metrics.json").read_text())
    assert got["er"]["mse_forgetting"] < got["naive"]["mse_forgetting"]
    assert got["er"]["final_mse"] < got["naive"]["final_mse"]


def test_clenv_plot_draws_the_mse_figures(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["run", str(SCENARIO), "--out", str(out), "--quiet", "--set", "threads=1",
                 "--set", "output.plots=false", "--set", "scenario.epochs=1"]) == 0
    assert main(["plot", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "forgetting.png" in printed and "mse_matrix.png" in printed
    assert (out / "mse_matrix.png").stat().st_size > 0
    # the folder is clenv's: a second run into it is not refused for the figure files
    assert main(["run", str(SCENARIO), "--out", str(out), "--quiet", "--set", "threads=1",
                 "--set", "output.plots=false", "--set", "scenario.epochs=1"]) == 0


def test_list_and_check_show_the_scenario(capsys):
    assert main(["list"]) == 0
    listed = capsys.readouterr().out
    assert "sine_regression.yaml" in listed and "Continual regression" in listed
    assert "\n  sine " in listed
    assert main(["check", str(SCENARIO)]) == 0


def test_a_strategy_without_the_family_is_refused_in_one_line(tmp_path, capsys):
    rc = main(["run", str(SCENARIO), "--strategy", "ewc", "--out", str(tmp_path / "r"),
               "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "not regression" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("strategy", ["KillingER", "KillingJoint"])
def test_crash_then_resume_matches_the_uninterrupted_run(strategy, tmp_path, monkeypatch):
    """The real targets' int64 bit patterns in ER's buffer and joint's store, and the Env's
    squared-error online counts, come back from a checkpoint exactly."""
    from clenv.config.loader import load_config
    from clenv.runner import Run

    raw = yaml.safe_load(SCENARIO.read_text())
    raw["strategy"] = {"name": f"tests.checkpoint_killer:{strategy}", "optimizer": "adam",
                       "lr": 0.003}
    cfg = load_config(raw, ["scenario.epochs=1", "output.plots=false", "threads=1",
                            "output.checkpoint_every=150"])
    ref = tmp_path / "ref"
    Run(cfg).execute(ref)
    out = tmp_path / "crashed"
    monkeypatch.setenv("CLENV_RAISE_LEARN", "47")  # task 2 (positions 460-470)
    with pytest.raises(RuntimeError, match="learn call 47"):
        Run(cfg).execute(out)
    assert (out / "checkpoint.pt").is_file()
    monkeypatch.delenv("CLENV_RAISE_LEARN")
    Run(cfg).execute(out, resume=True)
    got, want = (json.loads((d / "metrics.json").read_text()) for d in (out, ref))
    got.pop("wall_time")
    want.pop("wall_time")
    assert got == want
    assert (out / "mse_matrix.csv").read_bytes() == (ref / "mse_matrix.csv").read_bytes()
