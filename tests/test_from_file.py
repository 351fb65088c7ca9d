"""The ``from_file`` generator and the ``split_files`` source: official split files (i-Blurry,
Rainbow Memory, HLE JSON lists) over a dataset root of PNGs, served in the files' order. Tiny
fixtures in each repository's naming and record format are written to tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from clenv.cli import main
from clenv.config.loader import load_config
from clenv.data import split_files
from clenv.data.registry import load_pool
from clenv.data.tree import parents
from clenv.errors import ConfigError, DataError
from clenv.scenarios.registry import build_stream

CLASSES = ["airplane", "automobile", "bird", "cat"]  # CIFAR-10 names, sorted: ids 0..3


def _png(root: Path, rel: str, value: int, size: int = 4) -> None:
    """A size x size RGB PNG whose red channel is ``value`` everywhere."""
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.zeros((size, size, 3), dtype=np.uint8)
    pixels[..., 0] = value
    Image.fromarray(pixels).save(path)


def _write(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records))


def _flat_records(root: Path, items: list[tuple[str, int]], split: str = "train") -> list[dict]:
    """Records {klass, file_name, label} (i-Blurry / Rainbow Memory); each image's red value
    is 10 * class id + n, so a loaded pixel tells which file it came from."""
    out = []
    for klass, n in items:
        rel = f"{split}/{klass}/{n:04d}.png"
        _png(root, rel, 10 * CLASSES.index(klass) + n + (100 if split == "test" else 0))
        out.append({"klass": klass, "file_name": rel, "label": CLASSES.index(klass)})
    return out


# task 0: airplane and automobile, plus one cat sample blurred in; task 1: bird and cat
TASK0 = [("automobile", 1), ("airplane", 0), ("cat", 3), ("airplane", 1), ("automobile", 0)]
TASK1 = [("bird", 2), ("cat", 1), ("bird", 0), ("cat", 0), ("cat", 2)]
TEST = [("airplane", 5), ("automobile", 5), ("bird", 5), ("cat", 5)]


@pytest.fixture
def iblurry(tmp_path: Path) -> tuple[Path, Path]:
    root, col = tmp_path / "cifar10", tmp_path / "collections"
    t0 = _flat_records(root, TASK0)
    t0[2]["file_name"] = "/srv/someone/datasets/cifar10/train/cat/0003.png"  # re-rooted
    _write(col / "cifar10_split2_n50_m10_rand1_task0.json", t0)
    t1 = _flat_records(root, TASK1)
    for r in t1:  # i-Blurry's CIFAR-10 train lists name the image under "filepath"
        r["filepath"] = r.pop("file_name")
    _write(col / "cifar10_split2_n50_m10_rand1_task1.json", t1)
    _write(col / "cifar10_val.json", _flat_records(root, TEST, "test"))
    return root, col / "cifar10_split2_n50_m10_rand1"


def _scenario(root: Path, path: Path, fmt: str, **extra) -> dict:
    return {"generator": "from_file", "path": str(path), "format": fmt, "root": str(root),
            "batch_size": 2, **extra}


def _build(scenario: dict):
    cfg = load_config({"scenario": scenario})
    pool = load_pool(cfg["data"])
    return cfg, pool, build_stream(pool, cfg["scenario"])


def _red(pool, index: np.ndarray) -> list[int]:
    return pool.x[index, 0, 0, 0].astype(int).tolist()


def test_iblurry_files_are_served_in_file_order(iblurry) -> None:
    root, stem = iblurry
    cfg, pool, stream = _build(_scenario(root, stem, "iblurry"))
    assert cfg["data"]["source"] == "split_files" and cfg["data"]["path"] == str(stem)
    assert pool.class_names == CLASSES and pool.x.dtype == np.uint8
    assert pool.x.shape[1:] == (3, 4, 4)
    rec = stream.materialize()
    expected = [10 * CLASSES.index(k) + n for k, n in TASK0 + TASK1]
    assert _red(pool, rec["index"]) == expected  # the files' order, task after task
    assert rec["y"].tolist() == [CLASSES.index(k) for k, _ in TASK0 + TASK1]
    assert rec["task"].tolist() == [0] * 5 + [1] * 5
    assert stream.task_ends.tolist() == [5, 10]
    # a class's major task holds most of its records: cat (1 in task 0, 3 in task 1) -> 1
    assert [c.tolist() for c in stream.task_classes] == [[0, 1], [2, 3]]
    assert rec["major_task"].tolist() == [0, 0, 1, 0, 0, 1, 1, 1, 1, 1]
    # the test list: cifar10_val.json (i-Blurry's naming)
    test = pool.test_indices
    assert sorted(_red(pool, test)) == [100 + 10 * i + 5 for i in range(4)]
    assert sorted(pool.y[test].tolist()) == [0, 1, 2, 3]
    # the same stream whatever the stream seed: the order is the files'
    _, _, other = _build(_scenario(root, stem, "iblurry", seed=5))
    np.testing.assert_array_equal(other.materialize()["index"], rec["index"])
    # a task file as path names the same stem
    _, _, same = _build(_scenario(root, Path(f"{stem}_task1.json"), "iblurry"))
    np.testing.assert_array_equal(same.materialize()["index"], rec["index"])


def test_rainbow_files_with_per_task_test_lists(tmp_path: Path) -> None:
    root, col = tmp_path / "cifar10", tmp_path / "collections"
    stem = col / "cifar10_train_blurry10_rand1_cls2"
    _write(Path(f"{stem}_task0.json"), _flat_records(root, TASK0))
    _write(Path(f"{stem}_task1.json"), _flat_records(root, TASK1))
    _write(col / "cifar10_test_rand1_cls2_task0.json", _flat_records(root, TEST[:2], "test"))
    _write(col / "cifar10_test_rand1_cls2_task1.json", _flat_records(root, TEST[2:], "test"))
    _, pool, stream = _build(_scenario(root, stem, "rainbow"))
    rec = stream.materialize()
    assert _red(pool, rec["index"]) == [10 * CLASSES.index(k) + n for k, n in TASK0 + TASK1]
    assert len(pool.test_indices) == 4 and pool.meta["test_files"] == [
        "cifar10_test_rand1_cls2_task0.json", "cifar10_test_rand1_cls2_task1.json"]
    # Rainbow Memory shuffles each task's list and trains epochs over it: order shuffled
    _, _, shuffled = _build(_scenario(root, stem, "rainbow", order="shuffled", epochs=2))
    srec = shuffled.materialize()
    assert srec["task"].tolist() == [0] * 10 + [1] * 10
    for t in (0, 1):
        for e in (0, 1):  # every pass serves the task's records once
            sel = (srec["task"] == t) & (srec["epoch"] == e)
            assert sorted(srec["index"][sel].tolist()) == sorted(
                rec["index"][rec["task"] == t].tolist())
    assert srec["index"].tolist() != np.concatenate([rec["index"][:5], rec["index"][:5],
                                                     rec["index"][5:], rec["index"][5:]]).tolist()


# CIFAR-100 has a class named "train": absolute paths .../data/train/train/0001.png re-root at
# the first of the two (as in Hyun1A/HLE's cifar100_hier_setup2 files)
FISH, VEHICLES = ["aquarium_fish", "flatfish"], ["bicycle", "train"]


def _hle_record(root: Path, sup: str, sub: str, n: int, level: int, split: str = "train"):
    rel = f"{split}/{sub}/{n:04d}.png"
    _png(root, rel, 10 * (FISH + VEHICLES).index(sub) + n)
    # the released files carry absolute paths and their own label ids
    return {"file_name": f"/srv/sonic/datasets/cifar100/data/{rel}", "klass_sup": sup,
            "label_sup": 7, "klass_sub": sub, "label_sub": 40, "klass": sup if level == 0
            else sub, "label": 3, "hierarchy": level}


def _hle_fixture(tmp_path: Path) -> tuple[Path, Path]:
    """A two-superclass setup2-like split: task 0 coarse, task 1 fish, task 2 vehicles."""
    root, col = tmp_path / "cifar100", tmp_path / "collections"
    stem = col / "cifar100_hier_setup2_split3_n100_m0_rand0"
    coarse = [_hle_record(root, "fish", "flatfish", 0, 0),
              _hle_record(root, "vehicles_1", "train", 0, 0),
              _hle_record(root, "fish", "aquarium_fish", 0, 0)]
    fish = [_hle_record(root, "fish", s, n, 1) for s in FISH for n in (1, 2)]
    cars = [_hle_record(root, "vehicles_1", s, n, 1) for s in VEHICLES for n in (1, 2)]
    _write(Path(f"{stem}_task0.json"), coarse)
    _write(Path(f"{stem}_task1.json"), fish)
    _write(Path(f"{stem}_task2.json"), cars)
    _write(col / "cifar100_hier_setup2_val.json",
           [_hle_record(root, "fish", "flatfish", 9, 1, "test"),
            _hle_record(root, "vehicles_1", "bicycle", 9, 1, "test")])
    return root, stem


def test_hle_files_serve_levels_as_recorded(tmp_path: Path) -> None:
    root, stem = _hle_fixture(tmp_path)
    _, pool, stream = _build(_scenario(root, stem, "hle"))
    assert pool.depth == 2 and pool.tree_names == [["fish", "vehicles_1"]]
    assert pool.class_names == ["aquarium_fish", "bicycle", "flatfish", "train"]  # sorted
    assert parents(pool)[0].tolist() == [0, 1, 0, 1]
    rec = stream.materialize()
    assert stream.n_tasks == 3 and stream.levels == 2
    assert rec["level"].tolist() == [0] * 3 + [1] * 8
    assert rec["y"][:3].tolist() == [0, 1, 0]  # superclass ids: fish, vehicles_1, fish
    names = [pool.class_names[c] for c in rec["y"][3:]]
    assert names == [s for s in FISH for _ in (1, 2)] + [s for s in VEHICLES for _ in (1, 2)]
    # the coarse records name images that are not served again at the fine level
    assert len(set(rec["index"].tolist())) == 11
    offsets = stream.level_offsets
    assert [c.tolist() for c in stream.task_classes] == [
        [offsets[0] + 0, offsets[0] + 1], [offsets[1] + 0, offsets[1] + 2],
        [offsets[1] + 1, offsets[1] + 3]]
    assert len(pool.test_indices) == 2


def test_class_set_checked_against_the_dataset(tmp_path: Path) -> None:
    root, col = tmp_path / "d", tmp_path / "c"
    _write(col / "cifar10_split1_n0_m0_rand1_task0.json",
           _flat_records(root, [("airplane", 0)]) + [{"klass": "dragon",
                                                      "file_name": "train/airplane/0000.png"}])
    _write(col / "cifar10_val.json", _flat_records(root, [("airplane", 1)], "test"))
    with pytest.raises(DataError, match="dragon.*cifar10|twice"):
        _build(_scenario(root, col / "cifar10_split1_n0_m0_rand1", "iblurry"))
    # TinyImageNet: WordNet ids
    _png(root, "train/n01443537/n01443537_0.JPEG", 1)
    _png(root, "val/n01443537/val_0.JPEG", 2)
    _write(col / "tinyimagenet_split1_n0_m0_rand1_task0.json",
           [{"klass": "n01443537", "file_name": "train/n01443537/n01443537_0.JPEG"}])
    _write(col / "tinyimagenet_val.json",
           [{"klass": "n01443537", "file_name": "val/n01443537/val_0.JPEG"}])
    _, pool, _ = _build(_scenario(root, col / "tinyimagenet_split1_n0_m0_rand1", "iblurry"))
    assert pool.class_names == ["n01443537"] and len(pool.y) == 2
    _write(col / "tinyimagenet_split1_n0_m0_rand2_task0.json",
           [{"klass": "goldfish", "file_name": "train/n01443537/n01443537_0.JPEG"}])
    with pytest.raises(DataError, match="goldfish.*tinyimagenet"):
        _build(_scenario(root, col / "tinyimagenet_split1_n0_m0_rand2", "iblurry"))


@pytest.mark.parametrize(("record", "match"), [
    ({"klass": "cat"}, r"task0.json: record 1 has no string 'file_name'"),
    ({"klass": 3, "file_name": "train/cat/0003.png"}, r"record 1 has no string 'klass'"),
    ({"klass": "cat", "file_name": "train/../../etc/passwd"}, r"record 1: file_name .* not a path"),
    ({"klass": "cat", "file_name": "/abs/cat/0003.png"}, r"record 1: absolute .* re-root"),
    ({"klass": "cat", "file_name": "train/cat/9999.png"}, r"cannot read image train/cat/9999"),
    ({"klass": "bird", "file_name": "train/cat/0003.png"}, r"named twice with a different class"),
])
def test_hostile_records_fail_in_one_line(iblurry, record: dict, match: str) -> None:
    root, stem = iblurry
    path = Path(f"{stem}_task0.json")
    records = json.loads(path.read_text())
    records[1] = record
    path.write_text(json.dumps(records))
    with pytest.raises(DataError, match=match) as err:
        _build(_scenario(root, stem, "iblurry"))
    assert "\n" not in str(err.value)


def test_bounds_and_bad_files(iblurry, monkeypatch) -> None:
    root, stem = iblurry
    scenario = _scenario(root, stem, "iblurry")
    with pytest.raises(DataError, match="max_images"):
        _build({**scenario, "max_images": 5})
    monkeypatch.setattr(split_files, "MAX_LIST_BYTES", 100)
    with pytest.raises(DataError, match="task0.json: .* bytes"):
        _build(scenario)
    monkeypatch.undo()
    monkeypatch.setattr(split_files, "MAX_POOL_BYTES", 14 * 48 - 1)  # 14 images of 4x4x3
    with pytest.raises(DataError, match="more than .* bytes in memory"):
        _build(scenario)
    monkeypatch.undo()
    _png(root, "train/cat/0001.png", 31, size=5)  # another size than the others
    with pytest.raises(DataError, match="share a size"):
        _build(scenario)
    (root / "train/cat/0001.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="cannot read image train/cat/0001.png"):
        _build(scenario)
    Path(f"{stem}_task1.json").write_text("{not json")
    with pytest.raises(DataError, match="task1.json: cannot read a JSON list"):
        _build(scenario)
    with pytest.raises(DataError, match="data.path: no split file"):
        _build({**scenario, "path": str(stem) + "_nothing"})
    with pytest.raises(DataError, match="data.root"):
        _build({**scenario, "root": str(root / "nowhere")})
    with pytest.raises(DataError, match="not named like Rainbow Memory"):
        _build({**scenario, "format": "rainbow"})
    with pytest.raises(DataError, match="data.test"):
        _build({**scenario, "test": str(root / "missing.json")})


def test_a_data_section_that_disagrees_is_a_config_error(iblurry) -> None:
    root, stem = iblurry
    with pytest.raises(ConfigError, match="^data: generator from_file"):
        load_config({"scenario": _scenario(root, stem, "iblurry"),
                     "data": {"source": "synthetic"}})


def test_a_validation_split_is_refused(iblurry) -> None:
    from clenv.runner import Run

    root, stem = iblurry
    cfg = load_config({"scenario": {**_scenario(root, stem, "iblurry"), "validation": 0.2}})
    with pytest.raises(ConfigError, match="^scenario.validation: a from_file stream"):
        Run(cfg)


@pytest.mark.parametrize("fmt", ["iblurry", "hle"])
def test_clenv_run_on_split_files(iblurry, tmp_path: Path, fmt: str) -> None:
    root, stem = iblurry if fmt == "iblurry" else _hle_fixture(tmp_path / "h")
    config = tmp_path / "files.yaml"
    config.write_text(yaml.safe_dump({
        "name": "files", "scenario": _scenario(root, stem, fmt),
        "strategy": "er", "model": {"name": "mlp", "hidden": [8]},
        "budget": {"memory_size": 4}, "eval": {"every": 4}, "output": {"plots": False}}))
    out = tmp_path / "res"
    assert main(["run", str(config), "--out", str(out), "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["complete"] is True
    if fmt == "hle":  # per-level metrics of a hierarchical stream
        assert [lv["classes"] for lv in metrics["levels"]] == [2, 4]
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["data"]["source"] == "split_files"
    # the saved config re-loads (its data section is the one the scenario implies)
    assert load_config(str(out / "config.yaml"))["data"] == saved["data"]
