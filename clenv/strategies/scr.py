"""Supervised contrastive replay (Mai et al. 2021, "Supervised contrastive replay: revisiting
the nearest class mean classifier in online class-incremental continual learning").

Each step joins the stream batch with a batch drawn from a reservoir memory, makes a second
view of every row, and minimises the supervised contrastive loss (Khosla et al. 2020) of the
projections z = g(f(x)) of both views:

    L = -(T / T_b) mean_i 1/|P(i)| sum_{p in P(i)}
            log( exp(z_i.z_p / T) / sum_{a != i} exp(z_i.z_a / T) )

over the 2N normalised projections, P(i) the other rows of i's class (its own second view
included). Prediction is the nearest class mean: the normalised encoder features of the
memory averaged per class and normalised again; a sample's score for class c is the cosine
f(x)/|f(x)| . mu_c (the order of -|f(x)/|f(x)| - mu_c|, the paper's NCM distance).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from clenv.agcd.contrastive import sup_con
from clenv.errors import ConfigError
from clenv.strategies.base import SupervisedStrategy
from clenv.strategies.memory import replay_buffer
from clenv.strategies.registry import STRATEGIES
from clenv.strategies.spec import StrategySpec

# the second view for image pools when no `augment` section is given: SCR's crop and flip
DEFAULT_IMAGE_VIEW = {"crop": 4, "flip": True, "autoaugment": None, "cutmix": 0.0,
                      "cutmix_alpha": 1.0}


def class_means(feats: torch.Tensor, y: torch.Tensor, n_classes: int
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """(C, D) means of the L2-normalised features per class, normalised again, and the (C,)
    mask of classes with at least one sample (one scatter-add, no per-class loop)."""
    z = F.normalize(feats, dim=1)
    sums = torch.zeros(n_classes, z.shape[1], dtype=z.dtype, device=z.device)
    sums.index_add_(0, y, z)
    counts = torch.bincount(y, minlength=n_classes)
    return F.normalize(sums, dim=1), counts > 0


def ncm_scores(feats: torch.Tensor, means: torch.Tensor, has_mean: torch.Tensor,
               neg_inf: torch.Tensor) -> torch.Tensor:
    """Cosine of each normalised feature row with each class mean; -inf for classes without
    a mean."""
    return torch.where(has_mean, F.normalize(feats, dim=1) @ means.T, neg_inf)


class SCR(SupervisedStrategy):
    """SupCon on stream + memory rows and their second views through a projection head;
    nearest-class-mean prediction over the memory's encoder features."""

    fields = STRATEGIES["scr"].fields
    families = ("single_label",)
    state_attributes = ("memory", "extra_forwards")

    def setup(self, spec: StrategySpec) -> None:
        super().setup(spec)
        if not hasattr(self.model, "features") or not hasattr(self.model, "feature_dim"):
            raise ConfigError("model.name", f"SCR needs a model with an encoder (features, "
                              f"feature_dim), got {spec.model.get('name')!r}",
                              "use model mlp or cnn")
        if self.forgetting is not None:
            raise ConfigError("strategy.forgetting", "SCR trains its encoder with a contrastive "
                              "loss; the forgetting plug-in acts on a classifier head",
                              "remove strategy.forgetting")
        if self.augment is not None and self.augment.cfg.get("cutmix", 0) > 0:
            raise ConfigError("strategy.augment.cutmix", "SCR's second view must keep its "
                              f"label, got cutmix {self.augment.cfg['cutmix']}",
                              "set strategy.augment.cutmix: 0")
        if self.augment is None and spec.image and len(spec.input_shape) == 3:
            from clenv.training.augment import Augmenter

            self.augment = Augmenter(DEFAULT_IMAGE_VIEW, tuple(spec.input_shape))
        self.memory = replay_buffer(self)
        self.replay_k = self.params.get("replay_batch_size") or spec.batch_size
        self.temperature = self.params.get("temperature", 0.07)
        self.extra_forwards = 0
        self._means: tuple | None = None
        self._means_key: tuple[int, int] | None = None

    def new_model(self) -> nn.Module:
        """The configured model with SCR's projection head g (Linear-ReLU-Linear, as the
        official SupConResNet head) registered on it, so the optimiser and checkpoints hold it."""
        model = super().new_model()
        d = model.feature_dim
        p = self.params.get("projection_dim", 128)
        model.scr_projection = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, p)).to(
            next(model.parameters()).device)
        return model

    def view(self, raw: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The second view of each row: the augmenter's output, or the row itself for vector
        data (Avalanche's SCR default view)."""
        if self.augment is None:
            return raw
        return self.augment(raw, y, self.rng)[0]

    def contrastive_step(self, raw: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One optimiser step on the SupCon loss of both views of (raw, y)."""
        self.model.train()
        inp = self.as_input(torch.cat((raw, self.view(raw, y))))
        z = self.model.scr_projection(self.model.features(inp))
        loss = sup_con(z, y, temperature=self.temperature, base_temperature=0.07)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer_step(len(y))
        return loss

    def learn(self, batch: dict, info: dict) -> dict[str, float]:
        x, y = self.stream_batch(batch, info)
        loss = None
        for _ in range(self.n_steps(len(y))):
            mx, my = self.memory.sample(self.replay_k)
            loss = self.contrastive_step(torch.cat((x, mx)), torch.cat((y, my)))
        self.memory.add(x, y)
        return {} if loss is None else {"loss": loss.item()}

    def memory_means(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Class means of the memory's features, recomputed when the model or memory changed."""
        key = (self.grad_steps, self.memory.n_seen)
        if self._means is None or self._means_key != key:
            m = self.memory
            with torch.no_grad():
                feats = self.model.features(self.as_input(m.x[:m.size]))
            self.extra_forwards += m.size
            self._means = class_means(feats, m.y[:m.size], self.spec.n_classes)
            self._means_key = key
        return self._means

    def predict(self, obs: dict) -> torch.Tensor:
        self.model.eval()
        means, has_mean = self.memory_means()
        with torch.no_grad():
            feats = self.model.features(self.as_input(self.raw(obs["x"])))
        return ncm_scores(feats, means, has_mean & self.seen, self.neg_inf)

    def counters(self) -> dict[str, int]:
        c = super().counters()
        c["buffer_samples"] = self.memory.size
        c["buffer_bytes"] = self.memory.nbytes
        c["extra_forwards"] = self.extra_forwards
        return c
