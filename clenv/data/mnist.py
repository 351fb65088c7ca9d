"""The ``mnist`` source: MNIST read from its IDX files (plain or .gz) in a folder, and the IDX
reader shared with the other MNIST-format sources (``fashion_mnist``, ``kmnist``).

With both the train and t10k pairs the official split is used; with one pair only (e.g. a
test-only folder) a seeded stratified split of it is made. ``download: true`` fetches the four
official files (torchvision's URLs and md5s) into ``root/MNIST/raw`` when no complete set is
there or directly in ``root``.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from clenv.config.schema import PATH, Field
from clenv.data.digits import DIGIT_NAMES
from clenv.data.download import data_root, fetch_idx_family, missing_files
from clenv.data.pool import Pool, check_fraction, limit_per_class, seeded_split
from clenv.errors import DataError

NAME = "mnist"
NEEDS_ROOT = True
DOC = "MNIST from its IDX files (plain or .gz) in data.root or data.root/MNIST/raw; " \
      "download: true fetches them."


def idx_fields(what: str, folder: str) -> dict[str, Field]:
    """The parameters of an MNIST-format source (``what`` names it, ``folder`` is its
    torchvision subfolder)."""
    return {
        "root": Field(PATH, None, f"folder holding the {what} IDX files (or their {folder}/raw "
                                 f"subfolder); null: $CLENV_DATA or ~/.cache/clenv/data",
                      nullable=True),
        "download": Field(bool, False, f"fetch the official {what} files into root/{folder}/raw "
                                       f"when root holds no complete set (md5-checked, cached)"),
        "seed": Field(int, 0, "random seed of the split (test-only roots) and of subsampling"),
        "test_fraction": Field(float, 0.2, "share of each class held out for test when only one "
                                           "pair of files is present, in (0, 1)"),
        "max_train_per_class": Field(int, None, "keep at most this many train samples per class",
                                     min=1, nullable=True),
        "max_test_per_class": Field(int, None, "keep at most this many test samples per class",
                                    min=1, nullable=True),
    }


FIELDS: dict[str, Field] = idx_fields("MNIST", "MNIST")

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


def _read_pair(images: Path, labels: Path, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    x = read_idx(images, 3)
    y = read_idx(labels, 1)
    if len(x) != len(y):
        raise DataError(f"{images}: holds {len(x)} images but {labels.name} holds {len(y)} "
                        f"labels; replace the mismatched file")
    if y.size and y.max() >= n_classes:
        raise DataError(f"{labels}: label {int(y.max())} outside 0..{n_classes - 1}; replace "
                        f"the file")
    return x[:, None, :, :], y.astype(np.int64)


def _scan(folder: Path, key: str) -> dict[str, tuple[Path, Path]]:
    """The complete train/t10k pairs in ``folder``; a pair with one file only is an error."""
    pairs = {}
    for split, (im, lb) in _PAIRS.items():
        images, labels = _find(folder, im), _find(folder, lb)
        if (images is None) != (labels is None):
            missing = lb if labels is None else im
            raise DataError(f"{key}.root: {missing}[.gz] is missing next to "
                            f"{(images or labels).name} in {folder}; add it")
        if images is not None:
            pairs[split] = (images, labels)
    return pairs


def _complete(folder: Path) -> bool:
    return all(_find(folder, stem) is not None for pair in _PAIRS.values() for stem in pair)


def load_idx_source(params: dict, key: str, *, name: str, what: str, folder_name: str,
                    class_names: list[str]) -> Pool:
    """Load an MNIST-format source from ``params['root']`` or its ``folder_name/raw``
    subfolder (official split when both pairs are present), fetching the official files of
    torchvision's ``folder_name`` class first when ``params['download']`` is set and no complete
    set is there."""
    root = data_root(params["root"])
    raw = root / folder_name / "raw"
    if params["download"]:
        folders = [next((f for f in (root, raw) if f.is_dir() and _complete(f)), raw)]
        if not _complete(folders[0]):
            fetch_idx_family(folder_name, raw)
    else:
        folders = [root, raw]
    pairs: dict[str, tuple[Path, Path]] = {}
    folder = root
    for folder in folders:
        pairs = _scan(folder, key) if folder.is_dir() else {}
        if pairs:
            break
    if not pairs:
        wanted = ", ".join(f"{stem}[.gz]" for pair in _PAIRS.values() for stem in pair)
        raise missing_files(key, root, f"{what} IDX files ({wanted})", f"{folder_name}/raw")
    arrays = {split: _read_pair(*pair, n_classes=len(class_names))
              for split, pair in pairs.items()}
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
    pool = Pool(x=x, y=y, train=train, class_names=list(class_names), name=name,
                meta={"source": name, "params": dict(params), "root": str(folder),
                      "split": split})
    return limit_per_class(pool, params["max_train_per_class"], params["max_test_per_class"],
                           params["seed"])


def load(params: dict, key: str) -> Pool:
    """Load MNIST (see ``load_idx_source``)."""
    return load_idx_source(params, key, name=NAME, what="MNIST", folder_name="MNIST",
                           class_names=DIGIT_NAMES)
