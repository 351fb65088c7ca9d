"""A class-balanced replay memory that evicts the least important sample of the largest class
(the CLIB memory of Koh et al. 2022, used by HLE's PL-FMS), optionally with hierarchy-aware
pseudo-labels counted towards the coarse classes (Lee et al. 2023).

Classes are *units*: a label at a level (``unit = level_offset + label``). When the memory is
full and a sample of unit u arrives: freq = own counts (+ pseudo counts with PL), freq[u] += 1,
the class c with the largest freq among those that own samples in memory is chosen (ties: the
class that entered the memory first, the official ``np.argmax`` over classes in order of
appearance), and its own sample with the lowest importance is replaced (ties: the sample that
joined the class earliest, the official per-class index list). So with PL a coarse class
whose fine descendants are well represented counts as large, and gives up its own
(coarse-labelled) samples first.

Importance follows the released code (i-Blurry's and HLE's ``utils/data_loader.py``,
``MemoryDataset.update_loss_history`` and ``replace_sample``): a new sample starts at the mean
importance of its own class's other samples (0 for the first sample of a class in a free slot,
the memory-wide mean when it is the first of its class and replaces another sample); memory
batches are drawn without replacement and every drawn slot is recorded; at each update the
recorded slots' importance accumulates, without decay, the drop of the memory's loss (see
``update_importance``).
"""

from __future__ import annotations

import numpy as np
import torch


class ImportanceMemory:
    """Preallocated tensors (x, y) plus numpy bookkeeping (unit, pseudo units, importance)."""

    def __init__(self, capacity: int, shape: tuple[int, ...], dtype: torch.dtype, n_units: int,
                 n_levels: int, rng: np.random.Generator, device: str | torch.device = "cpu",
                 label_shape: tuple[int, ...] = (), pseudo_labels: bool = True) -> None:
        self.capacity = int(capacity)
        self.x = torch.zeros((self.capacity, *shape), dtype=dtype, device=device)
        self.y = torch.zeros((self.capacity, *label_shape), dtype=torch.int64, device=device)
        self.unit = np.full(self.capacity, -1, dtype=np.int64)
        self.pseudo = np.full((self.capacity, max(n_levels - 1, 0)), -1, dtype=np.int64)
        self.importance = np.zeros(self.capacity)
        self.arrival = np.zeros(self.capacity, dtype=np.int64)  # when a slot joined its class
        self.unit_arrival = np.full(n_units, -1, dtype=np.int64)  # first put of each unit
        self.clock = 0
        self.counts = np.zeros(n_units, dtype=np.int64)
        self.pseudo_counts = np.zeros(n_units, dtype=np.int64)
        self.use_pseudo = pseudo_labels and n_levels > 1
        self.size = 0
        self.rng = rng
        self.replaced: list[int] = []  # slots overwritten since the last importance update
        self.drawn = np.zeros(0, dtype=np.int64)  # slots drawn into batches since then

    def frequency(self) -> np.ndarray:
        return self.counts + self.pseudo_counts if self.use_pseudo else self.counts.copy()

    def choose_slot(self, unit: int) -> int:
        """The slot a new sample of ``unit`` goes to (a free one while there is one).

        When full: freq = own counts (+ pseudo counts with PL) with the newcomer added; among
        the classes that own samples in memory the one with the largest freq is chosen (ties:
        the class that entered the memory first) and its least important own sample is
        replaced (ties: the one that joined the class first), as ``samplewise_importance_memory``
        of i-Blurry's clib.py and HLE's pl_fms.py (np.argmax / np.argmin over lists kept in
        order of arrival)."""
        if self.size < self.capacity:
            return self.size
        freq = self.frequency()
        freq[unit] += 1
        eligible = self.counts > 0
        best = freq[eligible].max()
        top = np.flatnonzero(eligible & (freq == best))
        cls = int(top[np.argmin(self.unit_arrival[top])])
        cand = np.flatnonzero(self.unit[: self.size] == cls)
        imp = self.importance[cand]
        low = cand[imp == imp.min()]
        return int(low[np.argmin(self.arrival[low])])

    def put(self, slot: int, x: torch.Tensor, y: torch.Tensor, unit: int,
            pseudo: np.ndarray) -> None:
        """Write a sample into ``slot`` (appending when slot == size).

        Its importance starts at the mean importance of the other samples of its unit; a unit's
        first sample starts at 0 in a free slot and at the mean over the whole memory (the
        replaced sample included) when it replaces one (``MemoryDataset.replace_sample``)."""
        same = np.flatnonzero(self.unit[: self.size] == unit)
        if slot < self.size:
            self.counts[self.unit[slot]] -= 1
            old = self.pseudo[slot]
            np.subtract.at(self.pseudo_counts, old[old >= 0], 1)
            self.replaced.append(slot)
            same = same[same != slot]
            self.importance[slot] = (self.importance[same].mean() if len(same)
                                     else self.importance[: self.size].mean())
        else:
            self.importance[slot] = self.importance[same].mean() if len(same) else 0.0
            self.size += 1
        if self.unit_arrival[unit] < 0:
            self.unit_arrival[unit] = self.clock
        self.arrival[slot] = self.clock
        self.clock += 1
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
        """min(k, size) distinct slots drawn uniformly without replacement (the official
        ``get_batch``: np.random.choice(..., replace=False)); recorded for the next importance
        update."""
        k = min(int(k), self.size)
        if k <= 0:
            return np.zeros(0, dtype=np.int64)
        slots = self.rng.choice(self.size, size=k, replace=False).astype(np.int64)
        self.record_draw(slots)
        return slots

    def record_draw(self, slots: np.ndarray) -> None:
        """Note slots trained on from memory (the importance update credits them)."""
        self.drawn = np.concatenate([self.drawn, np.asarray(slots, dtype=np.int64)])

    def update_importance(self, loss_prev: np.ndarray | None, loss_now: np.ndarray,
                          ema: float) -> None:
        """The released importance update (``MemoryDataset.update_loss_history``):

            delta = mean over slots kept since the last update of (loss_now - loss_prev)
                    (0 when there are no previous losses),
            s[P] -= (1 - ema) * (delta - mean(s[P]) / |P|)

        P: the slots drawn into memory batches since the last update, repeats included in the
        mean and in |P|; each slot of P is changed once. Slots replaced since then and slots
        beyond the previous losses are left out of delta; when no slot is left (the official
        code would write NaN) nothing changes. Accumulates without decay: a slot never drawn
        keeps its importance. The record of draws and replacements is cleared either way."""
        drawn, replaced = self.drawn, self.replaced
        self.drawn, self.replaced = np.zeros(0, dtype=np.int64), []
        if len(drawn) == 0:
            return
        if loss_prev is None or len(loss_prev) == 0:
            delta = 0.0
        else:
            m = min(len(loss_prev), len(loss_now))
            kept = np.ones(m, dtype=bool)
            kept[[s for s in replaced if s < m]] = False
            if not kept.any():
                return
            delta = float(np.mean((np.asarray(loss_now[:m], dtype=np.float64)
                                   - loss_prev[:m])[kept]))
        step = delta - float(self.importance[drawn].mean()) / len(drawn)
        self.importance[np.unique(drawn)] -= (1.0 - ema) * step

    @property
    def nbytes(self) -> int:
        return (self.x.element_size() * self.x.nelement()
                + self.y.element_size() * self.y.nelement())
