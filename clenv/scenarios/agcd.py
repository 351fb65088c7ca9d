"""The ``agcd`` scenario (active generalized category discovery, Ma et al. 2024): old/new class
split, a labelled fraction of the old classes, R query rounds of budget b; the pool's test split
is the held-out set for inductive evaluation. Not a stream: ``clenv run`` drives it through
:class:`clenv.agcd_env.ActiveDiscoveryEnv` (clenv/agcd/loop.py)."""

from __future__ import annotations

from clenv.agcd_env import AGCD_FIELDS, agcd_split
from clenv.config.schema import Field
from clenv.data.pool import Pool

AGCD_SCENARIO_FIELDS: dict[str, Field] = {
    "generator": Field(str, "agcd", "the scenario generator"),
    **AGCD_FIELDS,
}


def build_agcd(pool: Pool, cfg: dict, key: str = "scenario") -> dict:
    """The split a validated agcd section describes (old, new, labelled, candidates)."""
    return agcd_split(pool, {k: v for k, v in cfg.items() if k != "generator"}, key)
