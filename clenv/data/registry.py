"""The data-source registry: maps a ``data.source`` name to its parameter schema and loader, and
turns a raw ``data:`` config mapping into a Pool. Imports no torch."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

from clenv.config.schema import Field, validate
from clenv.data import cifar100, digits, mnist, synthetic, tensors
from clenv.data.pool import Pool
from clenv.errors import ConfigError


@dataclass(frozen=True)
class DataSource:
    """One data source: its config name, parameter schema, loader and a one-line description.

    ``load(params, key)`` receives the validated parameters and the config key of the section
    (for error messages); ``needs_root`` is True when the source reads files given by the user.
    """

    name: str
    fields: dict[str, Field]
    load: Callable[[dict, str], Pool]
    needs_root: bool
    doc: str


def _from_module(module: ModuleType) -> DataSource:
    return DataSource(name=module.NAME, fields=module.FIELDS, load=module.load,
                      needs_root=module.NEEDS_ROOT, doc=module.DOC)


SOURCES: dict[str, DataSource] = {
    s.name: s for s in map(_from_module, (synthetic, digits, mnist, cifar100, tensors))
}


def load_pool(data_cfg: dict, key: str = "data") -> Pool:
    """Build the Pool described by a raw ``data:`` mapping (``source`` plus its parameters)."""
    choices = f"expected one of: {', '.join(SOURCES)}"
    if not isinstance(data_cfg, dict):
        raise ConfigError(key, f"expected a mapping with a 'source' key, got {data_cfg!r:.60}",
                          choices)
    if "source" not in data_cfg:
        raise ConfigError(f"{key}.source", "missing required key", choices)
    name = data_cfg["source"]
    if not isinstance(name, str) or name not in SOURCES:
        raise ConfigError(f"{key}.source", f"unknown data source {name!r:.60}", choices)
    source = SOURCES[name]
    params = validate({k: v for k, v in data_cfg.items() if k != "source"}, source.fields, key)
    return source.load(params, key)


def describe_sources() -> list[tuple[str, str]]:
    """(name, one-line description) of every data source, for ``clenv list``."""
    return [(s.name, s.doc.strip().splitlines()[0]) for s in SOURCES.values()]
