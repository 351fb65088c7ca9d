"""A plain timm Vision Transformer (no head, class token, nothing downloaded); its frozen path."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from clenv.errors import DataError

if TYPE_CHECKING:
    from timm.models.vision_transformer import VisionTransformer

_KEY = "model.weights"


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a state dict from a .safetensors file or a torch.save file (weights_only)."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unreadable file is a data problem
        raise DataError(f"{_KEY}: cannot read {path} ({type(exc).__name__}: {exc}); give a "
                        "state-dict file (.pt/.pth via torch.save, or .safetensors)") from exc
    for wrapper in ("model", "state_dict"):  # common checkpoint wrappers
        if isinstance(state, dict) and set(state) == {wrapper} and isinstance(state[wrapper], dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataError(f"{_KEY}: {path} is not a state dict of tensors")
    return state


def _short(keys: list[str], n: int = 4) -> str:
    """The first n keys, comma separated, with a count of the rest."""
    more = f" (+{len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def load_vit_weights(vit: torch.nn.Module, weights: str | Path) -> None:
    """Load a local state dict into ``vit`` with strict key and shape checks.

    Classifier keys (``head.*``) in the file are ignored because the model has no head.
    Raises DataError ("model.weights: ...") if the file is missing, unreadable or does not match.
    """
    path = Path(weights).expanduser()
    if not path.is_file():
        raise DataError(f"{_KEY}: file {path} not found; give a local state-dict file "
                        "(nothing is downloaded)")
    state = {k: v for k, v in _read_state_dict(path).items() if not k.startswith("head.")}
    own = vit.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys {_short(missing)}")
        if unexpected:
            parts.append(f"unexpected keys {_short(unexpected)}")
        raise DataError(f"{_KEY}: {path} does not match the ViT ({'; '.join(parts)}); check "
                        "img_size/patch_size/in_chans/embed_dim/depth")
    bad = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
           if tuple(state[k].shape) != tuple(v.shape)]
    if bad:
        raise DataError(f"{_KEY}: {path} has wrong shapes for {_short(bad, 3)}; check "
                        "img_size/patch_size/in_chans/embed_dim/depth")
    vit.load_state_dict(state, strict=True)


def make_vit(img_size: int, patch_size: int, in_chans: int, embed_dim: int, depth: int,
             num_heads: int, weights: str | Path | None = None) -> VisionTransformer:
    """A timm VisionTransformer without head (num_classes=0), with a class token and fixed image
    size; ``weights`` is an optional local state-dict file. Nothing is downloaded."""
    try:
        from timm.models.vision_transformer import VisionTransformer
    except ImportError as exc:
        raise ImportError("the ViT needs timm; install clenv[vision]") from exc
    vit = VisionTransformer(img_size=img_size, patch_size=patch_size, in_chans=in_chans,
                            num_classes=0, global_pool="token", embed_dim=embed_dim, depth=depth,
                            num_heads=num_heads, class_token=True, no_embed_class=False,
                            dynamic_img_size=False, dynamic_img_pad=False)
    if weights is not None:
        load_vit_weights(vit, weights)
    return vit


def vit_b16(img_size: int = 224, weights: str | Path | None = None) -> VisionTransformer:
    """ViT-B/16 (D=768, 12 blocks, 12 heads), the MULTI-LANE backbone."""
    return make_vit(img_size, 16, 3, 768, 12, 12, weights=weights)


@torch.no_grad()
def frozen_tokens(vit: VisionTransformer, x: torch.Tensor,
                  final: bool = True) -> list[torch.Tensor]:
    """Run the frozen ViT once without gradients: the input tokens (B, 1+N, D) of every block,
    then (if ``final``) the last block's output before ``vit.norm``; depth (+ 1) tensors.

    Same sequence as timm's ``VisionTransformer.forward_features`` (patch_embed, _pos_embed,
    patch_drop, norm_pre, blocks); ``final=False`` skips the last block, whose output a caller
    that only needs block inputs does not use.
    """
    h = vit.patch_embed(x)
    h = vit._pos_embed(h)
    h = vit.patch_drop(h)
    h = vit.norm_pre(h)
    out = [h]
    n = len(vit.blocks)
    for i, blk in enumerate(vit.blocks):
        if i == n - 1 and not final:
            break
        h = blk(h)
        out.append(h)
    return out
