"""The Pool: a dataset held in memory as arrays, with class names, an optional label tree and a
train/test split. Every scenario generator draws its stream from a Pool."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from clenv.errors import ConfigError


@dataclass
class Pool:
    """A labelled dataset in memory.

    x: (N, *shape) array, uint8 (0-255) for images (shape (C, H, W)) or float32 for vectors.
    y: (N,) int64 class ids in [0, n_classes) for a single-label pool, or an (N, n_classes)
        uint8 multi-hot matrix (0/1, at least one positive per row) for a multi-label pool.
    train: (N,) bool, True for training samples, False for test samples.
    class_names: one readable name per class id.
    ancestors: optional label tree, (n_classes, depth - 1) int64: column ``l`` holds each class's
        ancestor id at coarser level ``l`` (column 0 = the top level, the last column = the
        direct parent); None when the pool is flat.
    tree_names: names of the classes at each coarser level, one list per column of
        ``ancestors`` (ancestor ids index into them); None when the pool is flat.
    """

    x: np.ndarray
    y: np.ndarray
    train: np.ndarray
    class_names: list[str]
    name: str = "pool"
    ancestors: np.ndarray | None = None
    tree_names: list[list[str]] | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        y = np.asarray(self.y)
        self.train = np.asarray(self.train, dtype=bool)
        n = len(self.x)
        if y.ndim == 2:
            self.y = self._check_multi_hot(y)
        elif y.ndim == 1:
            self.y = y.astype(np.int64)
            if self.y.size and (self.y.min() < 0 or self.y.max() >= len(self.class_names)):
                raise ValueError(f"pool {self.name}: labels outside [0, {len(self.class_names)})")
        else:
            raise ValueError(f"pool {self.name}: y must be (N,) class ids or an (N, n_classes) "
                             f"multi-hot matrix, got shape {y.shape}")
        if len(self.y) != n or len(self.train) != n:
            raise ValueError(f"pool {self.name}: x, y and train differ in length")
        if self.multi_label and (self.ancestors is not None or self.tree_names is not None):
            raise ValueError(f"pool {self.name}: a label tree needs single-label y, got a "
                             f"multi-hot matrix")
        self._check_tree()

    def _check_multi_hot(self, y: np.ndarray) -> np.ndarray:
        """Check a multi-hot label matrix (shape, 0/1 values, a positive per row); return it as
        uint8."""
        if y.shape[1] != len(self.class_names):
            raise ValueError(f"pool {self.name}: multi-hot y must have shape (N, n_classes) = "
                             f"(N, {len(self.class_names)}), got {y.shape}")
        if y.dtype != bool and not np.isin(y, (0, 1)).all():
            raise ValueError(f"pool {self.name}: multi-hot y must hold only 0 and 1")
        out = y.astype(np.uint8)
        empty = np.flatnonzero(~out.any(axis=1))
        if empty.size:
            raise ValueError(f"pool {self.name}: {empty.size} multi-hot row(s) have no positive "
                             f"label (first: row {int(empty[0])})")
        return out

    def _check_tree(self) -> None:
        """Check ``ancestors``/``tree_names``: shapes, id ranges and that each node at a level has
        a single parent at the level above."""
        if self.ancestors is None:
            if self.tree_names is not None:
                raise ValueError(f"pool {self.name}: tree_names given without ancestors")
            return
        anc = np.asarray(self.ancestors, dtype=np.int64)
        if anc.ndim == 1:
            anc = anc[:, None]
        if anc.ndim != 2 or anc.shape[0] != self.n_classes or anc.shape[1] < 1:
            raise ValueError(f"pool {self.name}: ancestors must have shape (n_classes, depth-1) "
                             f"= ({self.n_classes}, >=1), got {np.shape(self.ancestors)}")
        self.ancestors = anc
        names = self.tree_names
        if names is None or len(names) != anc.shape[1]:
            raise ValueError(f"pool {self.name}: tree_names must hold one list of names per "
                             f"ancestors column ({anc.shape[1]})")
        self.tree_names = [list(level) for level in names]
        for level, col in enumerate(anc.T):
            if col.size and (col.min() < 0 or col.max() >= len(self.tree_names[level])):
                raise ValueError(f"pool {self.name}: ancestors[:, {level}] outside "
                                 f"[0, {len(self.tree_names[level])})")
        nodes = np.concatenate([anc, np.arange(self.n_classes)[:, None]], axis=1)
        for level in range(1, nodes.shape[1]):
            pairs = np.unique(nodes[:, level - 1:level + 1], axis=0)
            if len(pairs) != len(np.unique(pairs[:, 1])):
                raise ValueError(f"pool {self.name}: a node at tree level {level} has two parents")

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def multi_label(self) -> bool:
        """True when ``y`` is an (N, n_classes) multi-hot matrix."""
        return self.y.ndim == 2

    @property
    def depth(self) -> int:
        """Number of levels of the label tree: 1 for a flat pool."""
        return 1 if self.ancestors is None else 1 + self.ancestors.shape[1]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    @property
    def is_image(self) -> bool:
        return self.x.dtype == np.uint8

    @property
    def train_indices(self) -> np.ndarray:
        return np.flatnonzero(self.train)

    @property
    def test_indices(self) -> np.ndarray:
        return np.flatnonzero(~self.train)


def seeded_split(y: np.ndarray, test_fraction: float, seed: int) -> np.ndarray:
    """Stratified train mask: ``test_fraction`` of each class goes to test (at least one sample
    per class stays in train), drawn from ``np.random.default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    train = np.ones(len(y), dtype=bool)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        n_test = min(int(round(test_fraction * len(idx))), len(idx) - 1)
        if n_test > 0:
            train[rng.choice(idx, size=n_test, replace=False)] = False
    return train


