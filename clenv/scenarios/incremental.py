"""Class-incremental stream generators: disjoint, blurry-M (Bang et al. 2021) and i-Blurry-N-M
(Koh et al. 2022). Each turns a Pool's training samples into per-task sample lists.

Blurring, ``convention``: M% of a blurred class's samples are drawn and each is given a task
- ``released`` (default): uniformly among all T tasks, the class's own included, so about
  M(T-1)/T % land outside its major task. This is what the released split files hold:
  naver-ai/i-Blurry ``collections/cifar100/cifar100_split5_n50_m10_rand{1,2,3}``: 7.9-8.1% of
  the blurry classes' samples outside their major task (M=10, T=5); clovaai/rainbow-memory
  ``collections/cifar100/cifar100_train_blurry10_rand{1,2,3}_cls20``: 7.9-8.1% of each task
  from other tasks;
- ``paper``: uniformly among the T-1 other tasks, so exactly M% land outside (the papers'
  wording, and the per-task share of Rainbow Memory's ``make_dataset_per_task.ipynb``).
"""

from __future__ import annotations

import numpy as np

from clenv.config.schema import Field
from clenv.data.pool import Pool
from clenv.errors import ConfigError
from clenv.scenarios.stream import TaskStream

COMMON_FIELDS: dict[str, Field] = {
    "generator": Field(str, "disjoint", "the stream generator"),
    "seed": Field(int, 0, "stream seed: class order, sample order, splits", min=0),
    "n_tasks": Field(int, 5, "number of tasks", min=1),
    "classes_per_task": Field(list, None, "classes in each task (overrides n_tasks)", item=int),
    "class_order": Field(list, None, "a fixed class order (default: seeded shuffle)", item=int),
    "epochs": Field(int, 1, "passes over each task's samples before the next task", min=1),
    "batch_size": Field(int, 10, "stream samples per Env step", min=1),
    "chunk_size": Field(int, 4096, "stream positions per chunk", min=1),
    "boundaries": Field(str, "exposed", "exposed: batches end at task ends and info marks "
                        "them; hidden: no boundary or task id reaches the learner",
                        choices=("exposed", "hidden")),
    "task_ids": Field(bool, False, "put the task id in obs (task-incremental learning)"),
    "blurry": Field(float, 10.0, "blurry-M: percent of each class's samples redistributed "
                    "over the tasks (see convention)", min=0, max=100),
    "disjoint_percent": Field(float, 50.0, "i-Blurry N: percent of classes in one task only",
                              min=0, max=100),
    "blurry_percent": Field(float, 10.0, "i-Blurry M: percent of a blurry class's samples "
                            "redistributed over the tasks (see convention)", min=0, max=100),
    "convention": Field(str, "released", "blurring: released (M% spread over all tasks, own "
                        "included, as the released split files: about M(T-1)/T % outside) or "
                        "paper (exactly M% to the other tasks)", choices=("released", "paper")),
}

def check_stream_keys(section: dict, key: str = "scenario") -> None:
    """The rule of the stream keys every generator shares: task ids in obs need exposed
    boundaries (typed.py runs a generator's ``check`` after its fields validate)."""
    if section.get("task_ids") and section.get("boundaries") == "hidden":
        raise ConfigError(f"{key}.task_ids", "task ids in obs contradict hidden boundaries",
                          f"set {key}.task_ids: false or {key}.boundaries: exposed")


GENERATORS = {
    "disjoint": "class-incremental, each class in exactly one task",
    "blurry": "blurry-M (Bang et al. 2021): M% of each class's samples redistributed over the "
              "tasks",
    "iblurry": "i-Blurry-N-M (Koh et al. 2022): N% disjoint classes, the rest blurred by M%",
}


def class_order(pool: Pool, cfg: dict, rng: np.random.Generator, key: str) -> np.ndarray:
    classes = np.unique(pool.y[pool.train])
    if cfg["class_order"] is None:
        return rng.permutation(classes)
    order = np.asarray(cfg["class_order"], dtype=np.int64)
    if sorted(order.tolist()) != sorted(set(order.tolist())) or not np.isin(order, classes).all():
        raise ConfigError(f"{key}.class_order", "must list distinct class ids present in the "
                          f"training data (0..{pool.n_classes - 1})", f"got {order.tolist()}")
    return order


