"""Joint training: at every task end, a fresh model is trained on all data seen so far (the
upper reference, and R* for intransigence)."""

from __future__ import annotations

import torch

from clenv.strategies.base import SupervisedStrategy
from clenv.strategies.registry import STRATEGIES
from clenv.strategies.spec import StrategySpec, label_shape


class Joint(SupervisedStrategy):
    """Stores every first-exposure stream sample; at each task end re-initialises the model
    (seeded by the task) and trains ``epochs`` shuffled epochs over everything stored."""

    families = ("single_label", "hierarchical", "multi_label", "regression")
    fields = STRATEGIES["joint"].fields
    state_attributes = ("store_x", "store_y", "stored")

    def setup(self, spec: StrategySpec) -> None:
        super().setup(spec)
        dtype = torch.uint8 if spec.image else torch.float32
        self.store_x = torch.zeros((spec.stream_length, *spec.input_shape), dtype=dtype)
        self.store_y = torch.zeros((spec.stream_length, *label_shape(spec)), dtype=torch.int64)
        self.stored = 0

    def learn(self, batch: dict, info: dict) -> dict[str, float]:
        x, y = self.stream_batch(batch, info)
        first = torch.from_numpy(info["first_exposure"][info["valid"]])
        x, y = x[first].cpu(), y[first].cpu()
        n = len(y)
        self.store_x[self.stored:self.stored + n] = x
        self.store_y[self.stored:self.stored + n] = y
        self.stored += n
        return {}

    def on_task_end(self, task: int) -> None:
        torch.manual_seed(self.spec.seed + 7919 * (task + 1))
        self.model = self.new_model()
        self.optimizer = self.new_optimizer()
        epochs = self.params.get("epochs") or self.spec.epochs
        bs = self.params.get("batch_size", 32)
        for _ in range(epochs):
            order = torch.from_numpy(self.rng.permutation(self.stored))
            for start in range(0, self.stored, bs):
                idx = order[start:start + bs]
                self.step(self.store_x[idx].to(self.device), self.store_y[idx].to(self.device))

    def counters(self) -> dict[str, int]:
        c = super().counters()
        c["buffer_samples"] = self.stored
        c["buffer_bytes"] = (self.store_x[:self.stored].nelement() * self.store_x.element_size()
                             + self.store_y[:self.stored].nelement() * 8)
        return c
