"""iCaRL's exemplar herding and nearest-mean-of-exemplars (Rebuffi et al. 2017, Algorithms 2,
4 and 1), vectorised over the classes and the candidates of each class."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def herding(features: torch.Tensor, labels: torch.Tensor, m: int) -> tuple[torch.Tensor,
                                                                            torch.Tensor]:
    """Herding selection of up to ``m`` exemplars per class (iCaRL Algorithm 4).

    With phi the L2-normalised features of a class and mu their mean, the k-th exemplar is
    p_k = argmin_x || mu - (phi(x) + sum_{j<k} phi(p_j)) / k || over the class's samples not
    chosen yet; since ||phi(x)|| = 1 this is argmax_x <k mu - sum_{j<k} phi(p_j), phi(x)>
    (the official code's running vector w_k = w_{k-1} + mu - phi(p_{k-1})). Ties: the
    lowest index. A class with fewer than m samples keeps them all.

    Returns (indices into ``features``, rank of each within its class, 0 = chosen first),
    grouped by class in increasing class id, each group in selection order.
    """
    phi = F.normalize(features.float(), dim=1)
    classes, inverse, n_per = torch.unique(labels, return_inverse=True, return_counts=True)
    n_cls, n_max, d = len(classes), int(n_per.max()) if len(labels) else 0, phi.shape[1]
    if n_cls == 0 or m <= 0:
        empty = torch.zeros(0, dtype=torch.int64, device=features.device)
        return empty, empty
    # pad each class's samples into a (classes, n_max, d) block
    order = torch.argsort(inverse, stable=True)
    starts = torch.cumsum(n_per, 0) - n_per
    slot = torch.arange(len(labels), device=labels.device) - starts[inverse[order]]
    block = phi.new_zeros((n_cls, n_max, d))
    block[inverse[order], slot] = phi[order]
    index = torch.full((n_cls, n_max), -1, dtype=torch.int64, device=labels.device)
    index[inverse[order], slot] = order
    valid = index >= 0
    mu = block.sum(1) / n_per[:, None].to(block.dtype)
    chosen_sum = torch.zeros_like(mu)
    available = valid.clone()
    picks = []
    rows = torch.arange(n_cls, device=labels.device)
    for k in range(1, min(m, n_max) + 1):
        score = torch.einsum("cnd,cd->cn", block, k * mu - chosen_sum)
        score = score.masked_fill(~available, float("-inf"))
        best = score.argmax(1)
        live = available[rows, best]  # a class with no candidate left picks nothing
        picks.append(torch.where(live, index[rows, best], -1))
        chosen_sum += torch.where(live[:, None], block[rows, best], 0.0)
        available[rows, best] = False
    picked = torch.stack(picks, 1)  # (classes, k): class-major, in selection order
    rank = torch.arange(picked.shape[1], device=labels.device).expand_as(picked)
    keep = picked >= 0
    return picked[keep], rank[keep]


def class_means(features: torch.Tensor, labels: torch.Tensor, n_classes: int
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """mu_y = normalise(mean of the L2-normalised features of class y) (iCaRL Algorithm 1,
    re-normalised as the paper's Section 2.1 asks); returns (means (C, d), has_mean (C,))."""
    phi = F.normalize(features.float(), dim=1)
    sums = phi.new_zeros((n_classes, phi.shape[1])).index_add_(0, labels, phi)
    counts = torch.bincount(labels, minlength=n_classes)
    return F.normalize(sums, dim=1), counts > 0


def ncm_scores(features: torch.Tensor, means: torch.Tensor, has_mean: torch.Tensor
               ) -> torch.Tensor:
    """Nearest-mean-of-exemplars scores: -|| phi(x) - mu_y || for classes with a mean,
    -inf for the others (argmax = iCaRL's y* = argmin_y || phi(x) - mu_y ||)."""
    phi = F.normalize(features.float(), dim=1)
    dist = torch.cdist(phi, means)
    return torch.where(has_mean, -dist, torch.tensor(float("-inf"), device=dist.device))
