"""GDumb (Prabhu et al. 2020, "GDumb: A simple approach that questions our progress in
continual learning"): a greedy class-balanced memory, and a model retrained from scratch on
that memory alone whenever it is asked to predict at an evaluation point."""

from __future__ import annotations

import math

import torch

from clenv.errors import ConfigError
from clenv.strategies.balanced_memory import ClassBalancedMemory
from clenv.strategies.base import SupervisedStrategy
from clenv.strategies.registry import STRATEGIES
from clenv.strategies.spec import StrategySpec


def sgdr_lr(epoch: int, lr: float, min_lr: float, warmup: bool) -> float:
    """The official code's rate for an epoch: with ``warmup``, epoch 0 runs at lr / 10 and
    epoch 1 at lr; later epochs follow SGDR (cosine annealing with warm restarts, T_0 = 1,
    T_mult = 2, eta_min = min_lr, stepped once per epoch), at SGDR epoch e - 1 with warmup
    and e without: lr_e = min_lr + (lr - min_lr) (1 + cos(pi T_cur / T_i)) / 2, where the
    cycle i has length T_i = 2^i and T_cur counts the epochs since its start."""
    if warmup:
        if epoch == 0:
            return lr * 0.1
        epoch -= 1
    if epoch == 0:
        return lr
    cycle = int(math.log2(epoch + 1))  # cycles of 1, 2, 4, ... epochs
    t_i, t_cur = 2 ** cycle, epoch - (2 ** cycle - 1)
    return min_lr + (lr - min_lr) * (1 + math.cos(math.pi * t_cur / t_i)) / 2


class GDumb(SupervisedStrategy):
    """Stores first-exposure stream samples in a class-balanced memory; never trains on the
    stream. Before an evaluation (the Runner calls ``prepare_evaluation``) it retrains a
    fresh model on the memory if the memory changed since the last retraining (``retrain:
    evaluation``), or only at task ends (``retrain: task_end``, the offline form). Stream
    predictions use the last retrained model; retraining counts in grad_steps and
    samples_processed, and in the ``retrainings`` counter."""

    fields = STRATEGIES["gdumb"].fields
    families = ("single_label",)
    state_attributes = ("memory", "trained_version", "retrainings")

    def setup(self, spec: StrategySpec) -> None:
        for key in ("forgetting", "schedule"):
            if self.params.get(key):
                raise ConfigError(f"strategy.{key}", f"gdumb retrains a fresh model with its "
                                  f"own rate schedule, so it takes no {key} plug-in",
                                  f"remove strategy.{key}")
        super().setup(spec)
        if self.params.get("retrain", "evaluation") == "task_end" and not spec.boundaries:
            raise ConfigError("strategy.retrain", "retrain: task_end needs the task "
                              "boundaries", "set scenario.boundaries: exposed, or retrain: "
                              "evaluation")
        capacity = self.params.get("memory_size") or spec.memory_size or 500
        dtype = torch.uint8 if spec.image else torch.float32
        self.memory = ClassBalancedMemory(capacity, spec.input_shape, dtype, spec.n_classes,
                                          self.rng, self.device)
        self.trained_version = 0  # the memory version the current model was trained on
        self.retrainings = 0

    def learn(self, batch: dict, info: dict) -> dict[str, float]:
        x, y = self.stream_batch(batch, info)
        first = info["first_exposure"][info["valid"]]  # epochs > 1 repeat a task's samples
        if not first.all():
            keep = torch.from_numpy(first).to(y.device)
            x, y = x[keep], y[keep]
        self.memory.add(x, y)
        return {}

    def prepare_evaluation(self) -> None:
        """Called by the Runner before each evaluation: retrain if the memory changed."""
        if self.params.get("retrain", "evaluation") == "evaluation":
            self.retrain()

    def on_task_end(self, task: int) -> None:
        if self.params.get("retrain", "evaluation") == "task_end":
            self.retrain()

    def retrain(self) -> None:
        """A fresh model (the initial weights again) trained ``epochs`` shuffled
        epochs of ``batch_size`` on the memory: SGD with the SGDR rate, gradients clipped to
        norm ``clip``. Nothing happens when the memory has not changed."""
        mem = self.memory
        if mem.size == 0 or mem.version == self.trained_version:
            return
        self.retrainings += 1
        # every retraining starts from the initial weights of setup's model (the learner
        # seed), as Avalanche's GDumbPlugin restarts from its copy of the initial model
        torch.manual_seed(self.spec.seed)
        self.model = self.new_model()
        self.optimizer = self.new_optimizer()
        p = self.params
        lr, min_lr = p.get("lr", 0.05), p.get("min_lr", 0.0005)
        bs = p.get("batch_size", 16)
        for epoch in range(p.get("epochs", 16)):
            if p.get("sgdr", True):
                for group in self.optimizer.param_groups:
                    group["lr"] = sgdr_lr(epoch, lr, min_lr, p.get("warmup", True))
            order = torch.from_numpy(self.rng.permutation(mem.size)).to(mem.x.device)
            for start in range(0, mem.size, bs):
                idx = order[start:start + bs]
                self.step(mem.x[idx], mem.y[idx])
        self.trained_version = mem.version

    def before_update(self) -> None:
        clip = self.params.get("clip", 10.0)
        if clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)

    def counters(self) -> dict[str, int]:
        c = super().counters()
        c["buffer_samples"] = self.memory.size
        c["buffer_bytes"] = self.memory.nbytes
        c["retrainings"] = self.retrainings
        return c
