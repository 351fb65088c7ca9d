"""A small SimGCD (Wen et al. 2023), trained as ActiveGCD trains it (Ma et al. 2024;
mashijie1028/ActiveGCD utils_al/train_recipes_ema.py ``train_al_ema``, model.py): a backbone from
clenv.models, a projection head (features -> 256-d, clenv.agcd.contrastive), a cosine classifier
over K = |old| + |new| prototypes, and over two augmented views of every batch of labelled +
unlabelled samples the loss

    L = lambda * (CE + SupCon) + (1 - lambda) * (w_sd * L_distill - w_me * H(mean p) + InfoNCE)

CE on the labelled rows (student logits cos / tau_s); self-distillation, the cross-entropy from
one view's sharpened, detached prediction softmax(cos / tau_t) to the other view's student
prediction, with tau_t warmed up linearly from ``warmup_teacher_temp`` to ``teacher_temp`` over
``warmup_teacher_epochs`` epochs (DistillLoss); H(mean p) the entropy of the batch-mean student
prediction; InfoNCE over the projections of both views (temperature 1, as ActiveGCD calls it);
SupCon over the labelled rows' projections (temperature 0.07). After each epoch an EMA copy of the
network maps ground-truth classes to clusters (clenv.agcd.label_mapping) and a pass over the
queried samples trains lambda * (CE through that map + SupCon on their labels). Each training
phase (the base epochs, then each round) gets a fresh SGD optimiser (no weight decay on biases
and norms) with a cosine rate over the phase's epochs down to lr * 1e-3, stepped per epoch.

Where the warm-up counts from (``teacher_warmup``): ActiveGCD warms the teacher up while training
the base model (train_base.py: 0.07 -> 0.04 over 30 of 100 epochs) and rebuilds the loss, with its
epoch counter at 0, in every query round, where its README's command sets the warm-up to
0.04 -> 0.04 (a constant). ``base`` (default) is that: the warm-up runs over the base epochs and
the rounds use ``teacher_temp``; ``round`` restarts the warm-up in every phase; ``run`` counts
epochs across the base phase and all rounds."""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from clenv.agcd.contrastive import ProjectionHead, info_nce, sup_con
from clenv.agcd.label_mapping import apply_mapping, class_to_cluster
from clenv.models.build import build_model


class CosineClassifier(nn.Module):
    """cos(f, w_k) for K prototypes w_k: both L2-normalised (a weight-normalised head)."""

    def __init__(self, dim: int, n_clusters: int, generator: torch.Generator) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_clusters, dim, generator=generator))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return F.normalize(f, dim=1) @ F.normalize(self.weight, dim=1).T


class GCDNet(nn.Module):
    """backbone features -> cosine similarities to the K prototypes, and a projection of the
    same features for the contrastive terms."""

    def __init__(self, backbone: nn.Module, dim: int, n_clusters: int,
                 generator: torch.Generator, proj: nn.Module | None = None) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = CosineClassifier(dim, n_clusters, generator)
        self.proj = proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))

    def forward_both(self, x: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        """(projection or None, cosines) from one backbone pass."""
        f = self.backbone(x)
        return (self.proj(f) if self.proj is not None else None), self.head(f)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.backbone(x), dim=1)


def teacher_temperature(epoch: int, warmup_temp: float, final_temp: float,
                        warmup_epochs: int) -> float:
    """DistillLoss's schedule: linspace(warmup_temp, final_temp, warmup_epochs)[epoch] during
    the warm-up, final_temp after."""
    if epoch >= warmup_epochs:
        return final_temp
    if warmup_epochs == 1:
        return warmup_temp
    return warmup_temp + (final_temp - warmup_temp) * epoch / (warmup_epochs - 1)


def cosine_rate(epoch: int, epochs: int, lr: float, min_lr: float) -> float:
    """CosineAnnealingLR(T_max=epochs, eta_min=min_lr) at ``epoch``."""
    return min_lr + (lr - min_lr) * (1 + math.cos(math.pi * min(epoch, epochs) / epochs)) / 2


