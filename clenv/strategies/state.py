"""Explicit strategy state for checkpoints: declared attributes, encoded as tensors and plain
types, so that a checkpoint loads with ``torch.load(..., weights_only=True)`` and nothing in it
is ever unpickled as an arbitrary object.

How a class takes part (docs/sweeps.md, "The state protocol"):

- it lists the attributes that learning changes in ``state_attributes`` (a tuple of names;
  the names of every class in the MRO are collected, base classes first, so a subclass lists
  only its own);
- ``capture(obj)`` returns ``{name: encode(value)}`` for each declared attribute that is set,
  and ``restore(obj, state)`` sets them back (the state must name no other attribute);
- ``Stateful`` is a mixin giving ``state_dict()`` / ``load_state_dict()`` from these two.

``encode`` turns a value into the checkpoint's vocabulary: None, bool, int, float, str, torch
tensors, and dicts (str or int keys), lists and tuples of them. Other values become tagged
dicts ``{"__clenv__": kind, ...}``: numpy arrays and scalars (dtype, shape and the raw bytes
as a uint8 tensor; numeric and fixed-width string dtypes only), numpy Generators
(``bit_generator.state``), torch Generators (their state tensor), deques, and any object with
its own ``state_dict()`` / ``load_state_dict()`` (the model, the optimiser, replay memories,
plug-ins), whose state is stored as it returns it.
Anything else is refused when the checkpoint is first taken, naming the attribute.

``decode(value, current)`` is the inverse. It restores *into* the object the attribute holds
after ``setup(spec)`` where it can: a Generator gets its state set in place (so a generator
shared by the strategy and its replay buffer stays shared), a stateful object has
``load_state_dict`` called, a tensor goes to the device of the current one.
``check_plain(data)`` checks, before anything is decoded, that a loaded checkpoint holds only
this vocabulary (only known tags; no bytes, which could hide a pickle).
"""

from __future__ import annotations

from collections import deque
from typing import Any, ClassVar

import numpy as np
import torch

from clenv.errors import UserError

TAG = "__clenv__"
# numeric, boolean and fixed-width string dtypes only (no object, void or datetime arrays)
_ARRAY_KINDS = "biufcUS"
_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")
_KINDS = ("ndarray", "numpy_scalar", "numpy_generator", "torch_generator", "deque", "object")


class CheckpointUnsupported(UserError):
    """The strategy cannot save or restore its state."""


class StateMismatch(UserError):
    """A checkpoint's state does not fit the object it is loaded into."""


class _Unencodable(Exception):
    def __init__(self, path: str, value: Any) -> None:
        super().__init__(path)
        self.path = path
        self.type_name = type(value).__name__


def state_names(cls: type) -> tuple[str, ...]:
    """The declared ``state_attributes`` of ``cls`` and its bases, base classes first."""
    names: list[str] = []
    for klass in reversed(cls.__mro__):
        for name in vars(klass).get("state_attributes", ()):
            if name not in names:
                names.append(name)
    return tuple(names)


# -- encoding ---------------------------------------------------------------------------------
def _array_tag(kind: str, arr: np.ndarray, path: str) -> dict:
    if arr.dtype.kind not in _ARRAY_KINDS:
        raise _Unencodable(path, arr)
    raw = np.frombuffer(np.ascontiguousarray(arr).tobytes(), dtype=np.uint8)
    return {TAG: kind, "dtype": arr.dtype.str, "shape": list(arr.shape),
            "data": torch.from_numpy(raw.copy())}


