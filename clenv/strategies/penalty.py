"""The quadratic penalty that EWC, SI and MAS share, and the base class of those three methods.

All three keep, per parameter, an importance ``Omega`` and an anchor ``theta*`` and add

    strength * sum_k sum_i Omega_k,i (theta_i - theta*_k,i)^2

to the loss (k runs over the stored terms: one per task for EWC's ``separate`` mode, a single
running term otherwise). They differ only in how ``Omega`` is estimated (squared gradients,
the path integral, absolute output-norm gradients) and accumulated; see clenv.strategies.ewc,
.si and .mas.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import nn

from clenv.strategies.base import SupervisedStrategy
from clenv.strategies.memory import ReservoirBuffer
from clenv.strategies.spec import StrategySpec, label_shape
from clenv.strategies.state import Stateful


class _QuadraticFn(torch.autograd.Function):
    """The penalty as one autograd node: forward forms h = sum_k Omega_k (theta - theta*_k)
    per parameter (fused foreach operations when K = 1) and the value sum h (theta - theta*);
    backward returns 2 h times the incoming gradient. Far fewer dispatched operations than
    letting autograd trace sub, square, mul and sum per parameter."""

    @staticmethod
    def forward(ctx, quad: QuadraticPenalty, *params: torch.Tensor) -> torch.Tensor:
        half, value = quad.half_gradient_and_value(list(params))
        ctx.half = half
        return value

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        return (None, *torch._foreach_mul(ctx.half, grad_out * 2))


class QuadraticPenalty(Stateful):
    """Importance-weighted squared distance to anchors, ``sum_k sum_i Omega_k,i (theta_i -
    theta*_k,i)^2``, for a fixed list of parameters. Per parameter, ``importances[j]`` and
    ``anchors[j]`` have shape (K, *parameter shape); K = 0 means no penalty yet."""

    state_attributes = ("importances", "anchors")

    def __init__(self, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.importances: list[torch.Tensor] = []
        self.anchors: list[torch.Tensor] = []
        self._single: tuple[list[torch.Tensor], list[torch.Tensor]] | None = None

    @property
    def active(self) -> bool:
        return bool(self.importances)

    @property
    def n_terms(self) -> int:
        return len(self.importances[0]) if self.importances else 0

    def replace(self, importances: list[torch.Tensor], anchors: list[torch.Tensor]) -> None:
        """Keep a single term (online EWC, SI, MAS)."""
        self.importances = [i.detach().unsqueeze(0).clone() for i in importances]
        self.anchors = [a.detach().unsqueeze(0).clone() for a in anchors]
        self._views()

    def append(self, importances: list[torch.Tensor], anchors: list[torch.Tensor]) -> None:
        """Add one more term (EWC's separate mode: one per task)."""
        if not self.active:
            self.replace(importances, anchors)
            return
        self.importances = [torch.cat((o, i.detach().unsqueeze(0)))
                            for o, i in zip(self.importances, importances, strict=True)]
        self.anchors = [torch.cat((o, a.detach().unsqueeze(0)))
                        for o, a in zip(self.anchors, anchors, strict=True)]
        self._views()

    def _views(self) -> None:
        """With one term, the (K = 1) tensors viewed at the parameters' shapes."""
        self._single = None
        if self.n_terms == 1:
            self._single = ([i[0] for i in self.importances], [a[0] for a in self.anchors])

    def __call__(self, params: list[torch.Tensor]) -> torch.Tensor:
        """The penalty at ``params`` (differentiable)."""
        return _QuadraticFn.apply(self, *params)

    @torch.no_grad()
    def half_gradient_and_value(self, params: list[torch.Tensor]
                                ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """h = sum_k Omega_k (theta - theta*_k) per parameter, and the penalty sum h(...)"""
        params = [p.detach() for p in params]
        if self._single is not None:
            omega, anchor = self._single
            diff = torch._foreach_sub(params, anchor)
            half = torch._foreach_mul(diff, omega)
            torch._foreach_mul_(diff, half)
            value = torch.cat([d.reshape(-1) for d in diff]).sum()
            return half, value
        half, value = [], params[0].new_zeros(())
        for p, imp, anchor in zip(params, self.importances, self.anchors, strict=True):
            diff = p - anchor
            weighted = imp * diff
            value = value + (weighted * diff).sum()
            half.append(weighted.sum(0))
        return half, value

    def gradient(self, params: list[torch.Tensor]) -> list[torch.Tensor]:
        """d penalty / d theta = 2 sum_k Omega_k (theta - theta*_k), per parameter."""
        if not self.active:
            return [torch.zeros_like(p) for p in params]
        return torch._foreach_mul(self.half_gradient_and_value(params)[0], 2.0)

    @property
    def nbytes(self) -> int:
        return sum(t.element_size() * t.nelement() for t in (*self.importances, *self.anchors))

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)  # restored tensors come on the checkpoint's device
        self.importances = [t.to(self.device) for t in self.importances]
        self.anchors = [t.to(self.device) for t in self.anchors]
        self._views()


def gradient_importance(params: list[torch.Tensor],
                        batches: Iterator[tuple[torch.Tensor, torch.Tensor]],
                        objective: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                        magnitude: str) -> list[torch.Tensor]:
    """Per parameter, the mean over batches of ``g^2`` (magnitude "square": EWC's empirical
    Fisher) or ``|g|`` ("abs": MAS), where g is the gradient of ``objective(x, y)`` on one
    batch (batch-level gradients, as Avalanche 0.6's EWC and MAS plug-ins)."""
    acc = [torch.zeros_like(p) for p in params]
    n = 0
    for x, y in batches:
        grads = torch.autograd.grad(objective(x, y), params, allow_unused=True)
        for a, g in zip(acc, grads, strict=True):
            if g is not None:
                a.add_(g.square() if magnitude == "square" else g.abs())
        n += 1
    return [a / max(n, 1) for a in acc]


def per_sample_importance(model: nn.Module,
                          batches: Iterator[tuple[torch.Tensor, torch.Tensor]],
                          objective: Callable[[object, torch.Tensor], torch.Tensor],
                          magnitude: str) -> list[torch.Tensor]:
    """Per parameter, the mean over samples of ``g^2`` or ``|g|`` with g the gradient of
    ``objective(model output on one sample, its label row)``: the papers' per-sample
    estimates (EWC's empirical Fisher, MAS's Omega), vectorised with torch.func (vmap of grad)."""
    from torch.func import functional_call, grad, vmap

    names = [n for n, _ in model.named_parameters()]
    params = {n: p.detach() for n, p in model.named_parameters()}

    def one(ps: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return objective(functional_call(model, ps, (x.unsqueeze(0),)), y.unsqueeze(0))

    per_sample = vmap(grad(one), in_dims=(None, 0, 0))
    acc = {n: torch.zeros_like(p) for n, p in params.items()}
    n_samples = 0
    for x, y in batches:
        grads = per_sample(params, x, y)
        for n in names:
            g = grads[n]
            acc[n].add_((g.square() if magnitude == "square" else g.abs()).sum(0))
        n_samples += len(x)
    return [acc[n] / max(n_samples, 1) for n in names]


class PenaltyStrategy(SupervisedStrategy):
    """SGD on the stream with ``strength * QuadraticPenalty`` added to every step's loss.

    Subclasses set ``strength_key`` (their YAML name of the strength) and implement
    ``consolidate(task)``, called at each task end. Those that estimate importance from the
    task's data set ``keeps_task_samples``: the first exposure of every stream sample of the
    current task is kept in a ReservoirBuffer, emptied at each task start, whose capacity is
    ``importance_samples`` (default: the longest task, so the whole task is kept in stream
    order and no draw is made). Those samples are buffer memory in the budget counters.
    Consolidation needs the task ends: with hidden boundaries the strategy is refused.
    """

    strength_key = "strength"
    keeps_task_samples = False
    state_attributes = ("quad", "task_memory", "extra_forwards")

    def setup(self, spec: StrategySpec) -> None:
        if not spec.boundaries:
            from clenv.errors import ConfigError

            raise ConfigError("strategy.name", f"{type(self).__name__} consolidates at task "
                              "ends and needs them exposed",
                              "set scenario.boundaries: exposed")
        super().setup(spec)
        self.strength = float(self.param(self.strength_key))
        self.quad = QuadraticPenalty(self.device)
        self.extra_forwards = 0
        self.task_memory = None
        self.per_sample = self.params.get("importance_grads") == "sample"
        if self.per_sample and spec.levels > 1:
            from clenv.errors import ConfigError

            raise ConfigError("strategy.importance_grads", "per-sample gradients need a "
                              "single-head model, not per-level heads", "use batch")
        if self.keeps_task_samples:
            ends = [0, *spec.task_ends]
            longest = max((int(d) for d in np.diff(ends)), default=spec.stream_length)
            capacity = self.param("importance_samples") or max(longest, 1)
            dtype = torch.uint8 if spec.image else torch.float32
            self.task_memory = ReservoirBuffer(capacity, spec.input_shape, dtype, self.rng,
                                               self.device, label_shape=label_shape(spec))

    def param(self, name: str):
        """A YAML parameter, or its registry default when the strategy is built in Python."""
        value = self.params.get(name)
        return self.fields[name].default if value is None else value

    def params_list(self) -> list[nn.Parameter]:
        return list(self.model.parameters())

    def learn(self, batch: dict, info: dict) -> dict[str, float]:
        x, y = self.stream_batch(batch, info)
        loss = None
        for _ in range(self.n_steps(len(y))):
            loss = self.step(x, y)
        if self.task_memory is not None and len(y):
            first = info.get("first_exposure")
            if first is None:
                self.task_memory.add(x, y)
            else:
                keep = torch.from_numpy(first[info["valid"]]).to(x.device)
                self.task_memory.add(x[keep], y[keep])
        return {} if loss is None else {"loss": loss.item()}

    def penalty(self, inp: torch.Tensor, out, y: torch.Tensor) -> torch.Tensor | None:
        if not self.quad.active:
            return None
        return self.strength * self.quad(self.params_list())

    def on_task_start(self, task: int) -> None:
        super().on_task_start(task)
        if self.task_memory is not None:
            self.task_memory.size = 0
            self.task_memory.n_seen = 0

    def on_task_end(self, task: int) -> None:
        self.consolidate(task)

    def consolidate(self, task: int) -> None:
        raise NotImplementedError

    def importance(self, objective: Callable, magnitude: str) -> list[torch.Tensor]:
        """Mean ``g^2`` or ``|g|`` over the kept task samples: batch-level gradients of
        ``objective(output, y)`` (Avalanche), or per-sample ones (``importance_grads: sample``)."""
        if self.per_sample:
            return per_sample_importance(self.model, self.task_batches(), objective, magnitude)
        model = self.model
        return gradient_importance(self.params_list(), self.task_batches(),
                                   lambda x, y: objective(model(x), y), magnitude)

    def task_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The kept samples of the task as (model input, y) batches of the scenario's batch
        size, in the order kept (Avalanche: a non-shuffled loader of train_mb_size)."""
        mem = self.task_memory
        bs = self.spec.batch_size
        for start in range(0, mem.size, bs):
            x = mem.x[start:start + bs]
            self.extra_forwards += len(x)
            yield self.as_input(x), mem.y[start:start + bs]

    def counters(self) -> dict[str, int]:
        c = super().counters()
        c["extra_forwards"] = self.extra_forwards
        if self.task_memory is not None:
            mem = self.task_memory
            row = (mem.x.element_size() * math.prod(mem.x.shape[1:])
                   + mem.y.element_size() * math.prod(mem.y.shape[1:]))
            c["buffer_samples"] = mem.size
            c["buffer_bytes"] = mem.size * row
        return c
