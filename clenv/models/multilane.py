"""MULTI-LANE (De Min et al., CoLLAs 2024): a frozen ViT with one light "lane" per task.

Each lane carries a CLS state and S selector tokens. In every block, as the official
tdemin16/multi-lane code does (``multi_lane/blocks.py``, ``PreT_Attention.forward`` and
``Block.forward``): the LayerNorm-ed selectors summarise the block's whole LayerNorm-ed, detached
token input (an S x N softmax attention); the sequence [lane CLS, summaries] goes through the
block's frozen attention (with the lane's prefix prompts in the first blocks); then *drop &
replace*: the summaries' attention outputs are dropped and the LayerNorm-ed selectors take their
place, and the block's residual and frozen MLP follow as usual. The selector states therefore
never depend on the image (they are computed once per lane, not per image). The lane CLS starts
from the raw ``cls_token`` (``vision_transformer.py``, ``forward_features``), goes through the
final norm, is L2-normalised and fed to one shared head; each lane's logits are masked to its
task's classes and summed over lanes (``forward_head``, ``head_mode='concat'``).

``drop_replace=False`` is the official ``--disable_dandr`` ablation: the selectors summarise
the tokens in block 0 only and the summaries then travel through the later blocks as ordinary
lane tokens (image-dependent).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from clenv.models.vit import frozen_tokens


class MultiLane(nn.Module):
    """A frozen timm ViT plus per-task lanes (selectors, prefix prompts) and a shared head."""

    def __init__(self, vit: nn.Module, n_classes: int, n_selectors: int = 10,
                 n_prompts: int = 10, prompt_layers: int = 5, drop_replace: bool = True) -> None:
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
        self.drop_replace = bool(drop_replace)
        self.selectors = nn.ParameterList()  # lane t: (S, D)
        self.prompts = nn.ParameterList()  # lane t: (prompt_layers, 2 [key, value], P, D)
        ref = vit.cls_token
        self.head = nn.Linear(dim, n_classes, device=ref.device, dtype=ref.dtype)
        self.task_classes: list[list[int]] = []
        self.record: list[tuple[int, ...]] | None = None
        # when a list, forward appends (lane CLS (L, B, D), selectors (L, B, S, D)) before
        # block 0 and after every block (for tests and inspection)
        self.trace: list[tuple[torch.Tensor, torch.Tensor]] | None = None

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
                        prompts_l: torch.Tensor | None, n_lanes: int,
                        n_queries: int | None = None) -> torch.Tensor:
        """Multi-head attention of ``seq`` (L*B, T, D) with the frozen ``attn`` weights; the
        lanes' prompts (L, 2, P, D) are prepended to keys and values (prefix tuning). Only the
        first ``n_queries`` positions (default all) are computed: (L*B, n_queries, D)."""
        lb, n_tok, _ = seq.shape
        h, hd = attn.num_heads, attn.head_dim
        qkv = attn.qkv(seq).reshape(lb, n_tok, 3, h, hd).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # (L*B, H, T, hd)
        q, k = attn.q_norm(q), attn.k_norm(k)
        if n_queries is not None:
            q = q[:, :, :n_queries]
        if prompts_l is not None and prompts_l.shape[2] > 0:
            n_p = prompts_l.shape[2]
            b = lb // n_lanes
            pre = prompts_l.reshape(n_lanes, 1, 2, n_p, h, hd).expand(-1, b, -1, -1, -1, -1)
            pre = pre.reshape(lb, 2, n_p, h, hd).transpose(2, 3)  # (L*B, 2, H, P, hd)
            k = torch.cat([pre[:, 0], k], dim=2)
            v = torch.cat([pre[:, 1], v], dim=2)
        out = F.scaled_dot_product_attention(q, k, v, scale=attn.scale)
        out = out.transpose(1, 2).reshape(lb, q.shape[2], h * hd)
        return attn.proj(attn.norm(out))

    def _summaries(self, blk: nn.Module, sel_n: torch.Tensor, x_l: torch.Tensor) -> torch.Tensor:
        """(L*B, S, D): each LayerNorm-ed selector (sel_n: (L, S, D), or (L, B, S, D)) attends
        over the block's whole LayerNorm-ed, detached token input x_l (B, N, D) — softmax of
        dot products scaled by D^-1/2 — and aggregates it (official ``PreT_Attention.forward``,
        multi_lane/blocks.py: ``x.detach()`` is the block's ``norm1`` output, CLS included)."""
        b, dim = x_l.shape[0], sel_n.shape[-1]
        kv = blk.norm1(x_l).detach()  # (B, N, D)
        if sel_n.dim() == 3:
            sel_n = sel_n.unsqueeze(1).expand(-1, b, -1, -1)
        a = (torch.einsum("lbsd,bnd->lbsn", sel_n, kv) * dim ** -0.5).softmax(dim=-1)
        if self.record is not None:
            self.record.append((sel_n.shape[0] * b, sel_n.shape[2], kv.shape[1]))
        return torch.einsum("lbsn,bnd->lbsd", a, kv).flatten(0, 1)

    def lane_block(self, blk: nn.Module, cls: torch.Tensor, sel: torch.Tensor,
                   x_l: torch.Tensor, prompts_l: torch.Tensor | None = None,
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """One block for all lanes at once, with drop & replace (the official rule).

        cls: (L*B, 1, D) lane CLS states, lane-major (lane i = rows i*B..(i+1)*B-1);
        sel: (L, S, D) the lanes' selector states (one per lane: they do not depend on the
        image); x_l: (B, N, D) the frozen tokens entering ``blk``; prompts_l: (L, 2, P, D).
        Returns (cls, sel) after the block.
        """
        sel_n = blk.norm1(sel)
        summaries = self._summaries(blk, sel_n, x_l)
        seq = torch.cat([blk.norm1(cls), summaries], dim=1)
        # drop & replace (multi_lane/blocks.py, PreT_Attention.forward): the attention keeps
        # only the CLS output; the summaries' outputs are dropped and the LayerNorm-ed selectors
        # replace them, then Block.forward's residual and MLP run on [CLS, selectors]
        att = self._lane_attention(blk.attn, seq, prompts_l, sel.shape[0], n_queries=1)
        cls = cls + blk.ls1(att)
        cls = cls + blk.ls2(blk.mlp(blk.norm2(cls)))
        sel = sel + blk.ls1(sel_n)
        sel = sel + blk.ls2(blk.mlp(blk.norm2(sel)))
        return cls, sel

    def token_block(self, blk: nn.Module, z: torch.Tensor, x_l: torch.Tensor | None,
                    prompts_l: torch.Tensor | None, n_lanes: int) -> torch.Tensor:
        """One block without drop & replace (official ``--disable_dandr``): z (L*B, 1+S, D).
        With ``x_l`` (block 0) the selectors first summarise x_l and the attention runs over
        [CLS, summaries]; without it over z itself. All outputs are kept: z + attention, MLP."""
        zn = blk.norm1(z)
        if x_l is not None:
            sel_n = zn[:, 1:].reshape(n_lanes, -1, zn.shape[1] - 1, zn.shape[2])
            seq = torch.cat([zn[:, :1], self._summaries(blk, sel_n, x_l)], dim=1)
        else:
            seq = zn
        z = z + blk.ls1(self._lane_attention(blk.attn, seq, prompts_l, n_lanes))
        return z + blk.ls2(blk.mlp(blk.norm2(z)))

    def _trace(self, cls: torch.Tensor, sel: torch.Tensor, n_lanes: int, b: int) -> None:
        """Append (CLS (L, B, D), selectors (L, B, S, D)); sel is (L, S, D) (one per lane)
        or (L*B, S, D) (per image)."""
        if self.trace is not None:
            c = cls.detach().reshape(n_lanes, b, -1).clone()
            s = sel.detach()
            s = (s.reshape(n_lanes, b, *s.shape[1:]) if s.shape[0] == n_lanes * b != n_lanes
                 else s.unsqueeze(1).expand(-1, b, -1, -1)).clone()
            self.trace.append((c, s))

    def forward(self, x: torch.Tensor, lanes: list[int] | None = None) -> torch.Tensor:
        """(B, n_classes) logits: the masked logits of the requested lanes (default all), summed;
        classes of no requested lane are exactly 0."""
        lanes = self._check_lanes(lanes)
        toks = frozen_tokens(self.vit, x, final=False)  # once per image, no gradients
        b, n_lanes, dim = x.shape[0], len(lanes), self.dim
        sel = torch.stack([self.selectors[t] for t in lanes])  # (L, S, D)
        # the lane CLS starts from the raw cls_token, without the position embedding
        # (multi_lane/vision_transformer.py, VisionTransformer.forward_features)
        cls = self.vit.cls_token.reshape(1, 1, dim).expand(n_lanes * b, 1, dim)
        self._trace(cls, sel, n_lanes, b)
        prompts = None
        if self.prompt_layers and self.n_prompts:
            prompts = torch.stack([self.prompts[t] for t in lanes])  # (L, layers, 2, P, D)
        z = None
        for i, blk in enumerate(self.vit.blocks):
            p = prompts[:, i] if prompts is not None and i < self.prompt_layers else None
            if self.drop_replace:
                cls, sel = self.lane_block(blk, cls, sel, toks[i], p)
                self._trace(cls, sel, n_lanes, b)
                continue
            if z is None:
                z = torch.cat([cls, sel.unsqueeze(1).expand(-1, b, -1, -1).flatten(0, 1)], 1)
                z = self.token_block(blk, z, toks[i], p, n_lanes)
            else:
                z = self.token_block(blk, z, None, p, n_lanes)
            cls = z[:, :1]
            self._trace(cls, z[:, 1:], n_lanes, b)
        feat = F.normalize(self.vit.norm(cls[:, 0]), dim=-1)
        logits = self.head(feat).reshape(n_lanes, b, self.n_classes)
        mask = self.class_mask(lanes)[:, None, :]
        return torch.where(mask, logits, torch.zeros((), dtype=logits.dtype,
                                                     device=logits.device)).sum(0)
