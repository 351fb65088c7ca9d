"""The ``split_files`` source: the images named by the official split files of i-Blurry
(naver-ai/i-Blurry), Rainbow Memory (clovaai/rainbow-memory) or HLE (Hyun1A/HLE).

The train lists of one file stem, ``<stem>_task<t>.json`` for t = 0, 1, ..., are read in task
order; each is a JSON list of records naming an image file (``file_name``, or ``filepath`` as
in i-Blurry's CIFAR-10 train lists, relative to the dataset root laid out as
``train/<class>/<n>.png``, ``test/...``, ``val/...``; absolute paths are re-rooted at their
last ``train``/``test``/``val`` component above a class folder) and its class (``klass``;
HLE: ``klass_sub`` the fine class, ``klass_sup`` its superclass and ``hierarchy`` 0 when the
record is served with the superclass label, 1 with the fine one). The test list(s) follow each
repository's naming: ``<dataset>_val.json`` (i-Blurry, HLE) or the per-task
``<dataset>_test_rand<s>_cls<n>_task<t>.json`` (Rainbow Memory).

Each distinct image is read once (PIL, RGB, uint8 (3, H, W)); class ids are the sorted class
names (CIFAR-10/100: the datasets' own ids; TinyImageNet: sorted WordNet ids, an image-folder
order). ``pool.meta["file_tasks"]`` holds, per task, the pool indices in file order and
``pool.meta["file_levels"]`` each record's level; the ``from_file`` scenario generator serves
them as a stream in that order.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path, PurePosixPath

import numpy as np

from clenv.config.schema import PATH, Field
from clenv.data.cifar100_names import FINE_NAMES as CIFAR100_NAMES
from clenv.data.pool import Pool
from clenv.errors import DataError

NAME = "split_files"
NEEDS_ROOT = True
DOC = ("Images named by official split files (i-Blurry, Rainbow Memory, HLE JSON lists) over a "
       "dataset root in the train/<class>/<n>.png layout.")

FORMATS = ("iblurry", "rainbow", "hle")
DATASETS = ("auto", "cifar10", "cifar100", "tinyimagenet")
CIFAR10_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                 "truck")
MAX_LIST_BYTES = 64 * 2**20  # a split file larger than this is refused (CIFAR's are ~2 MB)
MAX_TASKS = 1000
MAX_IMAGE_BYTES = 4 * 2**20
MAX_IMAGE_SIDE = 1024
MAX_POOL_BYTES = 8 * 2**30  # all images together (TinyImageNet's 110,000: 1.35 GB)
_ROOTS = ("train", "test", "val")

FIELDS: dict[str, Field] = {
    "path": Field(PATH, doc="the split files' stem (…_rand1) or one task file (…_task0.json)"),
    "format": Field(str, doc="iblurry, rainbow or hle", choices=FORMATS),
    "root": Field(PATH, doc="the dataset root holding train/<class>/<n>.png (and test/ or val/)"),
    "test": Field(PATH, None, "a test list, or the stem of per-task test lists (default: the "
                  "repository's naming beside the train lists)", nullable=True),
    "dataset": Field(str, "auto", "class set checked: cifar10, cifar100, tinyimagenet, or auto "
                     "(from the file name)", choices=DATASETS),
    "max_images": Field(int, 200_000, "refuse split files naming more distinct images", min=1),
}


def _task_files(path: Path, key: str) -> tuple[Path, list[Path]]:
    """The stem of ``path`` and its task files ``<stem>_task0.json``, ``_task1``, ... in order."""
    stem = path.parent / re.sub(r"_task\d+(\.json)?$", "", path.name)
    files = []
    while len(files) < MAX_TASKS + 1:
        f = stem.parent / f"{stem.name}_task{len(files)}.json"
        if not f.is_file():
            break
        files.append(f)
    if not files:
        raise DataError(f"{key}.path: no split file {stem.name}_task0.json in {stem.parent}; "
                        f"point {key}.path (scenario.path with generator from_file) at the "
                        f"stem of the task files (…_rand1) or at one of them")
    if len(files) > MAX_TASKS:
        raise DataError(f"{key}.path: more than {MAX_TASKS} task files for {stem.name}; "
                        f"refusing")
    return stem, files


def _test_files(stem: Path, fmt: str, test: str | None, n_tasks: int, key: str) -> list[Path]:
    """The test list(s): ``test`` (a file, or a stem of per-task files) or the default name."""
    if test is not None:
        given = Path(os.path.expanduser(test))
        if given.is_file():
            return [given]
        files = [given.parent / f"{given.name}_task{t}.json" for t in range(n_tasks)]
        if all(f.is_file() for f in files):
            return files
        raise DataError(f"{key}.test: no file {given} and no {given.name}_task<t>.json for the "
                        f"{n_tasks} tasks; point it at the test list")
    if fmt == "rainbow":  # cifar100_train_blurry10_rand1_cls20 -> cifar100_test_rand1_cls20
        name = re.sub(r"_train_[^_]+_", "_test_", stem.name, count=1)
        if name == stem.name:
            raise DataError(f"{key}.path: {stem.name} is not named like Rainbow Memory's train "
                            f"lists (<dataset>_train_<kind>_rand<s>_cls<n>); set {key}.test to "
                            f"the test list, or check the format")
        files = [stem.parent / f"{name}_task{t}.json" for t in range(n_tasks)]
    else:  # cifar100_split5_n50_m10_rand1 -> cifar100_val.json
        files = [stem.parent / f"{stem.name.split('_split')[0]}_val.json"]
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise DataError(f"{key}.test: no test list {missing[0]} (the {fmt} naming); set "
                        f"{key}.test to the test list")
    return files


def _read_list(path: Path) -> list:
    """A JSON list of records from ``path``, bounded in size."""
    try:
        size = path.stat().st_size
        if size > MAX_LIST_BYTES:
            raise DataError(f"{path}: {size} bytes, more than the {MAX_LIST_BYTES} a split file "
                            f"may have; refusing")
        records = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise DataError(f"{path}: cannot read a JSON list ({type(exc).__name__}: {first:.80}); "
                        f"fix the file") from None
    if not isinstance(records, list) or not records:
        raise DataError(f"{path}: expected a non-empty JSON list of records, got "
                        f"{type(records).__name__}; fix the file")
    return records


def _text(record: object, field: str, path: Path, i: int) -> str:
    value = record.get(field) if isinstance(record, dict) else None
    if not isinstance(value, str) or not value or len(value) > 512:
        raise DataError(f"{path}: record {i} has no string {field!r} (got {value!r:.60}); fix "
                        f"the file")
    return value


def _relative(file_name: str, path: Path, i: int) -> str:
    """The image path relative to the dataset root; absolute paths re-rooted at their last
    train/test/val component with a class folder and a file below it (CIFAR-100 has a class
    named ``train``); ``..`` refused."""
    parts = PurePosixPath(file_name.replace("\\", "/")).parts
    if parts and parts[0] == "/":
        cut = [j for j, p in enumerate(parts[:-2]) if p in _ROOTS]
        if not cut:
            raise DataError(f"{path}: record {i}: absolute file_name {file_name!r:.80} has no "
                            f"train/, test/ or val/ component to re-root; fix the file")
        parts = parts[cut[-1]:]
    if not parts or any(p in ("..", "") for p in parts) or ":" in parts[0]:
        raise DataError(f"{path}: record {i}: file_name {file_name!r:.80} is not a path inside "
                        f"the dataset root; fix the file")
    return "/".join(parts)


def _records(path: Path, fmt: str) -> list[tuple[str, str, str | None, int]]:
    """(relative image path, class, superclass or None, level) of every record of a list."""
    out = []
    for i, r in enumerate(_read_list(path)):
        name_key = ("filepath" if isinstance(r, dict) and "file_name" not in r
                    and "filepath" in r else "file_name")
        rel = _relative(_text(r, name_key, path, i), path, i)
        if fmt == "hle":
            level = r.get("hierarchy")
            if level not in (0, 1) or isinstance(level, bool):
                raise DataError(f"{path}: record {i}: hierarchy must be 0 (superclass) or 1 "
                                f"(fine class), got {level!r:.40}; fix the file")
            out.append((rel, _text(r, "klass_sub", path, i), _text(r, "klass_sup", path, i),
                        int(level)))
        else:
            out.append((rel, _text(r, "klass", path, i), None, 1))
    return out


def _check_classes(names: list[str], dataset: str, stem: Path, key: str) -> None:
    """Check the class names against the dataset's class set (``auto``: from the file name)."""
    if dataset == "auto":
        prefix = stem.name.lower()
        dataset = next((d for d in ("cifar100", "cifar10", "tinyimagenet")
                        if prefix.startswith(d)), "")
        if not dataset:
            return  # another dataset: its classes are taken as the files name them
    if dataset == "tinyimagenet":
        bad = [n for n in names if not re.fullmatch(r"n\d{8}", n)]
        limit = 200
    else:
        known = set(CIFAR10_NAMES if dataset == "cifar10" else CIFAR100_NAMES)
        bad = [n for n in names if n not in known]
        limit = len(known)
    if bad or len(names) > limit:
        what = f"class {bad[0]!r} is not" if bad else f"{len(names)} classes are more than"
        raise DataError(f"{key}.dataset: {what} in the {dataset} class set ({limit} classes); "
                        f"set {key}.dataset to the files' dataset")


