"""ER-ACE (Caccia et al. 2022, "New Insights on Reducing Abrupt Representation Change in Online
Continual Learning"): experience replay with an asymmetric cross-entropy. The stream
("incoming") rows' loss sees only the classes present in the stream batch, so new data does
not push down the logits of the classes in memory; the replay rows keep the usual loss over
every seen class. Memory: a reservoir buffer, as ER.

Per family, "present" is:
- single-label: the labels of the batch's stream rows;
- hierarchical: per level, the labels of the stream rows at that level (each row's loss is the
  cross-entropy at its own level's head over that level's present classes);
- multi-label: the classes with a visible positive label in at least one stream row; a stream
  row's BCE runs over its visible labels of present classes only (a visible negative of a
  class absent from the batch is left out), the replay rows' over all their visible labels.

The loss is the mean over all rows of the batch (stream and replay), so with as many replay
rows as stream rows it is (L_incoming + L_replay) / 2, Avalanche's ACECriterion.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from clenv.errors import ConfigError
from clenv.strategies.base import SupervisedStrategy
from clenv.strategies.memory import replay_buffer
from clenv.strategies.registry import STRATEGIES
from clenv.strategies.spec import StrategySpec
from clenv.strategies.unmasked import UnmaskedOption


class ERACE(UnmaskedOption, SupervisedStrategy):
    """Stream batch + replay batch per step, the stream rows' loss over the present classes."""

    fields = STRATEGIES["er_ace"].fields
    state_attributes = ("memory",)

    def setup(self, spec: StrategySpec) -> None:
        augment = self.params.get("augment") or {}
        if augment.get("cutmix"):
            raise ConfigError("strategy.augment.cutmix", "ER-ACE restricts the stream rows' "
                              "loss to the classes of the stream batch; CutMix would mix "
                              "stream rows with replay rows", "set strategy.augment.cutmix: 0")
        super().setup(spec)
        self.memory = replay_buffer(self)
        self.replay_k = self.params.get("replay_batch_size") or spec.batch_size
        self.n_stream: int | None = None

    def learn(self, batch: dict, info: dict) -> dict[str, float]:
        x, y = self.stream_batch(batch, info)
        loss = None
        for _ in range(self.n_steps(len(y))):
            mx, my = self.memory.sample(self.replay_k)
            self.n_stream = len(y)
            loss = self.step(torch.cat((x, mx)), torch.cat((y, my)))
        self.n_stream = None
        self.memory.add(x, y)
        return {} if loss is None else {"loss": loss.item()}

    def loss(self, out, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        """Per row: the incoming loss on the first ``n_stream`` rows, the usual masked loss on
        the replay rows after them; their mean (or the rows with reduction="none")."""
        n = self.n_stream
        if n is None:
            return super().loss(out, y, reduction)
        head, tail = _rows(out, slice(0, n)), _rows(out, slice(n, None))
        per = self.incoming_loss(head, y[:n])
        if len(y) > n:
            per = torch.cat((per, super().loss(tail, y[n:], reduction="none")))
        return per.mean() if reduction == "mean" else per

    def incoming_loss(self, out, y: torch.Tensor) -> torch.Tensor:
        """Per-row loss of stream rows over the classes present in them (module doc)."""
        if self.multi_label:
            present = (y[:, 0] * y[:, 1]).any(0)
            mask = (y[:, 1].bool() & present).float()
            per = F.binary_cross_entropy_with_logits(out, y[:, 0].float(), reduction="none")
            return (per * mask).sum(1) / mask.sum(1).clamp(min=1)
        if self.levels == 1:
            present = torch.zeros(out.shape[1], dtype=torch.bool, device=out.device)
            present[y] = True
            return F.cross_entropy(torch.where(present, out, self.neg_inf), y, reduction="none")
        level = y[:, 1]
        per = torch.zeros(len(y), device=y.device)
        for lv in torch.unique(level).tolist():
            rows = level == lv
            labels = y[rows, 0]
            present = torch.zeros(out[lv].shape[1], dtype=torch.bool, device=y.device)
            present[labels] = True
            logits = torch.where(present, out[lv][rows], self.neg_inf)
            per[rows] = F.cross_entropy(logits, labels, reduction="none")
        return per

    def counters(self) -> dict[str, int]:
        c = super().counters()
        c["buffer_samples"] = self.memory.size
        c["buffer_bytes"] = self.memory.nbytes
        return c


def _rows(out, rows: slice):
    """Rows of a model output: a tensor, or a list of per-level tensors (hierarchical)."""
    return [o[rows] for o in out] if isinstance(out, (list, tuple)) else out[rows]
