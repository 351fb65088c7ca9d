"""Synaptic Intelligence (Zenke, Poole & Ganguli 2017, "Continual learning through synaptic
intelligence"): importance from the path integral of the loss along the training trajectory.

During task mu, after every optimiser step, omega_i += -g_i * (theta_i(after) -
theta_i(before)), with g the gradient of the task loss at theta(before) (the paper's
dL/dtheta; ``path_gradient: total`` uses the gradient of the whole loss, penalty included, as
Avalanche 0.6). At the task end, with Delta_i = theta_i(end of task) - theta_i(start of task),
Omega_i += omega_i / (Delta_i^2 + xi) (eq. 5, accumulated over tasks; the penalty uses
min(Omega, omega_max) when ``omega_max`` is set, as Avalanche's clip at 0.001), omega is
reset and the anchor becomes theta(end of task). The loss is
L + c * sum_i Omega_i (theta_i - theta*_i)^2 (eq. 4).
"""

from __future__ import annotations

import torch

from clenv.strategies.penalty import PenaltyStrategy
from clenv.strategies.registry import STRATEGIES
from clenv.strategies.spec import StrategySpec


class SI(PenaltyStrategy):
    """SI: per-step path integral, consolidated into importances at task ends."""

    fields = STRATEGIES["si"].fields
    families = ("single_label",)
    strength_key = "c"
    state_attributes = ("omega_path", "theta_start", "omega")

    def setup(self, spec: StrategySpec) -> None:
        super().setup(spec)
        params = self.params_list()
        self.omega_path = [torch.zeros_like(p) for p in params]  # omega of the current task
        self.omega = [torch.zeros_like(p) for p in params]  # Omega, summed over past tasks
        self.theta_start = [p.detach().clone() for p in params]
        self.xi = float(self.param("xi"))
        self.task_gradient = self.param("path_gradient") == "task"
        self.omega_max = self.param("omega_max")
        self._before: list[torch.Tensor] = []
        self._grad: list[torch.Tensor] = []

    @torch.no_grad()
    def before_update(self) -> None:
        params = self.params_list()
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        if self.task_gradient and self.quad.active:  # remove the penalty's own gradient
            half = self.quad.half_gradient_and_value(params)[0]
            self._grad = torch._foreach_add(grads, half, alpha=-2 * self.strength)
        else:
            self._grad = torch._foreach_mul(grads, 1.0)  # a copy: the step may reuse grads
        self._before = torch._foreach_mul(params, 1.0)

    @torch.no_grad()
    def after_update(self) -> None:
        delta = torch._foreach_sub(self.params_list(), self._before)
        torch._foreach_addcmul_(self.omega_path, self._grad, delta, value=-1)
        self._before, self._grad = [], []

    def on_task_start(self, task: int) -> None:
        super().on_task_start(task)
        self.theta_start = [p.detach().clone() for p in self.params_list()]
        for w in self.omega_path:
            w.zero_()

    @torch.no_grad()
    def consolidate(self, task: int) -> None:
        params = [p.detach() for p in self.params_list()]
        for big, w, p, start in zip(self.omega, self.omega_path, params, self.theta_start,
                                    strict=True):
            big.add_(w / ((p - start).square() + self.xi))
            w.zero_()
        omega = self.omega
        if self.omega_max is not None:  # Avalanche 0.6 clips Omega at 0.001
            omega = [o.clamp(max=self.omega_max) for o in omega]
        self.quad.replace(omega, params)