def _load_image(root: Path, rel: str, source: Path, key: str) -> np.ndarray:
    """One image as uint8 (3, H, W), bounded in file size and pixel count."""
    from PIL import Image, UnidentifiedImageError

    path = root / rel
    try:
        if path.stat().st_size > MAX_IMAGE_BYTES:
            raise DataError(f"{key}.root: image {path} is larger than {MAX_IMAGE_BYTES} bytes "
                            f"(named in {source.name}); refusing")
        with Image.open(path) as im:
            if max(im.size) > MAX_IMAGE_SIDE:
                raise DataError(f"{key}.root: image {path} is {im.size[0]}x{im.size[1]}, above "
                                f"{MAX_IMAGE_SIDE} pixels a side (named in {source.name}); "
                                f"refusing")
            return np.asarray(im.convert("RGB"), dtype=np.uint8).transpose(2, 0, 1)
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"{key}.root: cannot read image {rel} (named in {source.name}) under "
                        f"{root} ({type(exc).__name__}); check "
                        f"{key}.root") from None


def load(params: dict, key: str) -> Pool:
    """Read the split files and their images into a Pool (train lists, then test lists)."""
    fmt = params["format"]
    root = Path(os.path.expanduser(params["root"]))
    if not root.is_dir():
        raise DataError(f"{key}.root: folder {root} does not exist; point it (scenario.root "
                        f"with generator from_file) at the dataset root holding "
                        f"train/<class>/<n>.png")
    stem, train_files = _task_files(Path(os.path.expanduser(params["path"])), key)
    test_files = _test_files(stem, fmt, params["test"], len(train_files), key)
    train_lists = [_records(f, fmt) for f in train_files]
    test_recs = [(r, f) for f in test_files for r in _records(f, fmt)]

    images: dict[str, int] = {}  # relative path -> pool index
    source_of: list[Path] = []
    fine: list[str] = []
    is_train: list[bool] = []
    parent: dict[str, str] = {}

    def add(rec: tuple[str, str, str | None, int], src: Path, train: bool) -> int:
        rel, klass, sup, _ = rec
        if sup is not None and parent.setdefault(klass, sup) != sup:
            raise DataError(f"{src}: class {klass!r} has superclass {sup!r} here but "
                            f"{parent[klass]!r} elsewhere; fix the files")
        j = images.get(rel)
        if j is None:
            if len(images) >= params["max_images"]:
                raise DataError(f"{key}.max_images: the split files name more than "
                                f"{params['max_images']} images; raise it if that is intended")
            j = images[rel] = len(images)
            source_of.append(src)
            fine.append(klass)
            is_train.append(train)
        elif fine[j] != klass or is_train[j] != train:
            what = "class" if fine[j] != klass else "split (train and test)"
            raise DataError(f"{src}: image {rel} is named twice with a different {what}; fix "
                            f"the files")
        return j

    tasks, levels = [], []
    for f, recs in zip(train_files, train_lists, strict=True):
        tasks.append(np.array([add(r, f, True) for r in recs], dtype=np.int64))
        levels.append(np.array([r[3] for r in recs], dtype=np.int64))
    for r, f in test_recs:
        add(r, f, False)

    names = sorted(set(fine))
    _check_classes(names, params["dataset"], stem, key)
    class_id = {n: i for i, n in enumerate(names)}
    rels = list(images)
    first = _load_image(root, rels[0], source_of[0], key)
    if len(rels) * first.nbytes > MAX_POOL_BYTES:
        raise DataError(f"{key}.path: {len(rels)} images of {first.shape[2]}x{first.shape[1]} "
                        f"would take more than {MAX_POOL_BYTES} bytes in memory; refusing")
    x = np.empty((len(rels), *first.shape), dtype=np.uint8)
    for j, rel in enumerate(rels):
        img = first if j == 0 else _load_image(root, rel, source_of[j], key)
        if img.shape != first.shape:
            raise DataError(f"{key}.root: image {rel} (named in {source_of[j].name}) is "
                            f"{img.shape[2]}x{img.shape[1]}, the first one "
                            f"{first.shape[2]}x{first.shape[1]}; all images must share a size")
        x[j] = img
    ancestors = tree_names = None
    if fmt == "hle":
        supers = sorted(set(parent.values()))
        missing = [n for n in names if n not in parent]
        if missing:
            raise DataError(f"{key}.path: class {missing[0]!r} has no superclass in the split "
                            f"files; fix the files")
        ancestors = np.array([[supers.index(parent[n])] for n in names], dtype=np.int64)
        tree_names = [supers]
    return Pool(x=x, y=np.array([class_id[n] for n in fine], dtype=np.int64),
                train=np.array(is_train, dtype=bool), class_names=names, name=stem.name,
                ancestors=ancestors, tree_names=tree_names,
                meta={"source": NAME, "params": dict(params), "format": fmt,
                      "task_files": [f.name for f in train_files],
                      "test_files": [f.name for f in test_files],
                      "file_tasks": tasks, "file_levels": levels, "n_images": len(rels)})
