"""The ``coco`` source: MS-COCO as a multi-label pool, read from its instances annotation JSON
files (no pycocotools) and image folders, images resized to small uint8 RGB arrays."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from clenv.config.schema import PATH, Field
from clenv.data.pool import Pool
from clenv.errors import DataError

NAME = "coco"
MULTI_LABEL = True
NEEDS_ROOT = True
DOC = ("MS-COCO multi-label (80 classes) from instances_*.json annotations and image folders in "
       "data.root.")

FIELDS: dict[str, Field] = {
    "root": Field(PATH, doc="folder holding the COCO annotations/ and image folders"),
    "train_annotations": Field(str, "annotations/instances_train2014.json",
                               "train instances JSON, relative to root"),
    "test_annotations": Field(str, "annotations/instances_val2014.json",
                              "test instances JSON, relative to root"),
    "train_images": Field(str, "train2014", "folder of the train images, relative to root"),
    "test_images": Field(str, "val2014", "folder of the test images, relative to root"),
    "image_size": Field(int, 64, "images are resized to image_size x image_size RGB", min=1),
    "max_images": Field(int, None, "keep a seeded random subset of at most this many images "
                                   "per split; null: all", min=1, nullable=True),
    "seed": Field(int, 0, "random seed of subsampling"),
}


def check_root(params: dict, key: str, what: str) -> Path:
    """The user's data root as a Path; DataError naming ``key.root`` when it is not a folder."""
    root = Path(os.path.expanduser(params["root"]))
    if not root.is_dir():
        raise DataError(f"{key}.root: folder {root} does not exist; point {key}.root at the "
                        f"folder holding {what}")
    return root


def _read_one(path: Path, size: int, key: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.draft("RGB", (size, size))  # JPEG: decode at a reduced scale, much faster
            arr = np.asarray(img.convert("RGB").resize((size, size), Image.Resampling.BILINEAR))
    except FileNotFoundError as exc:
        raise DataError(f"{key}: image file {path} does not exist; restore it or fix "
                        f"{key}") from exc
    except (OSError, UnidentifiedImageError) as exc:
        raise DataError(f"{key}: cannot read image {path} ({exc}); replace the file") from exc
    return arr.transpose(2, 0, 1)


def read_images(paths: list[Path], size: int, key: str) -> np.ndarray:
    """(len(paths), 3, size, size) uint8 RGB images, resized bilinearly; a missing or unreadable
    file raises DataError naming ``key`` (the config key of the image folder)."""
    out = np.empty((len(paths), 3, size, size), dtype=np.uint8)
    workers = max(1, min(8, os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        for i, arr in enumerate(pool.map(lambda p: _read_one(p, size, key), paths)):
            out[i] = arr
    return out


def subsample(n: int, max_images: int | None, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of a seeded random subset of ``range(n)`` of at most ``max_images``."""
    if max_images is None or max_images >= n:
        return np.arange(n)
    return np.sort(rng.choice(n, size=max_images, replace=False))


def _read_json(path: Path, key: str) -> dict:
    if not path.is_file():
        raise DataError(f"{key}: annotation file {path} does not exist; fix {key} (relative "
                        f"to the root) or point the root at the COCO folder")
    try:
        with path.open(encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{key}: cannot read {path} as JSON ({exc}); replace the file") from exc
    if not isinstance(data, dict) or not all(k in data for k in ("images", "annotations",
                                                                     "categories")):
        raise DataError(f"{key}: {path} is not a COCO instances file (needs images, annotations "
                        f"and categories); use an instances_*.json file")
    return data


def _categories(data: dict, path: Path, key: str) -> tuple[list[int], list[str]]:
    try:
        cats = sorted((int(c["id"]), str(c["name"])) for c in data["categories"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{key}: malformed categories in {path} ({exc}); replace the "
                        f"file") from exc
    if not cats:
        raise DataError(f"{key}: {path} has no categories; use an instances_*.json file")
    return [c for c, _ in cats], [n for _, n in cats]


def _lookup(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Position of each of ``values`` in ``keys`` and a mask of the values not found."""
    if not len(keys):
        return np.zeros(len(values), dtype=np.int64), np.ones(len(values), dtype=bool)
    order = np.argsort(keys, kind="stable")
    pos = np.minimum(np.searchsorted(keys[order], values), len(keys) - 1)
    return order[pos], keys[order[pos]] != values


def _split(data: dict, path: Path, cat_ids: list[int], key: str
           ) -> tuple[list[str], np.ndarray]:
    """File names and (n, n_classes) multi-hot labels of the annotated images, in image order."""
    try:
        ids = np.array([int(im["id"]) for im in data["images"]], dtype=np.int64)
        files = [str(im["file_name"]) for im in data["images"]]
        ann = np.array([(int(a["image_id"]), int(a["category_id"])) for a in data["annotations"]],
                       dtype=np.int64).reshape(-1, 2)
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{key}: malformed images or annotations in {path} ({exc}); replace the "
                        f"file") from exc
    col, bad = _lookup(np.asarray(cat_ids, dtype=np.int64), ann[:, 1])
    if bad.any():
        raise DataError(f"{key}: {path} annotates category id {int(ann[bad][0, 1])}, which is "
                        f"not among its categories; replace the file")
    row, bad = _lookup(ids, ann[:, 0])
    if bad.any():
        raise DataError(f"{key}: {path} annotates image id {int(ann[bad][0, 0])}, which is not "
                        f"among its images; replace the file")
    y = np.zeros((len(ids), len(cat_ids)), dtype=np.uint8)
    y[row, col] = 1
    keep = np.flatnonzero(y.any(axis=1))
    return [files[i] for i in keep], y[keep]


def load(params: dict, key: str) -> Pool:
    """Load the COCO train and test splits named by ``params`` as a multi-label pool.

    Both annotation files and image folders are checked before any image is read.
    """
    root = check_root(params, key, "the COCO annotations/ and image folders")
    rng = np.random.default_rng([params["seed"], 0])
    names: list[str] = []
    cat_ids: list[int] = []
    splits = []
    for split in ("train", "test"):
        ann_key = f"{key}.{split}_annotations"
        path = root / params[f"{split}_annotations"]
        data = _read_json(path, ann_key)
        ids, split_names = _categories(data, path, ann_key)
        if not cat_ids:
            cat_ids, names = ids, split_names
        elif ids != cat_ids:
            raise DataError(f"{ann_key}: {path} has other categories than "
                            f"{params['train_annotations']}; use annotation files of one "
                            f"COCO release")
        files, y = _split(data, path, cat_ids, ann_key)
        del data
        if not files:
            raise DataError(f"{ann_key}: {path} has no annotated image; use an instances file "
                            f"with annotations")
        folder = root / params[f"{split}_images"]
        img_key = f"{key}.{split}_images"
        if not folder.is_dir():
            raise DataError(f"{img_key}: image folder {folder} does not exist; fix {img_key} "
                            f"(relative to the root)")
        keep = subsample(len(files), params["max_images"], rng)
        splits.append(([folder / files[i] for i in keep], y[keep], img_key))
    xs = [read_images(paths, params["image_size"], img_key) for paths, _, img_key in splits]
    train = np.arange(len(xs[0]) + len(xs[1])) < len(xs[0])
    return Pool(x=np.concatenate(xs), y=np.concatenate([y for _, y, _ in splits]), train=train,
                class_names=names, name=NAME,
                meta={"source": NAME, "params": dict(params), "root": str(root),
                      "category_ids": cat_ids})
