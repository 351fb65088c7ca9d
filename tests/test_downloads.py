"""The download path of the data sources, offline: a thread serves small fixture files in the
official formats on 127.0.0.1, and each torchvision class's URL and md5 tables are pointed at it,
so ``data.download: true`` runs torchvision's real ``download_url`` against a local server."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import os
import pickle
import subprocess
import sys
import tarfile
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torchvision.datasets as tv
import yaml
from scipy.io import savemat

from clenv.cli import main
from clenv.data.registry import load_pool
from clenv.errors import DataError, EnvironmentFailure
from tests.conftest import REPO, one_line

PROXY_VARS = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")

# --------------------------------------------------------------------------- local server


class FixtureServer:
    """What the local server serves (``files``: URL path -> bytes) and what it was asked
    (``requests``). ``mode``: serve whole files, ``truncate`` (announce the full length, send
    half, close) or ``stall`` (send half, then wait for ``release``)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        self.mode = "serve"
        self.release = threading.Event()


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        fixture: FixtureServer = self.server.fixture
        fixture.requests.append(self.path)
        body = fixture.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            if fixture.mode == "serve":
                self.wfile.write(body)
                return
            self.wfile.write(body[:len(body) // 2])
            self.wfile.flush()
            if fixture.mode == "stall":
                fixture.release.wait(30)
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch):
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.fixture = FixtureServer(f"http://127.0.0.1:{httpd.server_port}")
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02},
                              daemon=True)
    thread.start()
    yield httpd.fixture
    httpd.fixture.release.set()
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


# --------------------------------------------------------------------------- fixture files


def _idx(arr: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, arr.ndim]) + np.asarray(arr.shape, dtype=">u4").tobytes()
    return header + arr.astype(np.uint8).tobytes()


def serve_idx(server: FixtureServer, monkeypatch: pytest.MonkeyPatch, class_name: str,
              n_train: int = 200, n_test: int = 40) -> dict[str, np.ndarray]:
    """Serve four IDX .gz files under /<class_name>/ and point the torchvision class at them."""
    rng = np.random.default_rng(len(class_name))
    arrays = {"train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
              "train-labels-idx1-ubyte": rng.permutation(np.arange(n_train) % 10),
              "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
              "t10k-labels-idx1-ubyte": np.arange(n_test) % 10}
    resources = []
    for stem, arr in arrays.items():
        data = gzip.compress(_idx(arr))
        server.files[f"/{class_name}/{stem}.gz"] = data
        resources.append((f"{stem}.gz", _md5(data)))
    cls = getattr(tv, class_name)
    monkeypatch.setattr(cls, "mirrors", [f"{server.url}/{class_name}/"])
    monkeypatch.setattr(cls, "resources", resources)
    return arrays


