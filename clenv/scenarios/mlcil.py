"""Multi-label class-incremental streams (MLCIL; the protocol of MULTI-LANE, De Min et al. 2024,
after Kim et al. 2020's KRT split): classes in a fixed (or seeded) order, a base task of
``base_classes`` then tasks of ``increment`` classes (B0-C10, B40-C10 on COCO; B0-C4, B10-C2 on
VOC). A training image belongs to task t when it has at least one of task t's classes, so an
image can appear in several tasks; during task t only task t's labels are visible: the others
are hidden (``info["label_mask"]``), not negatives.
"""

from __future__ import annotations

import numpy as np

from clenv.config.schema import Field
from clenv.data.pool import Pool
from clenv.errors import ConfigError
from clenv.scenarios.incremental import COMMON_FIELDS
from clenv.scenarios.stream import TaskStream

PRESETS = {"coco_b0_c10": (0, 10), "coco_b40_c10": (40, 10), "voc_b0_c4": (0, 4),
           "voc_b10_c2": (10, 2)}

MLCIL_FIELDS: dict[str, Field] = {
    **{k: COMMON_FIELDS[k] for k in ("seed", "batch_size", "chunk_size", "boundaries",
                                     "task_ids", "epochs", "class_order")},
    "generator": Field(str, "mlcil", "the stream generator"),
    "split": Field(str, None, "a preset split: " + ", ".join(PRESETS), choices=tuple(PRESETS)),
    "base_classes": Field(int, 0, "classes of the first task (0: all tasks have increment "
                          "classes)", min=0),
    "increment": Field(int, 2, "classes per task after the base task", min=1),
    "shuffle_classes": Field(bool, False, "seeded class order instead of the index order "
                             "(MULTI-LANE keeps the index order)"),
}


class MultiLabelStream(TaskStream):
    """Tasks of classes over multi-label images; a row's visible labels are its task's."""

    multi_label = True

    def __init__(self, pool: Pool, task_samples: list[np.ndarray],
                 task_classes: list[np.ndarray], cfg: dict) -> None:
        self._y = pool.y
        n = len(pool.y)
        super().__init__(generator="mlcil", seed=cfg["seed"], labels=np.zeros(n, np.int64),
                         n_classes=pool.n_classes, task_samples=task_samples,
                         task_classes=task_classes, epochs=cfg["epochs"],
                         chunk_size=cfg["chunk_size"], config=dict(cfg))
        self.task_mask = np.zeros((self.n_tasks, self.n_classes), dtype=np.uint8)
        for t, cls in enumerate(self.task_classes):
            self.task_mask[t, cls] = 1

    def _first_positions(self) -> np.ndarray:
        """First stream position at which each class is a visible positive."""
        first = np.full(self.n_classes, -1, dtype=np.int64)
        for seg, order in self._first_passes():
            for c in self.task_classes[seg.task]:
                if first[c] < 0:
                    hits = np.flatnonzero(self._y[order, c])
                    if len(hits):
                        first[c] = seg.start + hits[0]
        return first

    def _finish_plan(self) -> None:
        super()._finish_plan()
        f = self.unit_first_position
        self._first_sorted = np.unique(f[f >= 0])

    def chunk(self, k: int) -> dict[str, np.ndarray]:
        if not 0 <= k < self.n_chunks:
            raise IndexError(f"chunk {k} out of range [0, {self.n_chunks})")
        rec = self._core(k)
        rec.pop("_virtual", None)
        pos = np.arange(k * self.chunk_size, k * self.chunk_size + len(rec["index"]))
        rec["major_task"] = rec["task"].copy()
        rec["is_new_class"] = np.isin(pos, self._first_sorted)
        rec["y"] = self._y[rec["index"]] * self.task_mask[rec["task"]]  # visible labels
        return rec


def build_mlcil(pool: Pool, cfg: dict, key: str = "scenario") -> MultiLabelStream:
    if not getattr(pool, "multi_label", False):
        raise ConfigError(f"{key}.generator", "mlcil needs a multi-label data source",
                          "use data.source: canvas, coco or voc")
    C = pool.n_classes
    base, inc = PRESETS[cfg["split"]] if cfg["split"] else (cfg["base_classes"],
                                                           cfg["increment"])
    if cfg["split"]:
        expected = 80 if cfg["split"].startswith("coco") else 20
        if C != expected:
            raise ConfigError(f"{key}.split", f"{cfg['split']} is a split of {expected} "
                              f"classes, the pool has {C}",
                              "use base_classes and increment for other pools")
    if cfg["class_order"] is not None:
        order = np.asarray(cfg["class_order"], dtype=np.int64)
        if sorted(order.tolist()) != list(range(C)):
            raise ConfigError(f"{key}.class_order", f"must be a permutation of 0..{C - 1}",
                              f"got {order.tolist()}")
    elif cfg["shuffle_classes"]:
        order = np.random.default_rng(np.random.SeedSequence([cfg["seed"], 0x31C])).permutation(C)
    else:
        order = np.arange(C)
    if base >= C or (C - base) % inc:
        raise ConfigError(f"{key}.increment", f"{C} classes do not split into a base of {base} "
                          f"and tasks of {inc}", "choose base_classes and increment that fit")
    bounds = ([0, base] if base else [0]) + list(range(base + inc, C + 1, inc))
    task_classes = [order[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    train = pool.train_indices
    task_samples = []
    for t, cls in enumerate(task_classes):
        members = train[pool.y[train][:, cls].any(axis=1)]
        if len(members) == 0:
            raise ConfigError(f"{key}.increment", f"task {t} (classes {cls.tolist()}) has no "
                              "training image", "use another split or more data")
        task_samples.append(members)
    return MultiLabelStream(pool, task_samples, task_classes, cfg)
