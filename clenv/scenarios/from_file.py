"""The ``from_file`` generator: an official split-file stream (i-Blurry, Rainbow Memory, HLE)
served as the files give it.

``scenario: {generator: from_file, path, format, root}`` names the split files; the config
loader turns those keys into the pool's ``data: {source: split_files, ...}`` section (see
``clenv.data.split_files``), which reads the files' images. The stream serves task t's records
in the order of ``<stem>_task<t>.json`` (the files' own online order, as i-Blurry's and HLE's
``main.py`` iterate the lists), ``epochs`` passes; ``order: shuffled`` serves each pass in a
seeded order instead (Rainbow Memory's ``set_current_dataset`` shuffles each task's list).
Task t's classes (its accuracy-matrix column, its test set) are the classes with most of their
training records in task t (ties: the earlier task). HLE files are hierarchical streams: a
record with ``hierarchy`` 0 is served with its superclass label, 1 with its fine label (virtual
ids, as the ``hle`` generator).
"""

from __future__ import annotations

import numpy as np

from clenv.config.schema import Field
from clenv.data import split_files
from clenv.data.pool import Pool
from clenv.errors import ConfigError
from clenv.scenarios.hle import level_task_stream
from clenv.scenarios.incremental import COMMON_FIELDS
from clenv.scenarios.stream import TaskStream

FILE_KEYS = ("path", "format", "root", "test", "dataset", "max_images")

FROM_FILE_FIELDS: dict[str, Field] = {
    **{k: COMMON_FIELDS[k] for k in ("seed", "batch_size", "chunk_size", "boundaries",
                                     "task_ids", "epochs")},
    "generator": Field(str, "from_file", "the stream generator"),
    "order": Field(str, "file", "within a task: file (the lists' order, every pass) or "
                   "shuffled (a seeded order per pass, as Rainbow Memory shuffles each task)",
                   choices=("file", "shuffled")),
    **{k: split_files.FIELDS[k] for k in FILE_KEYS},
}


def data_section(scenario: dict, data: dict | None, key: str = "data") -> dict:
    """The ``data`` section a from_file scenario implies; a given one must say the same (it
    may add a label ``tree`` file)."""
    implied = {"source": split_files.NAME, **{k: scenario[k] for k in FILE_KEYS}}
    if data is None:
        return implied
    if data.get("tree") is not None:
        implied["tree"] = data["tree"]
    given = {k: v for k, v in data.items()
             if implied.get(k, object()) != v and (k, v) != ("tree", None)}
    if given:
        raise ConfigError(key, f"generator from_file reads its images from the split files "
                          f"(scenario.path, scenario.root), but data sets {given!r:.80}",
                          "remove the data section")
    return implied


def major_classes(tasks: list[np.ndarray], y: np.ndarray, n_classes: int) -> list[np.ndarray]:
    """Per task, the classes with most of their records in it (ties: the earlier task)."""
    counts = np.stack([np.bincount(y[t], minlength=n_classes) for t in tasks])
    major = counts.argmax(axis=0)
    present = counts.sum(axis=0) > 0
    return [np.flatnonzero(present & (major == j)) for j in range(len(tasks))]


def build_from_file(pool: Pool, cfg: dict, key: str = "scenario") -> TaskStream:
    """The stream of the split files the pool was read from, in the files' order."""
    if pool.meta.get("source") != split_files.NAME:
        raise ConfigError(f"{key}.generator", "from_file needs the pool read from the split "
                          "files", "give scenario.path, format and root, and no data section")
    if len(pool.y) != pool.meta["n_images"]:  # e.g. scenario.validation carved samples out
        raise ConfigError(f"{key}.validation", "a from_file stream serves every record of the "
                          "split files, so no samples can be held out of its pool",
                          "remove scenario.validation")
    tasks, levels = pool.meta["file_tasks"], pool.meta["file_levels"]
    ordered = cfg["order"] == "file"
    if pool.meta["format"] == "hle":
        n = len(pool.y)
        virtual = [lv * n + idx for idx, lv in zip(tasks, levels, strict=True)]
        return level_task_stream(pool, virtual, cfg, "from_file", ordered=ordered,
                                 epochs=cfg["epochs"])
    return TaskStream(generator="from_file", seed=cfg["seed"], labels=pool.y,
                      n_classes=pool.n_classes, task_samples=list(tasks),
                      task_classes=major_classes(tasks, pool.y, pool.n_classes),
                      epochs=cfg["epochs"], chunk_size=cfg["chunk_size"], config=dict(cfg),
                      leaf_level=pool.depth - 1, ordered=ordered)
