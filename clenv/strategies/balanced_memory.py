"""GDumb's greedy class-balanced memory (Prabhu et al. 2020, Algorithm 1 "greedy sampler")."""

from __future__ import annotations

import numpy as np
import torch

from clenv.strategies.state import Stateful


class ClassBalancedMemory(Stateful):
    """Keeps at most ``capacity`` samples, balanced over the classes offered so far.

    A sample (x, y) is stored while the memory has a free slot. When it is full, the sample
    is stored only if its class holds fewer than ``capacity / |Y|`` samples (|Y|: classes
    offered so far, y included); it then replaces a sample drawn uniformly (from the seeded
    ``rng``) among those of the currently largest class (ties: the lowest class id).

    ``add`` writes a batch with one vectorised copy; only the admission decisions, which
    depend on each other through the class counts, run per sample, on numpy counts.
    ``version`` grows whenever the stored set changes.
    """

    state_attributes = ("x", "y", "labels", "counts", "offered", "size", "version")

    def __init__(self, capacity: int, shape: tuple[int, ...], dtype: torch.dtype,
                 n_classes: int, rng: np.random.Generator,
                 device: str | torch.device = "cpu") -> None:
        self.capacity = int(capacity)
        self.x = torch.zeros((self.capacity, *shape), dtype=dtype, device=device)
        self.y = torch.zeros(self.capacity, dtype=torch.int64, device=device)
        self.labels = np.full(self.capacity, -1, dtype=np.int64)  # class of each slot
        self.counts = np.zeros(n_classes, dtype=np.int64)  # samples stored per class
        self.offered = np.zeros(n_classes, dtype=bool)  # classes offered so far (Y)
        self.size = 0
        self.version = 0
        self.rng = rng

    def add(self, x: torch.Tensor, y: torch.Tensor) -> int:
        """Offer the rows of (x, y) in order; returns how many were stored."""
        n = len(y)
        if n == 0:
            return 0
        y_np = y.cpu().numpy()
        free = min(n, self.capacity - self.size)
        if free:  # while there is room every sample is kept
            self.x[self.size:self.size + free] = x[:free]
            self.y[self.size:self.size + free] = y[:free]
            self.labels[self.size:self.size + free] = y_np[:free]
            np.add.at(self.counts, y_np[:free], 1)
            self.offered[y_np[:free]] = True
            self.size += free
        src, dst = [], []
        rest = y_np[free:]
        if len(rest):  # fast path: every remaining sample is refused, the memory is unchanged
            fresh = ~self.offered[rest]
            _, first = np.unique(rest, return_index=True)
            is_first = np.zeros(len(rest), dtype=bool)
            is_first[first] = True
            n_offered = int(self.offered.sum()) + np.cumsum(fresh & is_first)  # |Y| at i
            if (self.counts[rest] * n_offered >= self.capacity).all():
                self.offered[rest] = True
                rest = rest[:0]
        for i in range(free, free + len(rest)):  # greedy balancing, one decision per sample
            c = int(y_np[i])
            self.offered[c] = True
            if self.counts[c] * int(self.offered.sum()) >= self.capacity:
                continue  # class c holds its share already: |D_c| >= k / |Y|
            largest = int(self.counts.argmax())
            slots = np.flatnonzero(self.labels == largest)
            slot = int(slots[self.rng.integers(len(slots))])
            self.labels[slot] = c
            self.counts[largest] -= 1
            self.counts[c] += 1
            src.append(i)
            dst.append(slot)
        if src:  # a slot refilled twice in a batch keeps the later sample
            src_a, dst_a = np.asarray(src), np.asarray(dst)
            _, last = np.unique(dst_a[::-1], return_index=True)
            keep = len(dst_a) - 1 - last
            s = torch.from_numpy(src_a[keep]).to(self.x.device)
            d = torch.from_numpy(dst_a[keep]).to(self.x.device)
            self.x[d] = x[s]
            self.y[d] = y[s]
        stored = free + len(src)
        if stored:
            self.version += 1
        return stored

    @property
    def nbytes(self) -> int:
        return self.x.element_size() * self.x.nelement() + self.y.element_size() * self.y.nelement()
