"""Plasticity plug-ins for any strategy on the supervised base: shrink-and-perturb, continual
backprop and L2-towards-init (docs/plasticity.md).

- **shrink-and-perturb** (Ash & Adams, NeurIPS 2020): theta <- shrink * theta + sigma * eps,
  eps ~ N(0, 1) per entry, at every task start or every ``every`` gradient steps.
- **continual backprop** (Dohare et al., Nature 2024, "Loss of plasticity in deep continual
  learning", Algorithm 1): each hidden unit i of a ReLU MLP carries a contribution utility
  u_i <- eta * u_i + (1 - eta) * mean_batch |h_i| * sum_k |w_ki| (w: its outgoing weights) and
  an age; after each step, every hidden layer adds rho * (its number of mature units, age > m)
  to a replacement count, and while that count is >= 1 the mature unit of lowest utility gets
  fresh incoming weights and bias (the layer's init distribution), zero outgoing weights, and
  utility and age 0. Defaults are the paper's: rho = 1e-4, m = 100, eta = 0.99.
  ``utility: adaptable_contribution`` is the official code's generate-and-test as its Online
  Permuted MNIST configuration runs it (shibhansh/loss-of-plasticity, lop/algos/gnt.py with
  cfg/cbp.json): ages first, a running mean activation a_i <- eta a_i + (1 - eta) mean_batch h_i,
  bias-corrected by c_i = 1 - eta^age_i; the new utility
  mean_k |w_ki| * mean_batch |h_i - a_i / c_i| / mean_j |v_ij| (v: incoming weights), averaged
  like the contribution and ranked bias-corrected (u_i / c_i); a replaced unit's mean output
  w_ki * a_i / c_i moves into the next layer's bias, its incoming weights are drawn from
  U(+-sqrt(6 / fan_in)) (Kaiming uniform for ReLU) and its bias is 0.
- **fresh** (the plasticity reference, issue 22): the whole model re-initialised (torch's
  layer inits, drawn from the plug-in's generator) at every task start after the first, so
  each task is learnt by a freshly initialised network alone.
- **L2-towards-init** (Kumar et al., 2023, "Maintaining plasticity in continual learning via
  regenerative regularization"): lambda * ||theta - theta_0||^2 added to the loss, theta_0 the
  parameters at setup.

Optimiser state as the forgetting plug-in handles it: a parameter changed wholesale
(shrink-and-perturb) has its state dropped, so the optimiser starts it again at step 0;
continual backprop zeroes the state entries of the rows and columns it reinitialises.
Every draw comes from the plug-in's generator seeded by the strategy's ``seed``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from clenv.errors import ConfigError
from clenv.plugins.forgetting import _heads, reset_module
from clenv.strategies.state import Stateful

if TYPE_CHECKING:
    from clenv.strategies.spec import StrategySpec

_SEED_TAG = 0x9A57


def mlp_layers(model: nn.Module) -> list[tuple[nn.Linear, nn.Module]]:
    """(linear layer, activation after it) for each hidden layer of an MLP-shaped model
    (``features``: Flatten, then Linear -> activation pairs; a linear head, or one per level)."""
    feats = getattr(model, "features", None)
    heads = _heads(model)
    if not isinstance(feats, nn.Sequential) or not heads or not all(
            type(h) is nn.Linear for h in heads):
        return []
    mods = list(feats)
    out = []
    for i, m in enumerate(mods):
        if isinstance(m, nn.Linear):
            if i + 1 >= len(mods) or isinstance(mods[i + 1], nn.Linear):
                return []
            out.append((m, mods[i + 1]))
        elif not isinstance(m, (nn.Flatten, nn.ReLU)):
            return []
    return out


def _zero_state(optimizer: torch.optim.Optimizer, p: nn.Parameter, index, dim: int) -> None:
    """Zero the optimiser's per-entry state of ``p`` at ``index`` along ``dim``."""
    for v in optimizer.state.get(p, {}).values():
        if torch.is_tensor(v) and v.shape == p.shape:
            v.index_fill_(dim, index, 0)


