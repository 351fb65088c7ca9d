"""The ``cifar100`` source: CIFAR-100 read from its python-version pickles (through the restricted
unpickler), with the 20 coarse superclasses as a two-level label tree. ``download: true`` fetches
and extracts the official archive (torchvision's URL and md5s) into ``root/cifar-100-python``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from clenv.config.schema import Field
from clenv.data.download import archive_fields, data_root, fetch_cifar, find_or_fetch
from clenv.data.pool import Pool, limit_per_class
from clenv.data.safe_pickle import load_dict, text
from clenv.errors import DataError

NAME = "cifar100"
NEEDS_ROOT = True
DOC = "CIFAR-100 python pickles (train, test, meta) in data.root or data.root/cifar-100-python; " \
      "download: true fetches them."

FIELDS: dict[str, Field] = archive_fields("cifar-100-python", "train, test and meta files")

BASE_FOLDER = "cifar-100-python"
_FILES = ["train", "test", "meta"]
_WHAT = "CIFAR-100"


def _read_split(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d = load_dict(path, ("data", "fine_labels", "coarse_labels"), _WHAT)
    data = np.asarray(d["data"])
    fine = np.asarray(d["fine_labels"], dtype=np.int64)
    coarse = np.asarray(d["coarse_labels"], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataError(f"{path}: data must be (N, 3072) uint8, got {data.shape} {data.dtype}; "
                        f"replace the file")
    if not len(data) == len(fine) == len(coarse):
        raise DataError(f"{path}: {len(data)} images but {len(fine)} fine and {len(coarse)} "
                        f"coarse labels; replace the file")
    return data.reshape(-1, 3, 32, 32), fine, coarse


def load(params: dict, key: str) -> Pool:
    """Load CIFAR-100 from ``params['root']`` (official train/test split)."""
    root = data_root(params["root"])
    folder = find_or_fetch(key, root, BASE_FOLDER, _FILES, f"{_WHAT} file(s)",
                           params["download"], lambda: fetch_cifar("CIFAR100", root))
    meta = load_dict(folder / "meta", ("fine_label_names", "coarse_label_names"), _WHAT)
    fine_names = [str(text(n)) for n in meta["fine_label_names"]]
    coarse_names = [str(text(n)) for n in meta["coarse_label_names"]]
    x_tr, fine_tr, coarse_tr = _read_split(folder / "train")
    x_te, fine_te, coarse_te = _read_split(folder / "test")
    fine, coarse = np.concatenate([fine_tr, fine_te]), np.concatenate([coarse_tr, coarse_te])
    for labels, names, what in ((fine, fine_names, "fine"), (coarse, coarse_names, "coarse")):
        if labels.size and (labels.min() < 0 or labels.max() >= len(names)):
            raise DataError(f"{folder}: {what} labels outside 0..{len(names) - 1} (the number of "
                            f"{what}_label_names in meta); replace the files")
    pairs = np.unique(np.stack([fine, coarse], axis=1), axis=0)
    counts = np.bincount(pairs[:, 0], minlength=len(fine_names))
    if (counts > 1).any():
        bad = int(np.flatnonzero(counts > 1)[0])
        raise DataError(f"{folder}: fine class {fine_names[bad]!r} has samples under several "
                        f"coarse classes; replace the files")
    if (counts == 0).any():
        bad = int(np.flatnonzero(counts == 0)[0])
        raise DataError(f"{folder}: fine class {fine_names[bad]!r} has no samples, so its coarse "
                        f"class is unknown; replace the files")
    ancestors = np.empty((len(fine_names), 1), dtype=np.int64)
    ancestors[pairs[:, 0], 0] = pairs[:, 1]
    pool = Pool(x=np.concatenate([x_tr, x_te]), y=fine,
                train=np.arange(len(fine)) < len(fine_tr), class_names=fine_names, name=NAME,
                ancestors=ancestors, tree_names=[coarse_names],
                meta={"source": NAME, "params": dict(params), "root": str(folder)})
    return limit_per_class(pool, params["max_train_per_class"], params["max_test_per_class"],
                           params["seed"])
