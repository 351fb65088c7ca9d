"""The ``cifar10`` source: CIFAR-10 (Krizhevsky 2009; ten classes, 32x32 colour, 50k train in five
batches + 10k test) read from its python-version pickles through the restricted unpickler.
``download: true`` fetches and extracts the official archive (torchvision's URL and md5s) into
``root/cifar-10-batches-py``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from clenv.config.schema import Field
from clenv.data.download import archive_fields, data_root, fetch_cifar, find_or_fetch
from clenv.data.pool import Pool, limit_per_class
from clenv.data.safe_pickle import load_dict, text
from clenv.errors import DataError

NAME = "cifar10"
NEEDS_ROOT = True
DOC = "CIFAR-10 python pickles (data_batch_1..5, test_batch, batches.meta) in data.root or " \
      "data.root/cifar-10-batches-py; download: true fetches them."

FIELDS: dict[str, Field] = archive_fields("cifar-10-batches-py", "batch files")

BASE_FOLDER = "cifar-10-batches-py"
TRAIN_FILES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_FILES = ["test_batch"]
META_FILE = "batches.meta"
_WHAT = "CIFAR-10"


def _read_batch(path: Path, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    d = load_dict(path, ("data", "labels"), _WHAT)
    data = np.asarray(d["data"])
    labels = np.asarray(d["labels"], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataError(f"{path}: data must be (N, 3072) uint8, got {data.shape} {data.dtype}; "
                        f"replace the file")
    if labels.shape != (len(data),):
        raise DataError(f"{path}: {len(data)} images but {labels.size} labels; replace the file")
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise DataError(f"{path}: labels outside 0..{n_classes - 1} (the number of label_names "
                        f"in {META_FILE}); replace the file")
    return data.reshape(-1, 3, 32, 32), labels


def load(params: dict, key: str) -> Pool:
    """Load CIFAR-10 from ``params['root']`` (official train/test split)."""
    root = data_root(params["root"])
    folder = find_or_fetch(key, root, BASE_FOLDER, TRAIN_FILES + TEST_FILES + [META_FILE],
                           f"{_WHAT} file(s)", params["download"],
                           lambda: fetch_cifar("CIFAR10", root))
    names = [str(text(n)) for n in load_dict(folder / META_FILE, ("label_names",),
                                             _WHAT)["label_names"]]
    batches = [(_read_batch(folder / f, len(names)), f in TRAIN_FILES)
               for f in TRAIN_FILES + TEST_FILES]
    x = np.concatenate([xb for (xb, _), _ in batches])
    y = np.concatenate([yb for (_, yb), _ in batches])
    train = np.concatenate([np.full(len(yb), is_train) for (_, yb), is_train in batches])
    pool = Pool(x=x, y=y, train=train, class_names=names, name=NAME,
                meta={"source": NAME, "params": dict(params), "root": str(folder)})
    return limit_per_class(pool, params["max_train_per_class"], params["max_test_per_class"],
                           params["seed"])
