"""The ``voc`` source: Pascal VOC 2007 as a multi-label pool (20 classes), read from its XML
annotations, JPEG images and ImageSets split lists, images resized to small uint8 RGB arrays."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from clenv.config.schema import PATH, Field
from clenv.data.coco import check_root, read_images, subsample
from clenv.data.pool import Pool
from clenv.errors import DataError

NAME = "voc"
MULTI_LABEL = True
NEEDS_ROOT = True
DOC = "Pascal VOC 2007 multi-label (20 classes) from Annotations/, JPEGImages/ and ImageSets/."

VOC_CLASSES = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
               "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
               "sheep", "sofa", "train", "tvmonitor"]

FIELDS: dict[str, Field] = {
    "root": Field(PATH, doc="folder holding VOC2007/ (or the VOC2007 folder itself)"),
    "train_set": Field(str, "trainval", "ImageSets/Main list of the train images"),
    "test_set": Field(str, "test", "ImageSets/Main list of the test images"),
    "image_size": Field(int, 64, "images are resized to image_size x image_size RGB", min=1),
    "include_difficult": Field(bool, False, "count objects marked difficult as positives"),
    "max_images": Field(int, None, "keep a seeded random subset of at most this many images "
                                   "per split; null: all", min=1, nullable=True),
    "seed": Field(int, 0, "random seed of subsampling"),
}

_INDEX = {name: i for i, name in enumerate(VOC_CLASSES)}


def find_folder(root: Path) -> Path | None:
    """The VOC2007 folder under ``root`` (root itself, root/VOC2007 or root/VOCdevkit/VOC2007),
    recognised by its Annotations/ subfolder; None when there is none."""
    for folder in (root, root / "VOC2007", root / "VOCdevkit" / "VOC2007"):
        if (folder / "Annotations").is_dir():
            return folder
    return None


def read_labels(path: Path, include_difficult: bool, key: str) -> np.ndarray:
    """(20,) uint8 multi-hot labels of one annotation XML file."""
    if not path.is_file():
        raise DataError(f"{key}: annotation file {path} does not exist; restore it or remove "
                        f"its id from the split list")
    try:
        tree = ET.parse(path)
    except (OSError, ET.ParseError) as exc:
        raise DataError(f"{key}: cannot parse {path} ({exc}); replace the file") from exc
    y = np.zeros(len(VOC_CLASSES), dtype=np.uint8)
    for obj in tree.getroot().iter("object"):
        name = (obj.findtext("name") or "").strip()
        if name not in _INDEX:
            raise DataError(f"{key}: {path} has an object of unknown class {name!r}; expected "
                            f"one of the 20 VOC classes")
        if include_difficult or (obj.findtext("difficult") or "0").strip() != "1":
            y[_INDEX[name]] = 1
    return y


def _split_ids(folder: Path, name: str, key: str) -> list[str]:
    path = folder / "ImageSets" / "Main" / f"{name}.txt"
    if not path.is_file():
        raise DataError(f"{key}: split list {path} does not exist; use a list in "
                        f"{path.parent} (e.g. trainval, test) or add the file")
    ids = [line.split()[0] for line in path.read_text(encoding="utf-8").splitlines()
           if line.strip()]
    if not ids:
        raise DataError(f"{key}: split list {path} is empty; use a list that names images")
    return ids


def load(params: dict, key: str) -> Pool:
    """Load the VOC2007 train and test sets named by ``params`` as a multi-label pool.

    Images with no positive (all their objects difficult) are skipped.
    """
    root = check_root(params, key, "VOC2007/")
    folder = find_folder(root)
    if folder is None:
        raise DataError(f"{key}.root: no VOC2007/Annotations folder in {root}; point {key}.root "
                        f"at the folder holding VOC2007/ or at VOC2007 itself")
    rng = np.random.default_rng([params["seed"], 0])
    splits = []
    for split in ("train", "test"):
        set_key = f"{key}.{split}_set"
        ids = _split_ids(folder, params[f"{split}_set"], set_key)
        y = np.stack([read_labels(folder / "Annotations" / f"{i}.xml",
                                  params["include_difficult"], set_key) for i in ids])
        keep = np.flatnonzero(y.any(axis=1))
        if not keep.size:
            raise DataError(f"{set_key}: no image of {params[f'{split}_set']} has a positive "
                            f"label; use another split list")
        keep = keep[subsample(len(keep), params["max_images"], rng)]
        splits.append(([folder / "JPEGImages" / f"{ids[i]}.jpg" for i in keep], y[keep]))
    xs = [read_images(paths, params["image_size"], f"{key}.root") for paths, _ in splits]
    train = np.arange(len(xs[0]) + len(xs[1])) < len(xs[0])
    return Pool(x=np.concatenate(xs), y=np.concatenate([y for _, y in splits]), train=train,
                class_names=list(VOC_CLASSES), name=NAME,
                meta={"source": NAME, "params": dict(params), "root": str(folder)})
