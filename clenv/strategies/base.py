"""The strategy contract and a supervised base class that naive, ER and joint build on.

Contract (DESIGN.md): ``setup(spec)``, ``predict(obs) -> scores (B, C_max)``,
``learn(batch, info) -> dict of losses``, optional ``on_task_start(t)`` / ``on_task_end(t)``,
and ``counters()`` for the Runner's budget accounting.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from clenv.config.schema import Field
from clenv.models.build import build_model
from clenv.strategies.spec import StrategySpec


class Strategy:
    """Base of every strategy. Subclasses set ``fields`` (their YAML parameters)."""

    fields: ClassVar[dict[str, Field]] = {}

    def __init__(self, **params: Any) -> None:
        self.params = params

    def setup(self, spec: StrategySpec) -> None:
        self.spec = spec

    def predict(self, obs: dict) -> torch.Tensor:
        raise NotImplementedError

    def learn(self, batch: dict, info: dict) -> dict[str, float]:
        return {}

    def on_task_start(self, task: int) -> None:
        pass

    def on_task_end(self, task: int) -> None:
        pass

    def counters(self) -> dict[str, int]:
        return {}


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class SupervisedStrategy(Strategy):
    """A model with a C_max-row head; unseen classes are masked out of scores and the loss.

    Holds the optimiser, the seen-class mask, the gradient-step credit (``updates_per_sample``)
    and the budget counters.
    """

    def setup(self, spec: StrategySpec) -> None:
        super().setup(spec)
        self.device = resolve_device(spec.device)
        torch.manual_seed(spec.seed)
        self.rng = np.random.default_rng(np.random.SeedSequence([spec.seed, 0x57A7]))
        self.model = self.new_model()
        self.optimizer = self.new_optimizer()
        self.seen = torch.zeros(spec.n_classes, dtype=torch.bool, device=self.device)
        self.neg_inf = torch.tensor(float("-inf"), device=self.device)
        self.grad_steps = 0
        self.samples_processed = 0
        self._credit = 0.0
        self._mode_matters = any(isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.Dropout))
                                 for m in self.model.modules())

    def new_model(self) -> nn.Module:
        return build_model(self.spec.model, self.spec.input_shape,
                           self.spec.n_classes).to(self.device)

    def new_optimizer(self) -> torch.optim.Optimizer:
        p = self.params
        if p.get("optimizer", "sgd") == "adam":
            return torch.optim.Adam(self.model.parameters(), lr=p.get("lr", 1e-3),
                                    weight_decay=p.get("weight_decay", 0.0))
        return torch.optim.SGD(self.model.parameters(), lr=p.get("lr", 0.05),
                               momentum=p.get("momentum", 0.0),
                               weight_decay=p.get("weight_decay", 0.0))

    # -- tensors -------------------------------------------------------------------------------
    def raw(self, x: np.ndarray) -> torch.Tensor:
        """obs["x"] as a tensor on the device, dtype unchanged (uint8 stays uint8)."""
        t = torch.from_numpy(x)
        return t if self.device.type == "cpu" else t.to(self.device, non_blocking=True)

    def as_input(self, raw: torch.Tensor) -> torch.Tensor:
        return raw.float().div_(255.0) if raw.dtype == torch.uint8 else raw

    def masked(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.where(self.seen, logits, self.neg_inf)

    # -- contract ------------------------------------------------------------------------------
    def predict(self, obs: dict) -> torch.Tensor:
        if self._mode_matters:
            self.model.eval()
        with torch.no_grad():
            return self.masked(self.model(self.as_input(self.raw(obs["x"]))))

    def stream_batch(self, batch: dict, info: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """The valid rows of a stream batch as (raw x, y) tensors; marks their classes seen."""
        valid = info["valid"]
        x, y = batch["x"], info["y"]
        if not valid[-1]:  # padding sits at the end of a batch
            x, y = x[valid], y[valid]
        y_t = torch.from_numpy(y)
        if self.device.type != "cpu":
            y_t = y_t.to(self.device)
        # a class is seen from its first sample on; the Env names first appearances in
        # info["new_classes"] (a dict lookup is far cheaper than a reduction per step)
        if "new_classes" in info or "is_new_class" not in info:
            self.seen[y_t] = True
        return self.raw(x), y_t

    def n_steps(self, n_valid: int) -> int:
        """Gradient steps for a batch of n_valid stream samples under updates_per_sample."""
        u = self.params.get("updates_per_sample")
        if u is None:
            return 1 if n_valid else 0
        self._credit += u * n_valid
        steps = int(self._credit)
        self._credit -= steps
        return steps

    def step(self, raw_x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One SGD step on (raw_x, y) with the logits of unseen classes masked."""
        if self._mode_matters:
            self.model.train()
        loss = F.cross_entropy(self.masked(self.model(self.as_input(raw_x))), y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.grad_steps += 1
        self.samples_processed += len(y)
        return loss

    def counters(self) -> dict[str, int]:
        return {"grad_steps": self.grad_steps, "samples_processed": self.samples_processed,
                "buffer_samples": 0, "buffer_bytes": 0,
                "n_params": sum(p.numel() for p in self.model.parameters())}
