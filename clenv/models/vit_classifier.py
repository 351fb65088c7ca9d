"""A small timm ViT with a linear head, optionally pretrained on a disjoint pool first.

``pretrain: {data: {...}, epochs, lr, batch_size}`` trains the ViT (with a temporary head) on
another data source before the stream — e.g. shapes canvases when the stream holds digits —
so a simulation has a pretrained backbone without downloading one. Pretraining is seeded by
the learner seed and cached per process (the same config and seed give the same weights); with
the environment variable ``CLENV_CACHE`` set to a folder, also on disk under
``$CLENV_CACHE/pretrain/`` (keyed by the sha256 of config, input shape, seed and torch version),
so parallel workers and later runs reuse one pretraining.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from clenv.config.schema import Field, validate
from clenv.errors import ConfigError

PRETRAIN_FIELDS: dict[str, Field] = {
    "data": Field(dict, doc="the pretraining data source (e.g. {source: canvas, glyphs: shapes})"),
    "epochs": Field(int, 3, "epochs over the pretraining pool", min=1),
    "lr": Field(float, 1e-3, "Adam learning rate", min=0),
    "batch_size": Field(int, 64, "batch size", min=1),
}
_CACHE: dict[str, dict[str, torch.Tensor]] = {}


def pretrained_state(vit: nn.Module, cfg: dict, input_shape: tuple[int, ...], seed: int,
                     key: str = "model.pretrain") -> dict[str, torch.Tensor]:
    """Train ``vit`` on the pretraining pool and return its state dict (cached)."""
    from clenv.data.registry import load_pool

    p = validate(cfg, PRETRAIN_FIELDS, key)
    tag = json.dumps([p, list(input_shape), seed], sort_keys=True, default=str)
    if tag in _CACHE:
        return _CACHE[tag]
    disk = _disk_path(tag)
    if disk is not None and disk.is_file():
        _CACHE[tag] = torch.load(disk, map_location="cpu", weights_only=True)
        return _CACHE[tag]
    pool = load_pool(p["data"], f"{key}.data")
    if pool.shape != tuple(input_shape):
        raise ConfigError(f"{key}.data", f"pretraining inputs have shape {pool.shape}, the "
                          f"stream's {tuple(input_shape)}", "use the same image size and channels")
    torch.manual_seed(seed)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x9E7]))
    head = nn.Linear(vit.embed_dim, pool.n_classes)
    opt = torch.optim.Adam([*vit.parameters(), *head.parameters()], lr=p["lr"])
    idx = pool.train_indices
    vit.train()
    for _ in range(p["epochs"]):
        order = idx[rng.permutation(len(idx))]
        for s in range(0, len(order), p["batch_size"]):
            b = order[s:s + p["batch_size"]]
            x = torch.from_numpy(pool.x[b]).float().div_(255.0)
            out = head(vit(x))
            y = torch.from_numpy(pool.y[b])
            loss = (F.binary_cross_entropy_with_logits(out, y.float()) if pool.multi_label
                    else F.cross_entropy(out, y))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    vit.eval()
    _CACHE[tag] = copy.deepcopy(vit.state_dict())
    if disk is not None:
        from clenv.atomic import write_bytes_atomic

        disk.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        torch.save(_CACHE[tag], buf)
        write_bytes_atomic(disk, buf.getvalue())
    return _CACHE[tag]


def _disk_path(tag: str) -> Path | None:
    """``$CLENV_CACHE/pretrain/<sha256>.pt`` or None when CLENV_CACHE is unset."""
    root = os.environ.get("CLENV_CACHE")
    if not root:
        return None
    digest = hashlib.sha256(f"{tag}|torch {torch.__version__}".encode()).hexdigest()[:32]
    return Path(root).expanduser() / "pretrain" / f"{digest}.pt"


class ViTClassifier(nn.Module):
    """timm ViT (class-token features) + a linear head; square images (C, H, H) only."""

    def __init__(self, input_shape: tuple[int, ...], n_out: int, patch_size: int = 4,
                 embed_dim: int = 64, depth: int = 4, num_heads: int = 4,
                 weights: str | None = None, pretrain: dict | None = None,
                 seed: int = 0) -> None:
        super().__init__()
        from clenv.models.vit import make_vit

        if len(input_shape) != 3 or input_shape[1] != input_shape[2]:
            raise ConfigError("model.name", f"vit needs square images (C, H, H), got "
                              f"{tuple(input_shape)}", "use an image source")
        self.vit = make_vit(input_shape[1], patch_size, input_shape[0], embed_dim, depth,
                            num_heads, weights=weights)
        if pretrain:
            self.vit.load_state_dict(pretrained_state(self.vit, pretrain, input_shape, seed))
        self.features = self.vit
        self.feature_dim = embed_dim
        self.head = nn.Linear(embed_dim, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.vit(x))
