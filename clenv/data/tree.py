"""Label trees: per-level views of a Pool's ``ancestors`` and reading a tree from a file.

A tree file is a flat YAML or JSON mapping ``child: parent`` of node names. The leaves are the
pool's class names; a top-level node is one that appears only as a parent, or maps to null.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from clenv.data.pool import Pool
from clenv.errors import DataError

_SUFFIXES = (".yaml", ".yml", ".json")


def level_sizes(pool: Pool) -> list[int]:
    """Number of classes at each level, top first (the last entry is ``pool.n_classes``)."""
    coarser = [len(names) for names in pool.tree_names or []]
    return coarser + [pool.n_classes]


def level_labels(pool: Pool, y: np.ndarray | None = None) -> np.ndarray:
    """(n, depth) int64 labels of each sample at every level, top first, leaf label last.

    ``y`` holds leaf class ids (default ``pool.y``).
    """
    y = pool.y if y is None else np.asarray(y, dtype=np.int64)
    leaves = np.arange(pool.n_classes, dtype=np.int64)[:, None]
    if pool.ancestors is None:
        return leaves[y]
    return np.concatenate([pool.ancestors, leaves], axis=1)[y]


def parents(pool: Pool) -> list[np.ndarray]:
    """``parents[l][c]``: the level-``l`` parent id of level-``l+1`` class ``c`` (depth-1 arrays).

    A level-(l+1) node with no leaf below it gets parent -1. Raises ValueError if a node would
    have two parents.
    """
    if pool.ancestors is None:
        return []
    sizes = level_sizes(pool)
    nodes = np.concatenate([pool.ancestors, np.arange(pool.n_classes)[:, None]], axis=1)
    out = []
    for level in range(pool.depth - 1):
        parent = np.full(sizes[level + 1], -1, dtype=np.int64)
        pairs = np.unique(nodes[:, level:level + 2], axis=0)
        if len(pairs) != len(np.unique(pairs[:, 1])):
            raise ValueError(f"pool {pool.name}: a node at tree level {level + 1} has two "
                             f"parents")
        parent[pairs[:, 1]] = pairs[:, 0]
        out.append(parent)
    return out


def _name(value: Any, what: str, key: str) -> str:
    """A node name from the file: a string (integers are accepted and turned into strings)."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise DataError(f"{key}: {what} {value!r:.60} is not a name; node names must be strings")


def _read_mapping(path: Path, key: str) -> dict[str, str | None]:
    """Parse the file into a ``{child: parent or None}`` mapping of names."""
    fix = f"point {key} at a YAML or JSON file mapping each class name to its parent name"
    if path.suffix.lower() not in _SUFFIXES:
        raise DataError(f"{key}: {path} must end in .yaml, .yml or .json; {fix}")
    if not path.is_file():
        raise DataError(f"{key}: file {path} does not exist; {fix}")
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() == ".json":
            raw = json.loads(text)
        else:
            import yaml

            raw = yaml.safe_load(text)
    except Exception as exc:  # unreadable or unparsable file
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise DataError(f"{key}: cannot read {path} ({type(exc).__name__}: {first:.80}); "
                        f"fix the file") from exc
    if not isinstance(raw, dict) or not raw:
        raise DataError(f"{key}: {path} must hold a non-empty mapping 'child: parent', got "
                        f"{type(raw).__name__}; {fix}")
    out: dict[str, str | None] = {}
    for child, parent in raw.items():
        name = _name(child, "key", key)
        out[name] = None if parent is None else _name(parent, f"parent of {name!r}", key)
    return out


def _check_cycles(mapping: dict[str, str | None], key: str) -> None:
    """Raise DataError naming the nodes of the first cycle found in ``mapping``."""
    done: set[str] = set()
    for start in mapping:
        path: list[str] = []
        node: str | None = start
        while node is not None and node in mapping and node not in done:
            if node in path:
                cycle = path[path.index(node):] + [node]
                raise DataError(f"{key}: the parents form a cycle {' -> '.join(cycle)}, so no "
                                f"top-level node is reached; give one of them another parent "
                                f"or null")
            path.append(node)
            node = mapping[node]
        done.update(path)


def load_tree_file(path: str | Path, class_names: list[str],
                   key: str) -> tuple[np.ndarray, list[list[str]]]:
    """Read a ``child: parent`` tree file whose leaves are ``class_names``.

    Returns ``(ancestors, tree_names)`` in Pool's format: levels top first, node ids at each
    level numbered in order of first appearance walking ``class_names`` in order. All leaves must
    be at the same depth. If every leaf sits under one single top node, that root level carries no
    information and is dropped (repeatedly, while the top level has one node). Nodes that are not
    above any class are ignored. Problems raise a one-line DataError naming ``key``.
    """
    path = Path(os.path.expanduser(str(path)))
    mapping = _read_mapping(path, key)
    missing = [c for c in class_names if c not in mapping]
    if missing:
        raise DataError(f"{key}: class {missing[0]!r} of the pool is not in {path} "
                        f"({len(missing)} of {len(class_names)} missing); give every class a "
                        f"parent")
    leaves = set(class_names)
    for child, parent in mapping.items():
        if parent in leaves:
            raise DataError(f"{key}: {child!r} has parent {parent!r}, which is a class of the "
                            f"pool; classes must be leaves, so rename one of them")
    _check_cycles(mapping, key)

    chains: list[list[str]] = []  # ancestors of each class, top first
    for name in class_names:
        chain: list[str] = []
        node = mapping[name]
        while node is not None:
            chain.append(node)
            node = mapping.get(node)
        chains.append(chain[::-1])
    depths = [len(c) for c in chains]
    if len(set(depths)) > 1:
        deep, shallow = int(np.argmax(depths)), int(np.argmin(depths))
        raise DataError(f"{key}: class {class_names[deep]!r} is {depths[deep]} level(s) below "
                        f"the top but {class_names[shallow]!r} only {depths[shallow]}; all "
                        f"leaves must be at the same depth, so add intermediate nodes")

    levels: list[list[str]] = [[] for _ in range(depths[0] if depths else 0)]
    ids: list[dict[str, int]] = [{} for _ in levels]
    ancestors = np.zeros((len(class_names), len(levels)), dtype=np.int64)
    for i, chain in enumerate(chains):
        for level, node in enumerate(chain):
            if node not in ids[level]:
                ids[level][node] = len(levels[level])
                levels[level].append(node)
            ancestors[i, level] = ids[level][node]
    while levels and len(levels[0]) == 1:  # a single common root carries no information
        levels, ancestors = levels[1:], ancestors[:, 1:]
    if not levels:
        raise DataError(f"{key}: {path} puts all classes under one node (or none), so it gives "
                        f"no grouping; give the classes at least two different ancestors")
    return ancestors, levels


def attach_tree(pool: Pool, path: str | Path, key: str) -> Pool:
    """A copy of ``pool`` whose label tree is read from ``path`` (replacing any tree it had)."""
    ancestors, tree_names = load_tree_file(path, list(pool.class_names), key)
    return dataclasses.replace(pool, ancestors=ancestors, tree_names=tree_names,
                               meta={**pool.meta, "tree": str(path)})
