"""Hierarchical label expansion (HLE) streams (Lee et al., ICCV 2023, "Online Continual
Learning on Hierarchical Label Expansion"): a learner first sees coarse classes, later the
labels expand to finer classes.

Modes (the pool must carry a label tree; level 0 is the coarsest):
- ``dual_label`` (2 levels): task 0 serves every training sample with its coarse label; the
  fine tasks serve the same samples again with their fine labels;
- ``single_label`` (2 levels): each sample appears once, at one level: a share
  1 / (children + 1) of every fine class's samples goes to the coarse task, so per-class counts
  are about equal across levels (the paper's CIFAR-100 split: 83 of 500 per fine class);
- ``multi_depth`` (any depth): top-down, one task per level; every leaf class's samples are
  split into equal parts, one per level, each part labelled at its level.

Fine tasks (dual/single), ``fine_grouping``:
- ``superclass`` (default, as the official split files of Hyun1A/HLE, ``data/collections/
  cifar100_hier_setup{1,2}``): the coarse classes are shuffled (seeded by ``seed``) and cut into
  ``fine_tasks`` groups, earlier groups taking one more when uneven; a fine task holds every
  child of the coarse classes of its group (CIFAR-100: 5 tasks of 4 whole superclasses);
- ``child_rank``: task k holds the k-th child (seeded order) of every coarse class, so every
  fine task touches every coarse class.
``imbalance_ratio`` (head-to-tail) subsamples every task's classes with an exponential profile
over a seeded class order: class of rank r keeps ratio^(-r / (n - 1)) of its samples.
A sample is a *virtual* id ``level * n_pool + index``, so one image can appear at two levels.
"""

from __future__ import annotations

import numpy as np

from clenv.config.schema import Field
from clenv.data.pool import Pool
from clenv.data.tree import level_labels, level_sizes
from clenv.errors import ConfigError
from clenv.scenarios.incremental import COMMON_FIELDS
from clenv.scenarios.stream import TaskStream

HLE_FIELDS: dict[str, Field] = {
    **{k: COMMON_FIELDS[k] for k in ("seed", "batch_size", "chunk_size", "boundaries",
                                     "task_ids")},
    "generator": Field(str, "hle", "the stream generator"),
    "mode": Field(str, "single_label", "dual_label, single_label or multi_depth",
                  choices=("dual_label", "single_label", "multi_depth")),
    "fine_tasks": Field(int, None, "dual/single: number of fine tasks (default: the largest "
                        "number of children of a coarse class)", min=1),
    "fine_grouping": Field(str, "superclass", "dual/single: superclass (whole coarse classes per "
                           "fine task, as the official split files) or child_rank (the k-th "
                           "child of every coarse class)", choices=("superclass", "child_rank")),
    "imbalance_ratio": Field(float, 1.0, "head-to-tail sample ratio within every task",
                             min=1.0),
}


def _imbalance(samples: np.ndarray, units: np.ndarray, ratio: float,
               rng: np.random.Generator) -> np.ndarray:
    """Keep ratio^(-r/(n-1)) of the samples of the class of rank r (seeded order)."""
    if ratio <= 1.0:
        return samples
    classes = rng.permutation(np.unique(units))
    n = len(classes)
    keep = []
    for r, c in enumerate(classes):
        s = samples[units == c]
        frac = ratio ** (-r / (n - 1)) if n > 1 else 1.0
        k = max(1, int(round(frac * len(s))))
        keep.append(np.sort(rng.choice(s, size=k, replace=False)))
    return np.concatenate(keep)


def _fine_groups(children: dict[int, list[int]], fine_classes: np.ndarray, n_fine: int,
                 grouping: str, rng: np.random.Generator) -> list[list[int]]:
    """The fine classes of each fine task (see the module docstring for the two groupings)."""
    if grouping == "superclass":  # Hyun1A/HLE split files: whole superclasses per fine task
        coarse = rng.permutation(sorted(children))
        return [sorted(c for p in part.tolist() for c in children[p])
                for part in np.array_split(coarse, n_fine)]
    rank = {}
    for kids in children.values():
        for r, c in enumerate(rng.permutation(kids).tolist()):
            rank[c] = r
    return [[c for c in fine_classes.tolist() if rank[c] % n_fine == t] for t in range(n_fine)]


