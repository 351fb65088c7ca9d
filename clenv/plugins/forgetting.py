"""Active, temporary and probabilistic forgetting for a classifier (our adaptation).

The published methods reset a language model's token embeddings: active forgetting (Chen et
al., NeurIPS 2023) every k updates for the whole pretraining run, temporary forgetting (Anand et
al., ICLR 2025) every k updates during the first N updates only, and its probabilistic variant
swaps the embeddings of a batch's tokens for random vectors during one step. Applying them to a
classifier's head rows, input layer or any named module is clenv's adaptation, not the papers'.

A reset gives each reset parameter fresh initial values drawn from the plug-in's seeded
generator and clears its optimiser state (Adam moments and step count, SGD momentum): every
reset target is a whole torch Parameter, so its state is dropped and the optimiser starts it
again at step 0 (AdamEF's own bias correction). Frozen language targets are buffers: never reset.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from clenv.errors import ConfigError
from clenv.models.language_head import CosineHead, init_linear
from clenv.models.multihead import MultiHead
from clenv.strategies.state import Stateful

if TYPE_CHECKING:
    from clenv.strategies.spec import StrategySpec

_SEED_TAG = 0xF0267


def present_classes(y: torch.Tensor, level: int) -> np.ndarray:
    """The classes of a batch of class ids (single-label)."""
    return torch.unique(y).cpu().numpy()


def level_classes(y: torch.Tensor, level: int) -> np.ndarray:
    """The classes of ``level`` among a batch of (label, level) rows (hierarchical)."""
    return torch.unique(y[y[:, 1] == level, 0]).cpu().numpy()


def visible_positives(y: torch.Tensor, level: int) -> np.ndarray:
    """The classes positive and visible in some row of (labels, mask) rows (multi-label)."""
    return torch.nonzero((y[:, 0] * y[:, 1]).any(0)).flatten().cpu().numpy()


# the classes of a batch whose head rows the probabilistic schedule may reset, per family
BATCH_CLASSES = {"hierarchical": level_classes, "multi_label": visible_positives}


def _seed_from(gen: torch.Generator) -> int:
    return int(torch.randint(0, 2**62, (1,), generator=gen))


def reset_module(module: nn.Module, gen: torch.Generator) -> list[nn.Parameter]:
    """Fresh initial values for ``module`` from ``gen``; returns the parameters reset.

    Linear layers and cosine heads draw from ``gen`` directly; other layers with their own
    ``reset_parameters`` (convolutions, norms) run it under a forked RNG seeded from ``gen``,
    so the global RNG is neither used nor changed. A cosine head keeps its scale, bias and
    frozen targets."""
    if isinstance(module, CosineHead):
        module.reset_trainable(gen)
        return module.reset_parameters_list()
    if isinstance(module, nn.Linear):
        init_linear(module, gen)
        return list(module.parameters())
    if hasattr(module, "reset_parameters") and callable(module.reset_parameters):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_seed_from(gen))
            module.reset_parameters()
        return list(module.parameters(recurse=False)) + [
            p for child in module.children() for p in reset_module(child, gen)]
    return [p for child in module.children() for p in reset_module(child, gen)]


def _heads(model: nn.Module) -> list[nn.Module]:
    if isinstance(model, MultiHead):
        return list(model.heads)
    head = getattr(model, "head", None)
    return [head] if isinstance(head, nn.Module) else []


def _row_params(head: nn.Module) -> list[nn.Parameter]:
    """The class-row matrices of a head: Linear weight and bias, or cosine class vectors."""
    if isinstance(head, CosineHead):
        rows = head.trainable_rows()
        return [] if rows is None else [rows]
    if isinstance(head, nn.Linear):
        return [p for p in (head.weight, head.bias) if p is not None]
    return []


class Forgetting(Stateful):
    """Resets parameter groups of a strategy's model on a schedule; logs each reset as an
    event (``drain()``) with the gradient step, and a ``recovered`` event once the training
    loss is back to its mean over the ``recovery_window`` steps before the reset."""

    state_attributes = ("rng", "gen", "steps", "task_steps", "losses", "pending", "events",
                        "resets")

    def __init__(self, cfg: dict, spec: StrategySpec, model: nn.Module,
                 key: str = "strategy.forgetting") -> None:
        self.cfg = cfg
        self.key = key
        self.batch_classes = BATCH_CLASSES.get(spec.family, present_classes)  # by family
        if cfg["schedule"] == "temporary" and cfg["per"] == "task" and not spec.boundaries:
            raise ConfigError(f"{key}.per", "counting steps per task needs task boundaries, "
                                            "which this scenario hides",
                              "set per: run or scenario.boundaries: exposed")
        seeds = np.random.SeedSequence([spec.seed, _SEED_TAG]).spawn(2)
        self.rng = np.random.default_rng(seeds[0])
        self.gen = torch.Generator().manual_seed(int(seeds[1].generate_state(1)[0]))
        self.steps = 0
        self.task_steps = 0
        self.losses: deque[float] = deque(maxlen=cfg["recovery_window"])
        self.pending: tuple[int, float] | None = None  # (reset step, loss level to reach)
        self.events: list[dict] = []
        self.resets = 0
        if cfg["schedule"] == "probabilistic":
            if not any(_row_params(h) for h in _heads(model)):
                raise ConfigError(f"{key}.schedule", "the model's head has no learnable class "
                                                     "rows to swap", "use head type linear "
                                                                     "or cosine")
        else:
            self.groups(model)  # unknown names fail at setup, before any step

    # -- targets -------------------------------------------------------------------------------
    def groups(self, model: nn.Module) -> list[tuple[str, nn.Module]]:
        """(target, module) pairs on ``model`` (a rebuilt model is looked up anew)."""
        named = dict(model.named_modules())
        out: list[tuple[str, nn.Module]] = []
        for t in self.cfg["target"]:
            if t == "head":
                heads = _heads(model)
                if not heads:
                    raise ConfigError(f"{self.key}.target", "the model has no head",
                                      "name a module instead")
                for h in heads:
                    if isinstance(h, CosineHead) and not h.reset_parameters_list():
                        raise ConfigError(f"{self.key}.target", "a language head without a "
                                                                "projection has nothing to "
                                                                "reset (its targets are "
                                                                "frozen)",
                                          "target input or a backbone module, or set "
                                          "strategy.head.projection: true")
                    out.append(("head", h))
            elif t == "input":
                first = next((m for m in model.modules()
                              if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d))),
                             None)
                if first is None:
                    raise ConfigError(f"{self.key}.target", "the model has no linear or "
                                                            "convolutional input layer",
                                      "name a module instead")
                out.append(("input", first))
            elif t in named and t:
                out.append((t, named[t]))
            else:
                names = [n for n in named if n][:12]
                raise ConfigError(f"{self.key}.target", f"no module {t!r:.60} in the model",
                                  f"use head, input or one of: {', '.join(names)}")
        return out

    # -- schedule ------------------------------------------------------------------------------
    def on_task_start(self, task: int) -> None:
        self.task_steps = 0

    def due(self) -> bool:
        """Whether a reset follows the step just taken (1-based step counts)."""
        cfg = self.cfg
        if cfg["schedule"] == "active":
            return self.steps % cfg["every"] == 0
        if cfg["schedule"] == "temporary":
            n = self.steps if cfg["per"] == "run" else self.task_steps
            return n % cfg["every"] == 0 and n <= cfg["window"]
        return False

    def before_step(self, model: nn.Module, optimizer: torch.optim.Optimizer,
                    y: torch.Tensor) -> list | None:
        """Probabilistic schedule: swap a random share of the batch's class rows for random
        vectors; returns what ``after_step`` needs to restore them."""
        if self.cfg["schedule"] != "probabilistic":
            return None
        heads = _heads(model)
        state = optimizer.state
        saved = []
        for lv, head in enumerate(heads):
            classes = self.batch_classes(y, lv)
            if classes.size == 0:
                continue
            chosen = classes[self.rng.random(classes.size) < self.cfg["p"]]
            if chosen.size == 0:
                continue
            rows = torch.from_numpy(chosen).to(y.device)
            for p in _row_params(head):
                st = {k: v[rows].clone() for k, v in state.get(p, {}).items()
                      if torch.is_tensor(v) and v.shape == p.shape}
                saved.append((p, rows, p.data[rows].clone(), st))
                with torch.no_grad():
                    if isinstance(head, CosineHead):
                        fresh = torch.randn((len(rows), *p.shape[1:]), generator=self.gen)
                    else:
                        bound = 1.0 / np.sqrt(head.in_features)
                        fresh = (torch.rand((len(rows), *p.shape[1:]), generator=self.gen)
                                 * 2 - 1) * bound
                    p.data[rows] = fresh.to(p)
        return saved

    def after_step(self, model: nn.Module, optimizer: torch.optim.Optimizer,
                   saved: list | None, loss: torch.Tensor) -> None:
        """Restore swapped rows (values and optimiser state), count the step, track recovery
        and reset when the schedule says so."""
        if saved:
            state = optimizer.state
            with torch.no_grad():
                for p, rows, values, st in saved:
                    p.data[rows] = values
                    for k, v in state.get(p, {}).items():
                        if torch.is_tensor(v) and v.shape == p.shape:
                            v[rows] = st[k] if k in st else 0
        self.steps += 1
        self.task_steps += 1
        value = float(loss.detach())
        if self.pending is not None and value <= self.pending[1]:
            self.events.append({"kind": "recovered", "reset_step": self.pending[0],
                                "grad_step": self.steps,
                                "recovery_steps": self.steps - self.pending[0]})
            self.pending = None
        self.losses.append(value)
        if self.due():
            self.reset(model, optimizer)

    def reset(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> list[nn.Parameter]:
        """Reset every target now: fresh values, optimiser state dropped; returns the
        parameters reset."""
        if self.pending is not None:  # reset again before recovering
            self.events.append({"kind": "recovered", "reset_step": self.pending[0],
                                "grad_step": self.steps, "recovery_steps": None})
        params: list[nn.Parameter] = []
        names = []
        for name, module in self.groups(model):
            params += reset_module(module, self.gen)
            names.append(name)
        state = optimizer.state
        for p in params:
            state.pop(p, None)
        self.resets += 1
        level = float(np.mean(self.losses)) if self.losses else float("inf")
        self.pending = (self.steps, level)
        self.events.append({"kind": "reset", "schedule": self.cfg["schedule"],
                            "target": names, "grad_step": self.steps,
                            "n_params": int(sum(p.numel() for p in params))})
        return params

    def drain(self) -> list[dict]:
        out, self.events = self.events, []
        return out
