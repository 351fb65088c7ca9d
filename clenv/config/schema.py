"""A small schema language for config sections: each key is a Field with a type, a default and a
range. ``validate`` fills defaults and reports the first problem with its dotted key path."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from clenv.errors import ConfigError

REQUIRED = object()

_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true/false",
               list: "a list", dict: "a mapping"}


@dataclass(frozen=True)
class Field:
    """One config key: ``kind`` is int, float, str, bool, list or dict (float accepts ints).
    For a list, ``min``/``max`` bound each item. Every float must be finite, every int fit
    in 64 bits, and a key named ``seed`` be a seed (0 <= seed < 2**63)."""

    kind: type
    default: Any = REQUIRED
    doc: str = ""
    min: float | None = None
    max: float | None = None
    choices: tuple | None = None
    nullable: bool = False
    item: type | None = None  # element type for lists

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


def _type_ok(value: Any, kind: type) -> bool:
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


VALUE_LIMIT = 60  # characters of a given value echoed in an error message


def describe(value: Any, limit: int = VALUE_LIMIT) -> str:
    """``repr(value)`` cut to ``limit`` characters: how every error message echoes a value the
    user gave (a huge list or string never floods the terminal)."""
    if isinstance(value, (list, dict, tuple, set)) and len(value) > limit:
        value = type(value).__name__ + f" of {len(value)} items"  # no repr of a huge container
        return value
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


_describe = describe


def check_value(value: Any, f: Field, key: str) -> Any:
    """Check one value against its Field; return it (ints promoted for float fields)."""
    if value is None:
        if f.nullable or f.default is None:
            return None
        raise ConfigError(key, f"expected {_TYPE_NAMES.get(f.kind, f.kind.__name__)}, got null",
                          "give a value or remove the key")
    if not _type_ok(value, f.kind):
        raise ConfigError(key, f"expected {_TYPE_NAMES.get(f.kind, f.kind.__name__)}, "
                               f"got {_describe(value)}")
    if f.kind is float:
        value = float(value)
    if f.choices is not None and value not in f.choices:
        raise ConfigError(key, f"expected one of {', '.join(map(str, f.choices))}, "
                               f"got {_describe(value)}")
    if f.kind is list:
        if f.item is not None:
            for i, v in enumerate(value):
                if not _type_ok(v, f.item):
                    raise ConfigError(f"{key}[{i}]", f"expected {_TYPE_NAMES.get(f.item)}, "
                                                     f"got {_describe(v)}")
                _check_number(v, f, f"{key}[{i}]")
        return value
    _check_number(value, f, key)
    return value


SEED_LIMIT = 2**63  # seeds are 0 <= seed < 2**63 (numpy and torch take 64-bit seeds)


def _check_number(value: Any, f: Field, key: str) -> None:
    """Finite floats, 64-bit ints, seeds in [0, 2**63), and the field's min and max."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(key, f"expected a finite number, got {_describe(value)}",
                          "NaN and infinity are not allowed")
    if isinstance(value, int) and not -SEED_LIMIT <= value < SEED_LIMIT:
        raise ConfigError(key, f"expected a 64-bit integer, got {_describe(value)}")
    if isinstance(value, int) and key.rsplit(".", 1)[-1] == "seed" and value < 0:
        raise ConfigError(key, f"expected a seed >= 0 (and < 2**63), got {_describe(value)}")
    if f.min is not None and value < f.min:
        raise ConfigError(key, f"expected a value >= {f.min:g}, got {_describe(value)}")
    if f.max is not None and value > f.max:
        raise ConfigError(key, f"expected a value <= {f.max:g}, got {_describe(value)}")


def validate(section: Any, fields: dict[str, Field], key: str) -> dict:
    """Validate a mapping against ``fields``; return a new dict with defaults filled in.

    Unknown keys, missing required keys, wrong types and out-of-range values raise ConfigError
    naming ``key.<name>``, what was expected and what was given.
    """
    if section is None:
        section = {}
    if not isinstance(section, dict):
        raise ConfigError(key, f"expected a mapping, got {_describe(section)}")
    unknown = [k for k in section if k not in fields]
    if unknown:
        known = ", ".join(sorted(fields))
        name = str(unknown[0])
        name = name if len(name) <= VALUE_LIMIT else describe(name)
        raise ConfigError(f"{key}.{name}" if key else name, "unknown key",
                          f"expected one of: {known}")
    out: dict = {}
    for name, f in fields.items():
        path = f"{key}.{name}" if key else name
        if name in section:
            out[name] = check_value(section[name], f, path)
        elif f.required:
            raise ConfigError(path, "missing required key", f.doc or None)
        else:
            out[name] = f.default
    return out
