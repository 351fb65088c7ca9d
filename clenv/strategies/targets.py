"""Label codecs of the supervised base, one per stream family (docs/design.md, "Families").

A codec turns the Env's info into the label tensor a strategy stores and trains on, keeps the
seen-class masks, masks scores for predict and computes the loss. SupervisedStrategy picks one
by ``spec.family`` in :data:`CODECS`; a new family registers its codec there.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from clenv.models.build import build_model
from clenv.models.multihead import MultiHead
from clenv.strategies.regression_codec import RegressionCodec
from clenv.strategies.spec import StrategySpec


class SingleLabelCodec:
    """y: (n,) class ids; cross-entropy with unseen classes masked."""

    widen = False  # the labels' tensor keeps their dtype
    head_bias = False  # a cosine head's rows need no bias: softmax ignores a shared shift

    @staticmethod
    def model(spec: StrategySpec) -> nn.Module:
        """The model with one C_max-row head."""
        return build_model(spec.model, spec.input_shape, spec.n_classes, spec.seed)

    @staticmethod
    def setup(strategy) -> None:
        """Per-family state on the strategy (the base already made ``strategy.seen``)."""

    @staticmethod
    def targets(info: dict) -> np.ndarray:
        return info["y"]

    @staticmethod
    def mark_seen(strategy, y: torch.Tensor) -> None:
        strategy.seen[y] = True

    @staticmethod
    def scores(strategy, out: torch.Tensor) -> torch.Tensor:
        return strategy.masked(out)

    @staticmethod
    def loss(strategy, out: torch.Tensor, y: torch.Tensor, reduction: str) -> torch.Tensor:
        return F.cross_entropy(strategy.masked(out), y, reduction=reduction)


class HierarchicalCodec(SingleLabelCodec):
    """y: (n, 2) = (label at the row's level, level); one seen mask and head per level; the
    loss is the sum over levels of each row's CE at its own level's head, over the rows (HLE)."""

    @staticmethod
    def model(spec: StrategySpec) -> nn.Module:
        """A backbone with one head per level (clenv.models.multihead)."""
        backbone = build_model(spec.model, spec.input_shape, spec.level_sizes[-1], spec.seed)
        return MultiHead(backbone, spec.level_sizes)

    @staticmethod
    def setup(strategy) -> None:
        strategy.level_seen = [torch.zeros(c, dtype=torch.bool, device=strategy.device)
                               for c in strategy.spec.level_sizes]

    @staticmethod
    def targets(info: dict) -> np.ndarray:
        return np.stack([info["y"], info["level"]], axis=1)

    @staticmethod
    def mark_seen(strategy, y: torch.Tensor) -> None:
        for lv in torch.unique(y[:, 1]).tolist():
            strategy.level_seen[lv][y[y[:, 1] == lv, 0]] = True

    @staticmethod
    def scores(strategy, out) -> dict[int, torch.Tensor]:
        return {lv: torch.where(m, o, strategy.neg_inf)
                for lv, (o, m) in enumerate(zip(out, strategy.level_seen, strict=True))}

    @staticmethod
    def loss(strategy, out, y: torch.Tensor, reduction: str) -> torch.Tensor:
        level = y[:, 1]
        per_row = torch.zeros(len(y), device=y.device)
        for lv in torch.unique(level).tolist():
            rows = level == lv
            logits = torch.where(strategy.level_seen[lv], out[lv][rows], strategy.neg_inf)
            per_row[rows] = F.cross_entropy(logits, y[rows, 0], reduction="none")
        return per_row.mean() if reduction == "mean" else per_row


class MultiLabelCodec(SingleLabelCodec):
    """y: (n, 2, C) = (visible labels, their mask); BCE on the visible labels only (a hidden
    label is no negative)."""

    widen = True  # uint8 labels become int64 tensors
    head_bias = True  # one sigmoid per class: a cosine head needs a bias per row

    @staticmethod
    def setup(strategy) -> None:
        """No state beyond ``strategy.seen``."""

    @staticmethod
    def targets(info: dict) -> np.ndarray:
        return np.stack([info["y"], info["label_mask"]], axis=1)

    @staticmethod
    def mark_seen(strategy, y: torch.Tensor) -> None:
        strategy.seen |= (y[:, 0] * y[:, 1]).any(0).bool()

    @staticmethod
    def scores(strategy, out: torch.Tensor) -> torch.Tensor:
        return strategy.masked(out)

    @staticmethod
    def loss(strategy, out: torch.Tensor, y: torch.Tensor, reduction: str) -> torch.Tensor:
        mask = y[:, 1].float()
        per = F.binary_cross_entropy_with_logits(out, y[:, 0].float(), reduction="none")
        per_row = (per * mask).sum(1) / mask.sum(1).clamp(min=1)
        return per_row.mean() if reduction == "mean" else per_row


CODECS = {
    "single_label": SingleLabelCodec,
    "hierarchical": HierarchicalCodec,
    "multi_label": MultiLabelCodec,
    "regression": RegressionCodec,
}
