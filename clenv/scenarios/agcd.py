"""The ``agcd`` scenario (active generalized category discovery, Ma et al. 2024): old/new class
split, a labelled fraction of the old classes, R query rounds of budget b (``budget``, or
``budget_per_class`` k times the number of new classes); the pool's test split is the held-out
set for inductive evaluation. Not a stream: ``clenv run`` drives it through
:class:`clenv.agcd_env.ActiveDiscoveryEnv` (clenv/agcd/loop.py)."""

from __future__ import annotations

import numpy as np

from clenv.config.schema import Field, validate
from clenv.data.pool import Pool
from clenv.errors import ConfigError

AGCD_FIELDS: dict[str, Field] = {
    "seed": Field(int, 0, "split seed: old/new classes, labelled samples", min=0),
    "old_classes": Field(list, None, "the old (known) class ids (default: the first n_old "
                         "of a seeded class order)", item=int),
    "n_old": Field(int, None, "number of old classes when old_classes is not given "
                   "(default: half the training classes)", min=1),
    "labelled_fraction": Field(float, 0.5, "share of each old class's training samples "
                               "labelled at the start", min=0, max=1),
    "rounds": Field(int, 5, "query rounds R", min=1),
    "budget": Field(int, None, "labels per round b (default 50; not with budget_per_class)",
                    min=1),
    "budget_per_class": Field(int, None, "labels per round per new class k: b = k x |new "
                              "classes| (not with budget)", min=1),
}

DEFAULT_BUDGET = 50  # labels per round when neither budget nor budget_per_class is given


def check_budget_keys(cfg: dict, key: str = "scenario") -> None:
    """``budget`` and ``budget_per_class`` are two ways to give b: at most one may be set."""
    if cfg.get("budget") is not None and cfg.get("budget_per_class") is not None:
        raise ConfigError(f"{key}.budget_per_class", "expected at most one of budget and "
                          f"budget_per_class, got budget: {cfg['budget']} and "
                          f"budget_per_class: {cfg['budget_per_class']}",
                          f"remove {key}.budget (or set it to null)")


def round_budget(cfg: dict, n_new: int) -> int:
    """b, the labels per round: k x |new classes| with ``budget_per_class`` k, else
    ``budget``, else 50."""
    if cfg["budget_per_class"] is not None:
        return cfg["budget_per_class"] * n_new
    return DEFAULT_BUDGET if cfg["budget"] is None else cfg["budget"]


def agcd_split(pool: Pool, cfg: dict, key: str = "scenario") -> dict[str, np.ndarray]:
    """Old/new classes, the initially labelled pool ids and the unlabelled candidates."""
    cfg = validate(cfg, AGCD_FIELDS, key)
    check_budget_keys(cfg, key)
    rng = np.random.default_rng(np.random.SeedSequence([cfg["seed"], 0xA6C]))
    classes = np.unique(pool.y[pool.train])
    if cfg["old_classes"] is None:
        n_old = len(classes) // 2 if cfg["n_old"] is None else cfg["n_old"]
        if n_old >= len(classes):
            raise ConfigError(f"{key}.n_old", f"expected fewer than the {len(classes)} training "
                              f"classes, got {n_old}", "leave at least one new class")
        old = np.sort(rng.permutation(classes)[:n_old])
    else:
        old = np.unique(np.asarray(cfg["old_classes"], dtype=np.int64))
        if not np.isin(old, classes).all() or len(old) in (0, len(classes)):
            raise ConfigError(f"{key}.old_classes", "expected a non-empty proper subset of the "
                              f"training classes 0..{pool.n_classes - 1}",
                              f"got {cfg['old_classes']}")
    train = pool.train_indices
    labelled = []
    for c in old:
        idx = train[pool.y[train] == c]
        k = int(round(cfg["labelled_fraction"] * len(idx)))
        labelled.append(np.sort(rng.choice(idx, size=k, replace=False)))
    labelled = np.concatenate(labelled) if labelled else np.zeros(0, dtype=np.int64)
    candidates = np.setdiff1d(train, labelled)
    new = np.setdiff1d(classes, old)
    b = round_budget(cfg, len(new))
    if cfg["rounds"] * b > len(candidates):
        per_class = cfg["budget_per_class"] is not None
        name = "budget_per_class" if per_class else "budget"
        given = f"rounds x budget_per_class x {len(new)} new classes" if per_class else \
            "rounds x budget"
        raise ConfigError(f"{key}.{name}", f"{given} = {cfg['rounds'] * b} exceeds the "
                          f"{len(candidates)} unlabelled candidates",
                          f"lower {key}.{name} or {key}.rounds")
    return {"old": old, "new": new, "labelled": labelled, "candidates": candidates,
            "rounds": cfg["rounds"], "budget": b, "budget_per_class": cfg["budget_per_class"]}


AGCD_SCENARIO_FIELDS: dict[str, Field] = {
    "generator": Field(str, "agcd", "the scenario generator"),
    **AGCD_FIELDS,
}


def check_agcd_scenario(cfg: dict, key: str = "scenario") -> None:
    """The agcd section's cross-field rules (typed.py runs them after the fields validate):
    one of old_classes and n_old, at most one of budget and budget_per_class."""
    if cfg.get("old_classes") is not None and cfg.get("n_old") is not None:
        raise ConfigError(f"{key}.n_old", "given together with old_classes",
                          "give one of old_classes and n_old")
    check_budget_keys(cfg, key)


def build_agcd(pool: Pool, cfg: dict, key: str = "scenario") -> dict:
    """The split a validated agcd section describes (old, new, labelled, candidates)."""
    return agcd_split(pool, {k: v for k, v in cfg.items() if k != "generator"}, key)
