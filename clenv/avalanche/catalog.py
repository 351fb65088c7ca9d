"""Which Avalanche training strategies clenv can run, and the checks on their YAML arguments.

A class is any subclass of Avalanche's ``BaseSGDTemplate`` (the template every Avalanche
training strategy builds on): a name exported by ``avalanche.training`` (Naive, Replay, EWC,
LwF, GEM, AGEM, GDumb, SynapticIntelligence, DER, ER_ACE, ICaRL, ...; ``SI`` and ``iCaRL`` are
accepted aliases) or ``package.module:Class`` for a user's own template subclass.

clenv supplies the constructor arguments that tie a strategy to the run (MANAGED: model,
optimiser, criterion, minibatch size, epochs, device, plugins, evaluator, eval_every) and the
model parts some strategies take (``feature_extractor`` = the model's ``features``,
``classifier`` = its ``head``); YAML ``args`` give the rest. Every problem is one ConfigError
line naming the key and what is accepted.
"""

from __future__ import annotations

import inspect
import typing
import warnings
from typing import Any

from clenv.config.imports import import_target
from clenv.errors import ConfigError

ALIASES = {"SI": "SynapticIntelligence", "iCaRL": "ICaRL"}
MANAGED = ("model", "optimizer", "criterion", "train_mb_size", "train_epochs", "eval_mb_size",
           "device", "plugins", "evaluator", "eval_every")
FROM_MODEL = {"feature_extractor": "features", "classifier": "head"}
SUPPLIED_DEFAULTS = {"buffer_transform": None, "fixed_memory": True}
MEMORY_ARGS = ("mem_size", "memory_size")  # filled from budget.memory_size when not given


def quiet_import():
    """``import avalanche.training`` without its import-time warnings (qpsolvers, deprecations)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import avalanche.training as training
        from avalanche.training.templates import BaseSGDTemplate
    return training, BaseSGDTemplate


def available() -> list[str]:
    """Names of the template-based strategies exported by ``avalanche.training``."""
    training, base = quiet_import()
    return sorted(n for n in dir(training)
                  if inspect.isclass(getattr(training, n)) and issubclass(getattr(training, n),
                                                                          base))


def resolve_class(name: str, key: str = "strategy.class") -> type:
    """The Avalanche template class for a YAML name (or ``package.module:Class``)."""
    training, base = quiet_import()
    if not isinstance(name, str) or not name:
        raise ConfigError(key, f"expected an Avalanche strategy name, got {name!r}",
                          f"use one of: {', '.join(available())} or package.module:Class")
    if ":" in name:

        cls = import_target(name, key)
    else:
        cls = getattr(training, ALIASES.get(name, name), None)
    if not (inspect.isclass(cls) and issubclass(cls, base)):
        what = "is not built on Avalanche's BaseSGDTemplate" if cls is not None else \
            "is not an Avalanche training strategy"
        raise ConfigError(key, f"{name!r} {what}",
                          f"use one of: {', '.join(available())} (aliases: "
                          f"{', '.join(ALIASES)}) or package.module:Class")
    return cls


def parameters(cls: type) -> dict[str, inspect.Parameter]:
    """Named constructor parameters of ``cls`` (no self, no *args/**kwargs)."""
    sig = inspect.signature(cls.__init__)
    return {n: p for n, p in sig.parameters.items() if n != "self"
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def user_parameters(cls: type) -> list[str]:
    """The constructor arguments a YAML ``args`` mapping may set."""
    return [n for n in parameters(cls) if n not in MANAGED and n not in FROM_MODEL]


def _expected_kind(p: inspect.Parameter) -> type | None:
    """int or float when the default or the annotation says so (None: not checked)."""
    if isinstance(p.default, bool):
        return bool
    if isinstance(p.default, (int, float)) and p.default is not inspect.Parameter.empty:
        return type(p.default)
    ann = p.annotation
    if isinstance(ann, str):
        ann = {"int": int, "float": float, "bool": bool}.get(ann, None)
    if ann in (int, float, bool):
        return ann
    if typing.get_origin(ann) is typing.Union and set(typing.get_args(ann)) <= {int, float,
                                                                                type(None)}:
        return float
    return None


def check_args(cls: type, args: Any, key: str = "strategy.args") -> dict:
    """``args`` checked against ``cls``'s constructor: names, required ones, number types and
    non-negative sizes. Returns a new dict."""
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise ConfigError(key, f"expected a mapping of {cls.__name__} arguments, got {args!r}")
    params = parameters(cls)
    accepted = user_parameters(cls)
    for name, value in args.items():
        if name in MANAGED or name in FROM_MODEL:
            raise ConfigError(f"{key}.{name}", "is set by clenv (model, optimiser and batch "
                              "sizes come from the run config)",
                              f"remove it; {cls.__name__} accepts: {', '.join(accepted)}")
        if name not in params:
            raise ConfigError(f"{key}.{name}", f"unknown argument of {cls.__name__}",
                              f"expected one of: {', '.join(accepted) or '(none)'}")
        kind = _expected_kind(params[name])
        if kind is None or value is None:
            continue
        if kind is bool:
            ok = isinstance(value, bool)
        elif kind is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok:
            raise ConfigError(f"{key}.{name}", f"expected {kind.__name__}, got {value!r}")
        if kind is not bool and value < 0:
            raise ConfigError(f"{key}.{name}", f"expected a value >= 0, got {value!r}")
    missing = [n for n, p in params.items() if p.default is inspect.Parameter.empty
               and n not in MANAGED and n not in FROM_MODEL and n not in SUPPLIED_DEFAULTS
               and n not in args and n not in MEMORY_ARGS]
    if missing:
        raise ConfigError(f"{key}.{missing[0]}", f"{cls.__name__} needs this argument",
                          f"set {', '.join(f'{key}.{m}' for m in missing)}")
    return dict(args)


def check_section(section: dict, key: str = "strategy") -> None:
    """Validate an ``avalanche`` strategy section (class name and args) at config time."""
    cls = resolve_class(section.get("class"), f"{key}.class")
    check_args(cls, section.get("args"), f"{key}.args")
