"""Naive fine-tuning: SGD on the stream batches only (the lower reference)."""

from __future__ import annotations

from clenv.strategies.base import SupervisedStrategy
from clenv.strategies.registry import STRATEGIES


class Naive(SupervisedStrategy):
    """Fine-tunes on each stream batch; no memory, no regularisation."""

    families = ("single_label", "hierarchical", "multi_label", "regression")
    fields = STRATEGIES["naive"].fields

    def learn(self, batch: dict, info: dict) -> dict[str, float]:
        x, y = self.stream_batch(batch, info)
        loss = None
        for _ in range(self.n_steps(len(y))):
            loss = self.step(x, y)
        return {} if loss is None else {"loss": loss.item()}
