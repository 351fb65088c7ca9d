"""A class-balanced replay memory that evicts the least important sample of the largest class
(the CLIB memory of Koh et al. 2022, used by HLE's PL-FMS), optionally with hierarchy-aware
pseudo-labels counted towards the coarse classes (Lee et al. 2023).

Classes are *units*: a label at a level (``unit = level_offset + label``). When the memory is
full and a sample of unit u arrives: freq = own counts (+ pseudo counts with PL), freq[u] += 1,
the class c with the largest freq among those that own samples in memory is chosen (ties:
seeded choice), and its own sample with the lowest importance is replaced. So with PL a coarse
class whose fine descendants are well represented counts as large, and gives up its own
(coarse-labelled) samples first. Importance is an EMA of the decrease of the memory's mean
loss observed after training on the sample (see ``update_importance``).
"""

from __future__ import annotations

import numpy as np
import torch

from clenv.strategies.state import Stateful


class ImportanceMemory(Stateful):
    """Preallocated tensors (x, y) plus numpy bookkeeping (unit, pseudo units, importance).
    ``rng`` is the owner's generator (the owner checkpoints it)."""

    state_attributes = ("x", "y", "unit", "pseudo", "importance", "counts", "pseudo_counts",
                        "size", "replaced")

    def __init__(self, capacity: int, shape: tuple[int, ...], dtype: torch.dtype, n_units: int,
                 n_levels: int, rng: np.random.Generator, device: str | torch.device = "cpu",
                 label_shape: tuple[int, ...] = (), pseudo_labels: bool = True) -> None:
        self.capacity = int(capacity)
        self.x = torch.zeros((self.capacity, *shape), dtype=dtype, device=device)
        self.y = torch.zeros((self.capacity, *label_shape), dtype=torch.int64, device=device)
        self.unit = np.full(self.capacity, -1, dtype=np.int64)
        self.pseudo = np.full((self.capacity, max(n_levels - 1, 0)), -1, dtype=np.int64)
        self.importance = np.zeros(self.capacity)
        self.counts = np.zeros(n_units, dtype=np.int64)
        self.pseudo_counts = np.zeros(n_units, dtype=np.int64)
        self.use_pseudo = pseudo_labels and n_levels > 1
        self.size = 0
        self.rng = rng
        self.replaced: list[int] = []  # slots overwritten since the last importance update

    def frequency(self) -> np.ndarray:
        return self.counts + self.pseudo_counts if self.use_pseudo else self.counts.copy()

    def choose_slot(self, unit: int) -> int:
        """The slot a new sample of ``unit`` goes to (a free one while there is one).

        When full: freq = own counts (+ pseudo counts with PL) with the newcomer added; among
        the classes that own samples in memory the one with the largest freq is chosen (ties:
        seeded choice) and its least important own sample is replaced."""
        if self.size < self.capacity:
            return self.size
        freq = self.frequency()
        freq[unit] += 1
        eligible = self.counts > 0
        best = freq[eligible].max()
        top = np.flatnonzero(eligible & (freq == best))
        cls = int(top[0] if len(top) == 1 else self.rng.choice(top))
        cand = np.flatnonzero(self.unit[: self.size] == cls)
        return int(cand[np.argmin(self.importance[cand])])

    def put(self, slot: int, x: torch.Tensor, y: torch.Tensor, unit: int,
            pseudo: np.ndarray) -> None:
        """Write a sample into ``slot`` (appending when slot == size)."""
        if slot < self.size:
            self.counts[self.unit[slot]] -= 1
            old = self.pseudo[slot]
            np.subtract.at(self.pseudo_counts, old[old >= 0], 1)
            self.replaced.append(slot)
            self.importance[slot] = self.importance[: self.size].mean()
        else:
            self.importance[slot] = self.importance[: self.size].mean() if self.size else 0.0
            self.size += 1
        self.x[slot] = x
        self.y[slot] = y
        self.unit[slot] = unit
        self.counts[unit] += 1
        self.pseudo[slot] = pseudo
        np.add.at(self.pseudo_counts, pseudo[pseudo >= 0], 1)

    def set_pseudo(self, pseudo: np.ndarray) -> None:
        """Replace the pseudo units of the stored samples (size rows) and recount them."""
        self.pseudo[: self.size] = pseudo
        self.pseudo_counts[:] = 0
        p = pseudo[pseudo >= 0]
        np.add.at(self.pseudo_counts, p, 1)

    def sample(self, k: int) -> np.ndarray:
        """k slots drawn uniformly with replacement (empty while the memory is)."""
        if self.size == 0 or k <= 0:
            return np.zeros(0, dtype=np.int64)
        return self.rng.integers(0, self.size, k)

    def update_importance(self, loss_prev: np.ndarray | None, loss_now: np.ndarray,
                          trained: np.ndarray, ema: float) -> None:
        """importance[s] <- ema * importance[s] + (1 - ema) * decrease for every slot s trained
        on since the last update, where decrease = mean over unchanged slots of
        (loss_prev - loss_now), the drop of the memory's loss over that period."""
        n = self.size
        if loss_prev is None or len(trained) == 0:
            self.replaced = []
            return
        same = np.ones(n, dtype=bool)
        same[[s for s in self.replaced if s < n]] = False
        m = min(len(loss_prev), n)
        same[m:] = False
        if same.any():
            decrease = float(np.mean((loss_prev[:m] - loss_now[:m])[same[:m]]))
            t = np.unique(trained[trained < n])
            self.importance[t] = ema * self.importance[t] + (1 - ema) * decrease
        self.replaced = []

    @property
    def nbytes(self) -> int:
        return (self.x.element_size() * self.x.nelement()
                + self.y.element_size() * self.y.nelement())
