"""The explicit strategy state (clenv.strategies.state): every supported kind survives a save
with torch.save and a load with weights_only=True; anything else is refused."""

from __future__ import annotations

import io
from collections import deque

import numpy as np
import pytest
import torch

from clenv.errors import UserError
from clenv.strategies.state import (
    CheckpointUnsupported,
    Stateful,
    StateMismatch,
    check_plain,
    state_names,
)


class Inner(Stateful):
    state_attributes = ("counts",)

    def __init__(self) -> None:
        self.counts = np.zeros(3, dtype=np.int64)


class Base(Stateful):
    state_attributes = ("rng", "tensor", "inner")


class Holder(Base):
    state_attributes = ("gen", "arrays", "scalar", "window", "pair", "nested", "maybe")

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.gen = torch.Generator().manual_seed(seed)
        self.tensor = torch.zeros(4)
        self.inner = Inner()
        self.arrays = [np.zeros((2, 3), dtype=np.float32), np.zeros(0, dtype=np.int64),
                       np.array(["a", "bc"])]
        self.scalar = np.float64(0.0)
        self.window: deque[float] = deque(maxlen=3)
        self.pair = (0, 0.0)
        self.nested = {"k": [1, {2: "x"}], 5: None}
        self.maybe = None


def _through_disk(state: dict) -> dict:
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def test_names_are_collected_base_first():
    assert state_names(Holder)[:3] == ("rng", "tensor", "inner")
    assert "gen" in state_names(Holder)


def test_every_kind_roundtrips_through_a_weights_only_load():
    a = Holder(1)
    a.rng.random(5)
    torch.rand(3, generator=a.gen)
    a.tensor += 2
    a.inner.counts[1] = 7
    a.arrays[0][1, 2] = 1.5
    a.scalar = np.float64(2.25)
    a.window.extend([1.0, 2.0, 3.0, 4.0])
    a.pair = (3, 0.5)
    a.nested = {"k": [2, {3: "y"}], 5: "z"}
    a.maybe = np.int32(4)
    state = _through_disk(a.state_dict())
    check_plain(state, "test")
    b = Holder(2)
    rng_before = b.rng
    b.load_state_dict(state)
    assert b.rng is rng_before  # restored in place: sharing survives
    assert a.rng.integers(0, 10**9) == b.rng.integers(0, 10**9)
    assert torch.equal(torch.rand(3, generator=a.gen), torch.rand(3, generator=b.gen))
    assert torch.equal(b.tensor, a.tensor) and b.inner.counts.tolist() == [0, 7, 0]
    for x, y in zip(a.arrays, b.arrays, strict=True):
        assert x.dtype == y.dtype and np.array_equal(x, y)
    assert type(b.scalar) is np.float64 and b.scalar == 2.25
    assert b.window == deque([2.0, 3.0, 4.0]) and b.window.maxlen == 3
    assert b.pair == (3, 0.5) and b.nested == {"k": [2, {3: "y"}], 5: "z"}
    assert type(b.maybe) is np.int32 and b.maybe == 4


def test_an_unencodable_attribute_is_named():
    a = Holder(0)
    a.nested = {"k": [object()]}
    with pytest.raises(CheckpointUnsupported, match="'nested'.*object"):
        a.state_dict()
    a.nested = {"k": np.array([object()])}  # object arrays are refused too
    with pytest.raises(CheckpointUnsupported, match="'nested'"):
        a.state_dict()


def test_check_plain_refuses_bytes_unknown_tags_and_objects():
    check_plain({"a": [1, 2.0, "s", None, torch.zeros(1)], 3: (True,)}, "f")
    for bad in ({"x": b"\x80\x04pickle"}, {"__clenv__": "pickle", "data": 1},
                {"x": [{1, 2}]}, {(1, 2): 3}):
        with pytest.raises(UserError, match="not a clenv checkpoint"):
            check_plain(bad, "f")


def test_restore_refuses_undeclared_and_malformed_state():
    a = Holder(0)
    with pytest.raises(StateMismatch, match="undeclared attribute 'attributes'"):
        a.load_state_dict({"attributes": 1})
    bad = a.state_dict()
    bad["arrays"][0]["data"] = torch.zeros(3, dtype=torch.uint8)  # wrong byte count
    with pytest.raises(StateMismatch, match="not a valid array"):
        Holder(0).load_state_dict(bad)
    bad = a.state_dict()
    bad["rng"]["state"] = {"bit_generator": "Evil"}
    with pytest.raises(StateMismatch):
        Holder(0).load_state_dict({**bad, "rng": bad["rng"]})
