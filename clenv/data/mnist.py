"""The ``mnist`` source: MNIST read from its IDX files (plain or .gz) in a user folder.

With both the train and t10k pairs the official split is used; with one pair only (e.g. a
test-only folder) a seeded stratified split of it is made.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from clenv.config.schema import PATH, Field
from clenv.data.digits import DIGIT_NAMES
from clenv.data.pool import Pool, check_fraction, limit_per_class, seeded_split
from clenv.errors import DataError

NAME = "mnist"
NEEDS_ROOT = True
DOC = "MNIST from its IDX files (plain or .gz) in data.root or data.root/MNIST/raw."

FIELDS: dict[str, Field] = {
    "root": Field(PATH, doc="folder holding the MNIST IDX files (or their MNIST/raw subfolder)"),
    "seed": Field(int, 0, "random seed of the split (test-only roots) and of subsampling"),
    "test_fraction": Field(float, 0.2, "share of each class held out for test when only one "
                                       "pair of files is present, in (0, 1)"),
    "max_train_per_class": Field(int, None, "keep at most this many train samples per class",
                                 min=1, nullable=True),
    "max_test_per_class": Field(int, None, "keep at most this many test samples per class",
                                min=1, nullable=True),
}

_PAIRS = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
          "t10k": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """Read an IDX file of unsigned bytes (``.gz`` or plain) with ``ndim`` dimensions."""
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: cannot read IDX file ({exc})") from exc
    if len(data) < 4 + 4 * ndim or data[:2] != b"\0\0" or data[2] != 0x08 or data[3] != ndim:
        raise DataError(f"{path}: not an IDX file of unsigned bytes with {ndim} dimension(s) "
                        f"(bad magic number {data[:4].hex() or 'empty'}); replace the file")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    size = int(np.prod(dims))
    if len(data) - 4 - 4 * ndim != size:
        raise DataError(f"{path}: IDX header announces {dims} = {size} bytes of data but the file "
                        f"holds {len(data) - 4 - 4 * ndim}; the file is truncated or corrupt")
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def _read_pair(images: Path, labels: Path) -> tuple[np.ndarray, np.ndarray]:
    x = read_idx(images, 3)
    y = read_idx(labels, 1)
    if len(x) != len(y):
        raise DataError(f"{images}: holds {len(x)} images but {labels.name} holds {len(y)} "
                        f"labels; replace the mismatched file")
    if y.size and y.max() >= len(DIGIT_NAMES):
        raise DataError(f"{labels}: label {int(y.max())} outside 0..9; replace the file")
    return x[:, None, :, :], y.astype(np.int64)


def load(params: dict, key: str) -> Pool:
    """Load MNIST from ``params['root']`` (official split when both pairs are present)."""
    root = Path(os.path.expanduser(params["root"]))
    fix = f"point {key}.root at the folder that holds them"
    if not root.is_dir():
        raise DataError(f"{key}.root: folder {root} does not exist; point {key}.root at the "
                        f"folder that holds the MNIST IDX files")
    pairs: dict[str, tuple[Path, Path]] = {}
    folder = root
    for folder in (root, root / "MNIST" / "raw"):
        found = {split: (_find(folder, im), _find(folder, lb)) for split, (im, lb) in
                 _PAIRS.items()}
        for split, (im, lb) in found.items():
            if (im is None) != (lb is None):
                missing = _PAIRS[split][1] if lb is None else _PAIRS[split][0]
                raise DataError(f"{key}.root: {missing}[.gz] is missing next to "
                                f"{(im or lb).name} in {folder}; add it")
        pairs = {split: pair for split, pair in found.items() if pair[0] is not None}
        if pairs:
            break
    if not pairs:
        wanted = ", ".join(f"{stem}[.gz]" for pair in _PAIRS.values() for stem in pair)
        raise DataError(f"{key}.root: no MNIST IDX files ({wanted}) in {root} or "
                        f"{root / 'MNIST' / 'raw'}; {fix}")
    arrays = {split: _read_pair(*pair) for split, pair in pairs.items()}
    if len(arrays) == 2:
        (x_tr, y_tr), (x_te, y_te) = arrays["train"], arrays["t10k"]
        x, y = np.concatenate([x_tr, x_te]), np.concatenate([y_tr, y_te])
        train = np.arange(len(y)) < len(y_tr)
        split = "official"
    else:
        fraction = check_fraction(params["test_fraction"], f"{key}.test_fraction")
        x, y = next(iter(arrays.values()))
        train = seeded_split(y, fraction, params["seed"])
        split = "seeded"
    pool = Pool(x=x, y=y, train=train, class_names=list(DIGIT_NAMES), name=NAME,
                meta={"source": NAME, "params": dict(params), "root": str(folder),
                      "split": split})
    return limit_per_class(pool, params["max_train_per_class"], params["max_test_per_class"],
                           params["seed"])
