"""Long streams for loss of plasticity (docs/plasticity.md): many short tasks over one pool.

- ``tasks: permuted``: task t shows every class of the pool through its own fixed pixel
  permutation (Online Permuted MNIST, Dohare et al., Nature 2024); task 0 is the identity.
  It is a lifelong stream (``clenv.scenarios.lifelong``) whose segments are one ``classes``
  segment and ``n_tasks - 1`` ``domain`` segments with ``kind: permute, seed: t``: each task
  is its own concept (column), evaluated on the test set under its permutation.
- ``tasks: random_labels``: task t draws ``samples_per_task`` training samples of the pool
  (seeded, without replacement) and gives each a label drawn uniformly from the pool's
  classes, keyed by (``scenario.seed``, t, sample) (random-label memorisation tasks, Lyle et
  al., ICML 2023); the task serves them in ``task_length / samples_per_task`` keyed random
  passes. Test-set accuracy is meaningless there: the plasticity of a random-label task is
  its training accuracy on its own samples at its end (``task_samples``, which the recorder
  scores at every task end as ``own_accuracy``).

Every draw is keyed by ``scenario.seed`` (numpy only), so chunks stay random-access.
"""

from __future__ import annotations

import numpy as np

from clenv.config.schema import Field
from clenv.data.pool import Pool
from clenv.errors import ConfigError
from clenv.scenarios.incremental import check_stream_keys
from clenv.scenarios.lifelong import LIFELONG_FIELDS, LifelongStream, validate_lifelong
from clenv.scenarios.permutation import keyed_permutation, round_keys

_TAG = 0x9A5

PLASTICITY_FIELDS: dict[str, Field] = {
    "generator": Field(str, "plasticity", "the stream generator"),
    **{k: v for k, v in LIFELONG_FIELDS.items() if k not in ("generator", "segments",
                                                             "transfer_k")},
    "tasks": Field(str, doc="permuted (a pixel permutation per task) or random_labels (a "
                            "sample subset per task, each sample a random label)",
                   choices=("permuted", "random_labels")),
    "n_tasks": Field(int, 100, "tasks in the stream", min=1),
    "task_length": Field(int, 1000, "samples served per task", min=1),
    "samples_per_task": Field(int, 100, "random_labels: distinct samples of a task (each "
                                        "served task_length / samples_per_task times)", min=1),
}


def check_plasticity(cfg: dict, key: str = "scenario") -> None:
    """Cross-field rules of a plasticity section (typed.py runs them after its fields)."""
    check_stream_keys(cfg, key)
    if cfg["tasks"] == "random_labels" and cfg["samples_per_task"] > cfg["task_length"]:
        raise ConfigError(f"{key}.samples_per_task", f"a task serves task_length "
                          f"{cfg['task_length']} samples, fewer than samples_per_task "
                          f"{cfg['samples_per_task']}", "raise task_length or lower "
                          "samples_per_task")


def _segments(cfg: dict, classes: list[int]) -> list[dict]:
    n, length = cfg["n_tasks"], cfg["task_length"]
    first = {"type": "classes", "name": "task 0", "classes": classes, "length": length}
    if cfg["tasks"] == "random_labels":
        return [first] + [{"type": "revisit", "name": f"task {t}", "of": 0, "length": length}
                          for t in range(1, n)]
    return [first] + [{"type": "domain", "name": f"task {t}", "of": 0, "length": length,
                       "domain": {"kind": "permute", "seed": t}} for t in range(1, n)]


class PlasticityStream(LifelongStream):
    """Permuted or random-label tasks (module doc)."""

    def __init__(self, pool: Pool, cfg: dict, key: str = "scenario") -> None:
        classes = sorted(set(pool.y[pool.train].tolist()))
        life = {k: v for k, v in cfg.items() if k in LIFELONG_FIELDS}
        life.update(generator="lifelong", segments=_segments(cfg, classes))
        self.random_labels = cfg["tasks"] == "random_labels"
        self.m = min(cfg["samples_per_task"], int(pool.train.sum())) \
            if self.random_labels else 0
        self._train_idx = pool.train_indices
        super().__init__(pool, validate_lifelong(life, key), key)
        self.generator = "plasticity"
        self.config = dict(cfg)
        self.meta["tasks"] = cfg["tasks"]
        if self.random_labels:
            self._label_first = self._first_labels()

    def _first_labels(self) -> np.ndarray:
        """First stream position of every served (random) label, -1 for labels never served:
        ``is_new_class`` marks first appearances of the labels the learner is taught."""
        first = np.full(self.n_classes, -1, dtype=np.int64)
        for k in range(self.n_chunks):
            y = self._core(k)["_target"]
            cls, where = np.unique(y, return_index=True)
            new = first[cls] < 0
            first[cls[new]] = k * self.chunk_size + where[new]
            if (first >= 0).all():
                break
        return first

    # -- random labels -------------------------------------------------------------------------
    def _subset(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """Pool indices of task t's samples and their labels (keyed by seed and t)."""
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, _TAG, t]))
        idx = np.sort(rng.choice(self._train_idx, size=self.m, replace=False))
        return idx, rng.integers(0, self.n_classes, size=self.m)

    def _core(self, k: int) -> dict[str, np.ndarray]:
        rec = super()._core(k)
        if not self.random_labels:
            return rec
        start = k * self.chunk_size
        pos = np.arange(start, start + len(rec["index"]), dtype=np.int64)
        task = rec["task"]
        rec["_target"] = np.empty(len(pos), dtype=np.int64)
        for t in np.unique(task):
            sel = np.flatnonzero(task == t)
            q = pos[sel] - self.task_starts[t]
            epoch, off = np.divmod(q, self.m)
            slot = np.empty(len(q), dtype=np.int64)
            for e in np.unique(epoch):
                s = epoch == e
                slot[s] = keyed_permutation(off[s], self.m,
                                            round_keys([self.seed, _TAG, int(t), int(e)]))
            idx, labels = self._subset(int(t))
            rec["index"][sel] = idx[slot]
            rec["sample_id"][sel] = idx[slot]
            rec["epoch"][sel] = epoch
            rec["first_exposure"][sel] = epoch == 0
            rec["_target"][sel] = labels[slot]
        return rec

    def chunk(self, k: int) -> dict[str, np.ndarray]:
        if not self.random_labels:
            return super().chunk(k)
        rec = super().chunk(k)
        y = rec["y"] = rec.pop("_target")
        pos = np.arange(k * self.chunk_size, k * self.chunk_size + len(y))
        rec["is_new_class"] = self._label_first[y] == pos
        return rec

    def task_samples(self, t: int) -> tuple[np.ndarray, np.ndarray, int]:
        """(pool indices, labels, domain) of the samples task t trains on: the recorder's
        own-sample training accuracy at task ends."""
        if self.random_labels:
            idx, labels = self._subset(t)
            return idx, labels, 0
        rec = self.slice(int(self.task_starts[t]), int(self.task_ends[t]))
        idx, first = np.unique(rec["index"], return_index=True)
        return idx, rec["y"][first], int(rec["domain"][first[0]])


def build_plasticity(pool: Pool, cfg: dict, key: str = "scenario") -> PlasticityStream:
    return PlasticityStream(pool, cfg, key)
