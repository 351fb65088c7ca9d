"""Query strategies for AGCD: each returns an ordering of the still-unlabelled candidates, best
first; the round loop turns it into the Env's priorities and the Env labels the first ``budget``.
All of them are vectorised numpy over (n, K) probabilities and (n, d) features.

- random: a seeded permutation.
- entropy: highest predictive entropy first.
- margin: smallest top-1 minus top-2 probability first.
- kcenter: greedy k-center (Sener & Savarese 2018): repeatedly the point farthest from every
  labelled and already chosen point.
- novel_margin: samples predicted as a new cluster (index >= n_old) first, by margin.
- adaptive: AGCD's adaptive novel sampling (Ma et al. 2024; ActiveGCD's
  query_strategies/novel_margin_sampling_adaptive.py, NovelMarginSamplingAdaptive.query): rounds
  count from 1; margin order descending (confident first) in rounds r < adaptive_round,
  ascending (uncertain first) from round adaptive_round on (default 2: only round 1 is
  confident-first); the first floor(b / n_new) samples of every predicted-new cluster in that
  order, then further predicted-new samples in that order (as the official code), then the
  predicted-old samples in that order, where the official code stops with an assertion (not
  enough predicted-new samples to spend the budget on).
"""

from __future__ import annotations

import numpy as np

QUERY_STRATEGIES = ("random", "entropy", "margin", "kcenter", "novel_margin", "adaptive")


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def entropy(p: np.ndarray) -> np.ndarray:
    """H(p) = -sum_k p_k ln p_k per row (0 ln 0 = 0)."""
    return -(p * np.log(np.clip(p, 1e-30, None))).sum(axis=1)


def margin(p: np.ndarray) -> np.ndarray:
    """p_top1 - p_top2 per row."""
    if p.shape[1] < 2:
        return np.ones(len(p))
    top2 = np.partition(p, p.shape[1] - 2, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def entropy_order(p: np.ndarray) -> np.ndarray:
    return np.argsort(-entropy(p), kind="stable")


def margin_order(p: np.ndarray, descending: bool = False) -> np.ndarray:
    m = margin(p)
    return np.argsort(-m if descending else m, kind="stable")


def min_sq_distances(x: np.ndarray, centers: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """min_j ||x_i - c_j||^2 for every row of x (inf when there is no center)."""
    out = np.full(len(x), np.inf)
    if len(centers) == 0:
        return out
    xx = (x * x).sum(1)
    for s in range(0, len(centers), chunk):
        c = centers[s:s + chunk]
        d = xx[:, None] - 2.0 * x @ c.T + (c * c).sum(1)[None, :]
        np.minimum(out, d.min(axis=1), out=out)
    return np.maximum(out, 0.0)


def kcenter_order(features: np.ndarray, labelled: np.ndarray, budget: int) -> np.ndarray:
    """Greedy k-center: ``budget`` picks, each the point farthest from the labelled points and
    the earlier picks (ties to the lower index); then the rest, farthest first."""
    x = np.asarray(features, dtype=np.float64)
    d = min_sq_distances(x, np.asarray(labelled, dtype=np.float64))
    if not np.isfinite(d).any():  # nothing labelled yet: start from the point nearest the mean
        d = -((x - x.mean(0)) ** 2).sum(1)
    picks = []
    for _ in range(min(budget, len(x))):
        i = int(np.argmax(d))
        picks.append(i)
        d = np.minimum(d, ((x - x[i]) ** 2).sum(1))
        d[i] = -np.inf
    rest = np.setdiff1d(np.arange(len(x)), picks)
    rest = rest[np.argsort(-d[rest], kind="stable")]
    return np.concatenate([np.asarray(picks, dtype=np.int64), rest])


def _rank_within(groups: np.ndarray) -> np.ndarray:
    """For each position, how many earlier positions share its group."""
    order = np.argsort(groups, kind="stable")
    sorted_g = groups[order]
    starts = np.searchsorted(sorted_g, sorted_g, side="left")
    rank = np.empty(len(groups), dtype=np.int64)
    rank[order] = np.arange(len(groups)) - starts
    return rank


def novel_margin_order(p: np.ndarray, n_old: int) -> np.ndarray:
    """Predicted-new samples (argmax >= n_old) first, each group by ascending margin."""
    order = margin_order(p)
    novel = p[order].argmax(1) >= n_old
    return np.concatenate([order[novel], order[~novel]])


def adaptive_order(p: np.ndarray, n_old: int, budget: int, round_: int,
                   adaptive_round: int) -> np.ndarray:
    """AGCD's adaptive novel sampling (see the module doc); ``round_`` counts from 1 (the first
    query round is 1), confident-first while ``round_ < adaptive_round``."""
    order = margin_order(p, descending=round_ < adaptive_round)
    pred = p[order].argmax(1)
    novel = pred >= n_old
    n_new = p.shape[1] - n_old
    quota = budget // n_new if n_new > 0 else 0
    first = novel & (_rank_within(pred) < quota)
    return np.concatenate([order[first], order[novel & ~first], order[~novel]])


def rank_candidates(name: str, *, logits: np.ndarray, features: np.ndarray,
                    labelled_features: np.ndarray, n_old: int, budget: int, round_: int,
                    adaptive_round: int, rng: np.random.Generator) -> np.ndarray:
    """The ordering (a permutation of range(n), best first) of strategy ``name``."""
    n = len(logits)
    if name == "random":
        return rng.permutation(n)
    if name == "kcenter":
        return kcenter_order(features, labelled_features, budget)
    p = softmax(np.asarray(logits, dtype=np.float64))
    if name == "entropy":
        return entropy_order(p)
    if name == "margin":
        return margin_order(p)
    if name == "novel_margin":
        return novel_margin_order(p, n_old)
    if name == "adaptive":
        return adaptive_order(p, n_old, budget, round_, adaptive_round)
    raise ValueError(f"unknown query strategy {name!r}; expected one of {QUERY_STRATEGIES}")


def priorities(order: np.ndarray, open_idx: np.ndarray, n: int) -> np.ndarray:
    """The Env action for an ordering of the open candidates: strictly decreasing priorities in
    (-1, 1] along ``order``, -1 on candidates already labelled."""
    pri = np.full(n, -1.0, dtype=np.float32)
    m = len(order)
    pri[open_idx[order]] = 1.0 - 2.0 * np.arange(m) / max(m, 1)
    return pri
