"""The ``canvas`` source: synthetic multi-object images for multi-label learning.

Each image is a uint8 (1, canvas, canvas) canvas on which k objects (k uniform in ``objects``)
are pasted with a pixel-wise max at seeded random positions; each object is a glyph instance of
one class and the image's labels are the multi-hot set of the pasted classes. Glyph sets:
scikit-learn's 8x8 digits (upscaled), procedural shapes drawn with numpy, or MNIST's t10k digits
read from ``root``. Train and test images use disjoint glyph instances.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from clenv.config.schema import PATH, Field
from clenv.data.digits import DIGIT_NAMES
from clenv.data.pool import Pool
from clenv.errors import ConfigError, DataError

NAME = "canvas"
MULTI_LABEL = True
NEEDS_ROOT = False
DOC = ("Synthetic multi-label images: 1-5 digit or shape glyphs pasted on a canvas, labels the "
       "set of pasted classes, no download.")

GLYPH_SETS = ("digits", "shapes", "mnist")
TEST_GLYPH_FRACTION = 0.3  # share of each class's glyph instances reserved for test images
SHAPE_INSTANCES = 64  # procedural instances drawn per shape class and split

FIELDS: dict[str, Field] = {
    "seed": Field(int, 0, "random seed of glyph choice, positions, classes and partners"),
    "glyphs": Field(str, "digits", "glyph set: digits (sklearn 8x8), shapes (procedural) or "
                                   "mnist (t10k files in root)", choices=GLYPH_SETS),
    "root": Field(PATH, None, "folder holding MNIST's t10k IDX files (glyphs: mnist only)",
                  nullable=True),
    "glyph_scale": Field(int, 2, "digits/shapes: upscale factor of the 8x8 glyph box; mnist: "
                                 "downscale factor of the 28x28 digits", min=1),
    "first_class": Field(int, 0, "index of the first glyph class used (with n_classes: a "
                         "disjoint class range, e.g. for pretraining)", min=0),
    "n_classes": Field(int, None, "use the first n classes of the glyph set; null: all",
                       min=1, nullable=True),
    "objects": Field(list, [1, 3], "[min, max] objects per image, drawn uniformly", item=int),
    "canvas": Field(int, 32, "side of the square canvas in pixels", min=1),
    "train_size": Field(int, 2000, "number of train images", min=1),
    "test_size": Field(int, 500, "number of test images", min=1),
    "cooccurrence": Field(float, 0.0, "probability that each additional object is the first "
                                      "object's partner class instead of a uniform draw",
                          min=0.0, max=1.0),
}

# --------------------------------------------------------------------------- shapes

_Mask = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _r(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.sqrt(u * u + v * v)


def _box(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.maximum(np.abs(u), np.abs(v))


# Each shape is a mask over coordinates u (left -1 .. right 1) and v (top -1 .. bottom 1).
SHAPES: dict[str, _Mask] = {
    "square": lambda u, v: _box(u, v) <= 0.8,
    "disc": lambda u, v: _r(u, v) <= 0.85,
    "triangle": lambda u, v: (np.abs(v) <= 0.8) & (np.abs(u) <= 0.5 * (v + 0.8) + 0.05),
    "cross": lambda u, v: (((np.abs(u) <= 0.25) & (np.abs(v) <= 0.9))
                           | ((np.abs(v) <= 0.25) & (np.abs(u) <= 0.9))),
    "ring": lambda u, v: (_r(u, v) <= 0.9) & (_r(u, v) >= 0.55),
    "bar": lambda u, v: (np.abs(v) <= 0.25) & (np.abs(u) <= 0.9),
    "diamond": lambda u, v: np.abs(u) + np.abs(v) <= 0.9,
    "hourglass": lambda u, v: (np.abs(u) <= np.abs(v) + 0.05) & (np.abs(v) <= 0.85),
    "saltire": lambda u, v: (np.abs(np.abs(u) - np.abs(v)) <= 0.25) & (_box(u, v) <= 0.85),
    "frame": lambda u, v: (_box(u, v) <= 0.9) & (_box(u, v) >= 0.55),
    "column": lambda u, v: (np.abs(u) <= 0.25) & (np.abs(v) <= 0.9),
    "half_disc": lambda u, v: (_r(u, v) <= 0.9) & (v >= 0.0),
    "tee": lambda u, v: (((np.abs(v + 0.65) <= 0.25) & (np.abs(u) <= 0.9))
                         | ((np.abs(u) <= 0.25) & (np.abs(v) <= 0.9))),
    "ell": lambda u, v: (((np.abs(u + 0.65) <= 0.25) & (np.abs(v) <= 0.9))
                         | ((np.abs(v - 0.65) <= 0.25) & (np.abs(u) <= 0.9))),
    "checker": lambda u, v: (u * v > 0) & (_box(u, v) <= 0.85),
    "dot": lambda u, v: _r(u, v) <= 0.4,
}


def draw_shapes(size: int, n: int, rng: np.random.Generator,
                names: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random instances of each shape in ``names`` (default all) in a ``size`` box.

    Instances vary in scale (0.7-1.0 of the box), sub-pixel offset and intensity (160-255).
    Returns (images (n * n_shapes, size, size) uint8, class ids (n * n_shapes,) int64).
    """
    names = list(SHAPES) if names is None else names
    k = len(names) * n
    scale = rng.uniform(0.7, 1.0, (k, 1, 1))
    shift = rng.uniform(-0.1, 0.1, (k, 2, 1, 1))
    level = rng.integers(160, 256, (k, 1, 1))
    grid = (np.arange(size) + 0.5) / size * 2.0 - 1.0
    u = (grid[None, None, :] - shift[:, 0]) / scale
    v = (grid[None, :, None] - shift[:, 1]) / scale
    u, v = np.broadcast_arrays(u, v)
    labels = np.repeat(np.arange(len(names), dtype=np.int64), n)
    masks = np.empty((k, size, size), dtype=bool)
    for c, name in enumerate(names):
        sl = slice(c * n, (c + 1) * n)
        masks[sl] = SHAPES[name](u[sl], v[sl])
    return (masks * level).astype(np.uint8), labels


