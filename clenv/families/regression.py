"""Continual regression: each task is a function to fit (sine waves y = A_t sin(x + phi_t),
clenv.data.sine); the action is one real value per row, the reward minus the batch's MSE,
and the metrics the MSE matrix, MSE forgetting and MSE BWT (clenv.metrics.regression)."""

from __future__ import annotations

from clenv.data.pool import Pool
from clenv.env_regression import RegressionEnv
from clenv.evaluation.regression import RegressionEvaluator
from clenv.families.base import Family
from clenv.metrics.regression import column_mse, summarize_regression
from clenv.scenarios.registry import build_stream


def make_regression_env(cfg: dict, pool: Pool) -> RegressionEnv:
    """The regression Env of a validated config: the scenario's stream over the sine pool."""
    sc = cfg["scenario"]

    def factory(seed: int):
        return build_stream(pool, {**sc, "seed": seed}, "scenario")

    return RegressionEnv(pool, factory, seed=sc["seed"], batch_size=sc["batch_size"],
                         boundaries=sc["boundaries"] == "exposed", task_ids=sc["task_ids"])


def identity_decoder(cfg: dict):
    """predict's (B, 1) outputs -> the (B,) float32 action."""

    def decode(scores):
        sc = scores.detach().cpu().numpy() if hasattr(scores, "detach") else scores
        return sc[:, 0].astype("float32")

    return decode


REGRESSION = Family(
    name="regression", loop="stream",
    claims=lambda cfg, stream: cfg["data"]["source"] == "sine",
    make_env=make_regression_env, decoder=identity_decoder,
    evaluator=lambda pool, stream, cfg: RegressionEvaluator(pool, stream,
                                                            cfg["eval"]["batch_size"]),
    summarize=summarize_regression, task_aware=False, fwt_baseline=False,
    matrix="mse_matrix", matrix_range=None, column_values=column_mse, value_label="MSE")
