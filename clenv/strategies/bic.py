"""Bias correction (Wu et al. 2019, "Large scale incremental learning").

Stage 1, every step: stream batch + replay batch, loss (1 - lam) CE + lam L_d with
lam = n_old / (n_old + n_new) and the distillation term on the old classes' logits

    L_d = -mean_rows sum_{k in old} softmax(o_hat / T)_k log softmax(o / T)_k

where o_hat is the previous model's output (bias-corrected by the previous bias layer).
Stage 2, at each task end from the second task on: with the model frozen, a bias layer
q_k = alpha o_k + beta on the logits of the task's new classes (identity elsewhere) is fitted
by SGD on a class-balanced validation memory held out of training (share ``val_share`` of the
memory), with the official code's L2 term 0.1 beta^2 / 2. Predictions use the corrected logits.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from clenv.errors import ConfigError
from clenv.strategies.base import SupervisedStrategy
from clenv.strategies.memory import ReservoirBuffer
from clenv.strategies.registry import STRATEGIES
from clenv.strategies.spec import StrategySpec
from clenv.strategies.state import Stateful


def rank_within_class(y: torch.Tensor) -> torch.Tensor:
    """For each row, how many earlier rows share its label (a stable sort, no loop)."""
    if len(y) == 0:
        return y
    order = torch.sort(y, stable=True).indices
    ys = y[order]
    pos = torch.arange(len(y), device=y.device)
    start = torch.ones_like(ys, dtype=torch.bool)
    start[1:] = ys[1:] != ys[:-1]
    run_start = torch.cummax(torch.where(start, pos, 0), 0).values
    rank = torch.empty_like(pos)
    rank[order] = pos - run_start
    return rank


class ValidationMemory(Stateful):
    """A class-balanced held-out memory: each seen class keeps its first
    ``capacity // n_seen`` samples (the quota shrinks as classes arrive)."""

    state_attributes = ("x", "y", "size")

    def __init__(self, capacity: int, shape: tuple[int, ...], dtype: torch.dtype,
                 n_classes: int, device: torch.device) -> None:
        self.capacity = int(capacity)
        self.n_classes = n_classes
        self.x = torch.zeros((self.capacity, *shape), dtype=dtype, device=device)
        self.y = torch.zeros(self.capacity, dtype=torch.int64, device=device)
        self.size = 0

    def offer(self, x: torch.Tensor, y: torch.Tensor, n_seen: int) -> torch.Tensor:
        """Keep the rows the quota admits; returns the (n,) mask of rows taken."""
        quota = self.capacity // max(n_seen, 1)
        keep = rank_within_class(self.y[:self.size]) < quota  # shrink to the new quota
        n_keep = int(keep.sum())
        if n_keep < self.size:
            self.x[:n_keep] = self.x[:self.size][keep]
            self.y[:n_keep] = self.y[:self.size][keep]
            self.size = n_keep
        held = torch.bincount(self.y[:self.size], minlength=self.n_classes)
        take = held[y] + rank_within_class(y) < quota
        n_take = int(take.sum())
        if n_take:
            self.x[self.size:self.size + n_take] = x[take]
            self.y[self.size:self.size + n_take] = y[take]
            self.size += n_take
        return take


def bias_forward(out: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor,
                 mask: torch.Tensor) -> torch.Tensor:
    """alpha * o + beta on the columns in ``mask``, o elsewhere (BiC's bias layer)."""
    return torch.where(mask, alpha * out + beta, out)


def distillation(out: torch.Tensor, old_out: torch.Tensor, old: torch.Tensor,
                 temperature: float) -> torch.Tensor:
    """Soft cross-entropy over the old classes' logits at temperature T, mean over rows."""
    target = F.softmax(old_out[:, old] / temperature, dim=1)
    return -(target * F.log_softmax(out[:, old] / temperature, dim=1)).sum(1).mean()


