"""Build a registered model from its validated config section."""

from __future__ import annotations

from torch import nn

from clenv.config.imports import import_target
from clenv.models.registry import MODELS


def build_model(cfg: dict, input_shape: tuple[int, ...], n_out: int, seed: int = 0) -> nn.Module:
    entry = MODELS[cfg["name"]]
    cls = import_target(entry.target, "model.name")
    params = {k: v for k, v in cfg.items() if k != "name"}
    if cfg["name"] == "vit":
        params["seed"] = seed  # the pretraining stage draws from the learner seed
    return cls(tuple(input_shape), n_out, **params)
