"""Metric cross-check: one small stream through Avalanche's own EvaluationPlugin (accuracy,
forgetting, BWT, forward transfer) and through clenv's recording, with the same model
trajectory. Shows which numbers agree exactly and where the conventions differ
(docs/metrics.md, "Cross-check against Avalanche 0.6")."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import require

require("avalanche")

from avalanche.evaluation.metrics import (  # noqa: E402
    accuracy_metrics,
    bwt_metrics,
    forgetting_metrics,
    forward_transfer_metrics,
)
from avalanche.training.plugins import EvaluationPlugin  # noqa: E402

from clenv.avalanche import to_benchmark  # noqa: E402
from clenv.avalanche.strategy import AvalancheStrategy  # noqa: E402
from clenv.config.loader import load_config  # noqa: E402
from clenv.data.registry import load_pool  # noqa: E402
from clenv.metrics.accuracy_matrix import average_forgetting, bwt  # noqa: E402
from clenv.runner import Run, make_env, make_spec  # noqa: E402

RAW = {
    "name": "crosscheck", "seed": 3,
    "scenario": {"generator": "disjoint", "seed": 1, "n_tasks": 3, "batch_size": 10},
    "data": {"source": "synthetic", "seed": 0, "branching": [6], "dim": 8, "separation": [1.5],
             "noise": 1.0, "train_per_class": 25, "test_per_class": 10},
    "model": {"name": "mlp", "hidden": [16]},
    "eval": {"every": 0}, "output": {"plots": False},
    # offline Naive: no random draw in training, so both sides follow one trajectory
    "strategy": {"name": "avalanche", "class": "Naive", "mode": "offline"},
}
T = 3


@pytest.fixture(scope="module")
def both() -> tuple[dict, np.ndarray, np.ndarray, dict]:
    """(clenv metrics, Avalanche A[t][k], Avalanche accuracy at init, Avalanche stream
    metrics after the last experience)."""
    cfg = load_config(RAW)
    clenv_metrics = Run(cfg).execute(None)
    evaluator = EvaluationPlugin(
        accuracy_metrics(experience=True, stream=True),
        forgetting_metrics(experience=True, stream=True),
        bwt_metrics(experience=True, stream=True),
        forward_transfer_metrics(experience=True, stream=True), loggers=[])
    section = {k: v for k, v in cfg["strategy"].items() if k != "name"}
    strategy = AvalancheStrategy(evaluator=evaluator, eval_every=0, **section)
    strategy.setup(make_spec(cfg, make_env(cfg, load_pool(cfg["data"]))))
    avl = strategy.avl
    bm = to_benchmark(cfg, mode="offline")

    def row() -> list[float]:
        last = avl.evaluator.get_last_metrics()
        return [last[f"Top1_Acc_Exp/eval_phase/test_stream/Exp{k:03d}"] for k in range(T)]

    avl.eval(bm.test_stream)
    init = np.array(row())
    A = []
    for exp in bm.train_stream:
        avl.train(exp, eval_streams=[bm.test_stream], shuffle=False)
        A.append(row())
    final = {k.split("/")[0]: v for k, v in avl.evaluator.get_last_metrics().items()
             if k.startswith("Stream")}
    return clenv_metrics, np.array(A), init, final


def test_same_model_same_final_row(both):
    m, A, _, _ = both
    R = np.array(m["accuracy_matrix"])
    # after the last task every class is seen: clenv's mask hides nothing, the numbers agree
    np.testing.assert_allclose(R[-1], A[-1], rtol=0, atol=1e-12)
    assert m["final_accuracy"] == pytest.approx(A[-1].mean(), abs=1e-12)


def test_accuracy_conventions_differ_before_the_end(both):
    m, A, init, _ = both
    R = np.array(m["accuracy_matrix"])
    Raware = np.array(m["accuracy_matrix_task_aware"])
    for t in range(T):
        for k in range(T):
            if k <= t:  # clenv: only seen classes compete, so never below all-classes argmax
                assert R[t, k] >= A[t, k] - 1e-12
                assert Raware[t, k] >= R[t, k] - 1e-12
            else:  # an unseen class cannot be predicted in clenv; Avalanche may hit it
                assert R[t, k] == 0.0 and A[t, k] >= 0.0
    # on this stream the conventions do disagree somewhere (the difference is real)
    assert np.abs(R[:-1] - A[:-1]).max() > 0.05
    # at initialisation clenv's masked baseline is 0; Avalanche's is chance-level accuracy
    assert m["init_accuracy"] == [0.0] * T and init.max() > 0.0


def test_forgetting_and_bwt_formulas(both):
    m, A, _, final = both
    R = np.array(m["accuracy_matrix"])
    # Avalanche: BWT = mean_{k<T-1} (A[T-1,k] - A[k,k]); forgetting = -BWT (first - last)
    avl_bwt = np.mean([A[-1, k] - A[k, k] for k in range(T - 1)])
    assert final["StreamBWT"] == pytest.approx(avl_bwt, abs=1e-12)
    assert final["StreamForgetting"] == pytest.approx(-avl_bwt, abs=1e-12)
    # clenv's bwt is the same formula: applied to Avalanche's matrix it gives Avalanche's BWT
    assert bwt(A) == pytest.approx(final["StreamBWT"], abs=1e-12)
    assert m["bwt"] == pytest.approx(bwt(R), abs=1e-12)
    # clenv's forgetting takes the best accuracy since the task was learned (>= -bwt)
    assert m["average_forgetting"] == pytest.approx(average_forgetting(R), abs=1e-12)
    assert m["average_forgetting"] >= -m["bwt"] - 1e-12


def test_forward_transfer_conventions(both):
    m, A, init, final = both
    # Avalanche keeps every term: mean_{k>=1} (A[k-1,k] - b_k), b_k its first evaluation
    avl_fwt = np.mean([A[k - 1, k] - init[k] for k in range(1, T)])
    assert final["StreamForwardTransfer"] == pytest.approx(avl_fwt, abs=1e-12)
    assert final["StreamForwardTransfer"] < 0  # only the random initialisation shows
    # clenv drops terms whose classes have no usable output before their task: null here
    assert m["fwt"] is None and "disjoint" in m["fwt_reason"]
