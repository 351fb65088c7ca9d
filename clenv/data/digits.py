"""The ``digits`` source: scikit-learn's bundled 8x8 handwritten digits (1797 images, no
download), as uint8 images (1, 8, 8) with a seeded stratified train/test split."""

from __future__ import annotations

import numpy as np

from clenv.config.schema import Field
from clenv.data.pool import Pool, check_fraction, seeded_split

NAME = "digits"
NEEDS_ROOT = False
DOC = "scikit-learn's bundled 8x8 handwritten digits (1797 images, 10 classes), no download."

DIGIT_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]

FIELDS: dict[str, Field] = {
    "seed": Field(int, 0, "random seed of the train/test split"),
    "test_fraction": Field(float, 0.2, "share of each class held out for test, in (0, 1)"),
}


def load(params: dict, key: str) -> Pool:
    """Load the digits and split them with ``params['seed']`` and ``params['test_fraction']``."""
    from sklearn.datasets import load_digits  # imported here: sklearn is slow to import

    fraction = check_fraction(params["test_fraction"], f"{key}.test_fraction")
    bunch = load_digits()
    x = np.round(bunch.data * (255.0 / 16.0)).astype(np.uint8).reshape(-1, 1, 8, 8)
    y = bunch.target.astype(np.int64)
    return Pool(x=x, y=y, train=seeded_split(y, fraction, params["seed"]),
                class_names=list(DIGIT_NAMES), name=NAME,
                meta={"source": NAME, "params": dict(params)})
