"""Hierarchical label expansion (HLE, Lee et al. 2023): one label per level, the row's level
scored; actions are {level_l: labels}."""

from __future__ import annotations

from clenv.evaluation.hierarchical import HierarchyEvaluator
from clenv.families.base import Family, argmax, make_stream_env
from clenv.metrics.summary import summarize_single_label


def level_decoder(cfg: dict):
    """The best label of every level's head."""
    return lambda scores: {f"level_{lv}": argmax(s) for lv, s in sorted(scores.items())}


HIERARCHICAL = Family(
    name="hierarchical", loop="stream",
    claims=lambda cfg, stream: stream is not None and stream.levels > 1,
    make_env=make_stream_env, decoder=level_decoder,
    evaluator=lambda pool, stream, cfg: HierarchyEvaluator(pool, stream,
                                                           cfg["eval"]["batch_size"]),
    summarize=summarize_single_label, task_aware=True, fwt_baseline=False)
