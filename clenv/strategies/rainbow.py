"""Rainbow Memory (Bang et al., CVPR 2021, "Rainbow Memory: Continual Learning with a Memory of
Diverse Samples"), following the official code's online mode (clovaai/rainbow-memory,
methods/rainbow_memory.py and methods/finetune.py; the memory-only epochs as i-Blurry's
methods/rainbow_memory.py runs them).

During a task the memory is fixed: each gradient step trains on the stream batch plus
``replay_batch_size`` memory samples, and the task's stream samples are kept as candidates (a
reservoir of ``candidate_size`` samples: the official code keeps the task's whole stream).
At each task end the memory is rebuilt from candidates + memory:

- at most ``memory_size`` candidates: all of them are kept;
- after the first task: each candidate's uncertainty u = 1 - max_c votes_c / T, votes_c the
  number of the T perturbed views whose prediction is c (``variance_ratio``); per seen class,
  with m = memory_size // |seen classes| slots: all its samples when it has at most m, else
  its samples sorted by u (ascending, ties in candidate order) taken every
  j = n_c // m-th from the first, the first m of them (diversity across the ranking);
- at the first task's end (``equal_class_sampling``): m random samples per class;
- slots left free are filled by a uniform draw from the candidates not chosen.

Then ``memory_epochs`` epochs train on the memory alone (a permutation per epoch, batches of
``memory_batch_size``), the first at 0.1 · lr, the second at lr, later ones at the rate of
CosineAnnealingWarmRestarts(T_0=1, T_mult=2, eta_min=0.01 · lr) stepped once per epoch.

Perturbed views: on image pools T AutoAugment draws (clenv.training.augment, the official
``vr_autoaug`` choice); on vector pools x + noise_std · sd · e, e ~ N(0, I) per view and
sd the per-feature standard deviation of the candidates (there is no image operation to apply).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from clenv.strategies.er import ExperienceReplay
from clenv.strategies.memory import replay_buffer
from clenv.strategies.registry import STRATEGIES
from clenv.strategies.spec import StrategySpec


def vote_uncertainty(preds: np.ndarray, n_classes: int) -> np.ndarray:
    """u_i = 1 - max_c #{v : preds[v, i] = c} / T for predictions ``preds`` of shape (T, N)
    (the official ``variance_ratio``)."""
    t, n = preds.shape
    votes = np.zeros((n, n_classes), dtype=np.int64)
    np.add.at(votes, (np.tile(np.arange(n), t), preds.reshape(-1)), 1)
    return 1.0 - votes.max(1) / t


def diverse_selection(labels: np.ndarray, uncertainty: np.ndarray, classes: np.ndarray,
                      capacity: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of the candidates kept (the official ``uncertainty_sampling``): per class in
    ``classes``, with m = capacity // len(classes), all of a class's samples when it has at most
    m, else its samples in ascending order of uncertainty (stable) taken every n_c // m-th, the
    first m; free slots then go to a uniform draw among the candidates not chosen."""
    m = capacity // max(len(classes), 1)
    chosen: list[np.ndarray] = []
    for c in classes.tolist():
        idx = np.flatnonzero(labels == c)
        if len(idx) <= m:
            chosen.append(idx)
            continue
        ranked = idx[np.argsort(uncertainty[idx], kind="stable")]
        chosen.append(ranked[:: len(idx) // m][:m])
    return fill_rest(np.concatenate(chosen) if chosen else np.zeros(0, np.int64),
                     len(labels), capacity, rng)


def equal_class_selection(labels: np.ndarray, classes: np.ndarray, capacity: int,
                          rng: np.random.Generator) -> np.ndarray:
    """m = capacity // len(classes) random samples per class, then the free slots filled at
    random (the official ``equal_class_sampling``, used at the first task's end)."""
    m = capacity // max(len(classes), 1)
    chosen = []
    for c in classes.tolist():
        idx = np.flatnonzero(labels == c)
        chosen.append(rng.choice(idx, size=min(m, len(idx)), replace=False))
    return fill_rest(np.concatenate(chosen) if chosen else np.zeros(0, np.int64),
                     len(labels), capacity, rng)


def fill_rest(chosen: np.ndarray, n: int, capacity: int, rng: np.random.Generator) -> np.ndarray:
    chosen = np.asarray(chosen, dtype=np.int64)
    rest = capacity - len(chosen)
    if rest > 0:
        others = np.setdiff1d(np.arange(n), chosen)
        chosen = np.concatenate([chosen, rng.choice(others, size=min(rest, len(others)),
                                                    replace=False)])
    return chosen


def warm_restart_lr(epoch: int, lr: float) -> float:
    """The rate of memory epoch ``epoch``: 0.1 · lr, then lr, then CosineAnnealingWarmRestarts
    (T_0 = 1, T_mult = 2, eta_min = 0.01 · lr) after epoch - 1 scheduler steps."""
    if epoch == 0:
        return 0.1 * lr
    t_cur, t_i = epoch - 1, 1
    while t_cur >= t_i:
        t_cur -= t_i
        t_i *= 2
    eta_min = 0.01 * lr
    return eta_min + (lr - eta_min) * (1 + math.cos(math.pi * t_cur / t_i)) / 2


class RainbowMemory(ExperienceReplay):
    """Replay from a memory rebuilt at task ends by uncertainty-diverse sampling per class."""

    fields = STRATEGIES["rainbow"].fields
    families = ("single_label",)
    state_attributes = ("memory", "candidates", "tasks_done", "extra_forwards")

    def setup(self, spec: StrategySpec) -> None:
        super().setup(spec)
        if not spec.task_ends:
            from clenv.errors import ConfigError

            raise ConfigError("strategy.name", "rainbow rebuilds its memory at task ends, "
                              "which hidden boundaries do not give",
                              "set scenario.boundaries: exposed, or use er")
        p = self.params  # ER's setup built the memory and replay_k
        self.candidates = replay_buffer(self, p.get("candidate_size") or self.memory.capacity)
        self.memory_batch = p.get("memory_batch_size") or spec.batch_size
        self.tasks_done = 0
        self.extra_forwards = 0
        self.views = None
        if spec.image and len(spec.input_shape) == 3:
            from clenv.training.augment import Augmenter

            self.views = Augmenter({"crop": 0, "flip": False, "cutmix": 0.0, "cutmix_alpha": 1.0,
                                    "autoaugment": p.get("view_policy", "cifar10")},
                                   tuple(spec.input_shape))

    def remember(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """During a task the memory stays fixed; the stream batch joins the task's candidates."""
        self.candidates.add(x, y)

    # -- task end: the memory update, then memory-only epochs ----------------------------------
    def on_task_end(self, task: int) -> None:
        self.update_memory()
        self.memory_epochs()
        self.candidates.size = 0
        self.candidates.n_seen = 0
        self.tasks_done += 1

    def update_memory(self) -> None:
        c, m = self.candidates, self.memory
        px = torch.cat((c.x[: c.size], m.x[: m.size]))  # the official order: stream, memory
        py = torch.cat((c.y[: c.size], m.y[: m.size]))
        n = len(py)
        if n <= m.capacity:
            keep = np.arange(n)
        else:
            labels = py.cpu().numpy()
            classes = np.flatnonzero(self.seen.cpu().numpy())
            if self.tasks_done == 0:
                keep = equal_class_selection(labels, classes, m.capacity, self.rng)
            else:
                u = vote_uncertainty(self.view_predictions(px), self.spec.n_classes)
                keep = diverse_selection(labels, u, classes, m.capacity, self.rng)
        idx = torch.from_numpy(keep).to(px.device)
        m.x[: len(keep)] = px[idx]
        m.y[: len(keep)] = py[idx]
        m.size = len(keep)
        m.n_seen += c.size

    def view_predictions(self, raw: torch.Tensor) -> np.ndarray:
        """Predictions (T, N) of the model on T perturbed views of ``raw``."""
        t = self.params.get("n_views", 12)
        if self._mode_matters:
            self.model.eval()
        sd = None
        if self.views is None:
            sd = self.as_input(raw).std(0, keepdim=True)
        preds = []
        with torch.no_grad():
            for _ in range(t):
                if self.views is not None:
                    view = self.as_input(self.views(raw, raw.new_zeros(len(raw)), self.rng)[0])
                else:
                    noise = torch.from_numpy(self.rng.standard_normal(tuple(raw.shape)))
                    view = self.as_input(raw) + self.params.get("noise_std", 0.5) * sd * (
                        noise.to(raw.device, torch.float32))
                for part in torch.split(view, 512):
                    preds.append(self.masked(self.model(part)).argmax(1).cpu())
        self.extra_forwards += t * len(raw)
        return torch.cat(preds).numpy().reshape(t, len(raw))

    def memory_epochs(self) -> None:
        m = self.memory
        epochs = self.params.get("memory_epochs", 1)
        if m.size == 0 or epochs == 0:
            return
        from clenv.training.optim import set_lr

        lr = self.params.get("lr", 0.05)
        for e in range(epochs):
            set_lr(self.optimizer, warm_restart_lr(e, lr))
            order = torch.from_numpy(self.rng.permutation(m.size)).to(m.x.device)
            for b in torch.split(order, self.memory_batch):
                self.step(m.x[b], m.y[b])
        set_lr(self.optimizer, lr)

    def counters(self) -> dict[str, int]:
        c = super().counters()
        c["buffer_samples"] = self.memory.size + self.candidates.size
        c["buffer_bytes"] = self.memory.nbytes + self.candidates.nbytes
        c["extra_forwards"] = self.extra_forwards
        return c
