"""A small SimGCD (Wen et al. 2023, as AGCD uses it; Ma et al. 2024): a backbone from
clenv.models, a cosine classifier over K = |old| + |new| prototypes, and the loss

    L = lambda * CE(labelled) + (1 - lambda) * (w_sd * L_distill - w_me * H(mean p))

over two augmented views of every batch of labelled + unlabelled samples: CE on the labelled
rows (student logits cos / tau_s); self-distillation, the cross-entropy from one view's
sharpened, detached prediction softmax(cos / tau_t) (tau_t < tau_s) to the other view's
student prediction; H(mean p) the entropy of the batch-mean student prediction (a
mean-entropy regulariser against collapsing into few clusters). After each epoch an EMA copy of
the network maps ground-truth classes to clusters (clenv.agcd.label_mapping) and a pass over the
queried samples trains lambda * CE through that map (train_recipes_ema.py of ActiveGCD).
SimGCD's contrastive representation terms are left out: the backbones here are small."""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

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
    """backbone features -> cosine similarities to the K prototypes."""

    def __init__(self, backbone: nn.Module, dim: int, n_clusters: int,
                 generator: torch.Generator) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = CosineClassifier(dim, n_clusters, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.backbone(x), dim=1)


def loss_terms(cos_views: list[torch.Tensor], target: torch.Tensor, student_temp: float,
               teacher_temp: float) -> dict[str, torch.Tensor]:
    """The three SimGCD terms over two views (cosines (B, K) each).

    ce = mean over views of CE(cos_v / tau_s, target) on rows with target >= 0 (0 if none);
    distill = 1/2 sum_{v != v'} mean_rows [ -sum_k q_v'k log softmax(cos_v / tau_s)_k ],
    q_v' = softmax(cos_v' / tau_t) detached;
    entropy = H(pbar), pbar = the mean of softmax(cos_v / tau_s) over rows and views.
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
    return {"ce": ce, "distill": distill, "entropy": ent}


def combine(terms: dict[str, torch.Tensor], sup_weight: float, distill_weight: float,
            memax_weight: float) -> torch.Tensor:
    """lambda * ce + (1 - lambda) * (w_sd * distill - w_me * entropy)."""
    return (sup_weight * terms["ce"]
            + (1 - sup_weight) * (distill_weight * terms["distill"]
                                  - memax_weight * terms["entropy"]))


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
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(self.seed))
            model = build_model(self.model_cfg, self.input_shape, self.K, self.seed)
        self.net = GCDNet(model.features, model.feature_dim, self.K, self.gen).to(self.device)
        self.ema = copy.deepcopy(self.net)
        for q in self.ema.parameters():
            q.requires_grad_(False)
        p = self.p
        if p["optimizer"] == "adam":
            self.opt = torch.optim.Adam(self.net.parameters(), lr=p["lr"],
                                        weight_decay=p["weight_decay"])
        else:
            self.opt = torch.optim.SGD(self.net.parameters(), lr=p["lr"],
                                       momentum=p["momentum"], weight_decay=p["weight_decay"])
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

    def _views(self, raw: torch.Tensor) -> list[torch.Tensor]:
        x = self._input(raw)
        both = self.net(torch.cat([self._augment(x), self._augment(x)]))
        return list(both.chunk(2))

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
        p = self.p
        n, bs = len(self.x_all), p["batch_size"]
        for _ in range(epochs):
            self.net.train()
            perm = torch.randperm(n, generator=self.gen).to(self.device)
            for s in range(0, n, bs):
                idx = perm[s:s + bs]
                if len(idx) < 2:
                    continue
                terms = loss_terms(self._views(self.x_all[idx]), self.target[idx],
                                   p["student_temp"], p["teacher_temp"])
                loss = combine(terms, p["sup_weight"], p["distill_weight"], p["memax_weight"])
                self._step(loss, len(idx))
            self.update_mapping()
            if len(self.q_pos):
                self._query_pass()

    def _query_pass(self) -> None:
        """One pass over the queried samples: lambda * CE through the current mapping."""
        p = self.p
        target = torch.from_numpy(apply_mapping(self.q_y, self._mapping)).to(self.device)
        rows = torch.from_numpy(self.n_lab + self.q_pos).to(self.device)
        perm = torch.randperm(len(rows), generator=self.gen).to(self.device)
        self.net.train()
        for s in range(0, len(rows), p["query_batch_size"]):
            b = perm[s:s + p["query_batch_size"]]
            views = self._views(self.x_all[rows[b]])
            ce = torch.stack([F.cross_entropy(v / p["student_temp"], target[b])
                              for v in views]).mean()
            self._step(p["sup_weight"] * ce, len(b))

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
