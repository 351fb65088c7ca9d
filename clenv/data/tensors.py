"""The ``tensors`` source: a user's own arrays from a ``.npz`` file or a ``.pt`` dict.

Keys: ``x`` (uint8 images (N, C, H, W) or (N, H, W), or float data (N, ...)), ``y`` (N,) integer
labels, optional ``train`` (N,) bool mask and optional ``class_names``. Without ``train`` a
seeded stratified split is made. Torch is imported only to read ``.pt`` files.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from clenv.config.schema import PATH, Field
from clenv.data.pool import Pool, check_fraction, seeded_split
from clenv.errors import DataError

NAME = "tensors"
NEEDS_ROOT = True
DOC = "Your own arrays: a .npz file or a .pt dict with x, y and optional train, class_names."

FIELDS: dict[str, Field] = {
    "path": Field(PATH, doc="a .npz file or a .pt dict holding x, y [, train, class_names]"),
    "seed": Field(int, 0, "random seed of the split when the file has no train mask"),
    "test_fraction": Field(float, 0.2, "share of each class held out for test when the file has "
                                       "no train mask, in (0, 1)"),
}

_KEYS = ("x", "y", "train", "class_names")


def _read_npz(path: Path) -> dict[str, Any]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"cannot read {path} as .npz ({type(exc).__name__}: {exc})") from exc


def _read_pt(path: Path) -> dict[str, Any]:
    import torch  # only here: the rest of clenv.data works without torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for bad or unsafe files
        raise DataError(f"cannot read {path} as .pt ({type(exc).__name__}: {exc})") from exc
    if not isinstance(obj, dict):
        raise DataError(f"{path} holds a {type(obj).__name__}, expected a dict of x, y "
                        f"[, train, class_names]")
    return {str(k): v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else v
            for k, v in obj.items()}


def _x_array(x: Any, err: Any) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype == np.uint8:
        if x.ndim == 3:
            x = x[:, None]
        if x.ndim != 4:
            raise err(f"uint8 x must be images (N, C, H, W) or (N, H, W), got shape {x.shape}")
        return x
    if not np.issubdtype(x.dtype, np.floating):
        raise err(f"x must be uint8 images or float data, got dtype {x.dtype}")
    if x.ndim < 2:
        raise err(f"float x must be (N, features...), got shape {x.shape}")
    x = x.astype(np.float32, copy=False)
    if not np.isfinite(x).all():
        raise err("x holds NaN or infinite values")
    return x


def load(params: dict, key: str) -> Pool:
    """Load the arrays at ``params['path']`` into a Pool."""
    path = Path(os.path.expanduser(params["path"]))

    def err(problem: str) -> DataError:
        return DataError(f"{key}.path: {problem} (in {path}); fix the file")

    if not path.is_file():
        raise DataError(f"{key}.path: no file {path}; point {key}.path at a .npz or .pt file")
    suffix = path.suffix.lower()
    if suffix not in (".npz", ".pt", ".pth"):
        raise DataError(f"{key}.path: expected a .npz or .pt file, got {path.name}")
    try:
        d = _read_npz(path) if suffix == ".npz" else _read_pt(path)
    except DataError as exc:
        raise DataError(f"{key}.path: {exc}") from exc
    unknown = [k for k in d if k not in _KEYS]
    if unknown:
        raise err(f"unexpected key {unknown[0]!r}, expected {', '.join(_KEYS)}")
    missing = [k for k in ("x", "y") if k not in d]
    if missing:
        raise err(f"missing key {missing[0]!r}")

    x = _x_array(d["x"], err)
    y = np.asarray(d["y"])
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise err(f"y must be a 1-D integer array, got shape {y.shape} dtype {y.dtype}")
    if len(y) != len(x) or len(y) == 0:
        raise err(f"x has {len(x)} rows but y has {len(y)}; they must match and be non-empty")
    if y.min() < 0:
        raise err(f"y holds a negative label {int(y.min())}")
    y = y.astype(np.int64)

    if "class_names" in d:
        names = [str(n) for n in np.asarray(d["class_names"]).ravel().tolist()]
        if len(names) <= y.max():
            raise err(f"class_names has {len(names)} names but y holds label {int(y.max())}")
    else:
        names = [f"class {i}" for i in range(int(y.max()) + 1)]

    if "train" in d:
        train = np.asarray(d["train"])
        if train.dtype != np.bool_ or train.shape != y.shape:
            raise err(f"train must be a bool mask of shape {y.shape}, got shape {train.shape} "
                      f"dtype {train.dtype}")
        split = "file"
    else:
        fraction = check_fraction(params["test_fraction"], f"{key}.test_fraction")
        train = seeded_split(y, fraction, params["seed"])
        split = "seeded"
    return Pool(x=x, y=y, train=train, class_names=names, name=path.stem,
                meta={"source": NAME, "params": dict(params), "path": str(path),
                      "split": split})
