"""Tests of multi-label pools and the multi-label sources (canvas, coco, voc)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from clenv.data.canvas import SHAPES
from clenv.data.pool import Pool, limit_per_class
from clenv.data.registry import SOURCES, load_pool
from clenv.data.voc import VOC_CLASSES
from clenv.errors import ConfigError, DataError
from tests.conftest import mnist_root, one_line

# --------------------------------------------------------------------------- pool


def test_pool_multi_hot_validation() -> None:
    x, train = np.zeros((3, 2), np.float32), np.ones(3, bool)
    pool = Pool(x, np.array([[1, 0, 1], [0, 1, 0], [1, 1, 1]], dtype=np.int64), train,
                ["a", "b", "c"])
    assert pool.multi_label and pool.y.dtype == np.uint8 and pool.y.shape == (3, 3)
    assert Pool(x, np.eye(3, dtype=bool), train, ["a", "b", "c"]).y.dtype == np.uint8
    single = Pool(x, np.array([0, 2, 1]), train, ["a", "b", "c"])
    assert not single.multi_label and single.y.dtype == np.int64
    with pytest.raises(ValueError, match="shape"):
        Pool(x, np.ones((3, 2)), train, ["a", "b", "c"])
    with pytest.raises(ValueError, match="only 0 and 1"):
        Pool(x, np.array([[1, 0, 2], [0, 1, 0], [1, 1, 1]]), train, ["a", "b", "c"])
    with pytest.raises(ValueError, match="only 0 and 1"):
        Pool(x, np.full((3, 3), 0.5), train, ["a", "b", "c"])
    with pytest.raises(ValueError, match="no positive"):
        Pool(x, np.array([[1, 0, 0], [0, 0, 0], [1, 1, 1]]), train, ["a", "b", "c"])
    with pytest.raises(ValueError, match="differ in length"):
        Pool(x, np.eye(3)[:2], train, ["a", "b", "c"])
    with pytest.raises(ValueError, match="shape"):
        Pool(x, np.ones((3, 3, 1)), train, ["a", "b", "c"])
    with pytest.raises(ValueError, match="label tree"):
        Pool(x, np.eye(3), train, ["a", "b", "c"], ancestors=np.zeros((3, 1), int),
             tree_names=[["top"]])
    with pytest.raises(ValueError, match="single-label"):
        limit_per_class(pool, 1, 1, 0)


# --------------------------------------------------------------------------- canvas

SMALL = {"source": "canvas", "train_size": 300, "test_size": 100}


def test_canvas_shapes_dtypes_and_cardinality() -> None:
    pool = load_pool({**SMALL, "glyphs": "shapes", "objects": [2, 4]})
    assert pool.multi_label and pool.x.shape == (400, 1, 32, 32) and pool.x.dtype == np.uint8
    assert pool.y.shape == (400, len(SHAPES)) and pool.y.dtype == np.uint8
    assert pool.class_names == list(SHAPES) and len(SHAPES) >= 12
    assert pool.train.sum() == 300 and not pool.train[300:].any()
    card = pool.y.sum(axis=1)
    n_obj = np.array(pool.meta["n_objects"])
    assert card.min() >= 2 and card.max() <= 4 and set(np.unique(n_obj)) == {2, 3, 4}
    assert np.array_equal(card, n_obj)  # cooccurrence 0: distinct classes, one per object
    assert pool.x.reshape(400, -1).max(axis=1).min() > 0
    assert SOURCES["canvas"].multi_label and not SOURCES["canvas"].needs_root


def test_canvas_digits_defaults_and_classes() -> None:
    pool = load_pool({**SMALL, "n_classes": 4, "canvas": 24, "glyph_scale": 1})
    assert pool.class_names == ["zero", "one", "two", "three"]
    assert pool.x.shape == (400, 1, 24, 24) and pool.y.shape == (400, 4)
    card = pool.y.sum(axis=1)
    assert card.min() >= 1 and card.max() <= 3 and (card > 0).all()
    assert pool.y[pool.train].sum(axis=0).min() > 0 and pool.y[~pool.train].sum(axis=0).min() > 0


def test_canvas_seeds_reproduce_and_differ() -> None:
    a = load_pool({**SMALL, "glyphs": "shapes", "seed": 3})
    b = load_pool({**SMALL, "glyphs": "shapes", "seed": 3})
    c = load_pool({**SMALL, "glyphs": "shapes", "seed": 4})
    assert np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y)
    assert not np.array_equal(a.x, c.x) and not np.array_equal(a.y, c.y)


def _partner_share(pool: Pool) -> float:
    """Share of the off-diagonal co-occurrence mass on the {c, partner[c]} pairs."""
    y = pool.y.astype(np.int64)
    co = y.T @ y
    np.fill_diagonal(co, 0)
    partner = np.array(pool.meta["partner"])
    classes = np.arange(pool.n_classes)
    assert not (partner == classes).any()
    on_pairs = np.zeros_like(co, dtype=bool)
    on_pairs[classes, partner] = on_pairs[partner, classes] = True
    return co[on_pairs].sum() / co.sum()


def test_canvas_cooccurrence_makes_partner_pairs_dominate() -> None:
    base = {**SMALL, "glyphs": "shapes", "objects": [2, 3]}
    tied = load_pool({**base, "cooccurrence": 1.0})
    free = load_pool({**base, "cooccurrence": 0.0})
    half = load_pool({**base, "cooccurrence": 0.5})
    assert _partner_share(tied) == 1.0
    assert (tied.y.sum(axis=1) == 2).all()  # every extra object is the partner
    assert _partner_share(free) < 0.3
    assert _partner_share(free) < _partner_share(half) < 1.0
    assert tied.meta["partner"] == free.meta["partner"]


def _glyphs_used(pool: Pool) -> set[bytes]:
    return {img.tobytes() for img in pool.x}


def test_canvas_digits_train_test_glyph_instances_disjoint() -> None:
    from sklearn.datasets import load_digits

    pool = load_pool({**SMALL, "objects": [1, 1], "canvas": 16})  # one glyph fills a canvas
    ids = pool.meta["glyph_instances"]
    assert ids["train"] and ids["test"] and not set(ids["train"]) & set(ids["test"])
    assert len(ids["train"]) + len(ids["test"]) == 1797
    raw = np.round(load_digits().images * (255.0 / 16.0)).astype(np.uint8)
    bank = {s: {np.kron(raw[i], np.ones((2, 2), np.uint8)).tobytes() for i in ids[s]}
            for s in ("train", "test")}
    train_imgs = {img.tobytes() for img in pool.x[pool.train, 0]}
    test_imgs = {img.tobytes() for img in pool.x[~pool.train, 0]}
    assert train_imgs <= bank["train"] and test_imgs <= bank["test"]
    assert not test_imgs & (bank["train"] - bank["test"])


def test_canvas_shapes_train_test_instances_differ() -> None:
    pool = load_pool({**SMALL, "glyphs": "shapes", "objects": [1, 1], "canvas": 16})
    train = {img.tobytes() for img in pool.x[pool.train]}
    test = {img.tobytes() for img in pool.x[~pool.train]}
    assert len(train & test) < 0.1 * len(test)


def test_canvas_mnist_glyphs() -> None:
    root = mnist_root()
    if not root.is_dir():
        pytest.skip("no MNIST test-only root")
    pool = load_pool({**SMALL, "glyphs": "mnist", "root": str(root), "objects": [1, 2]})
    assert pool.x.shape == (400, 1, 32, 32) and pool.y.shape == (400, 10)
    assert pool.class_names[0] == "zero" and pool.class_names[9] == "nine"
    ids = pool.meta["glyph_instances"]
    assert not set(ids["train"]) & set(ids["test"])
    assert len(ids["train"]) + len(ids["test"]) == 10000 and max(ids["test"]) < 10000
    card = pool.y.sum(axis=1)
    assert card.min() == 1 and card.max() == 2
    big = load_pool({**SMALL, "glyphs": "mnist", "root": str(root), "glyph_scale": 1,
                     "n_classes": 3, "train_size": 20, "test_size": 5})
    assert big.y.shape == (25, 3) and big.x.shape == (25, 1, 32, 32)


@pytest.mark.parametrize(("extra", "key"), [
    ({"glyphs": "mnist"}, "data.root"),
    ({"root": "/x"}, "data.root"),
    ({"objects": [3, 1]}, "data.objects"),
    ({"objects": [0, 2]}, "data.objects"),
    ({"objects": [2]}, "data.objects"),
    ({"n_classes": 11}, "data.n_classes"),
    ({"glyphs": "shapes", "n_classes": 99}, "data.n_classes"),
    ({"canvas": 12}, "data.canvas"),
    ({"cooccurrence": 1.5}, "data.cooccurrence"),
    ({"glyphs": "letters"}, "data.glyphs"),
    ({"tree": "t.yaml"}, "data.tree"),
])
def test_canvas_config_errors(extra: dict, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_pool({**SMALL, **extra})
    assert one_line(info, key).startswith(key)


def test_canvas_mnist_missing_root(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        load_pool({**SMALL, "glyphs": "mnist", "root": str(tmp_path / "nope")})
    one_line(info, "data.root", "does not exist")
    with pytest.raises(DataError) as info:
        load_pool({**SMALL, "glyphs": "mnist", "root": str(tmp_path)})
    one_line(info, "data.root", "t10k-images-idx3-ubyte")


# --------------------------------------------------------------------------- coco

COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255)]
CATEGORIES = [{"id": 7, "name": "person"}, {"id": 1, "name": "cat"},
              {"id": 3, "name": "dog"}]  # sorted by id: cat, dog, person


def _image(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (20, 12)) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def _coco(tmp_path: Path) -> Path:
    root = tmp_path / "coco"
    images = [{"id": 10 + i, "file_name": f"im{i}.{'png' if i % 2 else 'jpg'}",
               "width": 20, "height": 12} for i in range(5)]
    for i, im in enumerate(images):
        _image(root / "train2014" / im["file_name"], COLOURS[i])
    anns = [(10, 1), (10, 7), (11, 3), (12, 1), (12, 3), (12, 7), (10, 7), (14, 7)]  # 13: none
    train = {"images": images, "categories": CATEGORIES,
             "annotations": [{"id": j, "image_id": i, "category_id": c, "bbox": [0, 0, 1, 1]}
                             for j, (i, c) in enumerate(anns)]}
    _image(root / "val2014" / "v0.jpg", (10, 20, 30), (8, 8))
    _image(root / "val2014" / "v1.jpg", (200, 100, 50), (8, 8))
    test = {"images": [{"id": 5, "file_name": "v0.jpg"}, {"id": 2, "file_name": "v1.jpg"}],
            "categories": CATEGORIES[::-1],
            "annotations": [{"id": 1, "image_id": 2, "category_id": 3},
                            {"id": 2, "image_id": 5, "category_id": 1},
                            {"id": 3, "image_id": 5, "category_id": 3}]}
    (root / "annotations").mkdir()
    (root / "annotations" / "instances_train2014.json").write_text(json.dumps(train))
    (root / "annotations" / "instances_val2014.json").write_text(json.dumps(test))
    return root


def test_coco_labels_names_and_images(tmp_path: Path) -> None:
    root = _coco(tmp_path)
    pool = load_pool({"source": "coco", "root": str(root), "image_size": 16})
    assert pool.multi_label and pool.class_names == ["cat", "dog", "person"]
    assert pool.meta["category_ids"] == [1, 3, 7]
    assert pool.x.shape == (6, 3, 16, 16) and pool.x.dtype == np.uint8
    assert pool.train.tolist() == [True] * 4 + [False] * 2
    expected = [[1, 0, 1], [0, 1, 0], [1, 1, 1], [0, 0, 1], [1, 1, 0], [0, 1, 0]]
    assert pool.y.tolist() == expected  # image 13 (no annotation) is skipped
    colours = pool.x[:, :, 8, 8].astype(int)
    kept = [0, 1, 2, 4]
    for row, i in enumerate(kept):
        assert np.abs(colours[row] - np.array(COLOURS[i])).max() <= 8
    assert np.abs(colours[4] - [10, 20, 30]).max() <= 8
    assert SOURCES["coco"].needs_root and SOURCES["coco"].multi_label


def test_coco_max_images_seeded(tmp_path: Path) -> None:
    root = _coco(tmp_path)
    cfg = {"source": "coco", "root": str(root), "image_size": 8, "max_images": 2}
    a, b = load_pool({**cfg, "seed": 1}), load_pool({**cfg, "seed": 1})
    assert a.x.shape == (4, 3, 8, 8) and a.train.tolist() == [True, True, False, False]
    assert np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y)
    draws = {load_pool({**cfg, "seed": s}).x[:2].tobytes() for s in range(8)}
    assert len(draws) > 1


def test_coco_errors(tmp_path: Path) -> None:
    root = _coco(tmp_path)
    with pytest.raises(DataError) as info:
        load_pool({"source": "coco", "root": str(tmp_path / "nope")})
    one_line(info, "data.root", "does not exist")
    with pytest.raises(DataError) as info:
        load_pool({"source": "coco", "root": str(root), "test_annotations": "x.json"})
    one_line(info, "data.test_annotations", "x.json", "does not exist")
    with pytest.raises(DataError) as info:
        load_pool({"source": "coco", "root": str(root), "test_images": "val2017"})
    one_line(info, "data.test_images", "val2017")
    (root / "train2014" / "im2.jpg").unlink()
    with pytest.raises(DataError) as info:
        load_pool({"source": "coco", "root": str(root)})
    one_line(info, "data.train_images", "im2.jpg", "does not exist")
    (root / "train2014" / "im1.png").write_bytes(b"not an image")
    with pytest.raises(DataError) as info:
        load_pool({"source": "coco", "root": str(root)})
    one_line(info, "data.train_images", "im1.png", "cannot read")
    bad = json.loads((root / "annotations" / "instances_val2014.json").read_text())
    bad["annotations"].append({"id": 9, "image_id": 2, "category_id": 99})
    (root / "annotations" / "bad.json").write_text(json.dumps(bad))
    (root / "annotations" / "broken.json").write_text("{")
    for name, part in (("bad.json", "category id 99"), ("broken.json", "JSON")):
        with pytest.raises(DataError) as info:
            load_pool({"source": "coco", "root": str(root), "test_annotations":
                       f"annotations/{name}"})
        one_line(info, "data.test_annotations", part)
    with pytest.raises(ConfigError) as info:
        load_pool({"source": "coco"})
    one_line(info, "data.root", "missing")


# --------------------------------------------------------------------------- voc


def _object(name: str, difficult: int = 0) -> str:
    return (f"<object><name>{name}</name><pose>Left</pose><truncated>0</truncated>"
            f"<difficult>{difficult}</difficult><bndbox><xmin>1</xmin><ymin>1</ymin>"
            f"<xmax>5</xmax><ymax>5</ymax></bndbox></object>")


def _voc(tmp_path: Path) -> Path:
    folder = tmp_path / "VOCdevkit" / "VOC2007"
    objects = {"000001": [("dog", 0), ("person", 0), ("dog", 0)],
               "000002": [("car", 0), ("cat", 1)],
               "000003": [("bottle", 1)],
               "000004": [("aeroplane", 0), ("tvmonitor", 0)]}
    (folder / "Annotations").mkdir(parents=True)
    for i, (stem, objs) in enumerate(objects.items()):
        body = "".join(_object(n, d) for n, d in objs)
        (folder / "Annotations" / f"{stem}.xml").write_text(
            f"<annotation><folder>VOC2007</folder><filename>{stem}.jpg</filename>{body}"
            f"</annotation>")
        _image(folder / "JPEGImages" / f"{stem}.jpg", COLOURS[i])
    (folder / "ImageSets" / "Main").mkdir(parents=True)
    (folder / "ImageSets" / "Main" / "trainval.txt").write_text("000001\n000002\n000003\n")
    (folder / "ImageSets" / "Main" / "test.txt").write_text("000004\n")
    return folder


def _hot(*names: str) -> list[int]:
    return [int(n in names) for n in VOC_CLASSES]


def test_voc_labels_and_difficult(tmp_path: Path) -> None:
    folder = _voc(tmp_path)
    pool = load_pool({"source": "voc", "root": str(tmp_path / "VOCdevkit"), "image_size": 12})
    assert pool.class_names == VOC_CLASSES and len(VOC_CLASSES) == 20
    assert pool.x.shape == (3, 3, 12, 12) and pool.train.tolist() == [True, True, False]
    assert pool.y.tolist() == [_hot("dog", "person"), _hot("car"), _hot("aeroplane",
                                                                         "tvmonitor")]
    assert np.abs(pool.x[1, :, 6, 6].astype(int) - COLOURS[1]).max() <= 8
    same = load_pool({"source": "voc", "root": str(folder), "image_size": 12})
    assert np.array_equal(same.y, pool.y)
    hard = load_pool({"source": "voc", "root": str(folder), "image_size": 12,
                      "include_difficult": True})
    assert hard.y.tolist() == [_hot("dog", "person"), _hot("car", "cat"), _hot("bottle"),
                               _hot("aeroplane", "tvmonitor")]
    sub = load_pool({"source": "voc", "root": str(folder), "include_difficult": True,
                     "max_images": 2, "image_size": 4})
    assert sub.train.sum() == 2 and len(sub.y) == 3
    assert SOURCES["voc"].needs_root and SOURCES["voc"].multi_label


def test_voc_errors(tmp_path: Path) -> None:
    folder = _voc(tmp_path)
    with pytest.raises(DataError) as info:
        load_pool({"source": "voc", "root": str(tmp_path / "nope")})
    one_line(info, "data.root", "does not exist")
    with pytest.raises(DataError) as info:
        load_pool({"source": "voc", "root": str(folder / "Annotations")})
    one_line(info, "data.root", "VOC2007")
    with pytest.raises(DataError) as info:
        load_pool({"source": "voc", "root": str(folder), "test_set": "val"})
    one_line(info, "data.test_set", "val.txt")
    (folder / "JPEGImages" / "000002.jpg").unlink()
    with pytest.raises(DataError) as info:
        load_pool({"source": "voc", "root": str(folder)})
    one_line(info, "data.root", "000002.jpg")
    (folder / "Annotations" / "000004.xml").write_text(
        f"<annotation>{_object('unicorn')}</annotation>")
    with pytest.raises(DataError) as info:
        load_pool({"source": "voc", "root": str(folder), "train_set": "test"})
    one_line(info, "data.train_set", "unicorn")
    (folder / "Annotations" / "000004.xml").write_text("<annotation>")
    with pytest.raises(DataError) as info:
        load_pool({"source": "voc", "root": str(folder), "train_set": "test"})
    one_line(info, "data.train_set", "cannot parse")
    with pytest.raises(ConfigError) as info:
        load_pool({"source": "voc", "root": str(folder), "tree": "t.yaml"})
    one_line(info, "data.tree", "multi-label")
