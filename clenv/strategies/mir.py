"""Maximally interfered retrieval (Aljundi et al. 2019, "Online continual learning with
maximally interfered retrieval"): replay the memory samples a step on the stream batch would
hurt most.

Per gradient step: draw C candidates from a reservoir memory, take a virtual SGD step on the
stream batch, theta_v = theta - lr * grad L(stream; theta), score each candidate by
L(x; theta_v) - L(x; theta), and train on the stream batch plus the k top-scored candidates with
L(stream) + L(retrieved) (two means, as the official ER-MIR code and Avalanche's MIRPlugin).
"""

from __future__ import annotations

import torch
from torch.func import functional_call

from clenv.strategies.base import SupervisedStrategy
from clenv.strategies.memory import replay_buffer
from clenv.strategies.registry import STRATEGIES
from clenv.strategies.spec import StrategySpec


def virtual_params(named: dict[str, torch.Tensor], grads: tuple, lr: float
                   ) -> dict[str, torch.Tensor]:
    """theta - lr * g for every parameter with a gradient (others unchanged), detached."""
    return {name: (p - lr * g if g is not None else p).detach()
            for (name, p), g in zip(named.items(), grads, strict=True)}


def interference(loss_before: torch.Tensor, loss_after: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k candidates whose loss increases most under the virtual step."""
    k = min(k, len(loss_before))
    return torch.topk(loss_after - loss_before, k).indices


class MIR(SupervisedStrategy):
    """Reservoir memory; each step replays the k of C candidates with the largest loss
    increase under a virtual SGD step on the stream batch."""

    fields = STRATEGIES["mir"].fields
    state_attributes = ("memory", "extra_forwards")

    def setup(self, spec: StrategySpec) -> None:
        super().setup(spec)
        self.memory = replay_buffer(self)
        self.replay_k = self.params.get("replay_batch_size") or spec.batch_size
        self.n_candidates = self.params.get("candidates", 50)
        self.extra_forwards = 0
        self._n_stream: int | None = None

    def candidates(self) -> tuple[torch.Tensor, torch.Tensor]:
        """min(C, memory size) distinct memory samples, drawn from the seeded generator."""
        n = min(self.n_candidates, self.memory.size)
        idx = torch.from_numpy(self.rng.choice(self.memory.size, n, replace=False))
        idx = idx.to(self.memory.x.device)
        return self.memory.x[idx], self.memory.y[idx]

    def retrieve(self, x: torch.Tensor, y: torch.Tensor, cx: torch.Tensor, cy: torch.Tensor
                 ) -> torch.Tensor:
        """Indices into (cx, cy) of the k most interfered candidates for stream batch (x, y)."""
        model = self.model
        if self._mode_matters:  # the probes must not move batch-norm statistics
            model.eval()
        named = {n: p for n, p in model.named_parameters() if p.requires_grad}
        stream_loss = self.loss(model(self.as_input(x)), y)
        grads = torch.autograd.grad(stream_loss, tuple(named.values()), allow_unused=True)
        lr = self.optimizer.param_groups[0]["lr"]
        if self.lr_schedule is not None:
            lr = self.lr_schedule.lr
        theta_v = virtual_params(named, grads, lr)
        inp = self.as_input(cx)
        with torch.no_grad():
            before = self.loss(model(inp), cy, reduction="none")
            after = self.loss(functional_call(model, theta_v, (inp,), strict=False), cy,
                              reduction="none")
        self.extra_forwards += len(x) + 2 * len(cx)
        return interference(before, after, self.replay_k)

    def loss(self, out, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        n = self._n_stream
        if n is None or reduction != "mean":
            return super().loss(out, y, reduction)
        per = super().loss(out, y, reduction="none")  # mean(stream) + mean(retrieved)
        return per[:n].mean() + per[n:].mean()

    def learn(self, batch: dict, info: dict) -> dict[str, float]:
        x, y = self.stream_batch(batch, info)
        loss = None
        for _ in range(self.n_steps(len(y))):
            if self.memory.size == 0 or len(y) == 0:
                loss = self.step(x, y)
                continue
            cx, cy = self.candidates()
            pick = self.retrieve(x, y, cx, cy)
            self._n_stream = len(y)
            try:
                loss = self.step(torch.cat((x, cx[pick])), torch.cat((y, cy[pick])))
            finally:
                self._n_stream = None
        self.memory.add(x, y)
        return {} if loss is None else {"loss": loss.item()}

    def counters(self) -> dict[str, int]:
        c = super().counters()
        c["buffer_samples"] = self.memory.size
        c["buffer_bytes"] = self.memory.nbytes
        c["extra_forwards"] = self.extra_forwards
        return c
