"""Registered models: name -> builder path, config fields, doc (no torch imported here)."""

from __future__ import annotations

from dataclasses import dataclass

from clenv.config.schema import Field, validate
from clenv.errors import ConfigError


@dataclass(frozen=True)
class ModelEntry:
    name: str
    target: str
    fields: dict[str, Field]
    doc: str


MODELS: dict[str, ModelEntry] = {
    "mlp": ModelEntry("mlp", "clenv.models.mlp:MLP", {
        "hidden": Field(list, [256, 256], "hidden layer widths", item=int),
        "activation": Field(str, "relu", "activation", choices=("relu", "gelu", "tanh")),
    }, "multi-layer perceptron on the flattened input"),
    "cnn": ModelEntry("cnn", "clenv.models.cnn:SmallResNet", {
        "width": Field(int, 32, "channels of the first stage", min=4),
        "blocks": Field(list, [1, 1, 1], "residual blocks per stage", item=int),
    }, "small ResNet-style CNN for 8-32 px images (global average pooling)"),
}


def validate_model(section: dict | None, key: str = "model") -> dict:
    section = dict(section or {"name": "mlp"})
    name = section.get("name", "mlp")
    if name not in MODELS:
        raise ConfigError(f"{key}.name", f"unknown model {name!r}",
                          f"expected one of: {', '.join(MODELS)}")
    params = {k: v for k, v in section.items() if k != "name"}
    return {"name": name, **validate(params, MODELS[name].fields, key)}