class Plasticity(Stateful):
    """One plasticity method (``cfg["method"]``) applied to a strategy's model; logs each
    intervention as an event (``drain()``)."""

    state_attributes = ("gen", "steps", "events", "utility", "age", "pending", "init",
                        "replaced", "mean_act")

    def __init__(self, cfg: dict, spec: StrategySpec, model: nn.Module,
                 key: str = "strategy.plasticity") -> None:
        self.cfg = cfg
        self.method = cfg["method"]
        seed = np.random.SeedSequence([spec.seed, _SEED_TAG]).generate_state(1)[0]
        self.gen = torch.Generator().manual_seed(int(seed))
        self.steps = 0
        self.events: list[dict] = []
        self.replaced = 0
        self.utility: list[torch.Tensor] = []
        self.mean_act: list[torch.Tensor] = []  # adaptable_contribution: running mean of h
        self.age: list[torch.Tensor] = []
        self.pending: list[float] = []
        self.init: list[torch.Tensor] = []
        self._acts: list[torch.Tensor | None] = []
        self._live: list[nn.Module] = []
        at_starts = self.method == "fresh" or (self.method == "shrink_perturb"
                                               and cfg["every"] is None)
        if at_starts and not spec.boundaries:
            raise ConfigError(f"{key}.method", f"{self.method} at task starts needs task "
                                               "boundaries, which this scenario hides",
                              "set scenario.boundaries: exposed (or shrink_perturb's every)")
        if self.method == "continual_backprop":
            layers = mlp_layers(model)
            if not layers or not all(isinstance(a, nn.ReLU) for _, a in layers):
                raise ConfigError(f"{key}.method", "continual backprop needs a ReLU MLP "
                                                   "(model mlp, activation relu, linear "
                                                   "heads)",
                                  "use model mlp, or method shrink_perturb or l2_init")
            dev = layers[0][0].weight.device
            self.utility = [torch.zeros(lin.out_features, device=dev) for lin, _ in layers]
            if cfg.get("utility") == "adaptable_contribution":
                self.mean_act = [torch.zeros(lin.out_features, device=dev) for lin, _ in layers]
            self.age = [torch.zeros(lin.out_features, dtype=torch.long, device=dev)
                        for lin, _ in layers]
            self.pending = [0.0] * len(layers)
            self.hook(model)
        elif self.method == "l2_init":
            self.init = [p.detach().clone() for p in model.parameters()]

    # -- continual backprop: activations of the last training forward -----------------------
    def hook(self, model: nn.Module) -> None:
        """Capture each hidden activation of training forwards (a rebuilt model: call again)."""
        layers = mlp_layers(model)
        self._acts = [None] * len(layers)
        self._live = [act for _, act in layers]  # a deep copy of the model keeps the hooks
        for i, (_, act) in enumerate(layers):
            act.register_forward_hook(self._capture(i))

    def _capture(self, i: int):
        def keep(mod, _inp, out: torch.Tensor) -> None:
            if torch.is_grad_enabled() and mod is self._live[i]:
                self._acts[i] = out.detach()
        return keep

    # -- hooks of SupervisedStrategy -----------------------------------------------------------
    def on_task_start(self, task: int, model: nn.Module,
                      optimizer: torch.optim.Optimizer) -> None:
        if self.method == "shrink_perturb" and self.cfg["every"] is None and task > 0:
            self.shrink_perturb(model, optimizer)
        elif self.method == "fresh" and task > 0:
            params = reset_module(model, self.gen)
            for p in params:
                optimizer.state.pop(p, None)
            self.events.append({"kind": "fresh", "grad_step": self.steps,
                                "n_params": int(sum(p.numel() for p in params))})

    def penalty(self, model: nn.Module) -> torch.Tensor | None:
        """L2-towards-init: lambda * sum ||theta - theta_0||^2 (None for other methods)."""
        if self.method != "l2_init":
            return None
        total = sum(((p - p0) ** 2).sum() for p, p0 in zip(model.parameters(), self.init,
                                                            strict=True))
        return self.cfg["l2"] * total

    def after_step(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        self.steps += 1
        if self.method == "shrink_perturb":
            every = self.cfg["every"]
            if every is not None and self.steps % every == 0:
                self.shrink_perturb(model, optimizer)
        elif self.method == "continual_backprop":
            self.continual_backprop(model, optimizer)

    # -- the rules -----------------------------------------------------------------------------
    def shrink_perturb(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        """theta <- shrink * theta + sigma * eps for every parameter; their optimiser state
        is dropped."""
        lam, sigma = self.cfg["shrink"], self.cfg["sigma"]
        n = 0
        with torch.no_grad():
            for p in model.parameters():
                eps = torch.randn(p.shape, generator=self.gen).to(p)
                p.mul_(lam).add_(eps, alpha=sigma)
                optimizer.state.pop(p, None)
                n += p.numel()
        self.events.append({"kind": "shrink_perturb", "grad_step": self.steps, "n_params": n})

    def continual_backprop(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        """Update utilities and ages from the last training forward, then replace mature
        low-utility units (Dohare et al. 2024, Algorithm 1)."""
        layers = mlp_layers(model)
        nexts = [[lin] for lin, _ in layers[1:]] + [_heads(model)]
        eta, rho, m = self.cfg["decay"], self.cfg["replacement_rate"], self.cfg["maturity"]
        adaptable = self.cfg.get("utility") == "adaptable_contribution"
        for i, ((lin, _), nxt) in enumerate(zip(layers, nexts, strict=True)):
            h = self._acts[i]
            if h is None:
                continue
            if adaptable:
                self.age[i] += 1
                rank = self._adaptable_utility(i, h, lin, nxt, eta)
            else:
                with torch.no_grad():
                    contrib = h.abs().mean(0) * sum(n.weight.abs().sum(0) for n in nxt)
                    self.utility[i].mul_(eta).add_(contrib, alpha=1 - eta)
                self.age[i] += 1
                rank = self.utility[i]
            mature = torch.nonzero(self.age[i] > m).flatten()
            if mature.numel() == 0:
                continue
            self.pending[i] += rho * mature.numel()
            k = int(self.pending[i])
            if k == 0:
                continue
            self.pending[i] -= k
            order = torch.argsort(rank[mature], stable=True)
            units = mature[order[:k]]
            if adaptable:
                self._move_mean_output(i, units, nxt, eta)
            self.reinit_units(lin, nxt, units, optimizer, kaiming=adaptable)
            self.utility[i][units] = 0
            self.age[i][units] = 0
            self.replaced += int(units.numel())
            self.events.append({"kind": "unit_reset", "grad_step": self.steps, "layer": i,
                                "units": units.tolist()})

    def _bias_correction(self, i: int, eta: float) -> torch.Tensor:
        return 1 - eta ** self.age[i].to(self.utility[i].dtype)

    def _adaptable_utility(self, i: int, h: torch.Tensor, lin: nn.Linear, nxt: list[nn.Linear],
                           eta: float) -> torch.Tensor:
        """Update layer i's adaptable-contribution utility from activations ``h`` (ages
        already advanced); returns the bias-corrected utility the replacement ranks by."""
        with torch.no_grad():
            c = self._bias_correction(i, eta)
            self.mean_act[i].mul_(eta).add_(h.mean(0), alpha=1 - eta)
            centred = (h - self.mean_act[i] / c).abs().mean(0)
            out_mag = torch.cat([n.weight.abs() for n in nxt], 0).mean(0)
            new = out_mag * centred / lin.weight.abs().mean(1)
            self.utility[i].mul_(eta).add_(new, alpha=1 - eta)
            return self.utility[i] / c

    def _move_mean_output(self, i: int, units: torch.Tensor, nxt: list[nn.Linear],
                          eta: float) -> None:
        """Add the replaced units' bias-corrected mean output to the next layer's bias."""
        with torch.no_grad():
            act = self.mean_act[i][units] / self._bias_correction(i, eta)[units]
            for n in nxt:
                if n.bias is not None:
                    n.bias += n.weight[:, units] @ act
            self.mean_act[i][units] = 0

    def reinit_units(self, lin: nn.Linear, nxt: list[nn.Linear], units: torch.Tensor,
                     optimizer: torch.optim.Optimizer, kaiming: bool = False) -> None:
        """Fresh incoming weights and bias for ``units`` (U(+-1/sqrt(fan_in)), torch's Linear
        init; ``kaiming``: U(+-sqrt(6/fan_in)) and bias 0, the official code's), zero outgoing
        weights; their optimiser state entries zeroed."""
        bound = math.sqrt((6.0 if kaiming else 1.0) / lin.in_features)
        with torch.no_grad():
            fresh = (torch.rand((units.numel(), lin.in_features), generator=self.gen) * 2 - 1)
            lin.weight[units] = (fresh * bound).to(lin.weight)
            _zero_state(optimizer, lin.weight, units, 0)
            if lin.bias is not None:
                b = (torch.rand(units.numel(), generator=self.gen) * 2 - 1) * bound
                lin.bias[units] = 0 if kaiming else b.to(lin.bias)
                _zero_state(optimizer, lin.bias, units, 0)
            for n in nxt:  # the next layer, or every level's head
                n.weight[:, units] = 0
                _zero_state(optimizer, n.weight, units, 1)

    def drain(self) -> list[dict]:
        out, self.events = self.events, []
        return out