# --------------------------------------------------------------------------- glyph banks


def _split_instances(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Bool mask of glyph instances kept for test: a seeded ``TEST_GLYPH_FRACTION`` of each class
    (at least one instance per class stays on each side when the class has two or more)."""
    idx = rng.permutation(len(labels))
    idx = idx[np.argsort(labels[idx], kind="stable")]
    sorted_labels = labels[idx]
    first = np.searchsorted(sorted_labels, sorted_labels, side="left")
    counts = np.bincount(labels)[sorted_labels]
    n_test = np.clip(np.round(TEST_GLYPH_FRACTION * counts), 1, np.maximum(counts - 1, 1))
    test = np.zeros(len(labels), dtype=bool)
    test[idx[np.arange(len(idx)) - first < n_test]] = True
    return test


def _find_t10k(root: Path) -> tuple[Path, Path] | None:
    for folder in (root, root / "MNIST" / "raw"):
        pair = []
        for stem in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
            found = [folder / n for n in (stem, stem + ".gz") if (folder / n).is_file()]
            pair.append(found[0] if found else None)
        if pair[0] is not None and pair[1] is not None:
            return pair[0], pair[1]
    return None


def _downscale(x: np.ndarray, factor: int) -> np.ndarray:
    """Block-mean downscale of (N, H, W) uint8 images by ``factor`` (zero-padded to fit)."""
    if factor == 1:
        return x
    n, h, w = x.shape
    ph, pw = -h % factor, -w % factor
    x = np.pad(x, ((0, 0), (0, ph), (0, pw))).astype(np.float32)
    x = x.reshape(n, (h + ph) // factor, factor, (w + pw) // factor, factor).mean(axis=(2, 4))
    return np.round(x).astype(np.uint8)


def _glyph_source(params: dict, key: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(images (M, g, g) uint8, class ids (M,), class names) of the digit glyph sets."""
    scale = params["glyph_scale"]
    if params["glyphs"] == "digits":
        from sklearn.datasets import load_digits  # imported here: sklearn is slow to import

        bunch = load_digits()
        x = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)
        x = np.kron(x, np.ones((1, scale, scale), dtype=np.uint8))
        return x, bunch.target.astype(np.int64), list(DIGIT_NAMES)
    from clenv.data.mnist import read_idx

    if params["root"] is None:
        raise ConfigError(f"{key}.root", "required when glyphs is mnist",
                          "point it at the folder holding t10k-images-idx3-ubyte[.gz]")
    root = Path(os.path.expanduser(params["root"]))
    if not root.is_dir():
        raise DataError(f"{key}.root: folder {root} does not exist; point {key}.root at the "
                        f"folder holding MNIST's t10k IDX files")
    pair = _find_t10k(root)
    if pair is None:
        raise DataError(f"{key}.root: no t10k-images-idx3-ubyte[.gz] and t10k-labels-idx1-ubyte"
                        f"[.gz] in {root} or {root / 'MNIST' / 'raw'}; add them or fix "
                        f"{key}.root")
    x, y = read_idx(pair[0], 3), read_idx(pair[1], 1)
    if len(x) != len(y) or (y.size and y.max() > 9):
        raise DataError(f"{pair[1]}: labels do not match {pair[0].name} (count or range); "
                        f"replace the files")
    return _downscale(x, scale), y.astype(np.int64), list(DIGIT_NAMES)


