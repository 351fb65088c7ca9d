"""Experience replay (Chaudhry et al. 2019, "On tiny episodic memories in continual learning"):
each step trains on the stream batch plus a batch drawn from a reservoir buffer."""

from __future__ import annotations

import torch

from clenv.strategies.base import SupervisedStrategy
from clenv.strategies.memory import replay_buffer
from clenv.strategies.registry import STRATEGIES
from clenv.strategies.spec import StrategySpec


class ExperienceReplay(SupervisedStrategy):
    """Stream batch + replay batch per step; the buffer is updated after the steps."""

    families = ("single_label", "hierarchical", "multi_label", "regression")
    fields = STRATEGIES["er"].fields
    state_attributes = ("memory",)

    def setup(self, spec: StrategySpec) -> None:
        super().setup(spec)
        self.memory = replay_buffer(self)
        self.replay_k = self.params.get("replay_batch_size") or spec.batch_size

    def learn(self, batch: dict, info: dict) -> dict[str, float]:
        x, y = self.stream_batch(batch, info)
        loss = None
        for _ in range(self.n_steps(len(y))):
            mx, my = self.memory.sample(self.replay_k)
            loss = self.step(torch.cat((x, mx)), torch.cat((y, my)))
        self.remember(x, y)
        return {} if loss is None else {"loss": loss.item()}

    def remember(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Keep the stream batch after its steps (reservoir; Rainbow Memory keeps candidates)."""
        self.memory.add(x, y)

    def counters(self) -> dict[str, int]:
        c = super().counters()
        c["buffer_samples"] = self.memory.size
        c["buffer_bytes"] = self.memory.nbytes
        return c
