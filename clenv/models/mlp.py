"""A multi-layer perceptron on the flattened input."""

from __future__ import annotations

import math

import torch
from torch import nn

_ACT = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}


class MLP(nn.Module):
    """Flatten -> [Linear -> activation] * len(hidden) -> Linear(n_out)."""

    def __init__(self, input_shape: tuple[int, ...], n_out: int, hidden: list[int] | None = None,
                 activation: str = "relu") -> None:
        super().__init__()
        widths = [math.prod(input_shape), *(hidden if hidden is not None else [256, 256])]
        layers: list[nn.Module] = [nn.Flatten()]
        for a, b in zip(widths[:-1], widths[1:], strict=True):
            layers += [nn.Linear(a, b), _ACT[activation]()]
        self.features = nn.Sequential(*layers)
        self.feature_dim = widths[-1]
        self.head = nn.Linear(self.feature_dim, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
