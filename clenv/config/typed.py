"""Typed models of a config (pydantic v2): the last step of load_config's validation, and the
JSON Schema of `clenv schema` for editors.

Built from the same ``Field`` dicts the dict validator reads (the registries of generators,
sources, strategies and models, and clenv.config.sections), so the two cannot drift: every
model forbids unknown keys, ``choices`` become ``Literal``s, bounds ``ge``/``le``,
``scenario`` is a discriminated union on ``generator`` and a lifelong segment one on
``type``. A registry entry's ``check(section, key)`` (its cross-field rules, declared beside
its fields) is attached to its model as an after-validator. ``check_config`` validates a
resolved config with the model of its own generator, source, strategy and model only (built
lazily, cached) and turns a ValidationError into one ConfigError line (key path, expected,
given). docs/design.md, "Typed configs".
"""

from __future__ import annotations

import types
from collections.abc import Callable
from functools import cache
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationError, create_model, model_validator
from pydantic import Field as PydanticField

from clenv.config.schema import PATH, Field, describe
from clenv.config.sections import (
    BUDGET_FIELDS,
    EVAL_FIELDS,
    OUTPUT_FIELDS,
    TOP_FIELDS,
    VALIDATION_FIELD,
)
from clenv.data.registry import SOURCES
from clenv.errors import ConfigError
from clenv.models.registry import MODELS
from clenv.scenarios.lifelong import SEGMENT_FIELDS
from clenv.scenarios.registry import GENERATORS
from clenv.strategies.registry import (
    PLUGIN_KEYS,
    STRATEGIES,
    StrategyEntry,
    check_optimizer,
    strategy_class,
)

Check = Callable[[dict, str], None]
_BASIC = {int: int, float: float, str: str, bool: bool, dict: dict[str, Any], object: Any,
          PATH: str}
_TAGS = ("generator", "source", "name", "type")  # the discriminators of the unions
_SECTIONS = ("scenario", "data", "strategy", "model", "eval", "budget", "output")


def annotation(f: Field) -> Any:
    """The Python type of one Field: choices as a Literal, bounds as ge/le, None when the
    default is None or the field is nullable."""
    if f.choices:
        tp: Any = Literal[tuple(f.choices)]
    elif f.kind is list:
        tp = list[_BASIC.get(f.item, Any)] if f.item is not None else list[Any]
    else:
        tp = _BASIC.get(f.kind, Any)
    bounds = {k: v for k, v in (("ge", f.min), ("le", f.max)) if v is not None}
    if bounds and f.kind in (int, float) and not f.choices:
        tp = Annotated[tp, PydanticField(**bounds)]
    if f.nullable or (not f.required and f.default is None):
        tp = tp | None
    return tp


def _rules(check: Check, key: str, drop: tuple[str, ...]) -> Any:
    """An after-validator running ``check(section, key)`` on the validated section (its
    ConfigError passes through pydantic unchanged: it is not a ValueError)."""

    def run(model: BaseModel) -> BaseModel:
        check({k: v for k, v in model.model_dump().items() if k not in drop}, key)
        return model

    return model_validator(mode="after")(run)


def model_of(model_name: str, fields: dict[str, Field], /, check: Check | None = None,
             key: str = "", drop: tuple[str, ...] = (), **fixed: Any) -> type[BaseModel]:
    """A model forbidding unknown keys; ``fixed`` adds keys of given (type, default);
    ``check`` runs after the fields validate, on the section without the keys in ``drop``."""
    spec: dict[str, Any] = {}
    for name, f in fields.items():
        default = ... if f.required else f.default
        spec[name] = (annotation(f), PydanticField(default, description=f.doc or None))
    spec.update(fixed)
    validators = {"rules": _rules(check, key, drop)} if check is not None else None
    return create_model(model_name, __config__=ConfigDict(extra="forbid"),
                        __validators__=validators, **spec)


def _tagged(tag: str, name: str, fields: dict[str, Field], /, check: Check | None = None,
            key: str = "", drop: tuple[str, ...] = (), **fixed: Any) -> type[BaseModel]:
    return model_of(f"{tag}_{name}", {k: f for k, f in fields.items() if k != tag}, check,
                    key, drop, **{tag: (Literal[name], ...)}, **fixed)


def _union(models: list[type[BaseModel]], tag: str) -> Any:
    return Annotated[Union[tuple(models)], PydanticField(discriminator=tag)]  # noqa: UP007


