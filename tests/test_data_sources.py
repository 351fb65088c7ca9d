"""Tests of the data sources (synthetic, digits, mnist, cifar100, tensors), the registry and the
Pool's label tree."""

from __future__ import annotations

import gzip
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from clenv.data.mnist import read_idx
from clenv.data.pool import Pool
from clenv.data.registry import SOURCES, describe_sources, load_pool
from clenv.errors import ConfigError, DataError
from tests.conftest import mnist_root, one_line

# --------------------------------------------------------------------------- pool


def test_pool_tree_validation() -> None:
    x, y, train = np.zeros((4, 2), np.float32), np.array([0, 1, 2, 3]), np.ones(4, bool)
    flat = Pool(x, y, train, ["a", "b", "c", "d"])
    assert flat.depth == 1 and flat.ancestors is None
    tree = Pool(x, y, train, ["a", "b", "c", "d"], ancestors=np.array([[0, 0], [0, 0], [0, 1],
                                                                       [0, 1]]),
                tree_names=[["top"], ["left", "right"]])
    assert tree.depth == 3 and tree.ancestors.dtype == np.int64
    with pytest.raises(ValueError, match="shape"):
        Pool(x, y, train, ["a", "b", "c", "d"], ancestors=np.zeros((3, 1), int),
             tree_names=[["top"]])
    with pytest.raises(ValueError, match="outside"):
        Pool(x, y, train, ["a", "b", "c", "d"], ancestors=np.array([[0], [0], [1], [2]]),
             tree_names=[["p", "q"]])
    with pytest.raises(ValueError, match="two parents"):
        Pool(x, y, train, ["a", "b", "c", "d"], ancestors=np.array([[0, 0], [1, 0], [0, 1],
                                                                    [0, 1]]),
             tree_names=[["t0", "t1"], ["left", "right"]])
    with pytest.raises(ValueError, match="tree_names"):
        Pool(x, y, train, ["a", "b", "c", "d"], ancestors=np.zeros((4, 1), int))


# --------------------------------------------------------------------------- synthetic


def test_synthetic_default_shapes_and_counts() -> None:
    pool = load_pool({"source": "synthetic"})
    assert pool.x.shape == (10 * 150, 20) and pool.x.dtype == np.float32
    assert pool.n_classes == 10 and pool.depth == 1 and pool.ancestors is None
    assert len(set(pool.class_names)) == 10 and pool.class_names[0] == "alpha"
    assert (np.bincount(pool.y[pool.train]) == 100).all()
    assert (np.bincount(pool.y[~pool.train]) == 50).all()
    assert not pool.is_image


def test_synthetic_seeded() -> None:
    cfg = {"source": "synthetic", "dim": 5, "train_per_class": 10, "test_per_class": 5}
    a, b = load_pool(cfg), load_pool(dict(cfg))
    c = load_pool({**cfg, "seed": 1})
    assert np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y)
    assert np.array_equal(a.train, b.train)
    assert not np.allclose(a.x, c.x)


def test_synthetic_imbalance_ratio() -> None:
    pool = load_pool({"source": "synthetic", "imbalance_ratio": 10.0, "train_per_class": 200,
                      "dim": 2})
    train_counts = np.bincount(pool.y[pool.train])
    assert train_counts.max() == 200
    assert train_counts.max() / train_counts.min() == pytest.approx(10.0, rel=0.05)
    assert len(np.unique(train_counts)) == 10  # exponential profile, all distinct
    assert (np.bincount(pool.y[~pool.train]) == 50).all()
    # the head class depends on the seed
    other = load_pool({"source": "synthetic", "imbalance_ratio": 10.0, "train_per_class": 200,
                       "dim": 2, "seed": 3})
    assert not np.array_equal(np.bincount(other.y[other.train]), train_counts)


def _class_means(pool: Pool) -> np.ndarray:
    sums = np.zeros((pool.n_classes, pool.x.shape[1]))
    np.add.at(sums, pool.y, pool.x)
    return sums / np.bincount(pool.y)[:, None]