def build_hle(pool: Pool, cfg: dict, key: str = "scenario") -> TaskStream:
    """Plan an HLE stream over the pool's training samples."""
    L = pool.depth
    mode = cfg["mode"]
    if L < 2:
        raise ConfigError(f"{key}.generator", "hle needs a pool with a label tree",
                          "use a synthetic source with depth >= 2, cifar100, or data.tree")
    if mode != "multi_depth" and L != 2:
        raise ConfigError(f"{key}.mode", f"{mode} needs a 2-level tree, the pool has {L} levels",
                          "use mode: multi_depth")
    N = len(pool.y)
    sizes = level_sizes(pool)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    lab = level_labels(pool)  # (N, L)
    train = pool.train_indices
    rng = np.random.default_rng(np.random.SeedSequence([cfg["seed"], 0x41E]))
    # per virtual id: unit (offset of its level + its label there) and target label
    virt_units = (offsets[None, :] + lab).T.reshape(-1)  # v = level * N + index
    leaf = lab[:, -1]
    parent = lab[:, -2] if L >= 2 else None
    tasks: list[tuple[int, np.ndarray]] = []  # (level, pool indices)
    if mode == "multi_depth":
        parts: list[list[np.ndarray]] = [[] for _ in range(L)]
        for c in np.unique(leaf[train]):
            s = rng.permutation(train[leaf[train] == c])
            for lv, chunk in enumerate(np.array_split(s, L)):
                parts[lv].append(chunk)
        tasks = [(lv, np.concatenate(p)) for lv, p in enumerate(parts)]
    else:
        fine_classes = np.unique(leaf[train])
        par = {int(c): int(parent[np.flatnonzero(leaf == c)[0]]) for c in fine_classes}
        children: dict[int, list[int]] = {}
        for c in fine_classes.tolist():
            children.setdefault(par[c], []).append(c)
        n_fine = cfg["fine_tasks"] or max(len(k) for k in children.values())
        fine_groups = _fine_groups(children, fine_classes, n_fine, cfg["fine_grouping"], rng)
        if any(not g for g in fine_groups):
            raise ConfigError(f"{key}.fine_tasks", f"{n_fine} fine tasks leave a task without "
                              f"classes ({len(children)} coarse classes, grouping "
                              f"{cfg['fine_grouping']})", "use fewer fine tasks")
        if mode == "dual_label":
            tasks.append((0, train))
            for g in fine_groups:
                tasks.append((1, train[np.isin(leaf[train], g)]))
        else:  # single_label: 1/(children+1) of each fine class's samples go to the coarse task
            coarse, fine = [], []
            for c in fine_classes.tolist():
                s = rng.permutation(train[leaf[train] == c])
                n_coarse = int(round(len(s) / (len(children[par[c]]) + 1)))
                coarse.append(s[:n_coarse])
                fine.append(s[n_coarse:])
            coarse_idx, fine_idx = np.concatenate(coarse), np.concatenate(fine)
            tasks.append((0, coarse_idx))
            for g in fine_groups:
                tasks.append((1, fine_idx[np.isin(leaf[fine_idx], g)]))
    task_samples = []
    for lv, idx in tasks:
        virtual = lv * N + np.sort(idx)
        task_samples.append(_imbalance(virtual, virt_units[virtual], cfg["imbalance_ratio"], rng))
    return level_task_stream(pool, task_samples, cfg, "hle")


def level_task_stream(pool: Pool, task_samples: list[np.ndarray], cfg: dict, generator: str,
                      ordered: bool = False, epochs: int = 1) -> TaskStream:
    """A TaskStream over virtual ids ``level * n_pool + index``: a task's classes are the units
    (class at a level) it serves; ``ordered`` serves each task in the given order."""
    N, L = len(pool.y), pool.depth
    sizes = level_sizes(pool)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    lab = level_labels(pool)
    virt_units = (offsets[None, :] + lab).T.reshape(-1)
    task_classes = [np.unique(virt_units[v]) for v in task_samples]
    # a unit introduced by several tasks (multi-depth never, dual/single never) keeps its first
    stream = TaskStream(generator=generator, seed=cfg["seed"], labels=virt_units,
                        n_classes=int(sum(sizes)), task_samples=task_samples,
                        task_classes=task_classes, epochs=epochs, chunk_size=cfg["chunk_size"],
                        config=dict(cfg), n_pool=N, targets=lab.T.reshape(-1), levels=L,
                        ordered=ordered)
    stream.level_sizes = sizes
    stream.level_offsets = offsets.tolist()
    stream.column_names = []
    for j, v in enumerate(task_samples):
        lv = ", ".join(str(x) for x in np.unique(np.asarray(v) // N).tolist())
        stream.column_names.append(f"task {j} (level{'s' if ',' in lv else ''} {lv})")
    return stream
