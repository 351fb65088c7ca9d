"""A restricted unpickler for the CIFAR python files: it rebuilds numpy arrays and dtypes, dicts,
lists, tuples, bytes, str, int, float, bool and None, and refuses everything else, so a file
swapped under ``data.root`` cannot call code (``os.system`` and the like).

An unpickler calls ``find_class`` for every global a pickle names and ``__setstate__`` for every
BUILD; ours answers only the few globals numpy writes when it pickles an array (``_reconstruct``,
``ndarray``, ``dtype``; the ``_frombuffer`` of protocol 5; ``_codecs.encode`` for latin-1 byte
strings of Python 3 protocol 2), each wrapped so that it builds nothing but a plain array or
dtype, and it applies a BUILD only to such an array (its shape, dtype and bytes) or dtype (its
standard state: a pickle could otherwise set the flags that mark raw bytes as Python objects).
It runs on Python's pure-Python unpickler, whose opcodes can be overridden; the large arrays are
single byte strings, so this costs little.
"""

from __future__ import annotations

import importlib
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from clenv.errors import DataError

ALLOWED = "numpy arrays, dicts, lists, bytes, str and int"


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle names a global outside the allowed set."""


def _numpy_function(module: str, name: str):
    """numpy's own private reconstructor (``numpy._core`` in numpy 2, ``numpy.core`` in 1.x)."""
    for prefix in ("numpy._core", "numpy.core"):
        try:
            return getattr(importlib.import_module(f"{prefix}.{module}"), name)
        except (ImportError, AttributeError):
            continue
    raise RuntimeError(f"numpy has no {module}.{name}")  # pragma: no cover - numpy layout change


def _plain_dtype(value: Any) -> np.dtype:
    dtype = np.dtype(value)
    if dtype.hasobject:
        raise RefusedGlobal(f"an array of Python objects (dtype {dtype}); only {ALLOWED} are "
                            f"allowed")
    return dtype


class _NdarrayType:
    """Stands for ``numpy.ndarray`` in a pickle: a reconstructor may name it as the array type,
    but calling it (which would allocate an array of any size) is refused."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise RefusedGlobal("a direct call of numpy.ndarray; only pickled arrays are allowed")


_NDARRAY = _NdarrayType()


def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    """numpy's array reconstructor, limited to the empty plain array its pickles start from
    (the data comes next, through ``__setstate__``, and must be in the file)."""
    if subtype is not _NDARRAY:
        raise RefusedGlobal(f"an array of type {type(subtype).__name__}; only numpy.ndarray is "
                            f"allowed")
    if not isinstance(shape, tuple) or not all(isinstance(d, int) for d in shape) \
            or int(np.prod(shape)) != 0:
        raise RefusedGlobal(f"an array reconstructed with shape {shape!r:.60}; numpy pickles "
                            f"start from an empty array")
    return _numpy_function("multiarray", "_reconstruct")(np.ndarray, shape, _plain_dtype(dtype))


def _frombuffer(buffer: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    """numpy's protocol-5 reconstructor: an array over bytes held in the file."""
    if not isinstance(buffer, (bytes, bytearray, pickle.PickleBuffer)):
        raise RefusedGlobal(f"an array over a {type(buffer).__name__}; only bytes are allowed")
    return np.frombuffer(buffer, dtype=_plain_dtype(dtype)).reshape(shape, order=order)


def _dtype(spec: Any, align: Any = False, copy: Any = False) -> np.dtype:
    """``numpy.dtype`` of a type code (``'u1'``, ``b'<i8'``): no structured or object dtypes."""
    if not isinstance(spec, (str, bytes)):
        raise RefusedGlobal(f"a dtype built from {type(spec).__name__}; only type codes are "
                            f"allowed")
    return _plain_dtype(np.dtype(_text_state(spec), bool(align), bool(copy)))


