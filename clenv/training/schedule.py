"""Learning-rate schedules of the supervised base, one rate per gradient step (no torch here).

A schedule is plain state (step counts and rates) with a ``lr`` property; the strategy writes that
rate into its optimiser before each step, so checkpoints hold ints and floats only.

- ``constant``: the base rate.
- ``cosine``: linear warm-up from 0 over ``warmup`` steps, then
  lr(k) = min_lr + (base - min_lr) (1 + cos(pi k / K)) / 2 over the K remaining steps of the
  period (the run, or each task with ``per: task``), as torch's CosineAnnealingLR.
- ``step``: base · gamma^floor(k / every).
- ``exponential``: base · gamma^k, k counted from the last reset (a new class, a task start, or
  never): i-Blurry's ER default ``exp_reset`` (naver-ai/i-Blurry, methods/er_baseline.py,
  update_schedule / add_new_class, gamma 0.9999).
"""

from __future__ import annotations

import math


class LRSchedule:
    """The rate for each gradient step of one of the schedules above.

    ``period_steps(task)`` gives the gradient steps of the cosine period starting at ``task``
    (the run when ``per: run``).
    """

    def __init__(self, cfg: dict, base_lr: float, run_steps: int,
                 task_steps: list[int] | None = None) -> None:
        self.cfg = dict(cfg)
        self.base = float(base_lr)
        self.run_steps = max(1, int(run_steps))
        self.task_steps = [max(1, int(s)) for s in (task_steps or [])]
        self.k = 0  # gradient steps since the period started (or the last reset)
        self.period = self.run_steps

    # -- events --------------------------------------------------------------------------------
    def after_step(self) -> None:
        self.k += 1

    def on_task_start(self, task: int) -> None:
        kind = self.cfg["type"]
        if kind == "cosine" and self.cfg["per"] == "task":
            self.k = 0
            self.period = self.task_steps[min(task, len(self.task_steps) - 1)]
        elif kind == "exponential" and self.cfg["reset"] == "task":
            self.k = 0

    def on_new_class(self) -> None:
        if self.cfg["type"] == "exponential" and self.cfg["reset"] == "new_class":
            self.k = 0

    # -- the rate ------------------------------------------------------------------------------
    @property
    def lr(self) -> float:
        kind, c, k = self.cfg["type"], self.cfg, self.k
        if kind == "cosine":
            warm = c["warmup"]
            if k < warm:
                return self.base * (k + 1) / warm
            span = max(1, self.period - warm)
            t = min(k - warm, span)
            return c["min_lr"] + (self.base - c["min_lr"]) * (1 + math.cos(math.pi * t / span)) / 2
        if kind == "step":
            return self.base * c["gamma"] ** (k // c["every"])
        if kind == "exponential":
            return self.base * c["gamma"] ** k
        return self.base

    def state_dict(self) -> dict:
        return {"k": self.k, "period": self.period}

    def load_state_dict(self, state: dict) -> None:
        self.k, self.period = int(state["k"]), int(state["period"])


def expected_steps(n_samples: int, batch_size: int, updates_per_sample: float | None) -> int:
    """Gradient steps a supervised strategy takes over ``n_samples`` stream samples: one per
    Env batch by default, else updates_per_sample per sample."""
    if updates_per_sample is None:
        return -(-int(n_samples) // int(batch_size))
    return int(math.ceil(updates_per_sample * n_samples))