def _banks(params: dict, key: str, rng: np.random.Generator
           ) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[str], dict[str, list[int]]]:
    """Train and test glyph banks {split: (images, class ids)}, class names and the source
    instance ids of each split (digits/mnist; empty for shapes)."""
    n_classes = params["n_classes"]
    first = params["first_class"]
    if params["glyphs"] == "shapes":
        names = list(SHAPES)[first:]
        if n_classes is not None:
            names = names[:n_classes]
        size = 8 * params["glyph_scale"]
        banks = {s: draw_shapes(size, SHAPE_INSTANCES, rng, names) for s in ("train", "test")}
        return banks, names, {"train": [], "test": []}
    x, y, names = _glyph_source(params, key)
    names = names[first:]
    if n_classes is not None:
        names = names[:n_classes]
    keep = (y >= first) & (y < first + len(names))
    x, y = x[keep], y[keep] - first
    few = np.flatnonzero(np.bincount(y, minlength=len(names)) < 2)
    if few.size:
        raise DataError(f"{key}.glyphs: fewer than 2 {params['glyphs']} glyphs of class "
                        f"{names[int(few[0])]} (one is needed for train, one for test); use a "
                        f"complete glyph source")
    test = _split_instances(y, rng)
    source_ids = np.flatnonzero(keep)
    banks = {"train": (x[~test], y[~test]), "test": (x[test], y[test])}
    ids = {"train": source_ids[~test].tolist(), "test": source_ids[test].tolist()}
    return banks, names, ids


# --------------------------------------------------------------------------- composition