def _tar_gz(members: dict[str, bytes], folder: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        entry = tarfile.TarInfo(folder)
        entry.type, entry.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(entry)
        for name, data in members.items():
            entry = tarfile.TarInfo(f"{folder}/{name}")
            entry.size = len(data)
            tar.addfile(entry, io.BytesIO(data))
    return buffer.getvalue()


def serve_cifar(server: FixtureServer, monkeypatch: pytest.MonkeyPatch,
                class_name: str) -> dict[str, np.ndarray]:
    """Serve a tiny archive with the official member layout of torchvision's ``class_name``
    (CIFAR10: five data batches, test_batch, batches.meta, readme.html; CIFAR100: train, test,
    meta, file.txt~) and point the class's url, tgz_md5 and file lists at it."""
    rng = np.random.default_rng(3)
    cls = getattr(tv, class_name)
    members: dict[str, bytes] = {}
    images: dict[str, np.ndarray] = {}
    if class_name == "CIFAR10":
        for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
            data = rng.integers(0, 256, (6, 3072), dtype=np.uint8)
            images[name] = data
            labels = [(i + j) % 10 for j in range(6)]
            members[name] = pickle.dumps({b"batch_label": name.encode(), b"labels": labels,
                                          b"data": data, b"filenames": [b"x.png"] * 6},
                                         protocol=2)
        members["batches.meta"] = pickle.dumps(
            {b"label_names": [f"class{k}".encode() for k in range(10)], b"num_vis": 3072,
             b"num_cases_per_batch": 6}, protocol=2)
        members["readme.html"] = b"<html></html>"
    else:
        for name, n in (("train", 4), ("test", 2)):
            fine = np.repeat(np.arange(6), n)
            data = rng.integers(0, 256, (len(fine), 3072), dtype=np.uint8)
            images[name] = data
            members[name] = pickle.dumps({b"filenames": [b"f"] * len(fine), b"batch_label": b"x",
                                          b"fine_labels": fine.tolist(),
                                          b"coarse_labels": (fine // 2).tolist(), b"data": data},
                                         protocol=2)
        members["meta"] = pickle.dumps(
            {b"fine_label_names": [f"fine{k}".encode() for k in range(6)],
             b"coarse_label_names": [f"coarse{k}".encode() for k in range(3)]}, protocol=2)
        members["file.txt~"] = b""
    archive = _tar_gz(members, cls.base_folder)
    server.files[f"/{cls.filename}"] = archive
    monkeypatch.setattr(cls, "url", f"{server.url}/{cls.filename}")
    monkeypatch.setattr(cls, "tgz_md5", _md5(archive))
    monkeypatch.setattr(cls, "train_list", [[n, _md5(members[n])] for n, _ in cls.train_list])
    monkeypatch.setattr(cls, "test_list", [[n, _md5(members[n])] for n, _ in cls.test_list])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": _md5(members[cls.meta["filename"]])})
    return images


def serve_svhn(server: FixtureServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, dict]:
    """Serve tiny train/test .mat files (X: 32x32x3xN uint8, y: Nx1 in 1..10) and point SVHN's
    split_list at them."""
    rng = np.random.default_rng(4)
    split_list = dict(tv.SVHN.split_list)
    written = {}
    for split, n in (("train", 12), ("test", 5)):
        mat = {"X": rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8),
               "y": (np.arange(n) % 10 + 1).astype(np.uint8).reshape(n, 1)}
        buffer = io.BytesIO()
        savemat(buffer, mat)
        data = buffer.getvalue()
        filename = split_list[split][1]
        server.files[f"/svhn/{filename}"] = data
        split_list[split] = [f"{server.url}/svhn/{filename}", filename, _md5(data)]
        written[split] = mat
    monkeypatch.setattr(tv.SVHN, "split_list", split_list)
    return written


def _files(root: Path) -> list[str]:
    """Every file and folder under root, relative, sorted."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


# --------------------------------------------------------------------------- download, cache hit


@pytest.mark.parametrize(("source", "class_name", "first_name"),
                         [("mnist", "MNIST", "zero"), ("fashion_mnist", "FashionMNIST",
                                                       "T-shirt/top"),
                          ("kmnist", "KMNIST", "o")])
def test_idx_download_then_cache_hit(server, monkeypatch, tmp_path, source, class_name,
                                     first_name) -> None:
    arrays = serve_idx(server, monkeypatch, class_name)
    cfg = {"source": source, "root": str(tmp_path), "download": True}
    pool = load_pool(cfg)
    raw = tmp_path / class_name / "raw"
    assert _files(tmp_path) == [class_name, f"{class_name}/raw"] + sorted(
        f"{class_name}/raw/{stem}.gz" for stem in arrays)  # no temp file left
    for stem in arrays:
        assert (raw / f"{stem}.gz").read_bytes() == server.files[f"/{class_name}/{stem}.gz"]
    assert pool.meta["split"] == "official" and pool.class_names[0] == first_name
    assert np.array_equal(pool.x[pool.train][:, 0], arrays["train-images-idx3-ubyte"])
    assert np.array_equal(pool.y[~pool.train], arrays["t10k-labels-idx1-ubyte"])
    asked = len(server.requests)
    assert asked >= 4
    again = load_pool(cfg)
    assert len(server.requests) == asked  # the cache answers: no HTTP request at all
    assert np.array_equal(again.x, pool.x) and np.array_equal(again.y, pool.y)


def test_default_root_is_clenv_data(server, monkeypatch, tmp_path) -> None:
    arrays = serve_idx(server, monkeypatch, "MNIST")
    monkeypatch.setenv("CLENV_DATA", str(tmp_path / "cache"))
    pool = load_pool({"source": "mnist", "download": True})
    assert pool.meta["root"] == str(tmp_path / "cache" / "MNIST" / "raw")
    assert len(pool.y) == len(arrays["train-labels-idx1-ubyte"]) + 40


def test_download_beside_a_test_only_root(server, monkeypatch, tmp_path) -> None:
    """A root holding the t10k pair only (like the in-repo test set): download fetches the full
    set into root/MNIST/raw and reads that, with the official split."""
    arrays = serve_idx(server, monkeypatch, "MNIST")
    for stem in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (tmp_path / stem).write_bytes(_idx(arrays[stem]))
    assert load_pool({"source": "mnist", "root": str(tmp_path)}).meta["split"] == "seeded"
    pool = load_pool({"source": "mnist", "root": str(tmp_path), "download": True})
    assert pool.meta["split"] == "official" and pool.train.sum() == 200


@pytest.mark.parametrize(("source", "class_name"), [("cifar10", "CIFAR10"),
                                                    ("cifar100", "CIFAR100")])
def test_cifar_download_then_cache_hit(server, monkeypatch, tmp_path, source,
                                       class_name) -> None:
    images = serve_cifar(server, monkeypatch, class_name)
    cls = getattr(tv, class_name)
    cfg = {"source": source, "root": str(tmp_path), "download": True}
    pool = load_pool(cfg)
    expected = sorted(n for n, _ in cls.train_list + cls.test_list) + [cls.meta["filename"]]
    assert _files(tmp_path) == [cls.base_folder] + sorted(f"{cls.base_folder}/{n}"
                                                          for n in expected)
    train_names = [n for n, _ in cls.train_list]
    assert np.array_equal(pool.x[pool.train].reshape(-1, 3072),
                          np.concatenate([images[n] for n in train_names]))
    if source == "cifar10":
        assert pool.class_names == [f"class{k}" for k in range(10)] and len(pool.y) == 36
        assert pool.y[:6].tolist() == list(range(6))
    else:
        assert pool.depth == 2 and pool.tree_names == [["coarse0", "coarse1", "coarse2"]]
    asked = len(server.requests)
    assert asked >= 1
    again = load_pool(cfg)
    assert len(server.requests) == asked
    assert np.array_equal(again.x, pool.x)


def test_svhn_download_then_cache_hit(server, monkeypatch, tmp_path) -> None:
    written = serve_svhn(server, monkeypatch)
    cfg = {"source": "svhn", "root": str(tmp_path), "download": True}
    pool = load_pool(cfg)
    assert _files(tmp_path) == ["test_32x32.mat", "train_32x32.mat"]
    assert pool.x.shape == (17, 3, 32, 32) and pool.train.sum() == 12
    x_mat = written["train"]["X"]
    assert np.array_equal(pool.x[2], x_mat[:, :, :, 2].transpose(2, 0, 1))  # X[h, w, c, i]
    assert pool.y[:10].tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0]  # label 10 is the digit 0
    asked = len(server.requests)
    load_pool(cfg)
    assert len(server.requests) == asked


def test_check_downloads_then_run_hits_the_cache(server, monkeypatch, tmp_path, small_cfg,
                                                capsys) -> None:
    serve_idx(server, monkeypatch, "MNIST")
    monkeypatch.setenv("CLENV_DATA", str(tmp_path / "cache"))
    config = _write_config(tmp_path, small_cfg, {"source": "mnist", "download": True})
    assert main(["check", str(config)]) == 0
    asked = len(server.requests)
    assert asked >= 4 and (tmp_path / "cache" / "MNIST" / "raw").is_dir()
    out = tmp_path / "out"
    assert main(["run", str(config), "--out", str(out), "--quiet"]) == 0, capsys.readouterr().err
    assert len(server.requests) == asked and (out / "metrics.json").is_file()


# --------------------------------------------------------------------------- failures


def _write_config(tmp_path: Path, small_cfg: dict, data: dict) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({**small_cfg, "data": data}))
    return path


@pytest.mark.parametrize("case", ["mnist file", "cifar10 archive", "cifar100 member", "svhn"])
def test_wrong_checksum_exits_1_and_leaves_nothing(server, monkeypatch, tmp_path, small_cfg,
                                                   capsys, case) -> None:
    source = case.split()[0]
    if source == "mnist":
        serve_idx(server, monkeypatch, "MNIST")
        resources = list(tv.MNIST.resources)
        resources[1] = (resources[1][0], "0" * 32)  # the labels file: the images already came
        monkeypatch.setattr(tv.MNIST, "resources", resources)
    elif case == "cifar10 archive":
        serve_cifar(server, monkeypatch, "CIFAR10")
        monkeypatch.setattr(tv.CIFAR10, "tgz_md5", "0" * 32)
    elif case == "cifar100 member":
        serve_cifar(server, monkeypatch, "CIFAR100")
        monkeypatch.setattr(tv.CIFAR100, "test_list", [["test", "0" * 32]])
    else:
        serve_svhn(server, monkeypatch)
        split_list = dict(tv.SVHN.split_list)
        split_list["test"] = split_list["test"][:2] + ["0" * 32]
        monkeypatch.setattr(tv.SVHN, "split_list", split_list)
    root = tmp_path / "data"
    config = _write_config(tmp_path, small_cfg, {"source": source, "root": str(root),
                                                 "download": True})
    out = tmp_path / "out"
    assert main(["run", str(config), "--out", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "0" * 32 in err[-1], err[-1]
    assert "Traceback" not in "\n".join(err)
    assert not out.exists()
    leftovers = [p for p in root.rglob("*") if p.is_file() or p.name.endswith(".part")]
    if source in ("mnist", "svhn"):  # the files verified before the bad one stay, whole
        prefix = {"mnist": "/MNIST/", "svhn": "/svhn/"}[source]
        assert leftovers and all(server.files[prefix + p.name] == p.read_bytes()
                                 for p in leftovers), leftovers
    else:
        assert leftovers == []  # nothing half-extracted


def test_interrupted_transfer_then_next_run_downloads(server, monkeypatch, tmp_path) -> None:
    arrays = serve_idx(server, monkeypatch, "MNIST")
    server.mode = "truncate"
    cfg = {"source": "mnist", "root": str(tmp_path), "download": True}
    with pytest.raises(EnvironmentFailure) as exc:
        load_pool(cfg)
    one_line(exc, "train-images-idx3-ubyte.gz", "cut short")
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []  # the temp file is removed
    server.mode = "serve"
    asked = len(server.requests)
    pool = load_pool(cfg)
    assert len(server.requests) > asked
    assert np.array_equal(pool.x[pool.train][:, 0], arrays["train-images-idx3-ubyte"])


def test_killed_download_leaves_only_a_temp_file(server, monkeypatch, tmp_path) -> None:
    """A process killed mid-transfer leaves a temp file, never a target name; the next run
    downloads again and the temp file goes."""
    arrays = serve_idx(server, monkeypatch, "MNIST")
    server.mode = "stall"
    root = tmp_path / "data"
    script = textwrap.dedent(f"""
        import torchvision.datasets as tv
        tv.MNIST.mirrors = {tv.MNIST.mirrors!r}
        tv.MNIST.resources = {tv.MNIST.resources!r}
        from clenv.data.registry import load_pool
        load_pool({{"source": "mnist", "root": {str(root)!r}, "download": True}})
    """)
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS}
    env.update(PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    child = subprocess.Popen([sys.executable, "-c", script], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    part = root / "MNIST" / "raw" / ".train-images-idx3-ubyte.gz.part"
    deadline = time.monotonic() + 60
    try:
        while not (part.is_file() and part.stat().st_size > 0):
            assert child.poll() is None, "the child ended before the transfer stalled"
            assert time.monotonic() < deadline, "the transfer never started"
            time.sleep(0.02)
    finally:
        child.kill()
        child.wait()
    assert _files(root) == ["MNIST", "MNIST/raw", f"MNIST/raw/{part.name}"]
    assert part.stat().st_size < len(server.files["/MNIST/train-images-idx3-ubyte.gz"])
    server.mode = "serve"
    server.release.set()
    asked = len(server.requests)
    pool = load_pool({"source": "mnist", "root": str(root), "download": True})
    assert len(server.requests) > asked
    assert not part.exists()
    assert np.array_equal(pool.x[pool.train][:, 0], arrays["train-images-idx3-ubyte"])


@pytest.mark.parametrize(("source", "inside"),
                         [("mnist", "MNIST/raw"), ("fashion_mnist", "FashionMNIST/raw"),
                          ("kmnist", "KMNIST/raw"), ("cifar10", None), ("cifar100", None),
                          ("svhn", None)])
def test_offline_without_files_names_root_and_download(tmp_path, source, inside) -> None:
    with pytest.raises(DataError) as exc:
        load_pool({"source": source, "root": str(tmp_path)})
    text = one_line(exc, "data.root", str(tmp_path), "data.download: true")
    if inside:
        assert str(tmp_path / inside) in text


def test_incomplete_cifar_folder_is_not_overwritten(server, monkeypatch, tmp_path) -> None:
    serve_cifar(server, monkeypatch, "CIFAR10")
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "batches.meta").write_bytes(b"mine")
    with pytest.raises(DataError) as exc:
        load_pool({"source": "cifar10", "root": str(tmp_path), "download": True})
    one_line(exc, str(folder), "data_batch_1", "remove that folder")
    assert server.requests == []
    assert _files(tmp_path) == [folder.name, f"{folder.name}/batches.meta"]


def test_offline_cli_exits_2(tmp_path, small_cfg, capsys) -> None:
    config = _write_config(tmp_path, small_cfg, {"source": "cifar10", "root": str(tmp_path)})
    assert main(["check", str(config)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(tmp_path) in err[0] and "data.download: true" in err[0]


def test_list_shows_the_sources(capsys) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("mnist", "fashion_mnist", "kmnist", "cifar10", "cifar100", "svhn"):
        assert f"  {name} " in out
