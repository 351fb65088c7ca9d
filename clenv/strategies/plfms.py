"""PL-FMS (Lee et al., ICCV 2023, "Online Continual Learning on Hierarchical Label
Expansion"): hierarchy-aware pseudo-labelling for memory management (PL) and flexible memory
sampling (FMS) on top of a class-balanced, importance-evicting memory (CLIB's).

Per stream batch: (1) each sample goes into memory (ImportanceMemory: fine samples also count
towards their pseudo coarse classes with PL); (2) ``n_steps`` gradient steps, each on the
stream rows kept by FMS — a row of class c is kept with probability
p_c = min(1, (n - first_seen_c) / (scale * N / |C_seen|)), n the stream samples seen so far,
N the declared stream length (or ``fms_window``) — with dropped rows refilled from memory, plus
``replay_batch_size`` memory samples, drawn without replacement; the loss is the sum over
levels of each row's cross-entropy at its level, divided by the batch size; (3) every
``importance_period`` steps (5 in HLE's pl_fms.py, 1 in i-Blurry's clib.py) the memory's
per-sample losses and pseudo-labels are recomputed and the importance of the memory samples
drawn since the last update is updated by the released rule (ImportanceMemory). docs/hle.md
and docs/fidelity.md state where clenv follows the official code and where it differs.
"""

from __future__ import annotations

import numpy as np
import torch

from clenv.strategies.base import SupervisedStrategy
from clenv.strategies.importance_memory import ImportanceMemory
from clenv.strategies.registry import STRATEGIES
from clenv.strategies.spec import StrategySpec, label_shape


def fms_keep_probability(n: int, first_seen: np.ndarray, n_seen_classes: int, window: int,
                         scale: float = 1.0) -> np.ndarray:
    """p_c = min(1, (n - first_seen_c) / (scale * window / |C_seen|)) (Lee et al. 2023, FMS).

    n: stream samples seen so far; first_seen: the stream count at each row's class's first
    appearance; window: N, the declared stream length."""
    denom = scale * window / max(n_seen_classes, 1)
    return np.minimum(1.0, (n - np.asarray(first_seen, dtype=float)) / denom)


class PLFMS(SupervisedStrategy):
    """Importance memory + hierarchy-aware pseudo-labels + flexible memory sampling."""

    adaptive_lr = True  # its importance memory feeds CLIB's adaptive rate (clenv.training)

    fields = STRATEGIES["plfms"].fields
    state_attributes = ("memory", "first_seen", "n_stream", "loss_prev", "steps_since")

    def setup(self, spec: StrategySpec) -> None:
        super().setup(spec)
        p = self.params
        sizes = list(spec.level_sizes) or [spec.n_classes]  # one unit per class and level
        self.offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        self.n_units = int(sum(sizes))
        capacity = p.get("memory_size") or spec.memory_size or 500
        dtype = torch.uint8 if spec.image else torch.float32
        self.memory = ImportanceMemory(
            capacity, spec.input_shape, dtype, self.n_units, spec.levels, self.rng, self.device,
            label_shape=label_shape(spec),
            pseudo_labels=p.get("pseudo_labels", True))
        self.replay_k = p.get("replay_batch_size") or spec.batch_size
        self.window = p.get("fms_window") or spec.stream_length
        self.first_seen = np.full(self.n_units, -1, dtype=np.int64)
        self.n_stream = 0
        self.loss_prev: np.ndarray | None = None
        self.steps_since = 0

    # -- helpers -------------------------------------------------------------------------------
    def units_of(self, y: np.ndarray) -> np.ndarray:
        return self.offsets[y[:, 1]] + y[:, 0] if y.ndim == 2 else y

    def pseudo_of(self, raw: torch.Tensor, y: np.ndarray) -> np.ndarray:
        """Pseudo units at every level coarser than each row's own (-1 elsewhere)."""
        n = len(raw)
        out = np.full((n, max(self.levels - 1, 0)), -1, dtype=np.int64)
        if self.levels == 1 or n == 0 or not self.memory.use_pseudo:
            return out
        with torch.no_grad():
            logits = self.model(self.as_input(raw))
        level = y[:, 1]
        for lv in range(self.levels - 1):
            rows = level > lv
            if not rows.any() or not bool(self.level_seen[lv].any()):
                continue
            pred = torch.where(self.level_seen[lv], logits[lv], self.neg_inf).argmax(1)
            out[rows, lv] = self.offsets[lv] + pred.cpu().numpy()[rows]
        return out

    def memory_losses(self) -> np.ndarray:
        n = self.memory.size
        with torch.no_grad():
            out = self.model(self.as_input(self.memory.x[:n]))
            return self.loss(out, self.memory.y[:n], reduction="none").cpu().numpy()

    # -- contract ------------------------------------------------------------------------------
    def learn(self, batch: dict, info: dict) -> dict[str, float]:
        x, y = self.stream_batch(batch, info)
        n = len(y)
        y_np = y.cpu().numpy()
        units = self.units_of(y_np)
        new = np.flatnonzero(self.first_seen[units] < 0)
        first_units, first_rows = np.unique(units[new], return_index=True)
        self.first_seen[first_units] = self.n_stream + new[first_rows]
        self.n_stream += n
        pseudo = self.pseudo_of(x, y_np)
        slots = np.empty(n, dtype=np.int64)
        for i in range(n):  # memory update before training, sample by sample
            slots[i] = self.memory.choose_slot(int(units[i]))
            self.memory.put(int(slots[i]), x[i], y[i], int(units[i]), pseudo[i])
        if hasattr(self.lr_schedule, "note_replaced"):  # CLIB's adaptive rate skips new slots
            self.lr_schedule.note_replaced(slots)
        loss = None
        for _ in range(self.n_steps(n)):
            keep = np.ones(n, dtype=bool)
            if self.params.get("flexible_sampling", True) and self.memory.size:
                prob = fms_keep_probability(self.n_stream, self.first_seen[units],
                                            int((self.first_seen >= 0).sum()), self.window,
                                            self.params.get("fms_scale", 1.0))
                keep = self.rng.random(n) < prob
            mem = self.memory.sample(int((~keep).sum()) + self.replay_k)
            idx = torch.from_numpy(mem).to(self.memory.x.device)
            keep_t = torch.from_numpy(keep).to(x.device)
            bx = torch.cat((x[keep_t], self.memory.x[idx]))
            by = torch.cat((y[keep_t], self.memory.y[idx]))
            loss = self.step(bx, by)
            self.steps_since += 1
            if self.steps_since >= self.params.get("importance_period", 5):
                self.refresh()
        return {} if loss is None else {"loss": loss.item()}

    def refresh(self) -> None:
        """Recompute memory losses (importance) and pseudo-labels (PL) (the official
        ``samplewise_loss_update``)."""
        self.steps_since = 0
        n = self.memory.size
        if n == 0:
            return
        losses = self.memory_losses()
        self.memory.update_importance(self.loss_prev, losses,
                                      self.params.get("importance_ema", 0.9))
        self.loss_prev = losses
        if hasattr(self.lr_schedule, "observe"):  # CLIB's adaptive rate (clenv.training)
            self.lr_schedule.observe(losses)
        if self.memory.use_pseudo:
            y = self.memory.y[:n].cpu().numpy()
            self.memory.set_pseudo(self.pseudo_of(self.memory.x[:n], y))

    def counters(self) -> dict[str, int]:
        c = super().counters()
        c["buffer_samples"] = self.memory.size
        c["buffer_bytes"] = self.memory.nbytes
        return c



