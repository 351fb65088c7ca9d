"""Semi-supervised k-means (the GCD baseline of Vaze et al. 2022) on the standardised input:
labelled and queried samples stay in the cluster of their class, the other samples go to their
nearest centroid, centroids are the means of their members (Lloyd iterations). Old class
``old_classes[i]`` owns cluster i; a queried new class takes the free cluster whose centre is
nearest to its queried samples (a Hungarian assignment when several arrive at once). Clusters
without a labelled member start from k-means++ seeds (a seeded numpy Generator) and keep their
centroids from round to round."""

from __future__ import annotations

import numpy as np
from scipy import sparse

from clenv.agcd.label_mapping import apply_mapping
from clenv.agcd.queries import min_sq_distances


def sq_distances(x: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """||x_i - c_k||^2, (N, K)."""
    d = (x * x).sum(1)[:, None] - 2.0 * x @ centers.T + (centers * centers).sum(1)[None, :]
    return np.maximum(d, 0.0)


def kmeans_pp(x: np.ndarray, given: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k new centres by k-means++ sampling (D^2 weighting) around the ``given`` centres."""
    out = []
    d = min_sq_distances(x, given)
    if not np.isfinite(d).any():
        first = x[rng.integers(len(x))]
        out.append(first)
        d = ((x - first) ** 2).sum(1)
    while len(out) < k:
        w = d / d.sum() if d.sum() > 0 else np.full(len(x), 1.0 / len(x))
        c = x[rng.choice(len(x), p=w)]
        out.append(c)
        d = np.minimum(d, ((x - c) ** 2).sum(1))
    return np.asarray(out[:k]).reshape(k, x.shape[1])


def constrained_kmeans(x: np.ndarray, fixed: np.ndarray, centers: np.ndarray,
                       iters: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Lloyd iterations with rows ``fixed >= 0`` held in cluster ``fixed``; returns (centres,
    assignment, iterations run). Empty clusters keep their centre."""
    centers = centers.copy()
    free = fixed < 0
    assign = fixed.copy()
    K = len(centers)
    it = 0
    for it in range(1, iters + 1):
        new = fixed.copy()
        new[free] = sq_distances(x[free], centers).argmin(1)
        onehot = sparse.csr_matrix((np.ones(len(x)), (new, np.arange(len(x)))),
                                   shape=(K, len(x)))
        counts = np.asarray(onehot.sum(1)).ravel()
        sums = onehot @ x
        nonempty = counts > 0
        centers[nonempty] = sums[nonempty] / counts[nonempty, None]
        if it > 1 and np.array_equal(new, assign):
            break
        assign = new
    return centers, assign, it


class SemiSupervisedKMeans:
    """The k-means GCD learner (see the module doc)."""

    def __init__(self, iters: int = 100, seed: int = 0) -> None:
        self.iters = iters
        self.rng = np.random.default_rng(np.random.SeedSequence([seed, 0x4B3]))
        self.lloyd_iters = 0
        self.centers: np.ndarray | None = None

    def _standardise(self, x: np.ndarray) -> np.ndarray:
        x = x.reshape(len(x), -1).astype(np.float64)
        return (x - self.mean) / self.std

    def setup(self, x_labelled: np.ndarray, y_labelled: np.ndarray, x_unlabelled: np.ndarray,
              old_classes: np.ndarray, n_clusters: int) -> None:
        raw = np.concatenate([x_labelled, x_unlabelled]).reshape(
            len(x_labelled) + len(x_unlabelled), -1).astype(np.float64)
        self.mean = raw.mean(0)
        self.std = raw.std(0)
        self.std[self.std < 1e-6] = 1.0
        self.x = (raw - self.mean) / self.std
        self.n_lab = len(x_labelled)
        self.K = int(n_clusters)
        self.cluster_of = {int(c): i for i, c in enumerate(np.asarray(old_classes))}
        self.fixed = np.full(len(self.x), -1, dtype=np.int64)
        self.fixed[: self.n_lab] = [self.cluster_of[int(c)] for c in y_labelled]
        self.q_pos = np.zeros(0, dtype=np.int64)
        self.q_y = np.zeros(0, dtype=np.int64)
        self.scale = 1.0

    def add_queries(self, positions: np.ndarray, labels: np.ndarray) -> None:
        """Queried rows join their class's cluster at the next ``train``."""
        self.q_pos = np.concatenate([self.q_pos, np.asarray(positions, dtype=np.int64)])
        self.q_y = np.concatenate([self.q_y, np.asarray(labels, dtype=np.int64)])

    def _assign_new_classes(self) -> None:
        """Give every queried class without a cluster a free one: the free centres nearest to
        the classes' means (a Hungarian assignment), or the next free indices before the
        first fit."""
        from scipy.optimize import linear_sum_assignment

        pending = [int(c) for c in np.unique(self.q_y) if int(c) not in self.cluster_of]
        if not pending:
            return
        free = np.setdiff1d(np.arange(self.K), list(self.cluster_of.values()))
        if self.centers is None:
            chosen = free[: len(pending)]
        else:
            rows = self.x[self.n_lab + self.q_pos]
            means = np.stack([rows[self.q_y == c].mean(0) for c in pending])
            r, k = linear_sum_assignment(sq_distances(means, self.centers[free]))
            chosen = np.empty(len(pending), dtype=np.int64)
            chosen[r] = free[k]
        for c, k in zip(pending, chosen, strict=True):
            self.cluster_of[c] = int(k)

    def train(self, epochs: int) -> None:
        """Refit (``epochs`` is unused: a fit runs to convergence or ``iters``)."""
        self._assign_new_classes()
        if len(self.q_pos):
            self.fixed[self.n_lab + self.q_pos] = apply_mapping(self.q_y, self.cluster_of)
        K, x, fixed = self.K, self.x, self.fixed
        centers = np.zeros((K, x.shape[1])) if self.centers is None else self.centers.copy()
        has_label = np.zeros(K, dtype=bool)
        lab = fixed >= 0
        counts = np.bincount(fixed[lab], minlength=K)
        has_label[counts > 0] = True
        sums = sparse.csr_matrix((np.ones(lab.sum()), (fixed[lab], np.flatnonzero(lab))),
                                 shape=(K, len(x))) @ x
        centers[has_label] = sums[has_label] / counts[has_label, None]
        if self.centers is None:
            free = ~has_label
            centers[free] = kmeans_pp(x[~lab], centers[has_label], int(free.sum()), self.rng)
        self.centers, assign, it = constrained_kmeans(x, fixed, centers, self.iters)
        self.lloyd_iters += it
        d = sq_distances(x, self.centers)
        self.scale = float(d.min(1).mean()) or 1.0

    def logits(self, x: np.ndarray) -> np.ndarray:
        """-||x - c_k||^2 / s, s = the mean squared distance of training rows to their nearest
        centre (a scale-free temperature for the query strategies)."""
        return (-sq_distances(self._standardise(x), self.centers) / self.scale).astype(np.float32)

    def features(self, x: np.ndarray) -> np.ndarray:
        return self._standardise(x).astype(np.float32)

    def mapping(self) -> dict[int, int]:
        return dict(self.cluster_of)

    def counters(self) -> dict[str, int]:
        return {"grad_steps": 0, "samples_processed": 0, "lloyd_iterations": self.lloyd_iters,
                "n_params": 0 if self.centers is None else int(self.centers.size)}
