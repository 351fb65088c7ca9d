"""Seeded training augmentation for image pools (the ``augment`` section; clenv.training.config).

Every random choice comes from the learner's numpy generator, drawn per sample, so a run is
reproducible and a resumed run draws the same numbers (the generator is in the checkpoint):

- crop: zero-pad by ``crop`` pixels per side, then cut the input size back at an offset drawn
  per sample (one gather over the batch, no per-sample Python);
- flip: a horizontal flip per sample with probability 0.5;
- autoaugment: torchvision's AutoAugment policy applied to each sample under its own seed inside
  ``torch.random.fork_rng`` (torchvision draws from torch's global generator and one policy per
  call; the fork keeps the global generator untouched);
- cutmix (Yun et al. 2019): with probability ``cutmix`` per batch, lam ~ Beta(alpha, alpha), a
  permutation of the rows (within each label level on hierarchical streams, as the HLE code
  mixes each level apart) and a box of area (1 - lam) pasted from the partner; lam is then set to
  the exact unpasted fraction and the loss is lam · L(y) + (1 - lam) · L(y_partner)
  (naver-ai/i-Blurry utils/data_loader.py ``cutmix_data``, methods/er_baseline.py
  ``model_forward``).

The order is that of the i-Blurry training transform: crop, flip, AutoAugment, then CutMix on the
batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Mix:
    """A CutMix draw: rows mixed with ``partner`` rows, ``lam`` of each image its own."""

    partner: torch.Tensor
    lam: float

    def loss(self, loss_fn: Callable, out, y: torch.Tensor) -> torch.Tensor:
        return self.lam * loss_fn(out, y) + (1.0 - self.lam) * loss_fn(out, y[self.partner])


class Augmenter:
    """Applies a validated ``augment`` section to raw image batches (N, C, H, W)."""

    def __init__(self, cfg: dict, input_shape: tuple[int, ...]) -> None:
        if len(input_shape) != 3:
            raise ValueError(f"augment needs images of shape (C, H, W), got {input_shape}")
        self.cfg = dict(cfg)
        self.pad = int(cfg["crop"])
        self.policy = None
        if cfg["autoaugment"]:
            from torchvision.transforms import AutoAugment, AutoAugmentPolicy

            self.policy = AutoAugment(AutoAugmentPolicy(cfg["autoaugment"]))

    @property
    def active(self) -> bool:
        c = self.cfg
        return bool(self.pad or c["flip"] or self.policy is not None or c["cutmix"] > 0)

    def __call__(self, x: torch.Tensor, y: torch.Tensor,
                 rng: np.random.Generator) -> tuple[torch.Tensor, Mix | None]:
        """Augmented copy of raw batch ``x`` (uint8 stays uint8) and the CutMix draw, if any.
        ``y`` is needed only to keep hierarchical CutMix partners at the same level."""
        n = x.shape[0]
        if n == 0:
            return x, None
        if self.pad:
            x = self.crop(x, rng)
        if self.cfg["flip"]:
            flip = torch.from_numpy(rng.random(n) < 0.5).to(x.device)
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        if self.policy is not None:
            x = self.autoaugment(x, rng)
        mix = None
        if self.cfg["cutmix"] > 0 and n > 1 and rng.random() < self.cfg["cutmix"]:
            x, mix = self.cutmix(x, y, rng)
        return x, mix

    def crop(self, x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        n, c, h, w = x.shape
        p = self.pad
        padded = torch.nn.functional.pad(x, (p, p, p, p))
        dy = torch.from_numpy(rng.integers(0, 2 * p + 1, n)).to(x.device)
        dx = torch.from_numpy(rng.integers(0, 2 * p + 1, n)).to(x.device)
        rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
        cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
        batch = torch.arange(n, device=x.device)[:, None, None, None]
        chan = torch.arange(c, device=x.device)[None, :, None, None]
        return padded[batch, chan, rows, cols]

    def autoaugment(self, x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        seeds = rng.integers(0, 2**63 - 1, x.shape[0])
        u8 = x if x.dtype == torch.uint8 else (x.clamp(0, 1) * 255).round().to(torch.uint8)
        out = torch.empty_like(u8)
        devices = [x.device] if x.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            cpu = torch.random.default_generator  # torchvision draws on the CPU generator;
            for i, s in enumerate(seeds.tolist()):  # one policy per call
                cpu.manual_seed(s)  # (torch.manual_seed would also queue a CUDA seed, 1 ms)
                out[i] = self.policy(u8[i])
        return out if x.dtype == torch.uint8 else out.to(x.dtype) / 255.0

    def cutmix(self, x: torch.Tensor, y: torch.Tensor,
               rng: np.random.Generator) -> tuple[torch.Tensor, Mix]:
        n, _, h, w = x.shape
        lam = float(rng.beta(self.cfg["cutmix_alpha"], self.cfg["cutmix_alpha"]))
        partner = torch.from_numpy(partners(y, rng)).to(x.device)
        cut = np.sqrt(1.0 - lam)
        ch, cw = int(h * cut), int(w * cut)
        cy, cx = int(rng.integers(h)), int(rng.integers(w))
        y1, y2 = np.clip(cy - ch // 2, 0, h), np.clip(cy + ch // 2, 0, h)
        x1, x2 = np.clip(cx - cw // 2, 0, w), np.clip(cx + cw // 2, 0, w)
        x = x.clone()
        x[:, :, y1:y2, x1:x2] = x[partner, :, y1:y2, x1:x2]
        lam = 1.0 - (y2 - y1) * (x2 - x1) / (h * w)
        return x, Mix(partner, float(lam))


def partners(y: torch.Tensor, rng: np.random.Generator) -> np.ndarray:
    """A random partner row per row; on hierarchical batches (y of shape (n, 2): label, level)
    partners share the row's level."""
    n = y.shape[0]
    if y.dim() != 2 or y.shape[1] != 2:
        return rng.permutation(n)
    level = y[:, 1].cpu().numpy()
    by_level = np.argsort(level, kind="stable")
    shuffled = np.lexsort((rng.random(n), level))  # grouped by level, random within a group
    out = np.empty(n, dtype=np.int64)
    out[by_level] = shuffled
    return out