def test_synthetic_tree_siblings_closer_than_cousins() -> None:
    pool = load_pool({"source": "synthetic", "depth": 2, "branching": [4, 3],
                      "separation": [8.0, 1.0], "train_per_class": 30, "test_per_class": 10})
    assert pool.depth == 2 and pool.n_classes == 12
    assert pool.ancestors.shape == (12, 1)
    assert np.array_equal(pool.ancestors[:, 0], np.arange(12) // 3)
    assert len(pool.tree_names) == 1 and len(pool.tree_names[0]) == 4
    assert len(set(pool.class_names)) == 12
    for leaf, parent in zip(pool.class_names, pool.ancestors[:, 0], strict=True):
        assert leaf.startswith(pool.tree_names[0][parent] + "-")
    means = _class_means(pool)
    dist = np.linalg.norm(means[:, None] - means[None], axis=-1)
    same = pool.ancestors[:, 0][:, None] == pool.ancestors[:, 0][None]
    off_diag = ~np.eye(12, dtype=bool)
    assert dist[same & off_diag].mean() < 0.5 * dist[~same].mean()


def test_synthetic_depth3_ancestors_and_names() -> None:
    pool = load_pool({"source": "synthetic", "depth": 3, "branching": [2, 3, 2],
                      "separation": 2.0, "train_per_class": 2, "test_per_class": 1})
    assert pool.depth == 3 and pool.ancestors.shape == (12, 2)
    assert np.array_equal(pool.ancestors[:, 1], np.arange(12) // 2)
    assert np.array_equal(pool.ancestors[:, 0], np.arange(12) // 6)
    assert [len(level) for level in pool.tree_names] == [2, 6]
    assert pool.class_names[:3] == ["alpha-1-a", "alpha-1-b", "alpha-2-a"]
    ids = load_pool({"source": "synthetic", "depth": 2, "branching": [2, 2], "names": "ids",
                     "train_per_class": 1, "test_per_class": 1})
    assert ids.class_names == ["class 0", "class 1", "class 2", "class 3"]


def test_synthetic_image_mode() -> None:
    pool = load_pool({"source": "synthetic", "image_shape": [1, 6, 6], "train_per_class": 20,
                      "test_per_class": 5})
    assert pool.is_image and pool.x.dtype == np.uint8
    assert pool.x.shape == (250, 1, 6, 6) and pool.shape == (1, 6, 6)
    assert pool.x.min() < 30 and pool.x.max() > 225  # the 0..255 range is used


@pytest.mark.parametrize(("cfg", "key"), [
    ({"depth": 2}, "data.branching"),
    ({"branching": [3, 0], "depth": 2}, "data.branching"),
    ({"separation": [1.0, 2.0]}, "data.separation"),
    ({"separation": "wide"}, "data.separation"),
    ({"image_shape": [8, 8]}, "data.image_shape"),
    ({"noise": 0.0}, "data.noise"),
    ({"names": "fancy"}, "data.names"),
    ({"imbalance_ratio": 0.5}, "data.imbalance_ratio"),
])
def test_synthetic_config_errors(cfg: dict, key: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_pool({"source": "synthetic", **cfg})
    assert one_line(exc, key).startswith(key)


# --------------------------------------------------------------------------- digits


def test_digits_shape_split_and_seed() -> None:
    pool = load_pool({"source": "digits"})
    assert pool.x.shape == (1797, 1, 8, 8) and pool.x.dtype == np.uint8
    assert pool.x.max() == 255 and pool.x.min() == 0
    assert pool.class_names[0] == "zero" and pool.class_names[9] == "nine"
    per_class = np.bincount(pool.y)
    test_counts = np.bincount(pool.y[~pool.train], minlength=10)
    assert np.array_equal(test_counts, np.round(0.2 * per_class).astype(int))
    same = load_pool({"source": "digits", "seed": 0})
    other = load_pool({"source": "digits", "seed": 1})
    assert np.array_equal(pool.train, same.train)
    assert not np.array_equal(pool.train, other.train)
    half = load_pool({"source": "digits", "test_fraction": 0.5})
    assert abs(half.train.mean() - 0.5) < 0.01
    with pytest.raises(ConfigError) as exc:
        load_pool({"source": "digits", "test_fraction": 1.0})
    one_line(exc, "data.test_fraction")


# --------------------------------------------------------------------------- mnist


def test_mnist_real_test_only_root() -> None:
    root = mnist_root()
    if not root.is_dir():
        pytest.skip(f"{root} is not there")
    pool = load_pool({"source": "mnist", "root": str(root)})
    assert pool.x.shape == (10000, 1, 28, 28) and pool.x.dtype == np.uint8
    assert pool.n_classes == 10 and set(np.unique(pool.y)) == set(range(10))
    assert pool.meta["split"] == "seeded"
    assert pool.train.sum() == 8000
    per_class = np.bincount(pool.y)
    assert np.array_equal(np.bincount(pool.y[~pool.train]), np.round(0.2 * per_class))
    again = load_pool({"source": "mnist", "root": str(root), "seed": 0})
    other = load_pool({"source": "mnist", "root": str(root), "seed": 1})
    assert np.array_equal(pool.train, again.train)
    assert not np.array_equal(pool.train, other.train)
    small = load_pool({"source": "mnist", "root": str(root), "max_train_per_class": 20,
                       "max_test_per_class": 5})
    assert (np.bincount(small.y[small.train]) == 20).all()
    assert (np.bincount(small.y[~small.train]) == 5).all()


def _idx_bytes(arr: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, arr.ndim]) + np.asarray(arr.shape, dtype=">u4").tobytes()
    return header + arr.astype(np.uint8).tobytes()


def _write_mnist(folder: Path, n_train: int = 30, n_test: int = 20) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    arrays = {"train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
              "train-labels-idx1-ubyte": np.arange(n_train) % 10,
              "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
              "t10k-labels-idx1-ubyte": np.arange(n_test) % 10}
    folder.mkdir(parents=True, exist_ok=True)
    for name, arr in arrays.items():
        data = _idx_bytes(arr)
        if name.startswith("train"):  # train pair gzipped, t10k pair plain
            (folder / (name + ".gz")).write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return arrays


def test_mnist_fixture_official_split(tmp_path: Path) -> None:
    arrays = _write_mnist(tmp_path)
    pool = load_pool({"source": "mnist", "root": str(tmp_path)})
    assert pool.meta["split"] == "official"
    assert pool.x.shape == (50, 1, 28, 28) and pool.train.sum() == 30
    assert np.array_equal(pool.x[pool.train][:, 0], arrays["train-images-idx3-ubyte"])
    assert np.array_equal(pool.x[~pool.train][:, 0], arrays["t10k-images-idx3-ubyte"])
    assert np.array_equal(pool.y[~pool.train], arrays["t10k-labels-idx1-ubyte"])
    capped = load_pool({"source": "mnist", "root": str(tmp_path), "max_train_per_class": 2})
    assert (np.bincount(capped.y[capped.train]) == 2).all() and (~capped.train).sum() == 20


def test_mnist_torchvision_layout(tmp_path: Path) -> None:
    _write_mnist(tmp_path / "MNIST" / "raw")
    pool = load_pool({"source": "mnist", "root": str(tmp_path)})
    assert len(pool.y) == 50 and pool.meta["split"] == "official"


def test_mnist_malformed_files(tmp_path: Path) -> None:
    good = _idx_bytes(np.zeros((3, 28, 28)))
    bad_magic = tmp_path / "bad"
    bad_magic.write_bytes(bytes([0, 0, 0x0D, 3]) + good[4:])
    with pytest.raises(DataError) as exc:
        read_idx(bad_magic, 3)
    one_line(exc, str(bad_magic), "magic")
    with pytest.raises(DataError) as exc:
        read_idx(_write(tmp_path / "dims", good), 1)  # 3 dimensions where 1 is expected
    one_line(exc, "dims", "1 dimension")
    with pytest.raises(DataError) as exc:
        read_idx(_write(tmp_path / "short", good[:-10]), 3)
    one_line(exc, "short", "truncated")
    with pytest.raises(DataError) as exc:
        read_idx(_write(tmp_path / "broken.gz", gzip.compress(good)[:-8]), 3)
    one_line(exc, "broken.gz")

    folder = tmp_path / "root"
    _write_mnist(folder)
    (folder / "t10k-labels-idx1-ubyte").write_bytes(_idx_bytes(np.zeros(7)))
    with pytest.raises(DataError) as exc:
        load_pool({"source": "mnist", "root": str(folder)})
    one_line(exc, "t10k-images-idx3-ubyte", "7 labels")
    (folder / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError) as exc:
        load_pool({"source": "mnist", "root": str(folder)})
    one_line(exc, "data.root", "t10k-labels-idx1-ubyte")


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_mnist_missing_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DataError) as exc:
        load_pool({"source": "mnist", "root": str(tmp_path / "nope")})
    assert one_line(exc, "data.root", "nope").startswith("data.root:")
    with pytest.raises(DataError) as exc:
        load_pool({"source": "mnist", "root": str(tmp_path)})
    assert one_line(exc, "no MNIST IDX files", "point data.root").startswith("data.root:")
    monkeypatch.setenv("CLENV_DATA", str(tmp_path / "cache"))  # no root: the download cache
    with pytest.raises(DataError) as exc:
        load_pool({"source": "mnist"})
    one_line(exc, "data.root", str(tmp_path / "cache"), "data.download: true")


# --------------------------------------------------------------------------- cifar100


def _write_cifar(folder: Path, n_fine: int = 6, per_class: tuple[int, int] = (4, 2),
                 bad_mapping: bool = False) -> dict:
    rng = np.random.default_rng(2)
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for split, n in zip(("train", "test"), per_class, strict=True):
        fine = np.repeat(np.arange(n_fine), n)
        coarse = fine // 2
        if bad_mapping and split == "test":
            coarse[0] = 2
        data = rng.integers(0, 256, (len(fine), 3072), dtype=np.uint8)
        written[split] = data
        entry = {b"filenames": [b"f"] * len(fine), b"batch_label": b"x",
                 b"fine_labels": fine.tolist(), b"coarse_labels": coarse.tolist(),
                 b"data": data}
        (folder / split).write_bytes(pickle.dumps(entry, protocol=2))
    meta = {b"fine_label_names": [f"fine{i}".encode() for i in range(n_fine)],
            b"coarse_label_names": [f"coarse{i}".encode() for i in range(n_fine // 2)]}
    (folder / "meta").write_bytes(pickle.dumps(meta, protocol=2))
    return written


def test_cifar100_fixture(tmp_path: Path) -> None:
    written = _write_cifar(tmp_path / "cifar-100-python")
    pool = load_pool({"source": "cifar100", "root": str(tmp_path)})
    assert pool.x.shape == (36, 3, 32, 32) and pool.x.dtype == np.uint8
    assert pool.train.sum() == 24
    assert np.array_equal(pool.x[0], written["train"][0].reshape(3, 32, 32))
    assert pool.class_names == [f"fine{i}" for i in range(6)]
    assert pool.depth == 2 and pool.tree_names == [["coarse0", "coarse1", "coarse2"]]
    assert np.array_equal(pool.ancestors[:, 0], np.arange(6) // 2)
    capped = load_pool({"source": "cifar100", "root": str(tmp_path), "max_train_per_class": 1,
                        "max_test_per_class": 1, "seed": 4})
    assert capped.train.sum() == 6 and (~capped.train).sum() == 6
    assert capped.ancestors.shape == (6, 1)


def test_cifar100_files_directly_and_errors(tmp_path: Path) -> None:
    _write_cifar(tmp_path / "flat")
    assert len(load_pool({"source": "cifar100", "root": str(tmp_path / "flat")}).y) == 36
    _write_cifar(tmp_path / "bad", bad_mapping=True)
    with pytest.raises(DataError) as exc:
        load_pool({"source": "cifar100", "root": str(tmp_path / "bad")})
    one_line(exc, "fine0", "several coarse")
    with pytest.raises(DataError) as exc:
        load_pool({"source": "cifar100", "root": str(tmp_path / "missing")})
    assert one_line(exc, "data.root", "missing").startswith("data.root:")
    (tmp_path / "flat" / "meta").unlink()
    with pytest.raises(DataError) as exc:
        load_pool({"source": "cifar100", "root": str(tmp_path / "flat")})
    one_line(exc, "data.root", "meta")
    (tmp_path / "flat" / "meta").write_bytes(b"not a pickle")
    with pytest.raises(DataError) as exc:
        load_pool({"source": "cifar100", "root": str(tmp_path / "flat")})
    one_line(exc, "meta", "unpickle")


# --------------------------------------------------------------------------- tensors


def test_tensors_npz_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 5, 5), dtype=np.uint8)
    y = np.arange(40) % 4
    train = np.arange(40) < 30
    path = tmp_path / "mine.npz"
    np.savez(path, x=x, y=y, train=train, class_names=np.array(["a", "b", "c", "d"]))
    pool = load_pool({"source": "tensors", "path": str(path)})
    assert pool.x.shape == (40, 1, 5, 5) and np.array_equal(pool.x[:, 0], x)
    assert np.array_equal(pool.y, y) and np.array_equal(pool.train, train)
    assert pool.class_names == ["a", "b", "c", "d"] and pool.meta["split"] == "file"

    vec = tmp_path / "vec.npz"
    np.savez(vec, x=rng.normal(size=(50, 3)), y=np.arange(50) % 5)
    pool = load_pool({"source": "tensors", "path": str(vec), "test_fraction": 0.4})
    assert pool.x.dtype == np.float32 and pool.class_names[4] == "class 4"
    assert (np.bincount(pool.y[~pool.train]) == 4).all() and pool.meta["split"] == "seeded"


def test_tensors_pt_round_trip(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    x = torch.rand(12, 2, 3, 3, dtype=torch.float64)
    y = torch.arange(12) % 3
    path = tmp_path / "mine.pt"
    torch.save({"x": x, "y": y, "train": y != 0, "class_names": ["p", "q", "r"]}, path)
    pool = load_pool({"source": "tensors", "path": str(path)})
    assert pool.x.dtype == np.float32 and pool.x.shape == (12, 2, 3, 3)
    assert np.allclose(pool.x, x.numpy()) and np.array_equal(pool.y, y.numpy())
    assert np.array_equal(pool.train, (y != 0).numpy()) and pool.class_names == ["p", "q", "r"]
    torch.save([x, y], tmp_path / "list.pt")
    with pytest.raises(DataError) as exc:
        load_pool({"source": "tensors", "path": str(tmp_path / "list.pt")})
    one_line(exc, "data.path", "dict")


@pytest.mark.parametrize(("arrays", "problem"), [
    ({"x": np.zeros((4, 2))}, "missing key 'y'"),
    ({"x": np.zeros((4, 2), np.int32), "y": np.zeros(4, int)}, "dtype int32"),
    ({"x": np.zeros((4, 2)), "y": np.zeros(3, int)}, "4 rows"),
    ({"x": np.zeros((4, 2)), "y": np.zeros(4)}, "integer"),
    ({"x": np.zeros((4, 2)), "y": np.zeros(4, int), "train": np.ones(4, int)}, "bool mask"),
    ({"x": np.zeros((4, 2)), "y": np.arange(4), "class_names": np.array(["a"])}, "class_names"),
    ({"x": np.zeros((4, 2)), "y": np.zeros(4, int), "extra": np.ones(1)}, "'extra'"),
    ({"x": np.zeros((4, 2, 2), np.uint8)[:, 0], "y": np.zeros(4, int)}, "uint8 x"),
    ({"x": np.full((4, 2), np.nan), "y": np.zeros(4, int)}, "NaN"),
])
def test_tensors_malformed(tmp_path: Path, arrays: dict, problem: str) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError) as exc:
        load_pool({"source": "tensors", "path": str(path)})
    assert one_line(exc, "data.path", problem).startswith("data.path:")


def test_tensors_bad_paths(tmp_path: Path) -> None:
    with pytest.raises(DataError) as exc:
        load_pool({"source": "tensors", "path": str(tmp_path / "none.npz")})
    one_line(exc, "data.path", "no file")
    (tmp_path / "data.csv").write_text("1,2\n")
    with pytest.raises(DataError) as exc:
        load_pool({"source": "tensors", "path": str(tmp_path / "data.csv")})
    one_line(exc, "data.path", ".npz or .pt")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(DataError) as exc:
        load_pool({"source": "tensors", "path": str(tmp_path / "junk.npz")})
    one_line(exc, "data.path", "cannot read")


# --------------------------------------------------------------------------- registry


def test_registry_errors() -> None:
    with pytest.raises(ConfigError) as exc:
        load_pool({"source": "imagenet"})
    one_line(exc, "data.source", "unknown data source 'imagenet'", "synthetic", "mnist")
    with pytest.raises(ConfigError) as exc:
        load_pool({"seed": 1})
    one_line(exc, "data.source", "missing")
    with pytest.raises(ConfigError) as exc:
        load_pool({"source": "synthetic", "colour": "red"})
    one_line(exc, "data.colour", "unknown key")
    with pytest.raises(ConfigError) as exc:
        load_pool({"source": "synthetic", "seed": "one"})
    one_line(exc, "data.seed", "integer")
    with pytest.raises(ConfigError) as exc:
        load_pool({"source": "digits", "test_fraction": "x"}, key="stream.data")
    one_line(exc, "stream.data.test_fraction")
    with pytest.raises(ConfigError) as exc:
        load_pool(["synthetic"])  # type: ignore[arg-type]
    one_line(exc, "data")


def test_registry_listing_and_no_torch() -> None:
    names = [name for name, _ in describe_sources()]
    assert names == list(SOURCES) and {"synthetic", "digits", "mnist", "cifar100",
                                       "tensors"} <= set(names)
    assert all(doc and "\n" not in doc for _, doc in describe_sources())
    assert SOURCES["mnist"].needs_root and not SOURCES["synthetic"].needs_root
    code = ("import sys, clenv.data.registry as r; r.load_pool({'source': 'synthetic', "
            "'train_per_class': 1, 'test_per_class': 1}); assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
