"""SimGCD's representation terms (Wen et al. 2023), as ActiveGCD trains them
(mashijie1028/ActiveGCD, model.py ``info_nce_logits`` and ``SupConLoss``; utils_al/
train_recipes_ema.py ``train_al_ema``), on the projections of two views of a batch.

With z the L2-normalised projections of 2B rows (view 1 rows 0..B-1, view 2 rows B..2B-1) and
s_ij = z_i · z_j:

- unsupervised InfoNCE (SimCLR), temperature t (ActiveGCD: 1.0):
  L = mean_i [ -s_{i,p(i)} / t + log sum_{j != i} exp(s_ij / t) ], p(i) the other view of i;
- supervised contrastive (Khosla et al. 2020), temperature t (0.07, base temperature 0.07):
  L = mean_i [ -(1/|P(i)|) sum_{j in P(i)} ( s_ij / t - log sum_{k != i} exp(s_ik / t) ) ],
  P(i) = the rows j != i with the label of row i (the other view included).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ProjectionHead(nn.Module):
    """features -> ``layers`` linear layers with GELU between -> ``out_dim`` (DINO's projection
    MLP as SimGCD uses it: 3 layers, hidden 2048, output 256; truncated-normal init, std 0.02)."""

    def __init__(self, in_dim: int, out_dim: int = 256, hidden: int = 2048,
                 layers: int = 3) -> None:
        super().__init__()
        dims = [in_dim] + [hidden] * (max(layers, 1) - 1) + [out_dim]
        mods: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
            mods.append(nn.Linear(a, b))
            if i < len(dims) - 2:
                mods.append(nn.GELU())
        self.mlp = nn.Sequential(*mods)
        for m in self.mlp:
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.mlp(f)


def _self_masked(sim: torch.Tensor) -> torch.Tensor:
    """sim with the diagonal set to -inf (a row is never its own contrast)."""
    eye = torch.eye(sim.shape[0], dtype=torch.bool, device=sim.device)
    return sim.masked_fill(eye, float("-inf"))


def info_nce(proj: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """SimCLR's InfoNCE over 2B projections (two views stacked); see the module doc."""
    z = F.normalize(proj, dim=1)
    n = z.shape[0]
    b = n // 2
    logits = _self_masked(z @ z.T / temperature)
    partner = torch.cat([torch.arange(b, n), torch.arange(0, b)]).to(z.device)
    return F.cross_entropy(logits, partner)


def sup_con(proj: torch.Tensor, labels: torch.Tensor, temperature: float = 0.07,
            base_temperature: float = 0.07) -> torch.Tensor:
    """Supervised contrastive loss over 2B projections (two views stacked) whose B labels
    ``labels`` hold for both views; 0 when no row is given."""
    if proj.shape[0] == 0:
        return proj.sum() * 0.0
    z = F.normalize(proj, dim=1)
    y = torch.cat([labels, labels])
    logits = _self_masked(z @ z.T / temperature)
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    pos = (y[:, None] == y[None, :]) & ~torch.eye(len(y), dtype=torch.bool, device=z.device)
    mean_pos = torch.where(pos, log_prob, torch.zeros_like(log_prob)).sum(1) / pos.sum(1)
    return -(temperature / base_temperature) * mean_pos.mean()