def check_fraction(value: float, key: str) -> float:
    """Return ``value`` if it lies strictly between 0 and 1, else raise ConfigError on ``key``."""
    if not 0.0 < value < 1.0:
        raise ConfigError(key, f"expected a fraction strictly between 0 and 1, got {value!r}",
                          "use e.g. 0.2")
    return value


def cap_per_class(y: np.ndarray, keep: np.ndarray, max_per_class: int | None,
                  rng: np.random.Generator) -> np.ndarray:
    """Bool mask: a seeded random subset of the rows in ``keep`` with at most ``max_per_class``
    rows of each class (all of ``keep`` when ``max_per_class`` is None)."""
    keep = np.asarray(keep, dtype=bool)
    if max_per_class is None:
        return keep.copy()
    idx = rng.permutation(np.flatnonzero(keep))
    idx = idx[np.argsort(y[idx], kind="stable")]
    labels = y[idx]
    rank = np.arange(len(idx)) - np.searchsorted(labels, labels, side="left")
    out = np.zeros(len(y), dtype=bool)
    out[idx[rank < max_per_class]] = True
    return out


def limit_per_class(pool: Pool, max_train: int | None, max_test: int | None, seed: int) -> Pool:
    """A copy of ``pool`` keeping at most ``max_train`` train and ``max_test`` test samples per
    class, drawn with a generator seeded by ``seed``; ``pool`` itself when both are None."""
    if max_train is None and max_test is None:
        return pool
    if pool.multi_label:
        raise ValueError(f"pool {pool.name}: per-class limits need single-label y")
    rng = np.random.default_rng([seed, 7919])
    keep = cap_per_class(pool.y, pool.train, max_train, rng)
    keep |= cap_per_class(pool.y, ~pool.train, max_test, rng)
    return Pool(x=pool.x[keep], y=pool.y[keep], train=pool.train[keep],
                class_names=list(pool.class_names), name=pool.name, ancestors=pool.ancestors,
                tree_names=pool.tree_names, meta=dict(pool.meta))
