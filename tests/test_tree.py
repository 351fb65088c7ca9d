"""Label trees: per-level views of a pool and the ``tree`` option of every data source."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from clenv.config.loader import load_config
from clenv.data.registry import SOURCES, load_pool
from clenv.data.tree import level_labels, level_sizes, load_tree_file, parents
from clenv.errors import ConfigError, DataError

DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
PARITY = {name: ("even" if i % 2 == 0 else "odd") for i, name in enumerate(DIGITS)}


def _write(path: Path, mapping: object) -> str:
    if path.suffix == ".json":
        path.write_text(json.dumps(mapping))
    else:
        import yaml

        path.write_text(yaml.safe_dump(mapping))
    return str(path)


@pytest.fixture(scope="module")
def synth():
    return load_pool({"source": "synthetic", "depth": 3, "branching": [2, 3, 2],
                      "train_per_class": 3, "test_per_class": 2, "dim": 4})


def test_views_of_a_synthetic_depth3_pool(synth) -> None:
    assert synth.depth == 3 and level_sizes(synth) == [2, 6, 12]
    labels = level_labels(synth)
    assert labels.shape == (len(synth.y), 3) and labels.dtype == np.int64
    assert np.array_equal(labels[:, -1], synth.y)
    assert np.array_equal(labels[:, :-1], synth.ancestors[synth.y])
    assert np.array_equal(level_labels(synth, np.array([0, 11])), [[0, 0, 0], [1, 5, 11]])
    up = parents(synth)
    assert [len(p) for p in up] == [6, 12]
    assert np.array_equal(up[0], [0, 0, 0, 1, 1, 1])
    assert np.array_equal(up[1], synth.ancestors[:, 1])
    assert np.array_equal(up[0][synth.ancestors[:, 1]], synth.ancestors[:, 0])
    for level, p in enumerate(up):  # every parent lies below the level size
        assert p.min() >= 0 and p.max() < level_sizes(synth)[level]


def test_flat_pool_has_depth_one() -> None:
    pool = load_pool({"source": "digits"})
    assert pool.depth == 1 and level_sizes(pool) == [10] and parents(pool) == []
    assert np.array_equal(level_labels(pool), pool.y[:, None])


def test_parents_rejects_a_node_with_two_parents(synth) -> None:
    broken = copy.copy(synth)  # Pool itself refuses such a tree, so set it past the check
    broken.ancestors = np.array(synth.ancestors)
    broken.ancestors[0, 0] = 1  # level-1 node 0 now sits under both top nodes
    with pytest.raises(ValueError, match="two parents"):
        parents(broken)


@pytest.mark.parametrize("suffix", [".yaml", ".yml", ".json"])
def test_two_level_tree_file_on_digits(tmp_path: Path, suffix: str) -> None:
    path = _write(tmp_path / f"parity{suffix}", PARITY)
    pool = load_pool({"source": "digits", "tree": path})
    assert pool.depth == 2 and pool.tree_names == [["even", "odd"]]
    assert np.array_equal(pool.ancestors[:, 0], np.arange(10) % 2)
    assert pool.meta["tree"] == path and level_sizes(pool) == [2, 10]
    assert np.array_equal(level_labels(pool)[:, 0], pool.y % 2)


def test_three_level_tree_file(tmp_path: Path) -> None:
    mapping = {name: ("small" if i < 5 else "large") + "-" + PARITY[name]
               for i, name in enumerate(DIGITS)}
    mapping.update({"small-even": "small", "small-odd": "small", "large-even": "large",
                    "large-odd": "large", "large": None})
    pool = load_pool({"source": "digits", "tree": _write(tmp_path / "t.yaml", mapping)})
    assert pool.depth == 3 and level_sizes(pool) == [2, 4, 10]
    assert pool.tree_names == [["small", "large"],
                               ["small-even", "small-odd", "large-odd", "large-even"]]
    assert np.array_equal(pool.ancestors[:, 0], [0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
    assert np.array_equal(pool.ancestors[:, 1], [0, 1, 0, 1, 0, 2, 3, 2, 3, 2])
    assert np.array_equal(parents(pool)[0], [0, 0, 1, 1])


def test_single_common_root_is_dropped(tmp_path: Path) -> None:
    mapping = {**PARITY, "even": "digit", "odd": "digit", "digit": "everything"}
    ancestors, names = load_tree_file(_write(tmp_path / "t.json", mapping), DIGITS, "data.tree")
    assert names == [["even", "odd"]] and np.array_equal(ancestors[:, 0], np.arange(10) % 2)


def test_tree_replaces_a_source_tree(tmp_path: Path, synth) -> None:
    names = synth.class_names
    mapping = {n: f"g{i % 3}" for i, n in enumerate(names)}
    pool = load_pool({"source": "synthetic", "depth": 3, "branching": [2, 3, 2],
                      "train_per_class": 3, "test_per_class": 2, "dim": 4,
                      "tree": _write(tmp_path / "t.yaml", mapping)})
    assert pool.depth == 2 and pool.tree_names == [["g0", "g1", "g2"]]
    assert np.array_equal(pool.x, synth.x)


def test_every_source_has_a_tree_key() -> None:
    for source in SOURCES.values():
        assert source.fields["tree"].default is None and source.fields["tree"].nullable
    cfg = load_config({"data": {"source": "digits", "tree": "t.yaml"}})
    assert cfg["data"]["tree"] == str(Path.cwd() / "t.yaml")  # a path field, made absolute
    assert load_config({"data": {"source": "digits"}})["data"]["tree"] is None
    with pytest.raises(ConfigError, match=r"^data\.tree: expected a string"):
        load_pool({"source": "digits", "tree": 3})


def _error(tmp_path: Path, name: str, content: object) -> str:
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content)
    else:
        _write(path, content)
    with pytest.raises(DataError) as info:
        load_pool({"source": "digits", "tree": str(path)})
    message = str(info.value)
    assert message.startswith("data.tree: ") and "\n" not in message
    return message


def test_tree_file_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"^data\.tree: file .* does not exist"):
        load_pool({"source": "digits", "tree": str(tmp_path / "none.yaml")})
    assert "must end in" in _error(tmp_path, "t.txt", PARITY)
    assert "cannot read" in _error(tmp_path, "bad.json", "{not json")
    assert "cannot read" in _error(tmp_path, "bad.yaml", "a: [unclosed\n  b: c")
    assert "non-empty mapping" in _error(tmp_path, "list.yaml", ["zero", "one"])
    assert "non-empty mapping" in _error(tmp_path, "empty.yaml", "")
    assert "not a name" in _error(tmp_path, "type.yaml", {**PARITY, "zero": ["even"]})
    missing = {k: v for k, v in PARITY.items() if k != "seven"}
    assert "'seven'" in _error(tmp_path, "missing.yaml", missing)
    assert "which is a class" in _error(tmp_path, "leaf.yaml", {**PARITY, "even": "one"})
    cycle = {**PARITY, "even": "a", "odd": "a", "a": "b", "b": "a"}
    message = _error(tmp_path, "cycle.yaml", cycle)
    assert "cycle" in message and "a -> b -> a" in message
    assert "cycle" in _error(tmp_path, "self.yaml", {**PARITY, "even": "even"})
    ragged = {**PARITY, "even": "number"}
    message = _error(tmp_path, "ragged.yaml", ragged)
    assert "same depth" in message and "'zero'" in message and "'one'" in message
    assert "no grouping" in _error(tmp_path, "one.yaml", dict.fromkeys(DIGITS, "digit"))
    assert "no grouping" in _error(tmp_path, "flat.yaml", dict.fromkeys(DIGITS))
