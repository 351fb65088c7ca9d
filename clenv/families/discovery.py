"""Active generalized category discovery (AGCD, Ma et al. 2024): query rounds with a label
budget over old and new classes, not a stream (clenv.agcd_env)."""

from __future__ import annotations

from clenv.agcd_env import ActiveDiscoveryEnv
from clenv.data.pool import Pool
from clenv.errors import ConfigError
from clenv.families.base import Family
from clenv.metrics.active_discovery import summarize_agcd


def make_agcd_env(cfg: dict, pool: Pool) -> ActiveDiscoveryEnv:
    """The AGCD Env of a validated config (the scenario section without ``generator``)."""
    if pool.multi_label:
        raise ConfigError("data.source", f"the agcd scenario needs single-label classes; "
                          f"{pool.name} is multi-label", "use synthetic, digits, mnist, "
                          "cifar100 or tensors")
    if not len(pool.test_indices):
        raise ConfigError("data", "the agcd scenario evaluates on the held-out test split and "
                          "this pool has no test sample", "give the source a test split "
                          "(e.g. data.test_fraction)")
    sc = {k: v for k, v in cfg["scenario"].items() if k != "generator"}
    return ActiveDiscoveryEnv(pool, sc, "scenario")


DISCOVERY = Family(
    name="discovery", loop="query_rounds",
    claims=lambda cfg, stream: cfg["scenario"]["generator"] == "agcd",
    make_env=make_agcd_env, summarize=summarize_agcd, task_aware=False)
