"""Multi-label class-incremental streams (MLCIL): multi-hot labels, partial labels per task,
sample-F1 reward, mAP / CF1 / OF1 metrics."""

from __future__ import annotations

import numpy as np

from clenv.evaluation.multi_label import MultiLabelEvaluator
from clenv.families.base import Family, make_stream_env
from clenv.metrics.summary import summarize_multilabel


def threshold_decoder(cfg: dict):
    """0/1 per class: sigmoid(score) > threshold  <=>  score > logit(threshold)."""
    t = cfg["eval"]["threshold"]
    logit = float(np.log(t / (1 - t))) if 0 < t < 1 else 0.0

    def decode(scores) -> np.ndarray:
        sc = scores if isinstance(scores, np.ndarray) else scores.detach().cpu().numpy()
        return (sc > logit).astype(np.int8)

    return decode


MULTI_LABEL = Family(
    name="multi_label", loop="stream",
    claims=lambda cfg, stream: bool(getattr(stream, "multi_label", False)),
    make_env=make_stream_env, decoder=threshold_decoder,
    evaluator=lambda pool, stream, cfg: MultiLabelEvaluator(
        pool, stream, cfg["eval"]["batch_size"], cfg["eval"]["threshold"]),
    summarize=summarize_multilabel, task_aware=False, fwt_baseline=False)
