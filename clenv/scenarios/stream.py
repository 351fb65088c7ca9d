"""Streams: a planned sequence of pool indices served as fixed-size chunks.

Chunk k covers stream positions [k*S, (k+1)*S) and is computed from the plan and
``SeedSequence([seed, k])`` alone: random access, O(chunk) memory, resumable from a position.
``materialize()`` concatenates the chunks; ``save_manifest`` writes the arrays (.npz) and a
manifest (generator, format version, resolved config, seed, sha256) that ``load_manifest``
checks.

Evaluation vocabulary shared by every stream: a *unit* is a (domain, class) pair, id
``domain * n_classes + class``; a *column* (a task, or a lifelong concept) is a set of units of
one domain and one column of the accuracy matrix; *rows* are taken at the ends of the stream's
tasks (segments), ``task_ends``.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clenv.errors import DataError
from clenv.scenarios.permutation import keyed_permutation, round_keys

FORMAT_VERSION = 2
FIELDS = ("index", "y", "task", "major_task", "level", "epoch", "domain", "is_new_class",
          "boundary", "first_exposure", "sample_id")


class Stream:
    """Base of every stream. Subclasses set the plan attributes below and implement
    ``_core(k)`` (chunk k's records without ``is_new_class``).

    n_tasks / task_starts / task_ends: the rows (tasks or segments) and their position spans.
    columns: unit-id arrays, one per accuracy-matrix column; column_names: their names.
    first_row: per column, the row (task) in which it is first trained (None if never).
    unit_first_position: (U,) stream position of each unit's first sample (-1 if never).
    first_position: (C,) the same per class (over all domains).
    probes: sorted (position, labels) pairs where the Runner evaluates besides task ends.
    square: True when column j is trained in row j (class-incremental tasks), so the
        task-matrix metrics (BWT, FWT, forgetting) apply.
    """

    generator: str
    seed: int
    chunk_size: int
    config: dict
    n_classes: int
    n_domains: int = 1
    length: int
    n_tasks: int
    task_starts: np.ndarray
    task_ends: np.ndarray
    columns: list[np.ndarray]
    column_names: list[str]
    first_row: list[int | None]
    unit_first_position: np.ndarray
    probes: list[tuple[int, dict]] = []
    square: bool = True
    levels: int = 1
    meta: dict = {}

    # -- records --------------------------------------------------------------------------------
    def _core(self, k: int) -> dict[str, np.ndarray]:
        raise NotImplementedError

    @property
    def n_chunks(self) -> int:
        return -(-self.length // self.chunk_size)

    @property
    def n_units(self) -> int:
        return self.n_domains * self.n_classes

    @property
    def first_position(self) -> np.ndarray:
        by_unit = self.unit_first_position.reshape(self.n_domains, self.n_classes)
        seen = np.where(by_unit >= 0, by_unit, np.iinfo(np.int64).max).min(axis=0)
        return np.where(seen == np.iinfo(np.int64).max, -1, seen)

    def labels_of(self, index: np.ndarray) -> np.ndarray:
        return self._labels[index]

    def chunk(self, k: int) -> dict[str, np.ndarray]:
        """Chunk k: a function of (plan, SeedSequence([seed, k])) only."""
        if not 0 <= k < self.n_chunks:
            raise IndexError(f"chunk {k} out of range [0, {self.n_chunks})")
        rec = self._core(k)
        pos = np.arange(k * self.chunk_size, k * self.chunk_size + len(rec["index"]))
        virtual = rec.pop("_virtual", rec["index"])
        rec["is_new_class"] = self._class_first[self._labels[virtual]] == pos
        rec["y"] = getattr(self, "_targets", self._labels)[virtual]
        return rec

    def chunk_rng(self, k: int) -> np.random.Generator:
        """The generator of chunk k, for per-sample draws a generator makes inside a chunk."""
        return np.random.default_rng(np.random.SeedSequence([self.seed, k]))

    def chunks(self, start: int = 0):
        for k in range(start, self.n_chunks):
            yield self.chunk(k)

    def slice(self, start: int, stop: int) -> dict[str, np.ndarray]:
        """Records of stream positions [start, stop), cut from the covering chunks."""
        start, stop = max(0, int(start)), min(int(stop), self.length)
        if stop <= start:
            return {f: v[:0] for f, v in self.chunk(0).items()} if self.length else {}
        S = self.chunk_size
        parts = []
        for k in range(start // S, (stop - 1) // S + 1):
            rec = self.chunk(k)
            a, b = max(start - k * S, 0), min(stop - k * S, S)
            parts.append({f: v[a:b] for f, v in rec.items()})
        return {f: np.concatenate([p[f] for p in parts]) for f in FIELDS}

    def materialize(self) -> dict[str, np.ndarray]:
        return self.slice(0, self.length)

    def _finish_plan(self) -> None:
        """Call at the end of a subclass's __init__, once unit_first_position is set."""
        self._class_first = self.first_position

    # -- queries used by the Env, the evaluator and the Runner ----------------------------------
    def task_at(self, position: int) -> int:
        return int(np.searchsorted(self.task_ends, position, side="right"))

    def seen_classes(self, position: int) -> np.ndarray:
        """Ids of the classes with a sample at a stream position < ``position``."""
        return np.flatnonzero(self.seen_mask(position))

    def seen_mask(self, position: int) -> np.ndarray:
        """(C,) classes with at least one sample at a stream position < ``position``."""
        f = self._class_first
        return (f >= 0) & (f < position)

    def seen_units(self, position: int) -> np.ndarray:
        """(U,) units with at least one sample at a stream position < ``position``."""
        f = self.unit_first_position
        return (f >= 0) & (f < position)

    def transform(self, x: np.ndarray, domain: int, rng: np.random.Generator) -> np.ndarray:
        """x under the input transform of ``domain`` (domain 0 is the identity)."""
        return x

    # -- manifest ------------------------------------------------------------------------------
    def sha256(self) -> str:
        return chunks_sha256(self.chunks())

    def save_manifest(self, path: str | os.PathLike) -> Path:
        """Write ``path`` (JSON manifest) and the arrays beside it (same stem, .npz)."""
        path = Path(path)
        arrays = self.materialize()
        npz = path.with_suffix(".npz")
        np.savez_compressed(npz, **arrays)
        manifest = {
            "format_version": FORMAT_VERSION, "generator": self.generator, "seed": self.seed,
            "config": self.config, "length": self.length, "n_tasks": self.n_tasks,
            "chunk_size": self.chunk_size, "columns": [c.tolist() for c in self.columns],
            "task_ends": self.task_ends.tolist(), "arrays": npz.name,
            "sha256": arrays_sha256(arrays, self.chunk_size),
        }
        path.write_text(json.dumps(manifest, indent=1))
        return path


def chunks_sha256(chunks) -> str:
    """sha256 over a sequence of chunks, each field's dtype, shape and bytes in FIELDS order."""
    h = hashlib.sha256()
    for rec in chunks:
        for f in FIELDS:
            a = np.ascontiguousarray(rec[f])
            h.update(f"{f}:{a.dtype.str}:{a.shape}".encode())
            h.update(a.tobytes())
    return h.hexdigest()


def arrays_sha256(arrays: dict[str, np.ndarray], chunk_size: int) -> str:
    """The sha256 of materialised arrays, equal to ``Stream.sha256()`` of the same stream."""
    n = len(arrays["index"])
    return chunks_sha256({f: arrays[f][s:s + chunk_size] for f in FIELDS}
                         for s in range(0, n, chunk_size))


def load_manifest(path: str | os.PathLike) -> tuple[dict, dict[str, np.ndarray]]:
    """Load a manifest and its arrays; raise DataError if the arrays' sha256 does not match."""
    path = Path(path)
    try:
        manifest = json.loads(path.read_text())
        with np.load(path.parent / manifest["arrays"]) as z:
            arrays = {f: z[f] for f in FIELDS}
        digest = arrays_sha256(arrays, int(manifest["chunk_size"]))
    except (OSError, KeyError, ValueError, TypeError, EOFError, zipfile.BadZipFile,
            zlib.error) as exc:
        raise DataError(f"stream manifest {path}: cannot read ({exc}); give the .json written "
                        "by save_manifest with its .npz beside it") from None
    if digest != manifest.get("sha256"):
        raise DataError(f"stream manifest {path}: sha256 of the arrays does not match; the .npz "
                        "was changed or belongs to another manifest")
    return manifest, arrays


@dataclass
class Segment:
    """One pass over a task's samples: ``indices`` are pool indices, served in keyed order."""

    task: int
    epoch: int
    indices: np.ndarray
    start: int  # first stream position


class TaskStream(Stream):
    """A class-incremental stream: tasks of classes, each passed ``epochs`` times.

    task_classes[j]: classes whose major task is j (task j's test set is their test samples);
    major_task: (C,) the major task of each class (-1 for classes not in the stream).

    ordered: serve each task's samples in the given order (split files) instead of the keyed
    shuffle.

    Hierarchical streams (HLE) reuse it with *virtual* sample ids ``v = level * n_pool + index``
    (the same image at several label levels): ``labels`` maps a virtual id to its unit (a class
    at a level, ``n_classes`` units in all), ``targets`` to its label at its level.
    """

    def __init__(self, *, generator: str, seed: int, labels: np.ndarray, n_classes: int,
                 task_samples: list[np.ndarray], task_classes: list[np.ndarray], epochs: int,
                 chunk_size: int, config: dict, leaf_level: int = 0,
                 n_pool: int | None = None, targets: np.ndarray | None = None,
                 levels: int = 1, ordered: bool = False) -> None:
        self.generator = generator
        self.seed = int(seed)
        self.chunk_size = int(chunk_size)
        self.epochs = int(epochs)
        self.config = config
        self.n_classes = n_classes
        self.levels = levels
        self.task_classes = [np.asarray(c, dtype=np.int64) for c in task_classes]
        self.columns = self.task_classes
        self.column_names = [f"task {j}" for j in range(len(task_classes))]
        self.n_tasks = len(task_samples)
        self.first_row = list(range(self.n_tasks))
        self._labels = labels
        self._targets = labels if targets is None else targets
        self._n_pool = n_pool
        self._leaf_level = leaf_level
        self.major_task = np.full(n_classes, -1, dtype=np.int64)
        for t, cls in enumerate(self.task_classes):
            self.major_task[cls] = t
        self.ordered = ordered
        self.segments: list[Segment] = []
        pos = 0
        self.task_starts = np.zeros(self.n_tasks, dtype=np.int64)
        self.task_ends = np.zeros(self.n_tasks, dtype=np.int64)
        for t, idx in enumerate(task_samples):
            self.task_starts[t] = pos
            for e in range(self.epochs):
                given = np.asarray(idx, dtype=np.int64)
                self.segments.append(Segment(t, e, given if ordered else np.sort(given), pos))
                pos += len(idx)
            self.task_ends[t] = pos
        self.length = pos
        self._seg_starts = np.array([s.start for s in self.segments], dtype=np.int64)
        self._keys = [round_keys([self.seed, 0x5E6, s.task, s.epoch]) for s in self.segments]
        self.unit_first_position = self._first_positions()
        self._finish_plan()

    def _served(self, s: int, offsets: np.ndarray) -> np.ndarray:
        """Positions within segment ``s`` of the samples served at ``offsets`` into it."""
        if self.ordered:
            return offsets
        return keyed_permutation(offsets, len(self.segments[s].indices), self._keys[s])

    def _first_passes(self):
        """(segment, its samples in served order) for every first-epoch segment."""
        for s, seg in enumerate(self.segments):
            if seg.epoch != 0 or len(seg.indices) == 0:
                continue
            n = len(seg.indices)
            yield seg, seg.indices[self._served(s, np.arange(n))]

    def _first_positions(self) -> np.ndarray:
        first = np.full(self.n_classes, -1, dtype=np.int64)
        for seg, order in self._first_passes():
            classes, where = np.unique(self._labels[order], return_index=True)
            unseen = first[classes] < 0
            first[classes[unseen]] = seg.start + where[unseen]
        return first

    def _core(self, k: int) -> dict[str, np.ndarray]:
        start = k * self.chunk_size
        pos = np.arange(start, min(start + self.chunk_size, self.length), dtype=np.int64)
        virtual = np.empty(len(pos), dtype=np.int64)
        task = np.empty(len(pos), dtype=np.int64)
        epoch = np.empty(len(pos), dtype=np.int64)
        seg_ids = np.searchsorted(self._seg_starts, pos, side="right") - 1
        for s in np.unique(seg_ids):
            seg = self.segments[s]
            sel = seg_ids == s
            off = pos[sel] - seg.start
            virtual[sel] = seg.indices[self._served(s, off)]
            task[sel] = seg.task
            epoch[sel] = seg.epoch
        units = self._labels[virtual]
        if self._n_pool is None:
            index = virtual
            level = np.full(len(pos), self._leaf_level, dtype=np.int64)
        else:
            level, index = np.divmod(virtual, self._n_pool)
        return {
            "index": index, "task": task, "major_task": self.major_task[units],
            "level": level, "epoch": epoch, "domain": np.zeros(len(pos), dtype=np.int64),
            "boundary": np.isin(pos, self.task_starts), "first_exposure": epoch == 0,
            "sample_id": index.copy(), "_virtual": virtual,
        }
