"""Registered strategies: name -> import path, config fields and a one-line doc. No torch here,
so `clenv check` validates strategy parameters without importing torch."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from clenv.config.schema import Field, validate
from clenv.errors import ConfigError

OPTIM_FIELDS: dict[str, Field] = {
    "optimizer": Field(str, "sgd", "optimiser", choices=("sgd", "adam")),
    "lr": Field(float, 0.05, "learning rate", min=0),
    "momentum": Field(float, 0.0, "SGD momentum", min=0, max=1),
    "weight_decay": Field(float, 0.0, "L2 penalty", min=0),
    "updates_per_sample": Field(float, None, "gradient steps per stream sample "
                                "(default: one step per Env batch)", min=0),
}


@dataclass(frozen=True)
class StrategyEntry:
    name: str
    target: str  # "module:Class"
    fields: dict[str, Field]
    doc: str


STRATEGIES: dict[str, StrategyEntry] = {
    "naive": StrategyEntry("naive", "clenv.strategies.naive:Naive", dict(OPTIM_FIELDS),
                           "fine-tuning on the stream only (the lower reference)"),
    "er": StrategyEntry("er", "clenv.strategies.er:ExperienceReplay", {
        **OPTIM_FIELDS,
        "memory_size": Field(int, None, "buffer size in samples (default: budget.memory_size, "
                             "else 500)", min=1),
        "replay_batch_size": Field(int, None, "replayed samples per step (default: the "
                                   "stream batch size)", min=1),
    }, "experience replay: reservoir buffer, vectorised replay sampling"),
    "plfms": StrategyEntry("plfms", "clenv.strategies.plfms:PLFMS", {
        **OPTIM_FIELDS,
        "memory_size": Field(int, None, "memory in samples (default: budget.memory_size, "
                             "else 500)", min=1),
        "replay_batch_size": Field(int, None, "memory samples per step besides the refills "
                                   "(default: the stream batch size)", min=0),
        "pseudo_labels": Field(bool, True, "PL: fine memory samples count towards their "
                               "pseudo coarse classes when choosing what to evict"),
        "flexible_sampling": Field(bool, True, "FMS: keep a stream sample of class c with "
                                   "probability min(1, (n - first_seen_c) / (N / |C_seen|))"),
        "fms_window": Field(int, None, "N for FMS (default: the stream length)", min=1),
        "fms_scale": Field(float, 1.0, "multiplies N / |C_seen| (the multi-depth code uses 2)",
                           min=1e-9),
        "importance_period": Field(int, 10, "gradient steps between importance and "
                                   "pseudo-label updates", min=1),
        "importance_ema": Field(float, 0.9, "EMA factor of the sample importance", min=0,
                                max=1),
    }, "PL-FMS (Lee et al. 2023): importance memory, hierarchy-aware pseudo-labels, flexible "
       "memory sampling"),
    "multilane": StrategyEntry("multilane", "clenv.strategies.multilane:MultiLaneStrategy", {
        "lr": Field(float, 1e-3, "Adam learning rate of the current lane and the head", min=0),
        "n_selectors": Field(int, 10, "selector tokens per lane (S)", min=1),
        "n_prompts": Field(int, 10, "prefix prompts per layer (P)", min=0),
        "prompt_layers": Field(int, 5, "blocks with task prompts (capped at the depth)", min=0),
        "grad_clip": Field(float, 1.0, "gradient norm clip", min=0),
        "updates_per_sample": Field(float, None, "gradient steps per stream sample "
                                    "(default: one step per Env batch)", min=0),
    }, "MULTI-LANE (De Min et al. 2024): frozen ViT, one lane of selector tokens and prompts "
       "per task, summed masked logits"),
    "joint": StrategyEntry("joint", "clenv.strategies.joint:Joint", {
        **{k: v for k, v in OPTIM_FIELDS.items() if k != "updates_per_sample"},
        "epochs": Field(int, None, "epochs over all data seen so far at each task end "
                        "(default: scenario.epochs)", min=1),
        "batch_size": Field(int, 32, "training batch size", min=1),
    }, "retrains from scratch on all data seen so far at each task end (upper reference)"),
}


def strategy_entry(section: dict, key: str = "strategy") -> StrategyEntry:
    """The registry entry for a strategy section; ``package.module:Class`` names a user class
    whose ``fields`` attribute (if any) validates its parameters."""
    name = section.get("name")
    if not isinstance(name, str):
        raise ConfigError(f"{key}.name", f"expected a strategy name, got {name!r}",
                          f"use one of: {', '.join(STRATEGIES)} or package.module:Class")
    if name in STRATEGIES:
        return STRATEGIES[name]
    if ":" in name:
        cls = import_target(name, f"{key}.name")
        return StrategyEntry(name, name, dict(getattr(cls, "fields", {}) or {}),
                             (cls.__doc__ or "user strategy").strip().splitlines()[0])
    raise ConfigError(f"{key}.name", f"unknown strategy {name!r}",
                      f"use one of: {', '.join(STRATEGIES)} or package.module:Class")


def validate_strategy(section: dict, key: str = "strategy") -> dict:
    entry = strategy_entry(section, key)
    params = {k: v for k, v in section.items() if k != "name"}
    fields = dict(entry.fields)
    if not fields and ":" in entry.name:  # a user class without a schema: pass params through
        return dict(section)
    return {"name": entry.name, **validate(params, fields, key)}


def import_target(target: str, key: str):
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
        return getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(key, f"cannot import {target!r} ({exc})",
                          "give package.module:Class importable from the current environment"
                          ) from None
