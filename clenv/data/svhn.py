"""The ``svhn`` source: SVHN cropped digits (Netzer et al. 2011; house numbers from Street View,
32x32 colour, 73,257 train + 26,032 test; the 531k ``extra`` images are not used) read from its
MATLAB files with ``scipy.io.loadmat``. ``download: true`` fetches ``train_32x32.mat`` and
``test_32x32.mat`` (torchvision's URLs and md5s) into ``root``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from clenv.config.schema import PATH, Field
from clenv.data.digits import DIGIT_NAMES
from clenv.data.download import data_root, fetch_svhn, find_or_fetch
from clenv.data.pool import Pool, limit_per_class
from clenv.errors import DataError

NAME = "svhn"
NEEDS_ROOT = True
DOC = "SVHN cropped digits (train_32x32.mat, test_32x32.mat) in data.root; download: true " \
      "fetches them."

FIELDS: dict[str, Field] = {
    "root": Field(PATH, None, "folder holding train_32x32.mat and test_32x32.mat; null: "
                             "$CLENV_DATA or ~/.cache/clenv/data", nullable=True),
    "download": Field(bool, False, "fetch the official train and test files into root when "
                                   "they are missing (md5-checked, cached)"),
    "seed": Field(int, 0, "random seed of subsampling"),
    "max_train_per_class": Field(int, None, "keep at most this many train samples per class",
                                 min=1, nullable=True),
    "max_test_per_class": Field(int, None, "keep at most this many test samples per class",
                                min=1, nullable=True),
}

SPLITS = {"train": "train_32x32.mat", "test": "test_32x32.mat"}


def read_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) uint8 and labels 0..9 of one SVHN file; its ``X`` is
    (32, 32, 3, N) and its ``y`` (N, 1) holds 1..10, where 10 stands for the digit 0."""
    from scipy.io import loadmat  # imported here: scipy.io is slow to import

    try:
        mat = loadmat(path, variable_names=["X", "y"])
    except Exception as exc:  # any parse failure means a bad file
        raise DataError(f"{path}: cannot read SVHN .mat file ({type(exc).__name__}: {exc}); "
                        f"replace the file") from exc
    if "X" not in mat or "y" not in mat:
        raise DataError(f"{path}: missing variable X or y; replace the file")
    x, y = mat["X"], np.asarray(mat["y"]).reshape(-1)
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (32, 32, 3):
        raise DataError(f"{path}: X must be (32, 32, 3, N) uint8, got {x.shape} {x.dtype}; "
                        f"replace the file")
    if y.shape != (x.shape[3],) or not np.isin(y, np.arange(1, 11)).all():
        raise DataError(f"{path}: y must hold one label in 1..10 per image ({x.shape[3]}); "
                        f"replace the file")
    return np.ascontiguousarray(x.transpose(3, 2, 0, 1)), y.astype(np.int64) % 10


def load(params: dict, key: str) -> Pool:
    """Load SVHN from ``params['root']`` (official train/test split)."""
    root = data_root(params["root"])
    folder = find_or_fetch(key, root, None, list(SPLITS.values()), "SVHN file(s)",
                           params["download"], lambda: fetch_svhn(root, tuple(SPLITS)))
    (x_tr, y_tr), (x_te, y_te) = (read_mat(folder / f) for f in SPLITS.values())
    pool = Pool(x=np.concatenate([x_tr, x_te]), y=np.concatenate([y_tr, y_te]),
                train=np.arange(len(y_tr) + len(y_te)) < len(y_tr),
                class_names=list(DIGIT_NAMES), name=NAME,
                meta={"source": NAME, "params": dict(params), "root": str(folder)})
    return limit_per_class(pool, params["max_train_per_class"], params["max_test_per_class"],
                           params["seed"])