def split_classes(order: np.ndarray, cfg: dict, key: str) -> list[np.ndarray]:
    """Cut the class order into tasks: ``classes_per_task`` or ``n_tasks`` near-equal parts."""
    if cfg["classes_per_task"] is not None:
        sizes = cfg["classes_per_task"]
        if any(s < 1 for s in sizes) or sum(sizes) > len(order):
            raise ConfigError(f"{key}.classes_per_task", f"sizes must be >= 1 and sum to at most "
                              f"{len(order)} classes", f"got {sizes}")
        bounds = np.cumsum([0, *sizes])
        return [order[bounds[i]:bounds[i + 1]] for i in range(len(sizes))]
    n_tasks = cfg["n_tasks"]
    if n_tasks > len(order):
        raise ConfigError(f"{key}.n_tasks", f"at most {len(order)} tasks for {len(order)} "
                          "classes", f"got {n_tasks}")
    return list(np.array_split(order, n_tasks))


def _spread(samples: np.ndarray, fraction: float, task: int, n_tasks: int,
            rng: np.random.Generator, convention: str) -> tuple[np.ndarray, np.ndarray]:
    """Pick round(fraction * n) of ``samples`` and give each a uniformly random task: any of
    the ``n_tasks`` (``released``) or one other than ``task`` (``paper``)."""
    n_move = int(round(fraction * len(samples))) if n_tasks > 1 else 0
    moved = rng.choice(samples, size=n_move, replace=False) if n_move else samples[:0]
    if convention == "released":
        return moved, rng.integers(0, n_tasks, size=n_move) if n_move else moved
    others = rng.integers(0, n_tasks - 1, size=n_move) if n_move else moved
    return moved, others + (others >= task)  # skip the class's own task


def build_incremental(pool: Pool, cfg: dict, key: str = "scenario") -> TaskStream:
    """Build a disjoint, blurry or i-Blurry stream from the pool's training samples."""
    gen = cfg["generator"]
    rng = np.random.default_rng(np.random.SeedSequence([cfg["seed"], 0xC1A55]))
    order = class_order(pool, cfg, rng, key)
    if gen == "iblurry":
        n_disjoint = int(round(cfg["disjoint_percent"] / 100 * len(order)))
        disjoint, blurred = order[:n_disjoint], order[n_disjoint:]
        n_tasks = cfg["n_tasks"]
        if n_tasks > max(len(disjoint), len(blurred)):
            raise ConfigError(f"{key}.n_tasks", "i-Blurry needs at least as many disjoint or "
                              "blurry classes as tasks", f"got {n_tasks} tasks for "
                              f"{len(disjoint)} disjoint and {len(blurred)} blurry classes")
        parts_d = np.array_split(disjoint, n_tasks)
        parts_b = np.array_split(blurred, n_tasks)
        task_classes = [np.concatenate([d, b]) for d, b in zip(parts_d, parts_b, strict=True)]
        spread_classes = set(blurred.tolist())
        fraction = cfg["blurry_percent"] / 100
    else:
        task_classes = split_classes(order, cfg, key)
        n_tasks = len(task_classes)
        spread_classes = set(order.tolist()) if gen == "blurry" else set()
        fraction = cfg["blurry"] / 100 if gen == "blurry" else 0.0

    train_idx = pool.train_indices
    train_y = pool.y[train_idx]
    buckets: list[list[np.ndarray]] = [[] for _ in range(n_tasks)]
    for t, classes in enumerate(task_classes):
        for c in classes:
            samples = train_idx[train_y == c]
            if c in spread_classes and fraction > 0:
                moved, dest = _spread(samples, fraction, t, n_tasks, rng,
                                      cfg["convention"])
                keep = np.setdiff1d(samples, moved, assume_unique=True)
                for d in range(n_tasks):
                    buckets[d].append(moved[dest == d])
                samples = keep
            buckets[t].append(samples)
    task_samples = [np.concatenate(b) if b else np.zeros(0, dtype=np.int64) for b in buckets]
    for t, s in enumerate(task_samples):
        if len(s) == 0:
            raise ConfigError(f"{key}.n_tasks", f"task {t} has no training samples",
                              "use fewer tasks or more data")
    return TaskStream(generator=gen, seed=cfg["seed"], labels=pool.y, n_classes=pool.n_classes,
                      task_samples=task_samples, task_classes=task_classes, epochs=cfg["epochs"],
                      chunk_size=cfg["chunk_size"], config=dict(cfg), leaf_level=pool.depth - 1)
