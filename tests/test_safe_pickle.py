"""The restricted unpickler of the CIFAR files: the official files' layout loads, and a swapped
file that names any other global, or that abuses numpy's reconstructors, is refused in one line
without running anything."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import yaml

from clenv.cli import main
from clenv.data.registry import load_pool
from clenv.data.safe_pickle import RefusedGlobal, load_restricted
from clenv.errors import DataError
from tests.conftest import one_line

# The bytes Python 2's cPickle (protocol 2, which wrote the official CIFAR files) gives for
# numpy.arange(3, dtype=uint8): numpy.core.multiarray._reconstruct of an empty ndarray, a
# dtype('u1', 0, 1) with its state, then BUILD with (1, (3,), dtype, False, b'\x00\x01\x02');
# byte strings are SHORT_BINSTRING ('U'), read back as bytes.
PY2_ARANGE3 = (b"\x80\x02cnumpy.core.multiarray\n_reconstruct\nq\x01cnumpy\nndarray\nq\x02"
               b"K\x00\x85q\x03U\x01bq\x04\x87q\x05Rq\x06(K\x01K\x03\x85q\x07cnumpy\ndtype\nq\x08"
               b"U\x02u1q\tK\x00K\x01\x87q\nRq\x0b(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff"
               b"\xffK\x00tq\x0cb\x89U\x03\x00\x01\x02q\rtq\x0eb.")


def _load(tmp_path: Path, data: bytes):
    path = tmp_path / "file"
    path.write_bytes(data)
    return load_restricted(path)


def test_python2_layout_of_the_official_files(tmp_path: Path) -> None:
    arr = _load(tmp_path, PY2_ARANGE3)
    assert type(arr) is np.ndarray and arr.dtype == np.uint8 and arr.tolist() == [0, 1, 2]


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_python3_protocols_round_trip(tmp_path: Path, protocol: int) -> None:
    value = {b"data": np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072) % 251,
             b"labels": [3, 7], b"batch_label": b"training batch 1 of 5", "n": 2,
             "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)), "t": (1.5, None, True)}
    back = _load(tmp_path, pickle.dumps(value, protocol=protocol))
    assert back.keys() == value.keys()
    assert np.array_equal(back[b"data"], value[b"data"]) and back[b"data"].dtype == np.uint8
    assert np.array_equal(back["fortran"], value["fortran"])
    assert back[b"labels"] == [3, 7] and back["t"] == (1.5, None, True)


class _System:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        import os

        return os.system, (self.command,)


def _payloads(marker: Path) -> dict[str, bytes]:
    """Pickles that would run code or corrupt memory if the unpickler trusted them."""
    command = f"touch {marker}".encode()
    ndarray_call = b"\x80\x02cnumpy\nndarray\nK\x10\x85\x85R."
    return {
        "os.system": b"cos\nsystem\n(S'" + command + b"'\ntR.",
        "posix.system": pickle.dumps({b"data": _System(command.decode())}, protocol=2),
        "builtins.eval": pickle.dumps(eval, protocol=2),
        "object dtype": pickle.dumps(np.array([1, "x"], dtype=object), protocol=2),
        "dtype flags": PY2_ARANGE3.replace(b"J\xff\xff\xff\xffK\x00t", b"J\xff\xff\xff\xffK?t"),
        "ndarray call": ndarray_call,
        "big reconstruct": PY2_ARANGE3.replace(b"K\x00\x85q\x03", b"J\x00\xe1\xf5\x05\x85q\x03"),
    }


@pytest.mark.parametrize("name", list(_payloads(Path("x"))))
def test_crafted_pickles_are_refused(tmp_path: Path, name: str) -> None:
    marker = tmp_path / "pwned"
    with pytest.raises(RefusedGlobal):
        _load(tmp_path, _payloads(marker)[name])
    assert not marker.exists()


def _cifar100_folder(folder: Path) -> None:
    folder.mkdir(parents=True)
    fine = [0, 1]
    for split in ("train", "test"):
        (folder / split).write_bytes(pickle.dumps(
            {b"data": np.zeros((2, 3072), np.uint8), b"fine_labels": fine,
             b"coarse_labels": fine}, protocol=2))
    (folder / "meta").write_bytes(pickle.dumps(
        {b"fine_label_names": [b"a", b"b"], b"coarse_label_names": [b"A", b"B"]}, protocol=2))


def test_crafted_cifar_file_is_one_line_and_runs_nothing(tmp_path: Path, small_cfg: dict,
                                                         capsys) -> None:
    """A payload that would create a file, put in a CIFAR-100 meta file and in a CIFAR-10 batch:
    one line naming the global, exit 2 from the CLI, no file created. (The pickle.load of the
    old cifar100 source ran it.)"""
    marker = tmp_path / "pwned"
    payload = _payloads(marker)["os.system"]
    folder = tmp_path / "c100" / "cifar-100-python"
    _cifar100_folder(folder)
    assert load_pool({"source": "cifar100", "root": str(folder.parent)}).n_classes == 2
    (folder / "meta").write_bytes(payload)
    with pytest.raises(DataError) as exc:
        load_pool({"source": "cifar100", "root": str(folder.parent)})
    one_line(exc, str(folder / "meta"), "refused", "os.system", "replace the file")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({**small_cfg, "data": {"source": "cifar100",
                                                            "root": str(folder.parent)}}))
    assert main(["check", str(config)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "os.system" in err[0]

    c10 = tmp_path / "c10"
    c10.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]:
        (c10 / name).write_bytes(payload if name == "data_batch_3" else pickle.dumps(
            {b"data": np.zeros((1, 3072), np.uint8), b"labels": [0],
             b"label_names": [b"only"]}, protocol=2))
    with pytest.raises(DataError) as exc:
        load_pool({"source": "cifar10", "root": str(c10)})
    one_line(exc, "data_batch_3", "os.system")
    assert not marker.exists()
