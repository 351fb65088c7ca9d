"""Registered models: name -> builder path, config fields, doc (no torch imported here)."""

from __future__ import annotations

from dataclasses import dataclass

from clenv.config.schema import PATH, Field, validate
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
    "vit": ModelEntry("vit", "clenv.models.vit_classifier:ViTClassifier", {
        "patch_size": Field(int, 4, "patch size in pixels", min=1),
        "embed_dim": Field(int, 64, "token width", min=8),
        "depth": Field(int, 4, "transformer blocks", min=1),
        "num_heads": Field(int, 4, "attention heads", min=1),
        "weights": Field(PATH, None, "a local state-dict file (.pt/.pth/.safetensors)"),
        "pretrain": Field(dict, None, "pretrain on another data source first: {data, epochs, "
                          "lr, batch_size}"),
    }, "small timm ViT (optionally pretrained on a disjoint pool) with a linear head"),
}


def validate_model(section: dict | None, key: str = "model") -> dict:
    section = dict(section or {"name": "mlp"})
    name = section.get("name", "mlp")
    if name not in MODELS:
        raise ConfigError(f"{key}.name", f"unknown model {name!r}",
                          f"expected one of: {', '.join(MODELS)}")
    params = {k: v for k, v in section.items() if k != "name"}
    out = {"name": name, **validate(params, MODELS[name].fields, key)}
    if isinstance(out.get("pretrain"), dict):
        out["pretrain"] = _pretrain_paths(out["pretrain"], f"{key}.pretrain")
    return out


def _pretrain_paths(pretrain: dict, key: str) -> dict:
    """The pretraining data section (validated when the model is built) with its path fields
    made absolute now, against the same folder as the rest of the config."""
    from clenv.config.schema import resolve_path
    from clenv.data.registry import SOURCES

    data = pretrain.get("data")
    source = SOURCES.get(data.get("source")) if isinstance(data, dict) else None
    if source is None:
        return pretrain
    fixed = {k: resolve_path(v, f"{key}.data.{k}")
             if source.fields.get(k) is not None and source.fields[k].kind == PATH
             and isinstance(v, str) else v for k, v in data.items()}
    return {**pretrain, "data": fixed}
