"""The ``synthetic`` source: seeded Gaussian clusters generated down a label tree.

Top-level centres are drawn around the origin, each child centre around its parent's centre with
a per-level spread, and samples around their leaf (class) centre. Vectors are float32; with
``image_shape`` set the vectors are squashed to uint8 images by 255 * sigmoid.
"""

from __future__ import annotations

import math

import numpy as np

from clenv.config.schema import Field, describe
from clenv.data.pool import Pool
from clenv.errors import ConfigError

NAME = "synthetic"
NEEDS_ROOT = False
DOC = "Seeded Gaussian clusters down a label tree (vectors or uint8 images), no files needed."

FIELDS: dict[str, Field] = {
    "seed": Field(int, 0, "random seed of the centres, class order and samples"),
    "depth": Field(int, 1, "levels of the label tree (1: flat classes)", min=1),
    "branching": Field(list, [10], "children per node at each level, top level first "
                                   "(length = depth)", item=int),
    "separation": Field(object, [3.0], "spread of the centres at each level: a number or a "
                                       "list (one per level, or one for all)"),
    "noise": Field(float, 1.0, "standard deviation (> 0) of the samples around their class "
                               "centre", min=0.0),
    "train_per_class": Field(int, 100, "train samples of the largest class", min=1),
    "test_per_class": Field(int, 50, "test samples per class", min=1),
    "dim": Field(int, 20, "vector dimension (ignored when image_shape is set)", min=1),
    "image_shape": Field(list, None, "[C, H, W] to emit uint8 images instead of vectors",
                         item=int, nullable=True),
    "imbalance_ratio": Field(float, 1.0, "head-to-tail ratio of train samples per class "
                                         "(exponential profile)", min=1.0),
    "names": Field(str, "readable", "class names: readable words or plain ids",
                   choices=("readable", "ids")),
}

_GREEK = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa",
          "lambda", "mu", "nu", "xi", "omicron", "pi", "rho", "sigma", "tau", "upsilon", "phi",
          "chi", "psi", "omega")


def _letters(k: int) -> str:
    """0 -> a, 25 -> z, 26 -> aa, ... (bijective base 26)."""
    out = ""
    k += 1
    while k:
        k, r = divmod(k - 1, 26)
        out = chr(ord("a") + r) + out
    return out


def _level_names(branching: list[int], readable: bool) -> list[list[str]]:
    """Names of the nodes at every level, top first; node ``p * b + k`` is child ``k`` of ``p``."""
    if not readable:
        sizes = np.cumprod(branching)
        names = [[f"level{lv}-{i}" for i in range(n)] for lv, n in enumerate(sizes[:-1])]
        return names + [[f"class {i}" for i in range(sizes[-1])]]
    top = [_GREEK[i % len(_GREEK)] + (str(i // len(_GREEK) + 1) if i >= len(_GREEK) else "")
           for i in range(branching[0])]
    names = [top]
    for level, b in enumerate(branching[1:], start=1):
        suffix = [str(k + 1) if level % 2 else _letters(k) for k in range(b)]
        names.append([f"{parent}-{s}" for parent in names[-1] for s in suffix])
    return names


def _per_level(value: object, depth: int, key: str) -> list[float]:
    """``separation`` as one non-negative float per level."""
    values = value if isinstance(value, list) else [value]
    ok = all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
             and v >= 0 for v in values)
    if not ok or len(values) not in (1, depth):
        raise ConfigError(key, f"expected a finite number >= 0 or a list of 1 or {depth} of "
                               f"them, got {describe(value)}")
    return [float(v) for v in values] * (depth if len(values) == 1 else 1)


def _train_counts(n_classes: int, per_class: int, ratio: float,
                  rng: np.random.Generator) -> np.ndarray:
    """Train samples per class: ``per_class`` down to ``per_class / ratio`` exponentially over a
    seeded class order."""
    if ratio == 1.0 or n_classes == 1:
        return np.full(n_classes, per_class, dtype=np.int64)
    rank = np.empty(n_classes)
    rank[rng.permutation(n_classes)] = np.arange(n_classes) / (n_classes - 1)
    return np.maximum(1, np.round(per_class * ratio ** -rank)).astype(np.int64)


MAX_CLASSES = 100_000  # leaves of the label tree


def check(params: dict, key: str) -> None:
    """The parameter checks that need no data (``clenv check`` runs them too)."""
    depth = params["depth"]
    branching = list(params["branching"])
    if len(branching) != depth or any(b < 1 for b in branching):
        raise ConfigError(f"{key}.branching", f"expected {depth} integer(s) >= 1 (one per level, "
                                              f"depth = {depth}), got {describe(branching)}")
    if math.prod(branching) > MAX_CLASSES:
        raise ConfigError(f"{key}.branching", f"makes {math.prod(branching)} classes; the limit "
                                              f"is {MAX_CLASSES} classes per data source")
    if params["noise"] <= 0:
        raise ConfigError(f"{key}.noise", f"expected a number > 0, got {describe(params['noise'])}")
    _per_level(params["separation"], depth, f"{key}.separation")
    shape = params["image_shape"]
    if shape is not None and (len(shape) != 3 or any(s < 1 for s in shape)):
        raise ConfigError(f"{key}.image_shape", f"expected [C, H, W] of integers >= 1, "
                                                f"got {describe(shape)}", "or null for vectors")


def load(params: dict, key: str) -> Pool:
    """Generate the pool described by validated ``params``."""
    check(params, key)
    depth = params["depth"]
    branching = list(params["branching"])
    sep = _per_level(params["separation"], depth, f"{key}.separation")
    shape = params["image_shape"]
    dim = math.prod(shape) if shape is not None else params["dim"]
    rng_centres, rng_order, rng_samples = (
        np.random.default_rng(s) for s in np.random.SeedSequence(params["seed"]).spawn(3))

    centres = rng_centres.normal(0.0, sep[0], size=(branching[0], dim))
    for level in range(1, depth):
        centres = np.repeat(centres, branching[level], axis=0)
        centres += rng_centres.normal(0.0, sep[level], size=centres.shape)
    n_classes = len(centres)

    n_train = _train_counts(n_classes, params["train_per_class"], params["imbalance_ratio"],
                            rng_order)
    n_test = params["test_per_class"]
    y = np.concatenate([np.repeat(np.arange(n_classes), n_train),
                        np.repeat(np.arange(n_classes), n_test)])
    train = np.arange(len(y)) < n_train.sum()
    x = centres[y] + rng_samples.normal(0.0, params["noise"], size=(len(y), dim))
    if shape is None:
        x = x.astype(np.float32)
    else:
        x = np.round(127.5 * (1.0 + np.tanh(0.5 * x))).astype(np.uint8).reshape(len(y), *shape)

    names = _level_names(branching, params["names"] == "readable")
    ancestors = tree_names = None
    if depth > 1:
        below = np.cumprod(branching[::-1])[::-1]  # leaves under one node, per level
        ancestors = np.arange(n_classes)[:, None] // below[1:][None, :]
        tree_names = names[:-1]
    return Pool(x=x, y=y, train=train, class_names=names[-1], name=NAME, ancestors=ancestors,
                tree_names=tree_names, meta={"source": NAME, "params": dict(params)})
