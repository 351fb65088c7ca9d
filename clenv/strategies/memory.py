"""Replay memory: a preallocated tensor buffer filled by reservoir sampling (Vitter 1985)."""

from __future__ import annotations

import numpy as np
import torch

from clenv.strategies.spec import StrategySpec, label_shape
from clenv.strategies.state import Stateful


class ReservoirBuffer(Stateful):
    """Keeps a uniform sample of every (x, y) ever offered, in preallocated tensors (y may be
    a row per sample, e.g. (label, level) for hierarchical streams: ``label_shape``).

    ``add`` is vectorised over the batch: the i-th offered sample overall goes to a free slot
    while there is one, else replaces slot j ~ U{0..i} when j < capacity (the later of two
    samples drawing the same slot wins, as in the sequential algorithm). ``sample`` draws
    indices with replacement. Every draw comes from the seeded numpy generator ``rng`` (the
    owner's, which checkpoints it).

    ``logit_dim`` adds a float32 store of one logit row per sample (DER's dark knowledge),
    written by ``add(x, y, logits)`` into the same slots as x and y (index it with
    ``sample_indices``); without it the buffer and its draws are exactly those of ER.
    """

    state_attributes = ("x", "y", "logits", "size", "n_seen")

    def __init__(self, capacity: int, shape: tuple[int, ...], dtype: torch.dtype,
                 rng: np.random.Generator, device: str | torch.device = "cpu",
                 label_shape: tuple[int, ...] = (), logit_dim: int | None = None) -> None:
        self.capacity = int(capacity)
        self.x = torch.zeros((self.capacity, *shape), dtype=dtype, device=device)
        self.y = torch.zeros((self.capacity, *label_shape), dtype=torch.int64, device=device)
        self.logits = (None if logit_dim is None else
                       torch.zeros((self.capacity, logit_dim), dtype=torch.float32,
                                   device=device))
        self.size = 0
        self.n_seen = 0
        self.rng = rng

    def add(self, x: torch.Tensor, y: torch.Tensor, logits: torch.Tensor | None = None) -> None:
        n = len(x)
        if n == 0:
            return
        store = self.logits is not None and logits is not None
        free = min(n, self.capacity - self.size)
        if free:
            self.x[self.size:self.size + free] = x[:free]
            self.y[self.size:self.size + free] = y[:free]
            if store:
                self.logits[self.size:self.size + free] = logits[:free]
            self.size += free
        if free < n:
            seen = self.n_seen + np.arange(free, n)
            slots = self.rng.integers(0, seen + 1)
            keep = np.flatnonzero(slots < self.capacity)
            if len(keep):
                # last occurrence of each slot wins
                rev_slots = slots[keep][::-1]
                _, first = np.unique(rev_slots, return_index=True)
                chosen = keep[::-1][first]
                src = torch.from_numpy(chosen + free).to(self.x.device)
                dst = torch.from_numpy(slots[chosen]).to(self.x.device)
                self.x[dst] = x[src]
                self.y[dst] = y[src]
                if store:
                    self.logits[dst] = logits[src]
        self.n_seen += n

    def sample(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """k samples drawn uniformly with replacement (empty tensors while the buffer is)."""
        if self.size == 0:
            return self.x[:0], self.y[:0]
        idx = torch.from_numpy(self.rng.integers(0, self.size, k))
        return self.x[idx], self.y[idx]

    def sample_indices(self, k: int, replace: bool = True) -> torch.Tensor:
        """Slots of k samples drawn uniformly, with replacement or (replace=False) min(k, size)
        distinct ones; empty while the buffer is. Index x, y and logits with them."""
        if self.size == 0:
            return torch.zeros(0, dtype=torch.int64)
        if replace:
            return torch.from_numpy(self.rng.integers(0, self.size, k))
        return torch.from_numpy(self.rng.choice(self.size, min(k, self.size), replace=False))

    @property
    def nbytes(self) -> int:
        n = self.x.element_size() * self.x.nelement() + self.y.element_size() * self.y.nelement()
        if self.logits is not None:
            n += self.logits.element_size() * self.logits.nelement()
        return n


def memory_capacity(params: dict, spec: StrategySpec) -> int:
    """A replay strategy's memory in samples: its ``memory_size``, else the scenario's
    ``budget.memory_size``, else 500."""
    return params.get("memory_size") or spec.memory_size or 500


def replay_buffer(strategy, capacity: int | None = None, **kwargs) -> ReservoirBuffer:
    """The reservoir a replay strategy keeps after ``setup(spec)``: ``capacity`` samples
    (default :func:`memory_capacity`) of the spec's input (uint8 for images) and label rows,
    drawing from the strategy's generator on its device; ``kwargs`` go to ReservoirBuffer."""
    spec = strategy.spec
    return ReservoirBuffer(capacity or memory_capacity(strategy.params, spec), spec.input_shape,
                           torch.uint8 if spec.image else torch.float32, strategy.rng,
                           strategy.device, label_shape=label_shape(spec), **kwargs)
