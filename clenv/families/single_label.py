"""Single-label class-incremental / lifelong streams: one class per row, exact-match reward."""

from __future__ import annotations

from clenv.evaluation.single_label import Evaluator
from clenv.families.base import Family, argmax_decoder, make_stream_env
from clenv.metrics.summary import summarize_single_label

SINGLE_LABEL = Family(
    name="single_label", loop="stream",
    claims=lambda cfg, stream: stream is not None,  # the fallback: any other stream
    make_env=make_stream_env, decoder=argmax_decoder,
    evaluator=lambda pool, stream, cfg: Evaluator(pool, stream, cfg["eval"]["batch_size"]),
    summarize=summarize_single_label, task_aware=True, fwt_baseline=True)
