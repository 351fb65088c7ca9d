"""The data-source registry: maps a ``data.source`` name to its parameter schema and loader, and
turns a raw ``data:`` config mapping into a Pool. Imports no torch."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

from clenv.config.schema import PATH, Field, validate
from clenv.data import (
    canvas,
    cifar10,
    cifar100,
    coco,
    digits,
    fashion_mnist,
    kmnist,
    mnist,
    semantic,
    sine,
    split_files,
    svhn,
    synthetic,
    tensors,
    voc,
)
from clenv.data.pool import Pool
from clenv.data.tree import attach_tree
from clenv.errors import ConfigError


@dataclass(frozen=True)
class DataSource:
    """One data source: its config name, parameter schema, loader and a one-line description.

    ``load(params, key)`` receives the validated parameters and the config key of the section
    (for error messages); ``needs_root`` is True when the source reads files given by the user;
    ``multi_label`` is True when its pools hold multi-hot labels (a module's ``MULTI_LABEL``);
    ``check(params, key)``, when a module defines it, runs the parameter checks that need no
    data, so that ``clenv check`` refuses what loading would.
    """

    name: str
    fields: dict[str, Field]
    load: Callable[[dict, str], Pool]
    needs_root: bool
    doc: str
    multi_label: bool = False
    check: Callable[[dict, str], None] | None = None


TREE_FIELD = Field(PATH, None, "YAML or JSON file mapping each class name to its parent name "
                              "(a label tree, replacing the source's own); null: keep the "
                              "source's tree", nullable=True)


def _from_module(module: ModuleType) -> DataSource:
    """The DataSource of a source module, with the shared ``tree`` key added to its fields."""
    if "tree" in module.FIELDS:
        raise RuntimeError(f"data source {module.NAME} defines 'tree', which the registry adds")
    return DataSource(name=module.NAME, fields={**module.FIELDS, "tree": TREE_FIELD},
                      load=module.load, needs_root=module.NEEDS_ROOT, doc=module.DOC,
                      multi_label=getattr(module, "MULTI_LABEL", False),
                      check=getattr(module, "check", None))


SOURCES: dict[str, DataSource] = {
    s.name: s for s in map(_from_module, (synthetic, digits, mnist, fashion_mnist, kmnist,
                                          cifar10, cifar100, svhn, tensors, canvas, coco, voc,
                                          semantic, split_files, sine))
}


def load_pool(data_cfg: dict, key: str = "data") -> Pool:
    """Build the Pool described by a raw ``data:`` mapping (``source`` plus its parameters).

    The ``tree`` key, shared by all sources, is handled here: the source's loader never sees it,
    and when set the label tree read from that file replaces the pool's own.
    """
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
    tree = params.pop("tree")
    if tree is not None and source.multi_label:
        raise ConfigError(f"{key}.tree", f"the {name} source is multi-label and label trees need "
                                         f"single-label classes", f"remove {key}.tree")
    pool = source.load(params, key)
    return pool if tree is None else attach_tree(pool, tree, f"{key}.tree")


def describe_sources() -> list[tuple[str, str]]:
    """(name, one-line description) of every data source, for ``clenv list``."""
    return [(s.name, s.doc.strip().splitlines()[0]) for s in SOURCES.values()]