def encode(value: Any, path: str = "") -> Any:
    """``value`` in the checkpoint vocabulary (see the module doc); raises on anything else."""
    if isinstance(value, np.generic):  # before float: np.float64 subclasses float
        return _array_tag("numpy_scalar", np.asarray(value), path)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, torch.Tensor):
        return value.detach()
    if isinstance(value, np.ndarray):
        return _array_tag("ndarray", value, path)
    if isinstance(value, np.random.Generator):
        return {TAG: "numpy_generator", "state": encode(value.bit_generator.state, path)}
    if isinstance(value, torch.Generator):
        return {TAG: "torch_generator", "state": value.get_state()}
    if isinstance(value, deque):
        return {TAG: "deque", "maxlen": value.maxlen,
                "items": [encode(v, f"{path}[{i}]") for i, v in enumerate(value)]}
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, (str, int)) or isinstance(k, bool) or k == TAG:
                raise _Unencodable(f"{path} key {k!r:.40}", k)
            out[k] = encode(v, f"{path}[{k!r}]")
        return out
    if isinstance(value, list):
        return [encode(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, tuple):
        return tuple(encode(v, f"{path}[{i}]") for i, v in enumerate(value))
    if callable(getattr(value, "state_dict", None)) and callable(
            getattr(value, "load_state_dict", None)):
        return {TAG: "object", "state": value.state_dict()}
    raise _Unencodable(path, value)


# -- decoding ---------------------------------------------------------------------------------
def _array(value: dict, path: str) -> np.ndarray:
    try:
        dtype = np.dtype(value["dtype"])
        shape = tuple(int(s) for s in value["shape"])
        data = value["data"]
        if (dtype.kind not in _ARRAY_KINDS or not isinstance(data, torch.Tensor)
                or data.dtype != torch.uint8 or data.dim() != 1):
            raise ValueError("not a numeric array")
        raw = data.cpu().numpy().tobytes()
        if len(raw) != dtype.itemsize * int(np.prod(shape, dtype=np.int64)):
            raise ValueError(f"{len(raw)} bytes for shape {list(shape)} of {dtype}")
        return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
    except (KeyError, TypeError, ValueError) as exc:
        raise StateMismatch(f"{path}: not a valid array ({exc})") from None


def decode(value: Any, current: Any = None, path: str = "") -> Any:
    """The value ``encode`` wrote, restored into ``current`` (the attribute's value after
    setup) where it can be: generators in place, stateful objects by ``load_state_dict``,
    tensors onto ``current``'s device."""
    if isinstance(value, torch.Tensor):
        return value.to(current.device) if isinstance(current, torch.Tensor) else value
    if isinstance(value, list):
        hints = current if isinstance(current, list) and len(current) == len(value) else None
        return [decode(v, hints[i] if hints else None, f"{path}[{i}]")
                for i, v in enumerate(value)]
    if isinstance(value, tuple):
        return tuple(decode(v, None, f"{path}[{i}]") for i, v in enumerate(value))
    if not isinstance(value, dict):
        return value
    kind = value.get(TAG)
    if kind is None:
        hints = current if isinstance(current, dict) else {}
        return {k: decode(v, hints.get(k), f"{path}[{k!r}]") for k, v in value.items()}
    if kind == "ndarray":
        return _array(value, path)
    if kind == "numpy_scalar":
        return _array(value, path)[()]
    if kind == "deque":
        return deque(decode(value.get("items", []), None, path), maxlen=value.get("maxlen"))
    if kind == "numpy_generator":
        state = decode(value.get("state"), None, path)
        gen = current
        if not isinstance(gen, np.random.Generator):
            name = state.get("bit_generator") if isinstance(state, dict) else None
            if name not in _BIT_GENERATORS:
                raise StateMismatch(f"{path}: unknown bit generator {name!r:.40}")
            gen = np.random.Generator(getattr(np.random, name)())
        try:
            gen.bit_generator.state = state
        except (TypeError, ValueError, KeyError) as exc:
            raise StateMismatch(f"{path}: not a numpy generator state ({exc})") from None
        return gen
    if kind == "torch_generator":
        gen = current if isinstance(current, torch.Generator) else torch.Generator()
        try:
            gen.set_state(value["state"])
        except (KeyError, TypeError, RuntimeError) as exc:
            raise StateMismatch(f"{path}: not a torch generator state ({exc})") from None
        return gen
    if kind == "object":
        if not callable(getattr(current, "load_state_dict", None)):
            raise StateMismatch(f"{path}: holds an object state, but the attribute is "
                                f"{type(current).__name__} after setup")
        try:
            current.load_state_dict(value["state"])
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as exc:
            if isinstance(exc, UserError):
                raise
            why = " ".join(str(exc).split())[:200]
            raise StateMismatch(f"{path}: does not fit the {type(current).__name__} built by "
                                f"setup ({why})") from None
        return current
    raise StateMismatch(f"{path}: unknown state tag {kind!r:.40}")


# -- declared attributes ----------------------------------------------------------------------
def capture(owner: Any, names: tuple[str, ...] | None = None) -> dict[str, Any]:
    """``{name: encode(value)}`` for each declared attribute of ``owner`` that is set."""
    names = state_names(type(owner)) if names is None else names
    out: dict[str, Any] = {}
    for name in names:
        if not hasattr(owner, name):
            continue
        try:
            out[name] = encode(getattr(owner, name), name)
        except _Unencodable as exc:
            raise CheckpointUnsupported(
                f"output.checkpoint_every: strategy state: {type(owner).__name__} holds "
                f"attribute {name!r} ({exc.type_name} at {exc.path}), which cannot be "
                "checkpointed; run it without checkpoints, or give that object its own "
                "state_dict()/load_state_dict() (clenv.strategies.state)") from None
    return out


def restore(owner: Any, state: Any, names: tuple[str, ...] | None = None) -> None:
    """Set the declared attributes of ``owner`` from ``capture``'s output; the state must name
    only declared attributes."""
    names = state_names(type(owner)) if names is None else names
    where = type(owner).__name__
    if not isinstance(state, dict):
        raise StateMismatch(f"{where}: expected a mapping of attributes, got "
                            f"{type(state).__name__}")
    extra = [k for k in state if k not in names]
    if extra:
        raise StateMismatch(f"{where}: the checkpoint holds undeclared attribute "
                            f"{str(extra[0])!r:.60}")
    for name in names:
        if name in state:
            setattr(owner, name, decode(state[name], getattr(owner, name, None),
                                        f"{where}.{name}"))


class Stateful:
    """Mixin: ``state_dict()`` / ``load_state_dict()`` of the declared ``state_attributes``."""

    state_attributes: ClassVar[tuple[str, ...]] = ()

    def state_dict(self) -> dict:
        return capture(self)

    def load_state_dict(self, state: dict) -> None:
        restore(self, state)


# -- checking a loaded checkpoint -------------------------------------------------------------
_LEAVES = (type(None), bool, int, float, str, torch.Tensor)


def check_plain(data: Any, what: str) -> None:
    """Raise a UserError unless ``data`` holds only the checkpoint vocabulary: plain types,
    tensors, dicts/lists/tuples of them, and known tags (no bytes, no other objects)."""
    stack: list[tuple[Any, str]] = [(data, "")]
    while stack:
        value, path = stack.pop()
        if isinstance(value, _LEAVES):
            continue
        if isinstance(value, (list, tuple)):
            stack.extend((v, f"{path}[{i}]") for i, v in enumerate(value))
            continue
        if isinstance(value, dict):
            kind = value.get(TAG)
            if kind is not None and kind not in _KINDS:
                _bad(what, path, f"unknown tag {kind!r:.40}")
            for k, v in value.items():
                if not isinstance(k, (str, int)):
                    _bad(what, path, f"a key of type {type(k).__name__}")
                stack.append((v, f"{path}.{k}" if isinstance(k, str) else f"{path}[{k}]"))
            continue
        _bad(what, path, f"a value of type {type(value).__name__}")


def _bad(what: str, path: str, problem: str) -> None:
    raise UserError(f"{what}: not a clenv checkpoint: {problem} at {path.lstrip('.') or 'top'}; "
                    "delete it to rerun from the start")
