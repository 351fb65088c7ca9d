"""One linear head per label level on a shared backbone (HLE's multi-head model)."""

from __future__ import annotations

import torch
from torch import nn


class MultiHead(nn.Module):
    """``backbone.features`` then one Linear per level; forward returns a list of logits
    (top level first). Each head is preallocated to its level's class count; the strategy
    masks the rows of classes not seen yet."""

    def __init__(self, backbone: nn.Module, level_sizes: list[int]) -> None:
        super().__init__()
        self.features = backbone.features
        self.heads = nn.ModuleList(nn.Linear(backbone.feature_dim, c) for c in level_sizes)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        f = self.features(x)
        return [h(f) for h in self.heads]