# -- one model per registry entry, built when first asked for --------------------------------
@cache
def segments_model() -> Any:
    """The union of lifelong segment models (few_shot's ``length`` is derived, so optional)."""
    derived = {"few_shot": {"length": (int | None, None)}}
    return _union([_tagged("type", k, f, **derived.get(k, {}))
                   for k, f in SEGMENT_FIELDS.items()], "type")


@cache
def scenario_model(generator: str) -> type[BaseModel]:
    """The scenario section of one generator, its ``check`` attached."""
    gen = GENERATORS[generator]
    fixed: dict[str, Any] = {"validation": (annotation(VALIDATION_FIELD), None)}
    if "segments" in gen.fields:
        fixed["segments"] = (list[segments_model()], ...)
    return _tagged("generator", generator, gen.fields, gen.check, "scenario", **fixed)


@cache
def source_model(source: str) -> type[BaseModel]:
    """The data section of one source; its ``check`` sees the parameters (no source, tree)."""
    src = SOURCES[source]
    return _tagged("source", source, src.fields, src.check, "data", ("source", "tree"))


def _strategy_model(entry: StrategyEntry) -> type[BaseModel]:
    plugins: dict[str, Any] = {k: (dict[str, Any] | None, None) for k in PLUGIN_KEYS}
    plugins["diagnostics"] = (bool | None, None)
    return _tagged("name", entry.name, entry.fields, entry.check, "strategy",
                   preset=(str | None, None),
                   **{k: v for k, v in plugins.items() if k not in entry.fields})


@cache
def registered_strategy_model(name: str) -> type[BaseModel]:
    return _strategy_model(STRATEGIES[name])


@cache
def user_strategy_model(name: str, cls: type | None = None) -> type[BaseModel]:
    """A user's ``module:Class``: typed from the class's own ``fields`` (Field dicts) when it
    has them, else any keys (the loader passes them through)."""
    fields = dict(getattr(cls, "fields", {}) or {}) if cls is not None else {}
    if fields:
        return _strategy_model(StrategyEntry(name, name, fields, "", check_optimizer))
    return create_model("strategy_user", __config__=ConfigDict(extra="allow"),
                        name=(Annotated[str, PydanticField(pattern=r"^[\w.]+:\w+$")], ...))


@cache
def network_model(name: str) -> type[BaseModel]:
    return _tagged("name", name, MODELS[name].fields)


def _config(scenario: Any, data: Any, strategy: Any, model: Any) -> type[BaseModel]:
    top = {k: f for k, f in TOP_FIELDS.items() if k not in _SECTIONS}
    return model_of("clenv_config", top,
                    scenario=(scenario, ...), data=(data | None, None),
                    strategy=(strategy | None, None), model=(model | None, None),
                    eval=(model_of("eval", EVAL_FIELDS) | None, None),
                    budget=(model_of("budget", BUDGET_FIELDS) | None, None),
                    output=(model_of("output", OUTPUT_FIELDS) | None, None))


@cache
def config_model() -> type[BaseModel]:
    """The model of any config file: a union of every generator, source, strategy and model
    (the JSON Schema; a strategy may also be a preset name or a user's module:Class)."""
    preset = create_model("strategy_preset", __config__=ConfigDict(extra="allow"),
                          preset=(str, ...))
    registered = _union([registered_strategy_model(n) for n in STRATEGIES], "name")
    return _config(_union([scenario_model(g) for g in GENERATORS], "generator"),
                   _union([source_model(s) for s in SOURCES], "source"),
                   Union[str, registered, user_strategy_model(""), preset],  # noqa: UP007
                   _union([network_model(m) for m in MODELS], "name"))


@cache
def _narrow(scenario: type, data: type, strategy: type, model: type) -> type[BaseModel]:
    return _config(scenario, data, strategy, model)


def resolved_model(cfg: dict) -> type[BaseModel]:
    """The model of one resolved config: only its generator's, source's, strategy's and
    model's members (no union to build or to try), cached per combination."""
    name = cfg["strategy"]["name"]
    strategy = (registered_strategy_model(name) if name in STRATEGIES
                else user_strategy_model(name, strategy_class(name, "strategy.name")))
    return _narrow(scenario_model(cfg["scenario"]["generator"]),
                   source_model(cfg["data"]["source"]), strategy,
                   network_model(cfg["model"]["name"]))