class BiC(SupervisedStrategy):
    """Replay with distillation from the previous model, and a two-parameter bias layer on
    the new classes' logits fitted on a held-out slice of memory at each task end."""

    fields = STRATEGIES["bic"].fields
    families = ("single_label",)
    state_attributes = ("memory", "val", "old_model", "has_old", "class_task", "task",
                        "alpha", "beta", "bias_mask", "has_bias", "extra_forwards")

    def setup(self, spec: StrategySpec) -> None:
        super().setup(spec)
        if not spec.boundaries:
            raise ConfigError("scenario.boundaries", "BiC distils from the previous task's "
                              "model and corrects the new classes at task ends, got hidden "
                              "boundaries", "set scenario.boundaries: exposed")
        total = self.params.get("memory_size") or spec.memory_size or 500
        n_val = int(round(self.params.get("val_share", 0.1) * total))
        if not 0 < n_val < total:
            raise ConfigError("strategy.val_share", f"the validation share of a {total}-sample "
                              f"memory must hold 1 to {total - 1} samples, got {n_val}",
                              "raise memory_size or change val_share")
        dtype = torch.uint8 if spec.image else torch.float32
        self.memory = ReservoirBuffer(total - n_val, spec.input_shape, dtype, self.rng,
                                      self.device)
        self.val = ValidationMemory(n_val, spec.input_shape, dtype, spec.n_classes, self.device)
        self.replay_k = self.params.get("replay_batch_size") or spec.batch_size
        self.temperature = self.params.get("temperature", 2.0)
        self.old_model = copy.deepcopy(self.model)
        self.old_model.eval()
        for p in self.old_model.parameters():
            p.requires_grad_(False)
        self.has_old = False
        self.class_task = torch.full((spec.n_classes,), -1, dtype=torch.int64,
                                     device=self.device)
        self.task = 0
        self.alpha = torch.ones(1, device=self.device)
        self.beta = torch.zeros(1, device=self.device)
        self.bias_mask = torch.zeros(spec.n_classes, dtype=torch.bool, device=self.device)
        self.has_bias = False
        self.extra_forwards = 0

    # -- stage 1 -----------------------------------------------------------------------------
    def old_classes(self) -> torch.Tensor:
        return (self.class_task >= 0) & (self.class_task < self.task)

    def lam(self) -> torch.Tensor:
        """n_old / n_seen (0 before the first task end)."""
        if not self.has_old:
            return torch.zeros((), device=self.device)
        return self.old_classes().sum() / self.seen.sum().clamp(min=1)

    def loss(self, out, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        return (1.0 - self.lam()) * super().loss(out, y, reduction)

    def penalty(self, inp: torch.Tensor, out, y: torch.Tensor) -> torch.Tensor | None:
        if not self.has_old:
            return None
        with torch.no_grad():
            old_out = self.old_model(inp)
            if self.has_bias:
                old_out = bias_forward(old_out, self.alpha, self.beta, self.bias_mask)
        self.extra_forwards += len(inp)
        return self.lam() * distillation(out, old_out, self.old_classes(), self.temperature)

    def learn(self, batch: dict, info: dict) -> dict[str, float]:
        x, y = self.stream_batch(batch, info)
        new = self.class_task[y] < 0
        self.class_task[y[new]] = self.task
        held = self.val.offer(x, y, int(self.seen.sum()))
        tx, ty = x[~held], y[~held]
        loss = None
        for _ in range(self.n_steps(len(y))):
            mx, my = self.memory.sample(self.replay_k)
            if len(ty) + len(my) == 0:
                continue
            loss = self.step(torch.cat((tx, mx)), torch.cat((ty, my)))
        self.memory.add(tx, ty)
        return {} if loss is None else {"loss": loss.item()}

    # -- task ends: stage 2 and the new teacher ----------------------------------------------
    def on_task_start(self, task: int) -> None:
        super().on_task_start(task)
        self.task = task

    def on_task_end(self, task: int) -> None:
        super().on_task_end(task)
        new_classes = self.class_task == task
        if self.has_old and bool(new_classes.any()) and self.val.size:
            self.correct_bias(new_classes)
        self.old_model.load_state_dict(self.model.state_dict())
        self.has_old = True

    def correct_bias(self, new_classes: torch.Tensor) -> None:
        """Fit (alpha, beta) on the validation memory with the model frozen (its logits are
        computed once), SGD with momentum 0.9, the rate divided by 10 at 1/4, 1/2 and 3/4 of
        the epochs (the official 200 epochs: 50, 100, 150)."""
        if self._mode_matters:
            self.model.eval()
        n = self.val.size
        with torch.no_grad():
            logits = self.model(self.as_input(self.val.x[:n]))
        self.extra_forwards += n
        y = self.val.y[:n]
        alpha = torch.ones(1, device=self.device, requires_grad=True)
        beta = torch.zeros(1, device=self.device, requires_grad=True)
        epochs = self.params.get("bias_epochs", 200)
        lr = self.params.get("bias_lr", 0.1)
        opt = torch.optim.SGD([alpha, beta], lr=lr, momentum=0.9)
        milestones = {round(epochs * f) for f in (0.25, 0.5, 0.75)}
        bs = self.spec.batch_size
        for epoch in range(epochs):
            if epoch in milestones and epoch > 0:
                for g in opt.param_groups:
                    g["lr"] *= 0.1
            perm = torch.from_numpy(self.rng.permutation(n)).to(self.device)
            for start in range(0, n, bs):
                rows = perm[start:start + bs]
                q = self.masked(bias_forward(logits[rows], alpha, beta, new_classes))
                loss = F.cross_entropy(q, y[rows]) + 0.1 * beta.sum() ** 2 / 2
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        self.alpha = alpha.detach()
        self.beta = beta.detach()
        self.bias_mask = new_classes.clone()
        self.has_bias = True

    def predict(self, obs: dict) -> torch.Tensor:
        if not self.has_bias:
            return super().predict(obs)
        if self._mode_matters:
            self.model.eval()
        with torch.no_grad():
            out = self.model(self.as_input(self.raw(obs["x"])))
        return self.masked(bias_forward(out, self.alpha, self.beta, self.bias_mask))

    def counters(self) -> dict[str, int]:
        c = super().counters()
        c["buffer_samples"] = self.memory.size + self.val.size
        c["buffer_bytes"] = self.memory.nbytes + sum(t.element_size() * t.nelement()
                                                     for t in (self.val.x, self.val.y))
        c["extra_forwards"] = self.extra_forwards
        return c

