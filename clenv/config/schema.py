"""A small schema language for config sections: each key is a Field with a type, a default and a
range. ``validate`` fills defaults and reports the first problem with its dotted key path.

A Field of kind ``PATH`` holds a file or folder path: a relative value is made absolute against
the folder in force for its key (``path_bases``: the YAML file's folder by default, the working
directory for ``--set`` keys), so a resolved config works from any working directory."""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clenv.errors import ConfigError

REQUIRED = object()
PATH = "path"  # Field kind of a file or folder path (a string, made absolute when validated)

_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true/false",
               list: "a list", dict: "a mapping", PATH: "a string (a file or folder path)"}


@dataclass(frozen=True)
class Field:
    """One config key: ``kind`` is int, float, str, bool, list, dict (float accepts ints) or
    PATH (a string, or an os.PathLike, resolved to an absolute path)."""

    kind: type | str
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


@dataclass(frozen=True)
class _PathBases:
    default: Path | None  # None: the working directory at validation time
    anchors: dict[str, Path]  # dotted key (or key prefix) -> folder its relative paths join


_BASES: contextvars.ContextVar[_PathBases | None] = contextvars.ContextVar(
    "clenv_path_bases", default=None)


@contextlib.contextmanager
def path_bases(default: str | os.PathLike | None,
               anchors: dict[str, str | os.PathLike] | None = None) -> Iterator[None]:
    """Within the block, a relative PATH value joins ``default`` (None: the working
    directory), or ``anchors[k]`` when its dotted key is ``k`` or lies under ``k`` (a
    ``--set`` key, a sweep's ``set:`` key)."""
    token = _BASES.set(_PathBases(Path(default) if default is not None else None,
                                  {k: Path(v) for k, v in (anchors or {}).items()}))
    try:
        yield
    finally:
        _BASES.reset(token)


def resolve_path(value: str | os.PathLike, key: str) -> str:
    """``value`` (``~`` expanded) as an absolute, normalised path string; a relative value
    joins the folder ``path_bases`` gives for ``key``."""
    path = Path(os.path.expanduser(os.fspath(value)))
    if not path.is_absolute():
        bases = _BASES.get() or _PathBases(None, {})
        base = bases.default
        probe = key
        while probe:
            if probe in bases.anchors:
                base = bases.anchors[probe]
                break
            cut = max(probe.rfind("."), probe.rfind("["))
            probe = probe[:cut] if cut > 0 else ""
        path = (base if base is not None else Path.cwd()) / path
    return os.path.normpath(path)


def _type_ok(value: Any, kind: type | str) -> bool:
    if kind == PATH:
        return isinstance(value, (str, os.PathLike))
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def _kind_name(kind: type | str) -> str:
    return _TYPE_NAMES.get(kind) or getattr(kind, "__name__", str(kind))


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_value(value: Any, f: Field, key: str) -> Any:
    """Check one value against its Field; return it (ints promoted for float fields)."""
    if value is None:
        if f.nullable or f.default is None:
            return None
        raise ConfigError(key, f"expected {_kind_name(f.kind)}, got null",
                          "give a value or remove the key")
    if not _type_ok(value, f.kind):
        raise ConfigError(key, f"expected {_kind_name(f.kind)}, "
                               f"got {_describe(value)}")
    if f.kind is float:
        value = float(value)
    if f.kind == PATH:
        return resolve_path(value, key)
    if f.choices is not None and value not in f.choices:
        raise ConfigError(key, f"expected one of {', '.join(map(str, f.choices))}, "
                               f"got {_describe(value)}")
    if f.min is not None and value < f.min:
        raise ConfigError(key, f"expected a value >= {f.min:g}, got {_describe(value)}")
    if f.max is not None and value > f.max:
        raise ConfigError(key, f"expected a value <= {f.max:g}, got {_describe(value)}")
    if f.kind is list and f.item is not None:
        for i, v in enumerate(value):
            if not _type_ok(v, f.item):
                raise ConfigError(f"{key}[{i}]", f"expected {_TYPE_NAMES.get(f.item)}, "
                                                 f"got {_describe(v)}")
    return value


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
        raise ConfigError(f"{key}.{unknown[0]}" if key else str(unknown[0]), "unknown key",
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