def compose(bank: tuple[np.ndarray, np.ndarray], n_images: int, n_classes: int, canvas: int,
            objects: tuple[int, int], partner: np.ndarray, cooccurrence: float,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Paste glyphs from ``bank`` onto ``n_images`` canvases.

    The first object's class is uniform; each additional one is ``partner[first]`` with
    probability ``cooccurrence``, else uniform among the classes not yet on the canvas (all
    classes once every class is on it). Returns (x (n, 1, canvas, canvas) uint8, multi-hot y
    (n, n_classes) uint8, objects per image (n,) int64).
    """
    glyphs, glyph_y = bank
    g = glyphs.shape[-1]
    order = np.argsort(glyph_y, kind="stable")
    glyphs, glyph_y = glyphs[order], glyph_y[order]
    start = np.searchsorted(glyph_y, np.arange(n_classes), side="left")
    count = np.bincount(glyph_y, minlength=n_classes)
    lo, hi = objects
    k = rng.integers(lo, hi + 1, n_images)
    x = np.zeros((n_images, canvas, canvas), dtype=np.uint8)
    y = np.zeros((n_images, n_classes), dtype=np.uint8)
    rows = np.arange(n_images)
    offs = np.arange(g)
    first = rng.integers(0, n_classes, n_images)
    for j in range(hi):
        if j == 0:
            cls = first
        else:
            keys = rng.random((n_images, n_classes)) + y  # classes on the canvas sort last
            cls = np.where(rng.random(n_images) < cooccurrence, partner[first],
                           np.argmin(keys, axis=1))
        active = rows[k > j]
        cls = cls[active]
        inst = start[cls] + (rng.random(len(active)) * count[cls]).astype(np.int64)
        top = rng.integers(0, canvas - g + 1, len(active))
        left = rng.integers(0, canvas - g + 1, len(active))
        r = top[:, None, None] + offs[None, :, None]
        c = left[:, None, None] + offs[None, None, :]
        n = active[:, None, None]
        x[n, r, c] = np.maximum(x[n, r, c], glyphs[inst])
        y[active, cls] = 1
    return x[:, None], y, k.astype(np.int64)


def partners(n_classes: int, rng: np.random.Generator) -> np.ndarray:
    """A seeded partner class per class: one random cycle through all classes, so no class is
    its own partner (when there are two or more)."""
    perm = rng.permutation(n_classes)
    out = np.empty(n_classes, dtype=np.int64)
    out[perm] = np.roll(perm, -1)
    return out


def _check_params(params: dict, key: str) -> tuple[int, int]:
    objects = params["objects"]
    if len(objects) != 2 or not 1 <= objects[0] <= objects[1]:
        raise ConfigError(f"{key}.objects", f"expected [min, max] with 1 <= min <= max, got "
                                            f"{objects!r:.60}", "use e.g. [1, 3]")
    available = len(SHAPES) if params["glyphs"] == "shapes" else len(DIGIT_NAMES)
    if params["first_class"] >= available:
        raise ConfigError(f"{key}.first_class", f"the {params['glyphs']} glyph set has only "
                                                f"{available} classes", f"use < {available}")
    available -= params["first_class"]
    if params["n_classes"] is not None and params["n_classes"] > available:
        raise ConfigError(f"{key}.n_classes", f"the {params['glyphs']} glyph set has only "
                                              f"{available} classes, got {params['n_classes']}",
                          f"use at most {available} or null")
    if params["glyphs"] != "mnist" and params["root"] is not None:
        raise ConfigError(f"{key}.root", f"only used with glyphs: mnist, got glyphs: "
                                         f"{params['glyphs']}", f"remove {key}.root")
    return int(objects[0]), int(objects[1])


def load(params: dict, key: str) -> Pool:
    """Generate the train and test canvases described by ``params``."""
    lo, hi = _check_params(params, key)
    seed = params["seed"]
    banks, names, ids = _banks(params, key, np.random.default_rng([seed, 0]))
    g = banks["train"][0].shape[-1]
    canvas = params["canvas"]
    if g > canvas:
        raise ConfigError(f"{key}.canvas", f"{canvas} pixels is smaller than the {g}-pixel "
                                           f"glyphs", f"use a canvas >= {g} or a smaller "
                                                      f"{key}.glyph_scale")
    partner = partners(len(names), np.random.default_rng([seed, 1]))
    parts = {}
    for i, split in enumerate(("train", "test")):
        parts[split] = compose(banks[split], params[f"{split}_size"], len(names), canvas,
                               (lo, hi), partner, params["cooccurrence"],
                               np.random.default_rng([seed, 2 + i]))
    x = np.concatenate([parts["train"][0], parts["test"][0]])
    y = np.concatenate([parts["train"][1], parts["test"][1]])
    train = np.arange(len(x)) < params["train_size"]
    n_objects = np.concatenate([parts["train"][2], parts["test"][2]])
    return Pool(x=x, y=y, train=train, class_names=names, name=NAME,
                meta={"source": NAME, "params": dict(params), "partner": partner.tolist(),
                      "n_objects": n_objects.tolist(), "glyph_instances": ids})
