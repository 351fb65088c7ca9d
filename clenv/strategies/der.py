"""DER and DER++ (Buzzega et al. 2020, "Dark Experience for General Continual Learning: a
Strong, Simple Baseline"). A reservoir memory keeps each sample with the logits the model gave
it when it was trained on it (the step's forward pass, before the update; the last step's when
``updates_per_sample`` gives several, a forward pass of its own when it gives none). Each step
adds

    DER:   alpha * MSE(f(x'), z')            (x', z') a memory batch with its stored logits
    DER++: + beta * L(f(x''), y'')           (x'', y'') a second, independent memory batch

to the loss on the stream batch (L: clenv's masked cross-entropy; multi-label: BCE on the
visible labels; hierarchical: each row at its level's head, logits of all levels stored side by
side). Memory batches are drawn without replacement, as the official code (mammoth) does; both
memory batches go through one forward pass.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from clenv.strategies.base import SupervisedStrategy
from clenv.strategies.memory import replay_buffer
from clenv.strategies.registry import STRATEGIES
from clenv.strategies.spec import StrategySpec
from clenv.strategies.unmasked import UnmaskedOption


def flat_logits(out) -> torch.Tensor:
    """The model output as one logit row per sample (levels side by side)."""
    return torch.cat(list(out), 1) if isinstance(out, (list, tuple)) else out


def rows(out, sel: slice):
    """Rows of a model output: a tensor, or a list of per-level tensors (hierarchical)."""
    return [o[sel] for o in out] if isinstance(out, (list, tuple)) else out[sel]


class DER(UnmaskedOption, SupervisedStrategy):
    """Stream loss + alpha * logit MSE on a memory batch; memory updated after the steps."""

    fields = STRATEGIES["der"].fields
    families = ("single_label",)
    state_attributes = ("memory", "extra_forwards")
    beta = 0.0

    def setup(self, spec: StrategySpec) -> None:
        super().setup(spec)
        width = sum(spec.level_sizes) or spec.n_classes  # one logit per class and level
        self.memory = replay_buffer(self, logit_dim=width)
        self.replay_k = self.params.get("replay_batch_size") or spec.batch_size
        self.alpha = float(self.params.get("alpha", self.fields["alpha"].default))
        if "beta" in self.fields:
            self.beta = float(self.params.get("beta", self.fields["beta"].default))
        self.stream_logits: torch.Tensor | None = None
        self.extra_forwards = 0

    def learn(self, batch: dict, info: dict) -> dict[str, float]:
        x, y = self.stream_batch(batch, info)
        loss = None
        for _ in range(self.n_steps(len(y))):
            loss = self.step(x, y)
        if self.stream_logits is None and len(y):  # no step on this batch (step credit < 1)
            if self._mode_matters:
                self.model.train()
            with torch.no_grad():
                self.stream_logits = flat_logits(self.model(self.as_input(x)))
            self.extra_forwards += 1
        if self.stream_logits is not None:
            self.memory.add(x, y, self.stream_logits)
            self.stream_logits = None
        return {} if loss is None else {"loss": loss.item()}

    def penalty(self, inp: torch.Tensor, out, y: torch.Tensor) -> torch.Tensor | None:
        """alpha * MSE on stored logits (+ beta * loss on a second memory batch: DER++)."""
        self.stream_logits = flat_logits(out).detach()
        memory = self.memory
        if memory.size == 0:
            return None
        first = memory.sample_indices(self.replay_k, replace=False)
        second = (memory.sample_indices(self.replay_k, replace=False) if self.beta
                  else first[:0])
        k = len(first)
        if self._mode_matters:
            self.model.train()
        mem_out = self.model(self.as_input(memory.x[torch.cat((first, second))]))
        self.extra_forwards += 1
        self.samples_processed += len(first) + len(second)  # memory rows trained on
        term = self.alpha * F.mse_loss(flat_logits(rows(mem_out, slice(0, k))),
                                       memory.logits[first])
        if self.beta:
            term = term + self.beta * self.loss(rows(mem_out, slice(k, None)), memory.y[second])
        return term

    def counters(self) -> dict[str, int]:
        c = super().counters()
        c["buffer_samples"] = self.memory.size
        c["buffer_bytes"] = self.memory.nbytes
        c["extra_forwards"] = self.extra_forwards
        return c


class DERPlusPlus(DER):
    """DER with beta * loss on the labels of a second memory batch."""

    fields = STRATEGIES["derpp"].fields
    families = ("single_label", "multi_label", "hierarchical")
