"""Registered models: name -> builder path, config fields, doc (no torch imported here)."""

from __future__ import annotations

from dataclasses import dataclass

from clenv.config.schema import Field, describe, validate
from clenv.errors import ConfigError


@dataclass(frozen=True)
class ModelEntry:
    name: str
    target: str
    fields: dict[str, Field]
    doc: str


MODELS: dict[str, ModelEntry] = {
    "mlp": ModelEntry("mlp", "clenv.models.mlp:MLP", {
        "hidden": Field(list, [256, 256], "hidden layer widths", item=int, min=1),
        "activation": Field(str, "relu", "activation", choices=("relu", "gelu", "tanh")),
    }, "multi-layer perceptron on the flattened input"),
    "cnn": ModelEntry("cnn", "clenv.models.cnn:SmallResNet", {
        "width": Field(int, 32, "channels of the first stage", min=4),
        "blocks": Field(list, [1, 1, 1], "residual blocks per stage", item=int, min=0),
    }, "small ResNet-style CNN for 8-32 px images (global average pooling)"),
    "vit": ModelEntry("vit", "clenv.models.vit_classifier:ViTClassifier", {
        "patch_size": Field(int, 4, "patch size in pixels", min=1),
        "embed_dim": Field(int, 64, "token width", min=8),
        "depth": Field(int, 4, "transformer blocks", min=1),
        "num_heads": Field(int, 4, "attention heads", min=1),
        "weights": Field(str, None, "a local state-dict file (.pt/.pth/.safetensors)"),
        "pretrain": Field(dict, None, "pretrain on another data source first: {data, epochs, "
                          "lr, batch_size}"),
    }, "small timm ViT (optionally pretrained on a disjoint pool) with a linear head"),
}


def validate_model(section: dict | None, key: str = "model") -> dict:
    section = dict(section or {"name": "mlp"})
    name = section.get("name", "mlp")
    if name not in MODELS:
        raise ConfigError(f"{key}.name", f"unknown model {describe(name)}",
                          f"expected one of: {', '.join(MODELS)}")
    params = {k: v for k, v in section.items() if k != "name"}
    return {"name": name, **validate(params, MODELS[name].fields, key)}