def check_config(cfg: dict) -> None:
    """Validate a resolved config (load_config's output before its cross-section rules)
    against its typed model: types, bounds, unknown keys and the rules declared beside each
    section's fields; the first problem as one ConfigError line."""
    model = resolved_model(cfg)
    try:
        model.model_validate(cfg)
    except ValidationError as exc:
        raise config_error(exc, model) from None


# -- a ValidationError as one ConfigError line -----------------------------------------------
_EXPECTED = {
    "int_type": "an integer", "int_parsing": "an integer", "int_from_float": "an integer",
    "float_type": "a number", "float_parsing": "a number", "finite_number": "a finite number",
    "string_type": "a string", "bool_type": "true/false", "bool_parsing": "true/false",
    "list_type": "a list", "dict_type": "a mapping", "model_type": "a mapping",
    "model_attributes_type": "a mapping", "string_pattern_mismatch": "package.module:Class",
}


def config_error(exc: ValidationError, model: type[BaseModel]) -> ConfigError:
    """The first error of ``exc`` in the loader's format: ``key.path: expected X, got Y``."""
    err = exc.errors(include_url=False)[0]
    kind, ctx = err["type"], err.get("ctx") or {}
    key, parent = _locate(err["loc"], model)
    given = describe(err.get("input"))
    if kind == "extra_forbidden":
        known = sorted(parent.model_fields) if parent is not None else []
        return ConfigError(key, "unknown key",
                           f"expected one of: {', '.join(known)}" if known else "remove it")
    if kind == "missing":
        field = parent.model_fields.get(str(err["loc"][-1])) if parent is not None else None
        return ConfigError(key, "missing required key", field.description if field else None)
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        tag = str(ctx.get("discriminator", "")).strip("'")
        key = f"{key}.{tag}" if key else tag
        if kind == "union_tag_not_found":
            return ConfigError(key, "missing required key")
        options = str(ctx.get("expected_tags", "")).replace("'", "")
        return ConfigError(key, f"expected one of {options}, got {describe(ctx.get('tag'))}")
    if kind == "literal_error":
        options = str(ctx.get("expected", "")).replace("'", "").replace(" or ", ", ")
        return ConfigError(key, f"expected one of {options}, got {given}")
    if kind in ("greater_than_equal", "less_than_equal"):
        op, bound = (">=", ctx.get("ge")) if kind == "greater_than_equal" else ("<=", ctx["le"])
        return ConfigError(key, f"expected a value {op} {bound:g}, got {given}")
    what = _EXPECTED.get(kind)
    if what is not None:
        return ConfigError(key, f"expected {what}, got {given}")
    return ConfigError(key, f"{err['msg'][:1].lower()}{err['msg'][1:]}, got {given}")


def _options(tp: Any) -> list[Any]:
    """The alternatives of a type: Annotated unwrapped, unions (and Optional) flattened."""
    origin = get_origin(tp)
    if origin is Annotated:
        return _options(get_args(tp)[0])
    if origin is Union or origin is types.UnionType:
        return [o for a in get_args(tp) for o in _options(a)]
    return [tp]


def _tag_of(model: type[BaseModel]) -> Any:
    """The Literal value of a union member's discriminator field."""
    return next((get_args(f.annotation)[0] for k, f in model.model_fields.items()
                 if k in _TAGS and get_origin(f.annotation) is Literal), None)


def _locate(loc: tuple, model: type[BaseModel]) -> tuple[str, type[BaseModel] | None]:
    """The dotted key path of a pydantic ``loc`` (the tags pydantic inserts after a
    discriminated union's position left out) and the model holding its last key."""
    tp: Any = model
    parent: type[BaseModel] | None = None
    key = ""
    for elem in loc:
        opts = _options(tp)
        models = [o for o in opts if isinstance(o, type) and issubclass(o, BaseModel)]
        if isinstance(elem, str) and len(models) > 1:  # a discriminated union's tag
            tp = next((m for m in models if _tag_of(m) == elem), None)
            continue
        if isinstance(elem, int):
            items = [get_args(o)[0] for o in opts if get_origin(o) is list and get_args(o)]
            tp = items[0] if items else None
            key += f"[{elem}]"
            continue
        parent = models[0] if models else None
        field = parent.model_fields.get(elem) if parent is not None else None
        tp = field.annotation if field is not None else None
        key = f"{key}.{elem}" if key else str(elem)
    return key, parent


def json_schema() -> dict:
    """The JSON Schema of a config file (`clenv schema > clenv.schema.json`)."""
    schema = config_model().model_json_schema()
    schema["title"] = "clenv config"
    return schema
