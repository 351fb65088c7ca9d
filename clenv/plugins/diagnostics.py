"""Plasticity diagnostics of a ReLU MLP or CNN, logged with every evaluation
(``strategy.diagnostics: true``; docs/plasticity.md).

- ``dead_fraction``: the share of ReLU units whose output is zero on every input of the probe
  batch (a convolutional unit is a channel: zero at every position of every input);
- ``effective_rank`` of the penultimate features (Roy & Vetterli, EUSIPCO 2007):
  exp(-sum_k p_k log p_k), p_k = sigma_k / sum_j sigma_j over the singular values;
- ``weight_magnitude``: the mean |theta| over every parameter of the model;
- ``grad_norm``: the mean over the gradient steps since the last evaluation of the global L2
  norm of the loss gradient (taken right after backward).

The probe batch is the first 256 training inputs of the current task (the first of the run
when the scenario hides task boundaries): fixed once filled, and seeded through the stream's
order (``scenario.seed``).
"""

from __future__ import annotations

import torch
from torch import nn

from clenv.errors import ConfigError
from clenv.models.cnn import BasicBlock, SmallResNet
from clenv.models.mlp import MLP
from clenv.strategies.state import Stateful

PROBE_SIZE = 256


def dead_fraction(activations: list[torch.Tensor]) -> float:
    """Share of units that are zero on every row: each tensor is (N, units) or (N, C, H, W)
    (a channel is one unit)."""
    dead = total = 0
    for a in activations:
        flat = a.transpose(0, 1).reshape(a.shape[1], -1)  # (units, N * positions)
        dead += int((flat == 0).all(1).sum())
        total += a.shape[1]
    return dead / total if total else 0.0


def effective_rank(features: torch.Tensor) -> float:
    """exp of the Shannon entropy of the normalised singular values of ``features`` (N, d)
    (Roy & Vetterli 2007); 0 for an all-zero matrix."""
    s = torch.linalg.svdvals(features.double())
    if float(s.sum()) == 0.0:
        return 0.0
    p = s / s.sum()
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def relu_outputs(model: nn.Module) -> list[nn.Module]:
    """The modules whose outputs are ReLU units: nn.ReLU layers and residual blocks (their
    output is a ReLU)."""
    return [m for m in model.modules() if isinstance(m, (nn.ReLU, BasicBlock))]


def check_model(model: nn.Module, key: str = "strategy.diagnostics") -> None:
    """Diagnostics cover ReLU MLPs and the CNN only."""
    ok = isinstance(model, SmallResNet) or (
        isinstance(model, MLP) and any(isinstance(m, nn.ReLU) for m in model.modules()))
    if not ok:
        raise ConfigError(key, f"diagnostics cover ReLU MLPs and the cnn only, not "
                               f"{type(model).__name__}",
                          "use model mlp (activation relu) or cnn, or remove diagnostics")


class Diagnostics(Stateful):
    """The probe batch and the gradient-norm average of one strategy."""

    state_attributes = ("probe", "grad_sum", "grad_count")

    def __init__(self) -> None:
        self.probe: torch.Tensor | None = None
        self.grad_sum = 0.0
        self.grad_count = 0

    def on_task_start(self) -> None:
        self.probe = None

    def observe(self, raw_x: torch.Tensor) -> None:
        """Fill the probe with the task's first training inputs (raw, as served)."""
        have = 0 if self.probe is None else len(self.probe)
        if have >= PROBE_SIZE:
            return
        take = raw_x[: PROBE_SIZE - have].detach().clone()
        self.probe = take if self.probe is None else torch.cat([self.probe, take])

    def after_backward(self, model: nn.Module) -> None:
        grads = [p.grad.detach().pow(2).sum() for p in model.parameters() if p.grad is not None]
        if grads:
            self.grad_sum += float(torch.stack(grads).sum().sqrt())
            self.grad_count += 1

    def record(self, model: nn.Module, as_input) -> dict:
        """The four diagnostics now (the gradient norm's average restarts)."""
        out: dict = {"grad_norm": self.grad_sum / self.grad_count if self.grad_count else None}
        self.grad_sum, self.grad_count = 0.0, 0
        with torch.no_grad():
            params = list(model.parameters())
            n = sum(p.numel() for p in params)
            out["weight_magnitude"] = float(sum(p.abs().sum() for p in params)) / n
            if self.probe is None:
                out.update(dead_fraction=None, effective_rank=None)
                return out
            acts: list[torch.Tensor] = []
            hooks = [m.register_forward_hook(lambda _m, _i, o: acts.append(o.detach()))
                     for m in relu_outputs(model)]
            was_training = model.training
            model.eval()
            try:
                feats = model.features(as_input(self.probe))
            finally:
                for h in hooks:
                    h.remove()
                model.train(was_training)
        out["dead_fraction"] = dead_fraction(acts)
        out["effective_rank"] = effective_rank(feats.flatten(1))
        out["probe_size"] = len(self.probe)
        return out
