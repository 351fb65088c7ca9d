"""A-GEM (Chaudhry et al. 2019, "Efficient Lifelong Learning with A-GEM"): before each step a
reference gradient g_ref is computed on a sample of the episodic memory; when the step's
gradient g conflicts with it (g·g_ref < 0) the step uses g - (g·g_ref / g_ref·g_ref) g_ref."""

from __future__ import annotations

import torch

from clenv.strategies.base import SupervisedStrategy
from clenv.strategies.memory import ReservoirBuffer
from clenv.strategies.registry import STRATEGIES
from clenv.strategies.spec import StrategySpec, label_shape
from clenv.strategies.unmasked import UnmaskedOption


def project(g: torch.Tensor, g_ref: torch.Tensor) -> torch.Tensor:
    """A-GEM's projection (paper, eq. 11), branch-free: g unchanged when g·g_ref >= 0, else
    g - (g·g_ref / g_ref·g_ref) g_ref (a zero g_ref leaves g unchanged)."""
    dot = torch.dot(g, g_ref)
    coef = dot.clamp(max=0) / torch.dot(g_ref, g_ref).clamp(min=torch.finfo(g.dtype).tiny)
    return g - coef * g_ref


class AGEM(UnmaskedOption, SupervisedStrategy):
    """A-GEM; the reference gradient uses ``sample_size`` distinct memory samples.

    Memory, with exposed boundaries (the paper's episodic memory of past tasks): each task
    keeps ``memory_size // n_tasks`` of its samples, a uniform sample drawn by reservoir
    sampling while the task streams (``staged``), moved into the memory at the task end, so
    the reference gradient sees past tasks only. With hidden boundaries (online variant): one
    reservoir over the whole stream, updated after every batch.
    """

    fields = STRATEGIES["agem"].fields
    families = ("single_label",)
    state_attributes = ("memory", "staged", "extra_forwards")

    def setup(self, spec: StrategySpec) -> None:
        super().setup(spec)
        capacity = self.params.get("memory_size") or spec.memory_size or 500
        dtype = torch.uint8 if spec.image else torch.float32
        self.staged: ReservoirBuffer | None = None
        if spec.boundaries:
            per_task = max(1, capacity // max(1, spec.n_tasks))
            capacity = per_task * max(1, spec.n_tasks)
            self.staged = ReservoirBuffer(per_task, spec.input_shape, dtype, self.rng,
                                          self.device, label_shape=label_shape(spec))
        self.memory = ReservoirBuffer(capacity, spec.input_shape, dtype, self.rng, self.device,
                                      label_shape=label_shape(spec))
        self.sample_size = int(self.params.get("sample_size") or 256)
        self.trained = [p for p in self.model.parameters() if p.requires_grad]
        self.g_ref: torch.Tensor | None = None
        self.extra_forwards = 0

    def learn(self, batch: dict, info: dict) -> dict[str, float]:
        x, y = self.stream_batch(batch, info)
        loss = None
        for _ in range(self.n_steps(len(y))):
            idx = self.memory.sample_indices(self.sample_size, replace=False)
            self.g_ref = (self.reference_gradient(self.memory.x[idx], self.memory.y[idx])
                          if len(idx) else None)
            loss = self.step(x, y)
        self.g_ref = None
        (self.memory if self.staged is None else self.staged).add(x, y)
        return {} if loss is None else {"loss": loss.item()}

    def on_task_end(self, task: int) -> None:
        """Move the task's staged samples into the episodic memory (exposed boundaries)."""
        super().on_task_end(task)
        staged, memory = self.staged, self.memory
        if staged is None or staged.size == 0:
            return
        n = min(staged.size, memory.capacity - memory.size)
        memory.x[memory.size:memory.size + n] = staged.x[:n]
        memory.y[memory.size:memory.size + n] = staged.y[:n]
        memory.size += n
        memory.n_seen += staged.n_seen
        staged.size = staged.n_seen = 0

    def reference_gradient(self, raw_x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The flattened gradient of the (masked) loss on a memory sample, in train mode."""
        if self._mode_matters:
            self.model.train()
        loss = self.loss(self.model(self.as_input(raw_x)), y)
        grads = torch.autograd.grad(loss, self.trained, allow_unused=True)
        self.extra_forwards += 1
        return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1)
                          for p, g in zip(self.trained, grads, strict=True)])

    def before_update(self) -> None:
        if self.g_ref is None:
            return
        params = self.trained
        g = torch.cat([(torch.zeros_like(p) if p.grad is None else p.grad).reshape(-1)
                       for p in params])
        g = project(g, self.g_ref)
        offset = 0
        for p in params:
            n = p.numel()
            if p.grad is not None:
                p.grad.copy_(g[offset:offset + n].view_as(p))
            offset += n

    def counters(self) -> dict[str, int]:
        c = super().counters()
        c["buffer_samples"] = self.memory.size + (self.staged.size if self.staged else 0)
        c["buffer_bytes"] = self.memory.nbytes + (self.staged.nbytes if self.staged else 0)
        c["extra_forwards"] = self.extra_forwards
        return c
