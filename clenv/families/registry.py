"""The registered families, in the order they are asked to claim a run (most specific first);
a new family adds one line here (docs/design.md, "A new family")."""

from __future__ import annotations

from typing import Any

from clenv.data.pool import Pool
from clenv.families.base import Family, make_stream_env
from clenv.families.discovery import DISCOVERY
from clenv.families.hierarchical import HIERARCHICAL
from clenv.families.multi_label import MULTI_LABEL
from clenv.families.regression import REGRESSION
from clenv.families.single_label import SINGLE_LABEL

FAMILIES: tuple[Family, ...] = (
    DISCOVERY,
    REGRESSION,
    MULTI_LABEL,
    HIERARCHICAL,
    SINGLE_LABEL,
)


def choose(cfg: dict, pool: Pool) -> tuple[Family, Any]:
    """The family of a validated config and its Env: a family that claims the config alone
    builds its own Env; otherwise the stream's Env is built and the first family that claims
    its stream is the run's."""
    for family in FAMILIES:
        if family.claims(cfg, None):
            return family, family.make_env(cfg, pool)
    env = make_stream_env(cfg, pool)
    return next(f for f in FAMILIES if f.claims(cfg, env.stream)), env


def by_name(name: str) -> Family:
    """The registered family called ``name``."""
    return next(f for f in FAMILIES if f.name == name)
