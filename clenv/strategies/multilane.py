"""MULTI-LANE (De Min et al. 2024, "Less is more: Summarizing Patch Tokens for efficient
Multi-Label Class-Incremental Learning") as a clenv strategy.

A frozen ViT (``model: {name: vit, weights: ... | pretrain: ...}``) with one lane per task
(clenv.models.multilane.MultiLane). A task's lane is created when its first batch arrives (its
classes are the visible ones, ``info["label_mask"]``), warm-started from the previous lane,
and trained alone with BCE on the task's classes and a fresh Adam whose learning rate follows a
cosine schedule over the task's epochs — as the official code (tdemin16/multi-lane,
``multi_lane/engine.py``, ``train_and_evaluate``: a new optimiser per task and
``CosineAnnealingLR(T_max=epochs)`` stepped after every epoch); gradient clipping is an option
(``grad_clip``; 0 = none, as the official code). Inference runs all lanes in one batched pass
and sums their masked logits. Rehearsal-free: no memory. Classes of no lane score -inf.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from clenv.errors import ConfigError
from clenv.strategies.base import Strategy, resolve_device
from clenv.strategies.registry import STRATEGIES
from clenv.strategies.spec import StrategySpec


def cosine_annealing_lr(base_lr: float, epoch: int, t_max: int, eta_min: float = 0.0) -> float:
    """Learning rate of epoch ``epoch`` (0-based) under PyTorch's ``CosineAnnealingLR``:
    eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / t_max)) / 2 (its closed form; the
    official MULTI-LANE code, multi_lane/engine.py ``train_and_evaluate``, builds one with
    ``T_max=args.epochs`` per task and steps it after each epoch)."""
    return eta_min + (base_lr - eta_min) * (1.0 + math.cos(math.pi * epoch / t_max)) / 2.0


class MultiLaneStrategy(Strategy):
    """One lane per task on a frozen ViT; see the module doc."""

    fields = STRATEGIES["multilane"].fields

    def setup(self, spec: StrategySpec) -> None:
        from clenv.models.build import build_model
        from clenv.models.multilane import MultiLane

        super().setup(spec)
        if spec.model.get("name") != "vit":
            raise ConfigError("model.name", "multilane needs a ViT backbone",
                              "set model: {name: vit, ...}")
        self.device = resolve_device(spec.device)
        torch.manual_seed(spec.seed)
        backbone = build_model(spec.model, spec.input_shape, spec.n_classes, spec.seed)
        p = self.params
        layers = min(p.get("prompt_layers", 5), len(backbone.vit.blocks))
        self.net = MultiLane(backbone.vit, spec.n_classes, n_selectors=p.get("n_selectors", 10),
                             n_prompts=p.get("n_prompts", 10), prompt_layers=layers,
                             drop_replace=p.get("drop_replace", True))
        self.net.to(self.device)
        self.lane_of_class = np.full(spec.n_classes, -1, dtype=np.int64)
        self.current = -1
        self.optimizer: torch.optim.Optimizer | None = None
        self.grad_steps = 0
        self.samples_processed = 0
        self._credit = 0.0
        self.neg_inf = torch.tensor(float("-inf"), device=self.device)
        self.known = torch.zeros(spec.n_classes, dtype=torch.bool, device=self.device)
        # epochs of the current lane's task: rows seen, first-exposure rows seen, and the
        # epoch length (known once the second pass starts)
        self.lane_seen = 0
        self.lane_first = 0
        self.epoch_len: int | None = None

    def _input(self, x: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(x).to(self.device)
        return t.float().div_(255.0) if t.dtype == torch.uint8 else t

    def predict(self, obs: dict) -> torch.Tensor:
        n = len(obs["x"])
        if self.current < 0:
            return torch.full((n, self.spec.n_classes), float("-inf"), device=self.device)
        with torch.no_grad():
            out = self.net(self._input(obs["x"]))
        return torch.where(self.known, out, self.neg_inf)

    def _start_lane(self, classes: np.ndarray) -> None:
        self.current = self.net.add_task(classes.tolist())
        self.lane_of_class[classes] = self.current
        self.known[torch.from_numpy(classes).to(self.device)] = True
        # a new optimiser per task (official multi_lane/engine.py, train_and_evaluate)
        self.optimizer = torch.optim.Adam(self.net.trainable_parameters(self.current),
                                          lr=self.params.get("lr", 1e-3))
        self.lane_seen = self.lane_first = 0
        self.epoch_len = None

    def _epoch_lr(self, first_exposure: np.ndarray) -> float:
        """Learning rate for a batch of the current task (its first row's epoch) and advance
        the epoch count. A task is passed ``scenario.epochs`` times, so the epoch length is the
        number of its first-exposure rows, known when the first repeated row arrives."""
        n, n_first = len(first_exposure), int(np.count_nonzero(first_exposure))
        if self.epoch_len is None and n_first < n:
            self.epoch_len = self.lane_first + n_first
        epoch = self.lane_seen // self.epoch_len if self.epoch_len else 0
        self.lane_seen += n
        self.lane_first += n_first
        lr = self.params.get("lr", 1e-3)
        if self.params.get("schedule", "cosine") == "constant":
            return lr
        return cosine_annealing_lr(lr, epoch, max(1, self.spec.epochs))

    def learn(self, batch: dict, info: dict) -> dict[str, float]:
        valid = info["valid"]
        mask = info["label_mask"][valid]
        classes = np.flatnonzero(mask.any(axis=0))
        if len(classes) and (self.current < 0 or
                             (self.lane_of_class[classes] != self.current).any()):
            self._start_lane(classes)
        if self.optimizer is None:  # no lane yet: nothing visible to learn from
            return {}
        x = self._input(batch["x"][valid])
        y = torch.from_numpy(info["y"][valid]).to(self.device).float()
        m = torch.from_numpy(mask).to(self.device).float()
        lr = self._epoch_lr(info["first_exposure"][valid])
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        clip = self.params.get("grad_clip", 1.0)
        u = self.params.get("updates_per_sample") or self.spec.updates_per_sample
        if u is None:
            steps = 1
        else:
            self._credit += u * len(x)
            steps = int(self._credit)
            self._credit -= steps
        loss = None
        for _ in range(steps):
            logits = self.net(x, lanes=[self.current])
            per = F.binary_cross_entropy_with_logits(logits, y, reduction="none")
            loss = ((per * m).sum(1) / m.sum(1).clamp(min=1)).mean()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if clip > 0:
                torch.nn.utils.clip_grad_norm_(self.net.trainable_parameters(self.current),
                                               clip)
            self.optimizer.step()
            self.grad_steps += 1
            self.samples_processed += len(x)
        return {} if loss is None else {"loss": loss.item()}

    def state_dict(self) -> dict:
        """Lanes (their classes, then the network's weights), the current lane's Adam state,
        the class-to-lane map and the counters."""
        return {"task_classes": [list(c) for c in self.net.task_classes],
                "net": self.net.state_dict(),
                "optimizer": None if self.optimizer is None else self.optimizer.state_dict(),
                "lane_of_class": self.lane_of_class.copy(), "current": self.current,
                "known": self.known.clone(), "grad_steps": self.grad_steps,
                "samples_processed": self.samples_processed, "credit": self._credit,
                "lane_epochs": (self.lane_seen, self.lane_first, self.epoch_len)}

    def load_state_dict(self, state: dict) -> None:
        for classes in state["task_classes"][self.net.n_lanes:]:  # recreate the lanes first
            self.net.add_task(classes)
        self.net.load_state_dict(state["net"])
        self.lane_of_class = state["lane_of_class"].copy()
        self.current = state["current"]
        self.known = state["known"].to(self.device)
        if state["optimizer"] is not None:
            self.optimizer = torch.optim.Adam(self.net.trainable_parameters(self.current),
                                              lr=self.params.get("lr", 1e-3))
            self.optimizer.load_state_dict(state["optimizer"])
        self.grad_steps = state["grad_steps"]
        self.samples_processed = state["samples_processed"]
        self._credit = state["credit"]
        self.lane_seen, self.lane_first, self.epoch_len = state.get("lane_epochs", (0, 0, None))

    def counters(self) -> dict[str, int]:
        trainable = sum(p.numel() for t in range(self.current + 1)
                        for p in self.net.trainable_parameters(t)) if self.current >= 0 else 0
        return {"grad_steps": self.grad_steps, "samples_processed": self.samples_processed,
                "buffer_samples": 0, "buffer_bytes": 0,
                "n_params": sum(p.numel() for p in self.net.parameters()),
                "trainable_params": trainable}
