"""Importing a ``package.module:attr`` target a registry entry or a config names."""

from __future__ import annotations

import importlib

from clenv.config.schema import describe
from clenv.errors import ConfigError


def import_target(target: str, key: str):
    """The attribute ``target`` names; a ConfigError at ``key`` when it cannot be imported."""
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
        return getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(key, f"cannot import {describe(target)} ({describe(str(exc), 120)})",
                          "give package.module:Class importable from the current environment"
                          ) from None
