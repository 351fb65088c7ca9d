"""Full-token lanes: MULTI-LANE's lanes without summarisation — every lane runs the whole token
sequence (CLS + all patches) through the frozen blocks with its own prefix prompts. The cost
reference of the MULTI-LANE paper: each lane costs about one backbone pass."""

from __future__ import annotations

import torch

from clenv.models.multilane import MultiLane


class FullTokenLanes(MultiLane):
    """Same parameters as MultiLane (prompts per lane, shared L2-normalised head); the
    selectors are unused. forward(x, lanes) runs all requested lanes batched."""

    def forward(self, x: torch.Tensor, lanes: list[int] | None = None) -> torch.Tensor:
        vit = self.vit
        lanes = list(range(len(self.task_classes))) if lanes is None else lanes
        n = len(lanes)
        with torch.no_grad():
            h = vit.norm_pre(vit.patch_drop(vit._pos_embed(vit.patch_embed(x))))
        b = h.shape[0]
        z = h.unsqueeze(0).expand(n, -1, -1, -1).reshape(n * b, *h.shape[1:])
        for i, blk in enumerate(vit.blocks):
            prompts = (torch.stack([self.prompts[t][i] for t in lanes])
                       if i < self.prompt_layers else None)
            z = z + blk.ls1(self._lane_attention(blk.attn, blk.norm1(z), prompts, n))
            z = z + blk.ls2(blk.mlp(blk.norm2(z)))
        cls = torch.nn.functional.normalize(vit.norm(z[:, 0]), dim=-1)
        logits = self.head(cls).reshape(n, b, -1)
        mask = self.class_mask(lanes).to(logits.device).unsqueeze(1)
        return torch.where(mask, logits, torch.zeros((), device=logits.device)).sum(0)
