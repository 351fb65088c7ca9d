"""Learning without Forgetting (Li & Hoiem 2016): distillation from the model frozen at the
last task end.

From the first task end on, the loss on a batch is L + alpha * D, where D compares the current
model's logits z with the frozen teacher's z~ on the classes seen up to the last task end
(the "active units", as Avalanche 0.6's LwF), at temperature T (Avalanche's default 2):

- single-label: D = mean over rows of KL(softmax(z~/T) || softmax(z/T)) (Avalanche 0.6's
  ``kl_div(..., reduction="batchmean")``; no T^2 factor);
- multi-label: per-class sigmoid distillation, D = mean over rows of the sum over old classes of
  the binary KL(sigmoid(z~/T) || sigmoid(z/T));
- hierarchical (per-level heads): the single-label D of each level on that level's old classes,
  summed over levels.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from clenv.strategies.base import SupervisedStrategy
from clenv.strategies.registry import STRATEGIES
from clenv.strategies.spec import StrategySpec


def softmax_distillation(z: torch.Tensor, z_old: torch.Tensor, temperature: float
                         ) -> torch.Tensor:
    """mean over rows of KL(softmax(z_old / T) || softmax(z / T))."""
    return F.kl_div(F.log_softmax(z / temperature, dim=1),
                    F.softmax(z_old / temperature, dim=1), reduction="batchmean")


def sigmoid_distillation(z: torch.Tensor, z_old: torch.Tensor, temperature: float
                         ) -> torch.Tensor:
    """mean over rows of sum over classes of the binary KL(sigmoid(z_old/T) || sigmoid(z/T))."""
    q = torch.sigmoid(z_old / temperature)
    ce = F.binary_cross_entropy_with_logits(z / temperature, q, reduction="none")
    entropy = F.binary_cross_entropy_with_logits(z_old / temperature, q, reduction="none")
    return (ce - entropy).sum(1).mean()


class LwF(SupervisedStrategy):
    """LwF: stream batches with distillation towards the last task end's model."""

    fields = STRATEGIES["lwf"].fields
    families = ("single_label", "multi_label", "hierarchical")
    state_attributes = ("teacher", "has_teacher", "old_classes", "extra_forwards")

    def setup(self, spec: StrategySpec) -> None:
        if not spec.boundaries:
            from clenv.errors import ConfigError

            raise ConfigError("strategy.name", "LwF freezes its teacher at task ends and needs "
                              "them exposed", "set scenario.boundaries: exposed")
        super().setup(spec)
        self.alpha = float(self.params.get("alpha", 1.0))
        self.temperature = float(self.params.get("temperature", 2.0))
        self.teacher = copy.deepcopy(self.model)
        self.teacher.requires_grad_(False)
        self.teacher.eval()
        self.has_teacher = False
        seen = self.level_seen if self.levels > 1 else [self.seen]
        self.old_classes = [torch.zeros_like(s) for s in seen]  # per level
        self.extra_forwards = 0

    def learn(self, batch: dict, info: dict) -> dict[str, float]:
        x, y = self.stream_batch(batch, info)
        loss = None
        for _ in range(self.n_steps(len(y))):
            loss = self.step(x, y)
        return {} if loss is None else {"loss": loss.item()}

    def penalty(self, inp: torch.Tensor, out, y: torch.Tensor) -> torch.Tensor | None:
        if not self.has_teacher or self.alpha == 0:
            return None
        with torch.no_grad():
            old = self.teacher(inp)
        self.extra_forwards += len(inp)
        if self.levels > 1:
            total = None
            for z, z_old, cls in zip(out, old, self.old_classes, strict=True):
                if cls.any():
                    d = softmax_distillation(z[:, cls], z_old[:, cls], self.temperature)
                    total = d if total is None else total + d
            return None if total is None else self.alpha * total
        cls = self.old_classes[0]
        if not cls.any():
            return None
        distill = sigmoid_distillation if self.multi_label else softmax_distillation
        return self.alpha * distill(out[:, cls], old[:, cls], self.temperature)

    def on_task_end(self, task: int) -> None:
        self.teacher.load_state_dict(self.model.state_dict())
        self.teacher.eval()
        self.has_teacher = True
        seen = self.level_seen if self.levels > 1 else [self.seen]
        self.old_classes = [s.clone() for s in seen]

    def counters(self) -> dict[str, int]:
        c = super().counters()
        c["extra_forwards"] = self.extra_forwards
        return c
