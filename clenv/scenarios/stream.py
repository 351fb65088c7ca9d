"""Streams: a planned sequence of pool indices served as fixed-size chunks.

A stream is a list of segments, each one pass (epoch) over one task's sample list in a keyed
random order. Chunk k covers stream positions [k*S, (k+1)*S) and is computed from the plan and
``SeedSequence([seed, k])`` alone: random access, O(chunk) memory, resumable from a position.
``materialize()`` concatenates the chunks; ``save_manifest`` writes the arrays (.npz) and a
manifest (generator, format version, resolved config, seed, sha256) that ``load_manifest`` checks.
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

FORMAT_VERSION = 1
FIELDS = ("index", "task", "major_task", "level", "epoch", "is_new_class", "boundary",
          "first_exposure", "sample_id")


@dataclass
class Segment:
    """One pass over a task's samples: ``indices`` are pool indices, served in keyed order."""

    task: int
    epoch: int
    indices: np.ndarray
    start: int  # first stream position


class Stream:
    """A finite planned stream over a pool.

    task_classes[j]: classes whose major task is j (task j's test set is their test samples).
    major_task: (C,) the major task of each class (-1 for classes not in the stream).
    first_position: (C,) stream position of each class's first sample (-1 if never).
    task_ends[j]: stream position one past task j's last sample.
    """

    def __init__(self, *, generator: str, seed: int, labels: np.ndarray, n_classes: int,
                 task_samples: list[np.ndarray], task_classes: list[np.ndarray], epochs: int,
                 chunk_size: int, config: dict, levels: np.ndarray | None = None) -> None:
        self.generator = generator
        self.seed = int(seed)
        self.chunk_size = int(chunk_size)
        self.epochs = int(epochs)
        self.config = config
        self.n_classes = n_classes
        self.task_classes = [np.asarray(c, dtype=np.int64) for c in task_classes]
        self.n_tasks = len(task_samples)
        self._labels = labels
        self._levels = levels
        self.major_task = np.full(n_classes, -1, dtype=np.int64)
        for t, cls in enumerate(self.task_classes):
            self.major_task[cls] = t
        self.segments: list[Segment] = []
        pos = 0
        self.task_starts = np.zeros(self.n_tasks, dtype=np.int64)
        self.task_ends = np.zeros(self.n_tasks, dtype=np.int64)
        for t, idx in enumerate(task_samples):
            self.task_starts[t] = pos
            for e in range(self.epochs):
                self.segments.append(Segment(t, e, np.sort(np.asarray(idx, dtype=np.int64)), pos))
                pos += len(idx)
            self.task_ends[t] = pos
        self.length = pos
        self._seg_starts = np.array([s.start for s in self.segments], dtype=np.int64)
        self._keys = [round_keys([self.seed, 0x5E6, s.task, s.epoch]) for s in self.segments]
        self.first_position = self._first_positions()

    # -- random access -------------------------------------------------------------------------
    @property
    def n_chunks(self) -> int:
        return -(-self.length // self.chunk_size)

    def _first_positions(self) -> np.ndarray:
        first = np.full(self.n_classes, -1, dtype=np.int64)
        for s, seg in enumerate(self.segments):
            if seg.epoch != 0 or len(seg.indices) == 0:
                continue
            n = len(seg.indices)
            order = keyed_permutation(np.arange(n), n, self._keys[s])
            labels = self._labels[seg.indices[order]]
            classes, where = np.unique(labels, return_index=True)
            unseen = first[classes] < 0
            first[classes[unseen]] = seg.start + where[unseen]
        return first

    def slice(self, start: int, stop: int) -> dict[str, np.ndarray]:
        """Records of stream positions [start, stop), computed directly from the plan."""
        start, stop = max(0, int(start)), min(int(stop), self.length)
        pos = np.arange(start, max(start, stop), dtype=np.int64)
        index = np.empty(len(pos), dtype=np.int64)
        task = np.empty(len(pos), dtype=np.int64)
        epoch = np.empty(len(pos), dtype=np.int64)
        if len(pos):
            seg_ids = np.searchsorted(self._seg_starts, pos, side="right") - 1
            for s in np.unique(seg_ids):
                seg = self.segments[s]
                sel = seg_ids == s
                off = pos[sel] - seg.start
                index[sel] = seg.indices[keyed_permutation(off, len(seg.indices), self._keys[s])]
                task[sel] = seg.task
                epoch[sel] = seg.epoch
        labels = self._labels[index]
        level = (self._levels[index] if self._levels is not None
                 else np.zeros(len(pos), dtype=np.int64))
        return {
            "index": index,
            "task": task,
            "major_task": self.major_task[labels],
            "level": level,
            "epoch": epoch,
            "is_new_class": self.first_position[labels] == pos,
            "boundary": np.isin(pos, self.task_starts),
            "first_exposure": epoch == 0,
            "sample_id": index.copy(),
        }

    def chunk(self, k: int) -> dict[str, np.ndarray]:
        """Chunk k: a function of (plan, SeedSequence([seed, k])) only."""
        if not 0 <= k < self.n_chunks:
            raise IndexError(f"chunk {k} out of range [0, {self.n_chunks})")
        return self.slice(k * self.chunk_size, (k + 1) * self.chunk_size)

    def chunk_rng(self, k: int) -> np.random.Generator:
        """The generator of chunk k, for per-sample draws a generator makes inside a chunk."""
        return np.random.default_rng(np.random.SeedSequence([self.seed, k]))

    def chunks(self, start: int = 0):
        for k in range(start, self.n_chunks):
            yield self.chunk(k)

    def materialize(self) -> dict[str, np.ndarray]:
        parts = list(self.chunks())
        if not parts:
            return self.slice(0, 0)
        return {f: np.concatenate([p[f] for p in parts]) for f in FIELDS}

    # -- queries used by the Env and the evaluator ---------------------------------------------
    def task_at(self, position: int) -> int:
        return int(np.searchsorted(self.task_ends, position, side="right"))

    def seen_classes(self, position: int) -> np.ndarray:
        """Classes with at least one sample at a stream position < ``position``."""
        return np.flatnonzero((self.first_position >= 0) & (self.first_position < position))

    def seen_mask(self, position: int) -> np.ndarray:
        return (self.first_position >= 0) & (self.first_position < position)

    # -- manifest ------------------------------------------------------------------------------
    def save_manifest(self, path: str | os.PathLike) -> Path:
        """Write ``path`` (JSON manifest) and the arrays beside it (same stem, .npz)."""
        path = Path(path)
        arrays = self.materialize()
        npz = path.with_suffix(".npz")
        np.savez_compressed(npz, **arrays)
        manifest = {
            "format_version": FORMAT_VERSION,
            "generator": self.generator,
            "seed": self.seed,
            "config": self.config,
            "length": self.length,
            "n_tasks": self.n_tasks,
            "task_classes": [c.tolist() for c in self.task_classes],
            "task_ends": self.task_ends.tolist(),
            "arrays": npz.name,
            "sha256": arrays_sha256(arrays),
        }
        path.write_text(json.dumps(manifest, indent=1))
        return path

    def sha256(self) -> str:
        return arrays_sha256(self.materialize())


def arrays_sha256(arrays: dict[str, np.ndarray]) -> str:
    """sha256 over the stream arrays in FIELDS order (dtype, shape and bytes of each)."""
    h = hashlib.sha256()
    for f in FIELDS:
        a = np.ascontiguousarray(arrays[f])
        h.update(f"{f}:{a.dtype.str}:{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def load_manifest(path: str | os.PathLike) -> tuple[dict, dict[str, np.ndarray]]:
    """Load a manifest and its arrays; raise DataError if the arrays' sha256 does not match."""
    path = Path(path)
    try:
        manifest = json.loads(path.read_text())
        with np.load(path.parent / manifest["arrays"]) as z:
            arrays = {f: z[f] for f in FIELDS}
    except (OSError, KeyError, ValueError, TypeError, EOFError, zipfile.BadZipFile,
            zlib.error) as exc:
        raise DataError(f"stream manifest {path}: cannot read ({exc}); give the .json written "
                        "by save_manifest with its .npz beside it") from None
    if arrays_sha256(arrays) != manifest.get("sha256"):
        raise DataError(f"stream manifest {path}: sha256 of the arrays does not match; the .npz "
                        "was changed or belongs to another manifest")
    return manifest, arrays
