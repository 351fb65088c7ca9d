"""Generic strategy state for checkpoints: a strategy's attributes pickled with its live model
and optimiser kept out of the pickle.

``pack_attributes`` pickles every instance attribute except the excluded ones; objects listed
in ``live`` (the model, its parameters and buffers, the optimiser) are written as references
by name, so an attribute that points at them (a plugin holding the model, a list of
parameters) points at the live objects again after ``unpack_attributes``. Objects shared by
several attributes (e.g. the strategy's numpy generator and its replay buffer's) stay shared.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

from torch import nn

from clenv.errors import UserError


class CheckpointUnsupported(UserError):
    """The strategy cannot save or restore its state."""


def live_objects(**roots: Any) -> dict[str, Any]:
    """Name -> object for each root and, for nn.Module roots, its parameters and buffers."""
    live: dict[str, Any] = {}
    for name, obj in roots.items():
        if obj is None:
            continue
        live[name] = obj
        if isinstance(obj, nn.Module):
            for pname, p in obj.named_parameters():
                live[f"{name}.param.{pname}"] = p
            for bname, b in obj.named_buffers():
                live[f"{name}.buffer.{bname}"] = b
    return live


class _Pickler(pickle.Pickler):
    def __init__(self, fh, by_id: dict[int, str]) -> None:
        super().__init__(fh, protocol=pickle.HIGHEST_PROTOCOL)
        self.by_id = by_id

    def persistent_id(self, obj: Any) -> str | None:
        return self.by_id.get(id(obj))


class _Unpickler(pickle.Unpickler):
    def __init__(self, fh, live: dict[str, Any]) -> None:
        super().__init__(fh)
        self.live = live

    def persistent_load(self, pid: str) -> Any:
        if pid not in self.live:
            raise pickle.UnpicklingError(f"no live object {pid!r}")
        return self.live[pid]


def pack_attributes(owner: Any, exclude: tuple[str, ...], live: dict[str, Any]) -> bytes:
    """Pickle ``owner.__dict__`` minus ``exclude``, writing ``live`` objects by name."""
    attrs = {k: v for k, v in vars(owner).items() if k not in exclude}
    by_id = {id(obj): name for name, obj in live.items()}
    buf = io.BytesIO()
    try:
        _Pickler(buf, by_id).dump(attrs)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        bad = _first_unpicklable(attrs, by_id)
        why = " ".join(str(exc).split())[:120]
        raise CheckpointUnsupported(
            f"output.checkpoint_every: strategy {type(owner).__name__} holds attribute {bad!r}, "
            f"which cannot be checkpointed ({why}); run it without checkpoints, or give the "
            "strategy its own state_dict()/load_state_dict()") from None
    return buf.getvalue()


def unpack_attributes(data: bytes, live: dict[str, Any]) -> dict[str, Any]:
    """The attributes ``pack_attributes`` wrote, with live references resolved."""
    return _Unpickler(io.BytesIO(data), live).load()


def _first_unpicklable(attrs: dict, by_id: dict[int, str]) -> str:
    for k, v in attrs.items():
        try:
            _Pickler(io.BytesIO(), by_id).dump(v)
        except Exception:  # noqa: BLE001 - any failure names the attribute
            return k
    return "?"