def loss_terms(cos_views: list[torch.Tensor], target: torch.Tensor, student_temp: float,
               teacher_temp: float, proj_views: list[torch.Tensor] | None = None,
               infonce_temp: float = 1.0, supcon_temp: float = 0.07) -> dict[str, torch.Tensor]:
    """The SimGCD terms over two views (cosines (B, K) each; projections (B, d) each).

    ce = mean over views of CE(cos_v / tau_s, target) on rows with target >= 0 (0 if none);
    distill = 1/2 sum_{v != v'} mean_rows [ -sum_k q_v'k log softmax(cos_v / tau_s)_k ],
    q_v' = softmax(cos_v' / tau_t) detached;
    entropy = H(pbar), pbar = the mean of softmax(cos_v / tau_s) over rows and views;
    with projections also infonce (all rows) and supcon (rows with target >= 0, by target)
    (clenv.agcd.contrastive).
    """
    lab = target >= 0
    student = [c / student_temp for c in cos_views]
    log_p = [F.log_softmax(s, dim=1) for s in student]
    if lab.any():
        ce = torch.stack([F.cross_entropy(s[lab], target[lab]) for s in student]).mean()
    else:
        ce = cos_views[0].sum() * 0.0
    teacher = [F.softmax(c.detach() / teacher_temp, dim=1) for c in cos_views]
    distill = 0.5 * (-(teacher[1] * log_p[0]).sum(1).mean() - (teacher[0] * log_p[1]).sum(1).mean())
    pbar = torch.cat([lp.exp() for lp in log_p]).mean(0)
    ent = -(pbar * torch.log(pbar.clamp_min(1e-12))).sum()
    terms = {"ce": ce, "distill": distill, "entropy": ent}
    if proj_views is not None:
        terms["infonce"] = info_nce(torch.cat(proj_views), infonce_temp)
        terms["supcon"] = sup_con(torch.cat([v[lab] for v in proj_views]), target[lab],
                                  supcon_temp)
    return terms


def combine(terms: dict[str, torch.Tensor], sup_weight: float, distill_weight: float,
            memax_weight: float, infonce_weight: float = 1.0,
            supcon_weight: float = 1.0) -> torch.Tensor:
    """lambda * (ce + w_sc * supcon) + (1 - lambda) * (w_sd * distill - w_me * entropy
    + w_nce * infonce); the contrastive terms count when present."""
    sup = terms["ce"] + supcon_weight * terms["supcon"] if "supcon" in terms else terms["ce"]
    unsup = distill_weight * terms["distill"] - memax_weight * terms["entropy"]
    if "infonce" in terms:
        unsup = unsup + infonce_weight * terms["infonce"]
    return sup_weight * sup + (1 - sup_weight) * unsup


