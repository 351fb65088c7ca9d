"""Cosine and language-guided classifier heads (LingoCL, Ni et al., CVPR 2024).

logits_c = s * cos(g(f(x)), e_c) (+ b for multi-label heads), with f the backbone features, g a
trainable linear projection (when the feature and class-vector sizes differ, or when asked), s a
learnable or fixed scale and e_c the class vector of class c:
- ``language``: e_c = normalize(encoder(template(name_c))), a frozen buffer row written once when
  class c first appears (its name arrives in the Env's info) and never changed after;
- ``cosine``: e_c a learnable vector (the same projection and scale, for equal comparisons).
A multi-label head adds a learnable bias b (one scalar) so that sigmoid(logit) can cross the
decision threshold whatever s is.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from clenv.errors import ConfigError
from clenv.models.multihead import MultiHead
from clenv.strategies.state import Stateful


def _uniform_(t: torch.Tensor, bound: float, generator: torch.Generator) -> None:
    with torch.no_grad():
        t.copy_((torch.rand(t.shape, generator=generator) * 2 - 1) * bound)


def init_linear(layer: nn.Linear, generator: torch.Generator) -> None:
    """torch's default Linear init (U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias),
    drawn from ``generator``."""
    bound = 1.0 / math.sqrt(layer.in_features)
    _uniform_(layer.weight, bound, generator)
    if layer.bias is not None:
        _uniform_(layer.bias, bound, generator)


class CosineHead(nn.Module):
    """s * cos(g(f), e_c) over C class vectors, frozen (language targets) or learnable."""

    def __init__(self, feature_dim: int, n_classes: int, dim: int, *, frozen: bool,
                 scale: float, learn_scale: bool, bias: bool, projection: bool | None,
                 generator: torch.Generator) -> None:
        super().__init__()
        self.frozen = frozen
        use_projection = feature_dim != dim if projection is None else projection
        if not use_projection and feature_dim != dim:
            raise ConfigError("strategy.head.projection", f"the features have {feature_dim} "
                                                          f"dims and the class vectors {dim}",
                              "set projection: true (or remove it)")
        self.projection = nn.Linear(feature_dim, dim) if use_projection else None
        if frozen:
            self.register_buffer("targets", torch.zeros(n_classes, dim))
            self.register_buffer("revealed", torch.zeros(n_classes, dtype=torch.bool))
            self.vectors = None
        else:
            self.vectors = nn.Parameter(torch.empty(n_classes, dim))
        s = torch.tensor(float(scale))
        if learn_scale:
            self.scale = nn.Parameter(s)
        else:
            self.register_buffer("scale", s)
        self.bias = nn.Parameter(torch.zeros(())) if bias else None
        self.reset_trainable(generator)

    def reset_trainable(self, generator: torch.Generator) -> None:
        """Fresh values for the projection and learnable class vectors (never the frozen
        targets, the scale or the bias)."""
        if self.projection is not None:
            init_linear(self.projection, generator)
        if self.vectors is not None:
            with torch.no_grad():
                self.vectors.copy_(torch.randn(self.vectors.shape, generator=generator))

    def trainable_rows(self) -> nn.Parameter | None:
        """The learnable class-row matrix (None for frozen language targets)."""
        return self.vectors

    def reset_parameters_list(self) -> list[nn.Parameter]:
        """The parameters ``reset_trainable`` re-initialises."""
        out = list(self.projection.parameters()) if self.projection is not None else []
        return out + ([self.vectors] if self.vectors is not None else [])

    def class_vectors(self) -> torch.Tensor:
        return self.targets if self.frozen else self.vectors

    @torch.no_grad()
    def set_targets(self, rows: torch.Tensor, vectors: torch.Tensor) -> None:
        """Write frozen targets for ``rows``; a row is written once and never changes."""
        if bool(self.revealed[rows].any()):
            raise RuntimeError("a language target row was already revealed")
        self.targets[rows] = F.normalize(vectors.to(self.targets), dim=1)
        self.revealed[rows] = True

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        z = self.projection(f) if self.projection is not None else f
        w = self.class_vectors()
        logits = self.scale * (F.normalize(z, dim=1) @ F.normalize(w, dim=1).t())
        return logits + self.bias if self.bias is not None else logits


class HeadPlan(Stateful):
    """Builds the configured head on a model (flat or one per HLE level) and reveals language
    targets as class names arrive; revealed names survive a model rebuilt from scratch."""

    state_attributes = ("revealed", "builds")

    def __init__(self, cfg: dict, *, level_sizes: list[int], bias: bool, seed: int,
                 key: str = "strategy.head") -> None:
        self.cfg = cfg
        self.kind = cfg["type"]
        self.key = key
        self.level_sizes = level_sizes
        self.head_bias = bias  # from the family's codec (clenv.strategies.targets)
        self.seed = seed
        self.targets = None
        if self.kind == "language":
            from clenv.text.targets import SemanticTargets

            self.targets = SemanticTargets(cfg["encoder"], cfg["template"], cfg["cache_dir"],
                                           key)
            self.dim = self.targets.dim
        elif cfg["dim"] is not None:
            self.dim = cfg["dim"]
        else:  # a cosine head sized like the language encoder's vectors
            from clenv.text.encoder import resolve_encoder

            self.dim = resolve_encoder(cfg["encoder"], f"{key}.encoder").dim
        self.revealed: list[dict[int, np.ndarray]] = [{} for _ in level_sizes]
        self.builds = 0

    def attach(self, model: nn.Module) -> nn.Module:
        """Replace the model's linear head(s) with cosine heads; returns the model."""
        gen = torch.Generator().manual_seed(int(np.random.SeedSequence(
            [self.seed, 0x4EAD, self.builds]).generate_state(1)[0]))
        self.builds += 1
        cfg = self.cfg

        def make(old: nn.Module, n: int) -> CosineHead:
            if not isinstance(old, nn.Linear):
                raise ConfigError(f"{self.key}.type", "this model has no linear head to "
                                                      "replace", "use model mlp, cnn or vit")
            return CosineHead(old.in_features, n, self.dim, frozen=self.kind == "language",
                              scale=cfg["scale"], learn_scale=cfg["learn_scale"],
                              bias=self.head_bias, projection=cfg["projection"],
                              generator=gen)

        device = next(model.parameters()).device
        if isinstance(model, MultiHead):
            model.heads = nn.ModuleList(make(h, n) for h, n in
                                        zip(model.heads, self.level_sizes, strict=True))
        elif isinstance(getattr(model, "head", None), nn.Module):
            model.head = make(model.head, self.level_sizes[0])
        else:
            raise ConfigError(f"{self.key}.type", "this model has no head attribute to replace",
                              "use model mlp, cnn or vit")
        model.to(device)
        for lv, done in enumerate(self.revealed):
            if done and self.kind == "language":
                rows = torch.tensor(list(done), device=device)
                vecs = torch.from_numpy(np.stack(list(done.values())))
                self.heads(model)[lv].set_targets(rows, vecs)
        return model

    @staticmethod
    def heads(model: nn.Module) -> list[CosineHead]:
        return list(model.heads) if isinstance(model, MultiHead) else [model.head]

    def reveal(self, model: nn.Module, new_classes: dict) -> None:
        """Write the targets of classes named for the first time: ``{id: name}`` (flat) or
        ``{level: {id: name}}`` (hierarchies)."""
        if self.kind != "language" or not new_classes:
            return
        first = next(iter(new_classes.values()))
        per_level = new_classes if isinstance(first, dict) else {len(self.level_sizes) - 1:
                                                                 new_classes}
        heads = self.heads(model)
        for lv, named in per_level.items():
            todo = [(int(c), str(n)) for c, n in named.items()
                    if int(c) not in self.revealed[lv]]
            if not todo:
                continue
            vecs = self.targets.encode([n for _, n in todo])
            rows = torch.tensor([c for c, _ in todo], device=heads[lv].targets.device)
            heads[lv].set_targets(rows, torch.from_numpy(vecs))
            for (c, _), v in zip(todo, vecs, strict=True):
                self.revealed[lv][c] = v
