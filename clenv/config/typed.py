"""Typed models of a whole config (pydantic v2), for `clenv schema` and editors.

Built from the same ``Field`` dicts the validator reads (the registries of generators,
sources, strategies and models), so the two cannot drift: every model forbids unknown keys,
``choices`` become ``Literal``s, ``scenario`` is a discriminated union on ``generator`` and a
lifelong segment one on ``type``. Runs are still validated by ``clenv.config.loader``, which
keeps the one-line errors (key path, expected, given). docs/design.md, "Typed configs".
"""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, create_model
from pydantic import Field as PydanticField

from clenv.config.loader import BUDGET_FIELDS, EVAL_FIELDS, OUTPUT_FIELDS, TOP_FIELDS
from clenv.config.schema import PATH, Field
from clenv.data.registry import SOURCES
from clenv.models.registry import MODELS
from clenv.scenarios.lifelong import SEGMENT_FIELDS
from clenv.scenarios.registry import GENERATORS
from clenv.strategies.registry import PLUGIN_KEYS, STRATEGIES

_BASIC = {int: int, float: float, str: str, bool: bool, dict: dict[str, Any], object: Any,
          PATH: str}


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


def model_of(model_name: str, fields: dict[str, Field], /, **fixed: Any) -> type[BaseModel]:
    """A model forbidding unknown keys; ``fixed`` adds keys of given (type, default)."""
    spec: dict[str, Any] = {}
    for key, f in fields.items():
        default = ... if f.required else f.default
        spec[key] = (annotation(f), PydanticField(default, description=f.doc or None))
    spec.update(fixed)
    return create_model(model_name, __config__=ConfigDict(extra="forbid"), **spec)


def _tagged(tag: str, name: str, fields: dict[str, Field], default_tag: bool, /,
            **fixed: Any) -> type[BaseModel]:
    value = (Literal[name], name if default_tag else ...)
    return model_of(f"{tag}_{name}", {k: f for k, f in fields.items() if k != tag},
                    **{tag: value}, **fixed)


def _union(models: list[type[BaseModel]], tag: str) -> Any:
    return Annotated[Union[tuple(models)], PydanticField(discriminator=tag)]  # noqa: UP007


@cache
def config_model() -> type[BaseModel]:
    """The model of a whole config file."""
    segment = _union([_tagged("type", k, f, False) for k, f in SEGMENT_FIELDS.items()], "type")
    scenarios = []
    for name, gen in GENERATORS.items():
        fixed = {"validation": (float | None, None)}
        if name == "lifelong":
            fixed["segments"] = (list[segment], ...)
        scenarios.append(_tagged("generator", name, gen.fields, False, **fixed))
    data = _union([_tagged("source", n, s.fields, False) for n, s in SOURCES.items()], "source")
    plugins = {k: (dict[str, Any] | None, None) for k in PLUGIN_KEYS}
    plugins["diagnostics"] = (bool | None, None)
    registered = [_tagged("name", n, e.fields, False, preset=(str | None, None),
                          **{k: v for k, v in plugins.items() if k not in e.fields})
                  for n, e in STRATEGIES.items()]
    user = create_model("strategy_user", __config__=ConfigDict(extra="allow"),
                        name=(Annotated[str, PydanticField(pattern=r"^[\w.]+:\w+$")], ...))
    preset = create_model("strategy_preset", __config__=ConfigDict(extra="allow"),
                          preset=(str, ...))
    strategy = Union[str, _union(registered, "name"), user, preset]  # noqa: UP007
    models = _union([_tagged("name", n, m.fields, False) for n, m in MODELS.items()], "name")
    top = {k: f for k, f in TOP_FIELDS.items()
           if k not in ("scenario", "data", "strategy", "model", "eval", "budget", "output")}
    return model_of("clenv_config", top,
                    scenario=(_union(scenarios, "generator"), ...),
                    data=(data | None, None), strategy=(strategy | None, None),
                    model=(models | None, None),
                    eval=(model_of("eval", EVAL_FIELDS) | None, None),
                    budget=(model_of("budget", BUDGET_FIELDS) | None, None),
                    output=(model_of("output", OUTPUT_FIELDS) | None, None))


def json_schema() -> dict:
    """The JSON Schema of a config file (`clenv schema > clenv.schema.json`)."""
    schema = config_model().model_json_schema()
    schema["title"] = "clenv config"
    return schema