class SimGCD:
    """The GCD learner (see the module doc). All draws come from a torch Generator seeded by
    ``seed``; the backbone is initialised under a forked, seeded RNG."""

    def __init__(self, params: dict, model_cfg: dict, input_shape: tuple[int, ...], *,
                 seed: int, device: str = "cpu") -> None:
        self.p = params
        self.model_cfg = model_cfg
        self.input_shape = tuple(input_shape)
        self.seed = seed
        self.device = torch.device(device)
        self.grad_steps = 0
        self.samples_processed = 0
        self._mapping: dict[int, int] = {}

    # -- setup ---------------------------------------------------------------------------------
    def setup(self, x_labelled: np.ndarray, y_labelled: np.ndarray, x_unlabelled: np.ndarray,
              old_classes: np.ndarray, n_clusters: int) -> None:
        self.old = np.asarray(old_classes, dtype=np.int64)
        self.K = int(n_clusters)
        self.gen = torch.Generator().manual_seed(int(self.seed))
        p = self.p
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(self.seed))
            model = build_model(self.model_cfg, self.input_shape, self.K, self.seed)
            proj = (ProjectionHead(model.feature_dim, p["proj_dim"], p["proj_hidden"],
                                   p["proj_layers"]) if p["proj_dim"] else None)
        self.net = GCDNet(model.features, model.feature_dim, self.K, self.gen,
                          proj).to(self.device)
        self.ema = copy.deepcopy(self.net)
        for q in self.ema.parameters():
            q.requires_grad_(False)
        self.opt = self._new_optimizer()
        self.phase = 0  # training phases so far (the base epochs, then one per round)
        self.run_epoch = 0  # epochs so far, all phases
        self.n_lab = len(x_labelled)
        self.x_all = torch.from_numpy(np.concatenate([x_labelled, x_unlabelled])).to(self.device)
        self.y_lab = np.asarray(y_labelled, dtype=np.int64)
        self.old_map = {int(c): i for i, c in enumerate(self.old)}
        target = np.full(len(self.x_all), -1, dtype=np.int64)
        target[: self.n_lab] = apply_mapping(self.y_lab, self.old_map)
        self.target = torch.from_numpy(target).to(self.device)
        self.q_pos = np.zeros(0, dtype=np.int64)  # candidate positions of queried samples
        self.q_y = np.zeros(0, dtype=np.int64)
        sample = self._input(self.x_all[torch.randperm(len(self.x_all), generator=self.gen)
                                        [:4096].to(self.device)])
        self.scale = float(sample.std()) or 1.0

    def _input(self, raw: torch.Tensor) -> torch.Tensor:
        return raw.float().div(255.0) if raw.dtype == torch.uint8 else raw.float()

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        """A noised view: Gaussian noise (noise x input std) and a random share of features
        zeroed."""
        p = self.p
        g = self.gen
        out = x
        if p["noise"] > 0:
            out = out + p["noise"] * self.scale * torch.randn(x.shape, generator=g).to(x.device)
        if p["drop"] > 0:
            keep = torch.rand(x.shape, generator=g).to(x.device) >= p["drop"]
            out = out * keep
        return out

    def _views(self, raw: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor] | None]:
        """(cosines per view, projections per view or None) of two augmented views."""
        x = self._input(raw)
        proj, cos = self.net.forward_both(torch.cat([self._augment(x), self._augment(x)]))
        return list(cos.chunk(2)), (None if proj is None else list(proj.chunk(2)))

    def _new_optimizer(self) -> torch.optim.Optimizer:
        """SGD (or Adam) with weight decay on weight matrices only (ActiveGCD's
        get_params_groups: no decay on biases and norm parameters)."""
        p = self.p
        decay = [q for q in self.net.parameters() if q.requires_grad and q.dim() > 1]
        plain = [q for q in self.net.parameters() if q.requires_grad and q.dim() <= 1]
        groups = [{"params": decay}, {"params": plain, "weight_decay": 0.0}]
        if p["optimizer"] == "adam":
            return torch.optim.Adam(groups, lr=p["lr"], weight_decay=p["weight_decay"])
        return torch.optim.SGD(groups, lr=p["lr"], momentum=p["momentum"],
                               weight_decay=p["weight_decay"])

    def teacher_temp(self, phase_epoch: int) -> float:
        """The teacher temperature of an epoch (see ``teacher_warmup`` in the module doc)."""
        p = self.p
        mode = p["teacher_warmup"]
        if mode == "base" and self.phase > 0:
            return p["teacher_temp"]
        epoch = self.run_epoch if mode == "run" else phase_epoch
        return teacher_temperature(epoch, p["warmup_teacher_temp"], p["teacher_temp"],
                                   p["warmup_teacher_epochs"])

    def _step(self, loss: torch.Tensor, rows: int) -> None:
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self._ema_update()
        self.grad_steps += 1
        self.samples_processed += rows

    @torch.no_grad()
    def _ema_update(self) -> None:
        d = self.p["ema_decay"]
        ema_p = list(self.ema.parameters())
        torch._foreach_mul_(ema_p, d)
        torch._foreach_add_(ema_p, [q.detach() for q in self.net.parameters()], alpha=1 - d)
        for b_e, b in zip(self.ema.buffers(), self.net.buffers(), strict=True):
            b_e.copy_(b)

    # -- the contract --------------------------------------------------------------------------
    def add_queries(self, positions: np.ndarray, labels: np.ndarray) -> None:
        self.q_pos = np.concatenate([self.q_pos, np.asarray(positions, dtype=np.int64)])
        self.q_y = np.concatenate([self.q_y, np.asarray(labels, dtype=np.int64)])

    def update_mapping(self) -> dict[int, int]:
        """Hungarian map of ground-truth classes to clusters from the EMA model's predictions
        on every labelled and queried sample."""
        if not len(self.q_pos):
            self._mapping = dict(self.old_map)
            return self._mapping
        rows = torch.from_numpy(np.concatenate([np.arange(self.n_lab),
                                                self.n_lab + self.q_pos])).to(self.device)
        pred = self._predict(self.ema, self.x_all[rows]).argmax(1)
        gt = np.concatenate([self.y_lab, self.q_y])
        self._mapping = class_to_cluster(gt, pred, self.K)
        return self._mapping

    def mapping(self) -> dict[int, int]:
        return dict(self._mapping)

    def train(self, epochs: int) -> None:
        """One training phase of ``epochs`` epochs: a fresh optimiser, a cosine rate per epoch
        (``schedule: cosine``), the pass over labelled + unlabelled data, the EMA mapping and
        the pass over the queried samples each epoch."""
        p = self.p
        n, bs = len(self.x_all), p["batch_size"]
        if epochs <= 0:
            return
        self.opt = self._new_optimizer()
        for e in range(epochs):
            if p["schedule"] == "cosine":
                rate = cosine_rate(e, epochs, p["lr"], p["lr"] * p["min_lr_factor"])
                for group in self.opt.param_groups:
                    group["lr"] = rate
            tau_t = self.teacher_temp(e)
            self.net.train()
            perm = torch.randperm(n, generator=self.gen).to(self.device)
            for s in range(0, n, bs):
                idx = perm[s:s + bs]
                if len(idx) < 2:
                    continue
                cos, proj = self._views(self.x_all[idx])
                terms = loss_terms(cos, self.target[idx], p["student_temp"], tau_t, proj,
                                   p["infonce_temp"], p["supcon_temp"])
                loss = combine(terms, p["sup_weight"], p["distill_weight"], p["memax_weight"],
                               p["infonce_weight"], p["supcon_weight"])
                self._step(loss, len(idx))
            self.update_mapping()
            if len(self.q_pos):
                self._query_pass()
            self.run_epoch += 1
        self.phase += 1

    def _query_pass(self) -> None:
        """One pass over the queried samples: lambda * (CE through the current mapping +
        SupCon on the oracle's labels) (train_al_ema's second loop, al weights 1)."""
        p = self.p
        target = torch.from_numpy(apply_mapping(self.q_y, self._mapping)).to(self.device)
        labels = torch.from_numpy(self.q_y).to(self.device)
        rows = torch.from_numpy(self.n_lab + self.q_pos).to(self.device)
        perm = torch.randperm(len(rows), generator=self.gen).to(self.device)
        self.net.train()
        for s in range(0, len(rows), p["query_batch_size"]):
            b = perm[s:s + p["query_batch_size"]]
            cos, proj = self._views(self.x_all[rows[b]])
            ce = torch.stack([F.cross_entropy(v / p["student_temp"], target[b])
                              for v in cos]).mean()
            loss = ce
            if proj is not None and p["supcon_weight"] > 0 and len(b) > 1:
                loss = loss + p["supcon_weight"] * sup_con(torch.cat(proj), labels[b],
                                                           p["supcon_temp"])
            self._step(p["sup_weight"] * loss, len(b))

    @torch.no_grad()
    def _predict(self, net: nn.Module, raw: torch.Tensor, embed: bool = False) -> np.ndarray:
        net.eval()
        out = []
        for s in range(0, len(raw), 2048):
            x = self._input(raw[s:s + 2048])
            out.append(net.embed(x) if embed else net(x))
        return torch.cat(out).cpu().numpy() if out else np.zeros((0, self.K), np.float32)

    def logits(self, x: np.ndarray) -> np.ndarray:
        """Student logits cos / tau_s, (N, K)."""
        return self._predict(self.net, torch.from_numpy(x).to(self.device)) / self.p["student_temp"]

    def features(self, x: np.ndarray) -> np.ndarray:
        """L2-normalised backbone features, (N, d)."""
        return self._predict(self.net, torch.from_numpy(x).to(self.device), embed=True)

    def counters(self) -> dict[str, int]:
        return {"grad_steps": self.grad_steps, "samples_processed": self.samples_processed,
                "n_params": sum(q.numel() for q in self.net.parameters())}
