"""The ``mask_unseen`` option of A-GEM, ER-ACE and DER/DER++. clenv's loss masks the logits of
classes not yet seen (every strategy's convention, ER's included); ``mask_unseen: false`` trains
with plain cross-entropy over all C_max classes on single-label streams, as Avalanche does (and
the official ER-ACE and DER code in class-incremental runs), so the logits of classes still to
come are pushed down from the first step. Predictions stay masked either way; multi-label (BCE
on visible labels) and hierarchical losses are unchanged."""

from __future__ import annotations

import torch
import torch.nn.functional as F


class UnmaskedOption:
    """Mixin before SupervisedStrategy: ``loss`` without the seen-class mask when
    ``params["mask_unseen"]`` is false on a single-label stream."""

    def loss(self, out, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        if self.params.get("mask_unseen", True) or self.multi_label or self.levels > 1:
            return super().loss(out, y, reduction)
        return F.cross_entropy(out, y, reduction=reduction)
