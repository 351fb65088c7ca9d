"""MULTI-LANE (De Min et al., CoLLAs 2024): a frozen ViT with one light "lane" per task.

Each lane carries a CLS state and S selector tokens. In every block the selectors summarise the
block's frozen patch tokens (S x N attention), the [CLS, summaries] sequence goes through the
block's frozen attention (with the lane's prefix prompts in the first blocks), the summaries'
outputs are dropped and the selectors put back, then the block's frozen MLP. The lane CLS goes
through the final norm, is L2-normalised and fed to one shared head; each lane's logits are
masked to its task's classes and summed over lanes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from clenv.models.vit import frozen_tokens


class MultiLane(nn.Module):
    """A frozen timm ViT plus per-task lanes (selectors, prefix prompts) and a shared head."""

    def __init__(self, vit: nn.Module, n_classes: int, n_selectors: int = 10,
                 n_prompts: int = 10, prompt_layers: int = 5) -> None:
        super().__init__()
        depth = len(vit.blocks)
        if n_classes < 1 or n_selectors < 1 or n_prompts < 0:
            raise ValueError(f"MultiLane needs n_classes >= 1, n_selectors >= 1, n_prompts >= 0; "
                             f"got {n_classes}, {n_selectors}, {n_prompts}")
        if not 0 <= prompt_layers <= depth:
            raise ValueError(f"prompt_layers must be in [0, {depth}], got {prompt_layers}")
        if getattr(vit, "cls_token", None) is None:
            raise ValueError("MultiLane needs a ViT with a class token")
        dim = int(vit.embed_dim)
        for i, blk in enumerate(vit.blocks):
            attn = blk.attn
            if not hasattr(attn, "qkv") or getattr(attn, "gate", None) is not None:
                raise ValueError(f"block {i}: MultiLane needs timm's plain Attention (fused qkv)")
            if attn.num_heads * attn.head_dim != dim:
                raise ValueError(f"block {i}: attention width {attn.num_heads * attn.head_dim} "
                                 f"!= embed_dim {dim}")
        self.vit = vit
        for p in self.vit.parameters():
            p.requires_grad_(False)
        self.vit.eval()
        self.dim = dim
        self.n_classes = n_classes
        self.n_selectors = n_selectors
        self.n_prompts = n_prompts
        self.prompt_layers = prompt_layers
        self.selectors = nn.ParameterList()  # lane t: (S, D)
        self.prompts = nn.ParameterList()  # lane t: (prompt_layers, 2 [key, value], P, D)
        ref = vit.cls_token
        self.head = nn.Linear(dim, n_classes, device=ref.device, dtype=ref.dtype)
        self.task_classes: list[list[int]] = []
        self.record: list[tuple[int, ...]] | None = None

    @property
    def n_lanes(self) -> int:
        """Number of lanes (tasks) added so far."""
        return len(self.task_classes)

    def train(self, mode: bool = True) -> MultiLane:
        """Set training mode; the frozen ViT always stays in eval mode."""
        super().train(mode)
        self.vit.eval()
        return self

    def add_task(self, classes: list[int]) -> int:
        """Add lane t for a task's classes: orthogonal init for t = 0, else a copy of lane t-1."""
        cls = [int(c) for c in classes]
        if not cls or len(set(cls)) != len(cls):
            raise ValueError(f"task classes must be non-empty and distinct, got {cls}")
        if any(c < 0 or c >= self.n_classes for c in cls):
            raise ValueError(f"task classes must be in [0, {self.n_classes}), got {cls}")
        seen = {c for task in self.task_classes for c in task}
        if seen.intersection(cls):
            raise ValueError(f"classes {sorted(seen.intersection(cls))} already belong to a task; "
                             "MULTI-LANE tasks have disjoint classes")
        t = self.n_lanes
        w = self.head.weight
        if t == 0:
            # orthogonal init needs a QR, which CUDA lacks for bfloat16: draw in float32
            sel = torch.empty(self.n_selectors, self.dim, device=w.device)
            nn.init.orthogonal_(sel)
            rows = self.prompt_layers * 2 * self.n_prompts
            pro = torch.empty(rows, self.dim, device=w.device)
            if rows:
                nn.init.orthogonal_(pro)
            sel = sel.to(w.dtype)
            pro = pro.to(w.dtype).view(self.prompt_layers, 2, self.n_prompts, self.dim)
        else:
            sel = self.selectors[t - 1].detach().clone()
            pro = self.prompts[t - 1].detach().clone()
        self.selectors.append(nn.Parameter(sel))
        self.prompts.append(nn.Parameter(pro))
        self.task_classes.append(cls)
        return t

    def trainable_parameters(self, task: int) -> list[nn.Parameter]:
        """What task ``task`` trains: its lane's selectors and prompts, and the shared head."""
        self._check_lanes([task])
        return [self.selectors[task], self.prompts[task], self.head.weight, self.head.bias]

    def class_mask(self, lanes: list[int]) -> torch.Tensor:
        """(len(lanes), n_classes) bool: row i is True on the classes of task lanes[i]."""
        mask = torch.zeros(len(lanes), self.n_classes, dtype=torch.bool)
        for i, t in enumerate(lanes):
            mask[i, self.task_classes[t]] = True
        return mask.to(self.head.weight.device)

    def _check_lanes(self, lanes: list[int] | None) -> list[int]:
        if lanes is None:
            lanes = list(range(self.n_lanes))
        lanes = [int(t) for t in lanes]
        if not lanes:
            raise ValueError("MultiLane has no lane to run; call add_task first")
        bad = [t for t in lanes if not 0 <= t < self.n_lanes]
        if bad or len(set(lanes)) != len(lanes):
            raise ValueError(f"lanes must be distinct in [0, {self.n_lanes}), got {lanes}")
        return lanes

    def _lane_attention(self, attn: nn.Module, seq: torch.Tensor,
                        prompts_l: torch.Tensor | None, n_lanes: int) -> torch.Tensor:
        """Multi-head attention of ``seq`` (L*B, T, D) with the frozen ``attn`` weights; the
        lanes' prompts (L, 2, P, D) are prepended to keys and values (prefix tuning)."""
        lb, n_tok, _ = seq.shape
        h, hd = attn.num_heads, attn.head_dim
        qkv = attn.qkv(seq).reshape(lb, n_tok, 3, h, hd).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # (L*B, H, T, hd)
        q, k = attn.q_norm(q), attn.k_norm(k)
        if prompts_l is not None and prompts_l.shape[2] > 0:
            n_p = prompts_l.shape[2]
            b = lb // n_lanes
            pre = prompts_l.reshape(n_lanes, 1, 2, n_p, h, hd).expand(-1, b, -1, -1, -1, -1)
            pre = pre.reshape(lb, 2, n_p, h, hd).transpose(2, 3)  # (L*B, 2, H, P, hd)
            k = torch.cat([pre[:, 0], k], dim=2)
            v = torch.cat([pre[:, 1], v], dim=2)
        out = F.scaled_dot_product_attention(q, k, v, scale=attn.scale)
        out = out.transpose(1, 2).reshape(lb, n_tok, h * hd)
        return attn.proj(attn.norm(out))

    def lane_block(self, blk: nn.Module, z: torch.Tensor, x_l: torch.Tensor,
                   prompts_l: torch.Tensor | None = None) -> torch.Tensor:
        """One block for all lanes at once.

        z: (L*B, 1+S, D) lane states [CLS, selectors], lane-major (lane i = rows i*B..(i+1)*B-1);
        x_l: (B, 1+N, D) the frozen tokens entering ``blk``; prompts_l: (L, 2, P, D) or None.
        Returns the lanes' states after the block.
        """
        b = x_l.shape[0]
        lb, n_tok, dim = z.shape
        n_lanes, n_sel = lb // b, n_tok - 1
        zn = blk.norm1(z)
        # (1) summarise: selectors attend over the LayerNorm-ed frozen patch tokens (S x N)
        kv = blk.norm1(x_l[:, self.vit.num_prefix_tokens:]).detach()  # (B, N, D)
        q = zn[:, 1:].reshape(n_lanes, b, n_sel, dim)
        a = (torch.einsum("lbsd,bnd->lbsn", q, kv) * dim ** -0.5).softmax(dim=-1)
        if self.record is not None:
            self.record.append((lb, n_sel, kv.shape[1]))
        summaries = torch.einsum("lbsn,bnd->lbsd", a, kv).reshape(lb, n_sel, dim)
        # (2) lane attention over [CLS, summaries] with the block's frozen weights (+ prompts)
        seq = torch.cat([zn[:, :1], summaries], dim=1)
        att = self._lane_attention(blk.attn, seq, prompts_l, n_lanes)
        # (3) drop & replace: the residual stream is [CLS, selectors], then the frozen MLP
        z = z + blk.ls1(att)
        return z + blk.ls2(blk.mlp(blk.norm2(z)))

    def forward(self, x: torch.Tensor, lanes: list[int] | None = None) -> torch.Tensor:
        """(B, n_classes) logits: the masked logits of the requested lanes (default all), summed;
        classes of no requested lane are exactly 0."""
        lanes = self._check_lanes(lanes)
        toks = frozen_tokens(self.vit, x, final=False)  # once per image, no gradients
        b, n_lanes, dim, n_sel = x.shape[0], len(lanes), self.dim, self.n_selectors
        sel = torch.stack([self.selectors[t] for t in lanes])  # (L, S, D)
        cls0 = toks[0][:, :1]  # frozen cls_token + its position embedding, (B, 1, D)
        z = torch.cat([cls0.unsqueeze(0).expand(n_lanes, -1, -1, -1),
                       sel.unsqueeze(1).expand(-1, b, -1, -1)], dim=2)
        z = z.reshape(n_lanes * b, 1 + n_sel, dim)
        prompts = None
        if self.prompt_layers and self.n_prompts:
            prompts = torch.stack([self.prompts[t] for t in lanes])  # (L, layers, 2, P, D)
        for i, blk in enumerate(self.vit.blocks):
            p = prompts[:, i] if prompts is not None and i < self.prompt_layers else None
            z = self.lane_block(blk, z, toks[i], p)
        feat = F.normalize(self.vit.norm(z[:, 0]), dim=-1)
        logits = self.head(feat).reshape(n_lanes, b, self.n_classes)
        mask = self.class_mask(lanes)[:, None, :]
        return torch.where(mask, logits, torch.zeros((), dtype=logits.dtype,
                                                     device=logits.device)).sum(0)