def _latin1(text: Any, encoding: Any = "utf-8") -> bytes:
    """``_codecs.encode`` as Python 3 protocol 2 uses it: a str to bytes in latin-1."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise RefusedGlobal(f"_codecs.encode with encoding {encoding!r:.20}; only latin1 of a "
                            f"str is allowed")
    return text.encode("latin1")


_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _dtype,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("_codecs", "encode"): _latin1,
}


def _text_state(value: Any) -> Any:
    """A pickled state with Python 2 byte strings (read with encoding='bytes') as str."""
    if isinstance(value, bytes):
        return value.decode("latin1")
    if isinstance(value, tuple):
        return tuple(_text_state(v) for v in value)
    return value


def _build(inst: Any, state: Any) -> None:
    """Apply a BUILD opcode, allowed only on a plain array or dtype."""
    if isinstance(inst, np.dtype):
        if _text_state(state) != inst.__reduce__()[2]:
            raise RefusedGlobal(f"a dtype {inst} with a non-standard state {state!r:.60}")
        return  # the dtype is already exactly what its state describes
    if type(inst) is np.ndarray and inst.size == 0 and isinstance(state, tuple) \
            and len(state) == 5:
        _, shape, dtype, _, data = state
        if not isinstance(dtype, np.dtype) or dtype.hasobject or dtype.fields is not None \
                or dtype.subdtype is not None:
            raise RefusedGlobal(f"an array of dtype {dtype!r:.60}; only plain numeric dtypes "
                                f"are allowed")
        if not isinstance(data, (bytes, bytearray)) or not isinstance(shape, tuple):
            raise RefusedGlobal(f"an array state holding {type(data).__name__}; only bytes are "
                                f"allowed")
        inst.__setstate__(state)
        return
    raise RefusedGlobal(f"setting the state of a {type(inst).__name__}; only {ALLOWED} are "
                        f"allowed")


class RestrictedUnpickler(pickle._Unpickler):
    """A pure-Python unpickler whose globals are only numpy's array and dtype reconstructors and
    whose BUILD opcode only fills a plain array or checks a plain dtype."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _GLOBALS[(module, name)]
        except KeyError:
            raise RefusedGlobal(f"global {module}.{name:.60}; only {ALLOWED} are allowed") \
                from None

    def load_build(self) -> None:
        state = self.stack.pop()
        _build(self.stack[-1], state)

    dispatch[pickle.BUILD[0]] = load_build


def load_restricted(path: Path) -> Any:
    """Unpickle ``path`` (bytes kept as bytes, like Python 2's str) with the restricted
    unpickler; raises ``RefusedGlobal`` for anything outside the allowed set, other exceptions
    for a bad file."""
    with open(path, "rb") as fh:
        return RestrictedUnpickler(fh, encoding="bytes").load()


def load_dict(path: Path, keys: tuple[str, ...], what: str) -> dict[str, Any]:
    """Load a pickled dict (a CIFAR batch or meta file) with the restricted unpickler; return
    its entries under str keys, checking ``keys`` are there. Errors are one-line DataErrors."""
    try:
        raw = load_restricted(path)
    except RefusedGlobal as exc:
        raise DataError(f"{path}: refused to unpickle {exc} in a {what} file; replace the "
                        f"file") from exc
    except Exception as exc:  # any unpickling failure means a bad file
        raise DataError(f"{path}: cannot unpickle {what} file ({type(exc).__name__}: "
                        f"{exc}); replace the file") from exc
    if not isinstance(raw, dict):
        raise DataError(f"{path}: expected a pickled dict, got {type(raw).__name__}; replace it")
    entries = {text(k): v for k, v in raw.items()}
    missing = [k for k in keys if k not in entries]
    if missing:
        raise DataError(f"{path}: missing key(s) {', '.join(missing)}; replace the file")
    return entries


def text(value: Any) -> Any:
    """A Python 2 byte string (as read with encoding='bytes') as str; other values unchanged."""
    return value.decode("latin1") if isinstance(value, bytes) else value
