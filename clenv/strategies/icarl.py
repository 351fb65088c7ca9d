"""iCaRL (Rebuffi et al. 2017, "iCaRL: Incremental Classifier and Representation Learning"):
replay of herded exemplars, distillation from the previous model with sigmoid BCE, and
nearest-mean-of-exemplars classification."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from clenv.errors import ConfigError
from clenv.strategies.base import SupervisedStrategy
from clenv.strategies.herding import class_means, herding, ncm_scores
from clenv.strategies.registry import STRATEGIES
from clenv.strategies.spec import StrategySpec


class ICaRL(SupervisedStrategy):
    """Each step trains on the stream batch plus exemplars drawn uniformly from memory. The
    loss is the paper's BCE over the classes seen so far: label targets for the classes new
    since the last task end, the previous model's sigmoid outputs for the old ones. At each
    task end: memory reduction to m = memory_size // |seen| per class (the first m in herding
    order), herding of m exemplars for each new class from the task's samples, class means
    of the exemplars, and a frozen copy of the model as the next teacher. predict returns
    -|| phi(x) - mu_y || (NCM)."""

    fields = STRATEGIES["icarl"].fields
    families = ("single_label",)
    state_attributes = ("ex_x", "ex_y", "ex_rank", "ex_size", "store_x", "store_y", "stored",
                        "old_model", "has_old", "old_seen", "means", "has_mean",
                        "means_step", "extra_forwards")

    def setup(self, spec: StrategySpec) -> None:
        if not spec.boundaries:
            raise ConfigError("scenario.boundaries", "icarl builds its exemplars and teacher "
                              "at task ends, so it needs exposed boundaries, got hidden",
                              "set scenario.boundaries: exposed, or choose another strategy")
        super().setup(spec)
        if not hasattr(self.model, "features"):
            raise ConfigError("model.name", f"icarl needs a model with a features() "
                              f"extractor, got {spec.model.get('name')!r}",
                              "use model.name: mlp or cnn")
        dtype = torch.uint8 if spec.image else torch.float32
        cap = self.params.get("memory_size") or spec.memory_size or 500
        self.ex_x = torch.zeros((cap, *spec.input_shape), dtype=dtype, device=self.device)
        self.ex_y = torch.zeros(cap, dtype=torch.int64, device=self.device)
        self.ex_rank = torch.zeros(cap, dtype=torch.int64, device=self.device)
        self.ex_size = 0
        ends = [0, *spec.task_ends] if spec.task_ends else [0, spec.stream_length]
        longest = max(b - a for a, b in zip(ends[:-1], ends[1:], strict=True))
        self.store_x = torch.zeros((longest, *spec.input_shape), dtype=dtype, device=self.device)
        self.store_y = torch.zeros(longest, dtype=torch.int64, device=self.device)
        self.stored = 0  # the current task's first-exposure samples, for herding
        self.old_model = copy.deepcopy(self.model).requires_grad_(False)
        self.has_old = False
        self.old_seen = torch.zeros_like(self.seen)  # classes the teacher knows
        self.means = torch.zeros((spec.n_classes, self.feature_dim()), device=self.device)
        self.has_mean = torch.zeros_like(self.seen)
        self.means_step = -1  # grad_steps when the means were computed
        self.extra_forwards = 0
        self.replay_k = self.params.get("replay_batch_size")
        if self.replay_k is None:
            self.replay_k = spec.batch_size

    def feature_dim(self) -> int:
        with torch.no_grad():
            probe = torch.zeros((1, *self.spec.input_shape), device=self.device)
            was = self.model.training
            self.model.eval()
            d = self.model.features(probe).shape[1]
            self.model.train(was)
        return int(d)

    # -- learning -------------------------------------------------------------------------------
    def learn(self, batch: dict, info: dict) -> dict[str, float]:
        x, y = self.stream_batch(batch, info)
        first = torch.from_numpy(info["first_exposure"][info["valid"]]).to(y.device)
        n_new = int(first.sum())
        self.store_x[self.stored:self.stored + n_new] = x[first]
        self.store_y[self.stored:self.stored + n_new] = y[first]
        self.stored += n_new
        loss = None
        for _ in range(self.n_steps(len(y))):
            if self.ex_size and self.replay_k:
                idx = torch.from_numpy(self.rng.integers(0, self.ex_size, self.replay_k))
                idx = idx.to(self.device)
                loss = self.step(torch.cat((x, self.ex_x[idx])), torch.cat((y, self.ex_y[idx])))
            else:
                loss = self.step(x, y)
        return {} if loss is None else {"loss": loss.item()}

    def loss(self, out, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        """The classification half of iCaRL's loss: sum over the new classes y (seen, not
        known to the teacher) of BCE(sigmoid(g_y(x)), [y = label]), divided by |seen|."""
        new = (self.seen & ~self.old_seen).to(out.dtype)
        target = F.one_hot(y, out.shape[1]).to(out.dtype)
        per = F.binary_cross_entropy_with_logits(out, target, reduction="none")
        per_row = (per * new).sum(1) / self.seen.sum().clamp(min=1)
        return per_row.mean() if reduction == "mean" else per_row

    def penalty(self, inp: torch.Tensor, out, y: torch.Tensor) -> torch.Tensor | None:
        """The distillation half: sum over the old classes y of BCE(sigmoid(g_y(x)), q_y(x))
        with q_y(x) the previous model's sigmoid output, divided by |seen|, mean over rows."""
        if not self.has_old:
            return None
        with torch.no_grad():
            q = torch.sigmoid(self.old_model(inp))
        self.extra_forwards += len(inp)
        per = F.binary_cross_entropy_with_logits(out, q, reduction="none")
        return ((per * self.old_seen.to(out.dtype)).sum(1)
                / self.seen.sum().clamp(min=1)).mean()

    # -- task ends: memory reduction, herding, class means, teacher ---------------------------
    def features(self, raw: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
        """Feature vectors of raw inputs (eval mode, no gradients), counted as extra
        forward passes."""
        if self._mode_matters:
            self.model.eval()
        with torch.no_grad():
            out = [self.model.features(self.as_input(raw[s:s + chunk]))
                   for s in range(0, len(raw), chunk)]
        self.extra_forwards += len(raw)
        return torch.cat(out) if out else raw.new_zeros((0, self.means.shape[1])).float()

    def on_task_end(self, task: int) -> None:
        super().on_task_end(task)
        cap = len(self.ex_y)
        m = cap // max(int(self.seen.sum()), 1)
        keep = torch.nonzero(self.ex_rank[:self.ex_size] < m).squeeze(1)  # reduction
        n = len(keep)
        self.ex_x[:n], self.ex_y[:n], self.ex_rank[:n] = (
            self.ex_x[keep], self.ex_y[keep], self.ex_rank[keep])
        self.ex_size = n
        sy = self.store_y[:self.stored]
        fresh = torch.nonzero(~self.old_seen[sy]).squeeze(1)  # samples of the new classes
        if len(fresh) and m:
            idx, rank = herding(self.features(self.store_x[fresh]), sy[fresh], m)
            idx = fresh[idx][:cap - n]
            k = len(idx)
            self.ex_x[n:n + k] = self.store_x[idx]
            self.ex_y[n:n + k] = self.store_y[idx]
            self.ex_rank[n:n + k] = rank[:k]
            self.ex_size = n + k
        self.stored = 0
        self.refresh_means()
        self.old_model.load_state_dict(self.model.state_dict())
        self.old_model.eval()
        self.has_old = True
        self.old_seen = self.seen.clone()

    def refresh_means(self, with_store: bool = False) -> None:
        """Class means of the exemplars under the current model; ``with_store`` adds the
        current task's samples of classes that have no exemplars yet (anytime evaluations
        before their first task end)."""
        x, y = self.ex_x[:self.ex_size], self.ex_y[:self.ex_size]
        if with_store and self.stored:
            sy = self.store_y[:self.stored]
            extra = torch.nonzero(~torch.isin(sy, y)).squeeze(1)
            x = torch.cat((x, self.store_x[extra]))
            y = torch.cat((y, sy[extra]))
        if len(y):
            self.means, self.has_mean = class_means(self.features(x), y, len(self.seen))
        self.means_step = self.grad_steps

    def prepare_evaluation(self) -> None:
        """Called by the Runner before each evaluation: class means under the current model
        (exemplars, plus the current task's samples for classes not yet herded)."""
        if self.means_step != self.grad_steps:
            self.refresh_means(with_store=True)

    # -- prediction -----------------------------------------------------------------------------
    def predict(self, obs: dict) -> torch.Tensor:
        """NCM scores; before any class mean exists, the network's masked outputs."""
        if not bool(self.has_mean.any()):
            return super().predict(obs)
        if self._mode_matters:
            self.model.eval()
        with torch.no_grad():
            f = self.model.features(self.as_input(self.raw(obs["x"])))
        return ncm_scores(f, self.means, self.has_mean)

    def counters(self) -> dict[str, int]:
        c = super().counters()
        c["buffer_samples"] = self.ex_size
        c["buffer_bytes"] = (self.ex_x.element_size() * self.ex_x.nelement()
                             + self.ex_y.element_size() * self.ex_y.nelement())
        c["task_store_samples"] = self.stored
        c["extra_forwards"] = self.extra_forwards
        return c
