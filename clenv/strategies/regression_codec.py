"""The label codec of continual regression for the supervised base (docs/design.md,
"Families"): one output per row, the mean squared error as the loss.

Strategies store labels in int64 tensors (replay buffers, the joint store), so the codec
stores each real target losslessly as the 64 bits of its float64 value and reads them back
as floats in the loss: memories keep working unchanged.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from clenv.models.build import build_model
from clenv.strategies.spec import StrategySpec


class RegressionCodec:
    """y: (n,) int64 = the float64 bits of the real targets; MSE on the model's one output."""

    widen = False  # the int64 bit patterns stay as they are

    @staticmethod
    def model(spec: StrategySpec) -> nn.Module:
        """The model with one output: the prediction."""
        return build_model(spec.model, spec.input_shape, 1, spec.seed)

    @staticmethod
    def setup(strategy) -> None:
        """No label state: every output is always in play."""

    @staticmethod
    def targets(info: dict) -> np.ndarray:
        return info["target"].astype(np.float64).view(np.int64)

    @staticmethod
    def mark_seen(strategy, y: torch.Tensor) -> None:
        """Nothing to mark: there is no class mask to open."""

    @staticmethod
    def scores(strategy, out: torch.Tensor) -> torch.Tensor:
        return out

    @staticmethod
    def values(y: torch.Tensor) -> torch.Tensor:
        """The real targets a label tensor holds (float32)."""
        return y.view(torch.float64).float()

    @staticmethod
    def loss(strategy, out: torch.Tensor, y: torch.Tensor, reduction: str) -> torch.Tensor:
        return F.mse_loss(out[:, 0], RegressionCodec.values(y), reduction=reduction)
