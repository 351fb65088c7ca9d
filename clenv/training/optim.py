"""Optimisers and schedules from a strategy's YAML parameters."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from clenv.strategies.spec import StrategySpec
from clenv.training.adaptive_lr import AdaptiveLR
from clenv.training.schedule import LRSchedule, expected_steps


def build_optimizer(parameters: Iterable[torch.nn.Parameter], p: dict) -> torch.optim.Optimizer:
    """``optimizer``: sgd (``momentum``, ``nesterov``), adam or adamw, with ``lr`` and
    ``weight_decay`` (defaults: SGD 0.05, Adam/AdamW 1e-3)."""
    kind = p.get("optimizer", "sgd")
    wd = p.get("weight_decay", 0.0)
    if kind == "adam":
        return torch.optim.Adam(parameters, lr=p.get("lr", 1e-3), weight_decay=wd)
    if kind == "adamw":
        return torch.optim.AdamW(parameters, lr=p.get("lr", 1e-3), weight_decay=wd)
    return torch.optim.SGD(parameters, lr=p.get("lr", 0.05), momentum=p.get("momentum", 0.0),
                           nesterov=bool(p.get("nesterov", False)), weight_decay=wd)


def build_schedule(cfg: dict | None, spec: StrategySpec, p: dict,
                   optimizer: torch.optim.Optimizer) -> LRSchedule | AdaptiveLR | None:
    """The validated ``schedule`` section as a schedule object (None for constant or absent)."""
    if not cfg or cfg["type"] == "constant":
        return None
    base = optimizer.param_groups[0]["lr"]
    if cfg["type"] == "adaptive":
        return AdaptiveLR(base, cfg["lr_step"], cfg["lr_period"], cfg["lr_length"],
                          cfg["significance"])
    ups = p.get("updates_per_sample")
    if ups is None:
        ups = spec.updates_per_sample
    task_steps = None
    if spec.task_ends:
        starts = [0, *spec.task_ends[:-1]]
        task_steps = [expected_steps(e - s, spec.batch_size, ups)
                      for s, e in zip(starts, spec.task_ends, strict=True)]
        run_steps = sum(task_steps)
    else:
        run_steps = expected_steps(spec.stream_length, spec.batch_size, ups)
    return LRSchedule(cfg, base, run_steps, task_steps)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
