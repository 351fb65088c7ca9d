"""An Avalanche training strategy as a clenv strategy (``strategy: {name: avalanche, ...}``).

The model and optimiser come from clenv's registries (``model:`` section; lr, optimizer,
momentum, weight_decay), built exactly as clenv's own strategies build them, so budgets are
equal; Avalanche's template does the training, clenv's Runner does the evaluation (so every
clenv metric and plot applies).

- ``mode: online`` (default): every Env batch is one ``OnlineCLExperience`` trained at once
  (test-then-train). With exposed boundaries the experiences carry ``is_first_subexp`` /
  ``is_last_subexp`` / ``sub_stream_length`` with ``access_task_boundaries=True``, as
  ``split_online_stream(..., access_task_boundaries=True)`` makes them, so consolidating
  strategies (EWC, LwF, GDumb, iCaRL, SI) consolidate at task ends, not after every batch.
  With hidden boundaries nothing about tasks is visible: every batch is its own boundary.
  Avalanche's data loader shuffles within the batch (its default), which replay plugins need
  to draw random memory batches (unshuffled, they replay the same first memory rows).
- ``mode: offline``: the batches of a task are collected and trained as one experience at the
  task end (``train_epochs`` passes, no shuffling: the samples in clenv's order). Needs
  exposed boundaries. Predictions during a task come from the model of the last task end.

Scores are the model's logits with unseen classes masked (as clenv's own strategies do).
"""

from __future__ import annotations

import math
import random
import warnings
from typing import Any

import torch

from clenv.avalanche import catalog
from clenv.avalanche.consolidation import gate_plugins
from clenv.avalanche.experiences import (
    classification_dataset,
    online_experience,
    task_experience,
)
from clenv.errors import ConfigError, UserError
from clenv.strategies.base import Strategy, SupervisedStrategy
from clenv.strategies.registry import STRATEGIES
from clenv.strategies.spec import StrategySpec


def _step_counter():
    """A plugin counting gradient steps and the samples in every training minibatch."""
    from avalanche.core import SupervisedPlugin

    class StepCounter(SupervisedPlugin):
        def __init__(self) -> None:
            super().__init__()
            self.steps = 0
            self.samples = 0

        def after_update(self, strategy, *args, **kwargs) -> None:
            self.steps += 1
            self.samples += len(strategy.mb_x)

    return StepCounter()


class AvalancheStrategy(SupervisedStrategy):
    """Runs an Avalanche template strategy on clenv's stream (see the module doc)."""

    fields = STRATEGIES["avalanche"].fields
    # no checkpoints: an Avalanche strategy's state (plugins, memories, data loaders, draws
    # from the global generators) is not captured, so output.checkpoint_every and --resume are
    # refused with one line
    state_dict = Strategy.state_dict
    load_state_dict = Strategy.load_state_dict

    def __init__(self, plugins: list | None = None, evaluator=None, eval_every: int = -1,
                 **params: Any) -> None:
        """``params`` is the YAML section; ``plugins`` (extra Avalanche plugins),
        ``evaluator`` (an Avalanche EvaluationPlugin) and ``eval_every`` are for Python use,
        e.g. to run Avalanche's own metrics on an exported benchmark."""
        super().__init__(**params)
        self.evaluator = evaluator
        self.eval_every = eval_every
        self.template = catalog.resolve_class(params.get("class"), "strategy.class")
        self.args = catalog.check_args(self.template, params.get("args"), "strategy.args")
        self.mode = params.get("mode") or "online"
        if self.mode not in ("online", "offline"):
            raise ConfigError("strategy.mode", f"expected online or offline, got {self.mode!r}")
        self.extra_plugins = list(plugins or [])

    # -- setup ---------------------------------------------------------------------------------
    def setup(self, spec: StrategySpec) -> None:
        if spec.multi_label or spec.levels > 1:
            raise ConfigError("strategy.name", "the avalanche adapter runs single-label streams "
                              "only", "use a single-label scenario, or export this one with "
                              "clenv.avalanche.to_benchmark")
        if self.mode == "offline" and not spec.boundaries:
            raise ConfigError("strategy.mode", "offline trains one Avalanche experience per "
                              "task and needs scenario.boundaries: exposed",
                              "set scenario.boundaries: exposed or strategy.mode: online")
        super().setup(spec)  # seeds torch's global generator, builds model and optimiser
        random.seed(spec.seed)  # Avalanche draws from Python's global generator too (AGEM)
        self.counter = _step_counter()
        self.avl = self.build(self.model, self.optimizer)
        self.where: tuple[bool, bool, int] = (True, True, 0)
        self.task_seen: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.gated: list[str] = []
        if self.mode == "online" and spec.boundaries and \
                (self.params.get("consolidate") or "task") == "task":
            self.gated = gate_plugins(self.avl, self.boundary_view)
        self.task_label = 0
        self.position = 0
        self.n_exps = 0
        self.n_trained = 0
        self.task_ends = list(getattr(spec, "task_ends", None) or [])
        self.previous: set[int] = set()  # classes trained on so far
        self.before_task: set[int] = set()  # classes trained on before the current task
        self.pending: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.origin = None
        self.last_loss: float | None = None

    def build(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer):
        """The Avalanche strategy on ``model``; a rejected argument is a ConfigError."""
        cls, spec, p = self.template, self.spec, self.params
        params = catalog.parameters(cls)
        kwargs: dict[str, Any] = {k: v for k, v in catalog.SUPPLIED_DEFAULTS.items()
                                  if k in params}
        for name, attr in catalog.FROM_MODEL.items():
            if name in params:
                if not hasattr(model, attr):
                    raise ConfigError("model.name", f"{cls.__name__} needs the model's {name} "
                                      f"(attribute {attr!r}), which {type(model).__name__} "
                                      "lacks", "use the mlp or cnn model")
                kwargs[name] = getattr(model, attr)
        for name in catalog.MEMORY_ARGS:
            if name in params and name not in self.args and spec.memory_size is not None:
                kwargs[name] = spec.memory_size
        kwargs.update(self.args)
        managed = {"model": model, "optimizer": optimizer,
                   "criterion": torch.nn.CrossEntropyLoss(),
                   "train_mb_size": p.get("train_mb_size") or spec.batch_size,
                   "train_epochs": p.get("train_epochs") or 1, "eval_mb_size": 1024,
                   "device": self.device, "plugins": [self.counter, *self.extra_plugins],
                   "evaluator": self.evaluator, "eval_every": self.eval_every}
        kwargs.update({k: v for k, v in managed.items() if k in params})
        try:
            with warnings.catch_warnings(record=True):
                avl = cls(**kwargs)
        except (TypeError, ValueError, AssertionError, KeyError) as exc:
            raise ConfigError("strategy.args", f"{cls.__name__} rejected its arguments "
                              f"({type(exc).__name__}: {exc})",
                              f"accepted: {', '.join(catalog.user_parameters(cls))}") from None
        policy = p.get("storage_policy") or "default"
        if policy != "default":
            replays = [q for q in avl.plugins if type(q).__name__ == "ReplayPlugin"]
            if not replays:
                raise ConfigError("strategy.storage_policy", f"{cls.__name__} has no "
                                  "ReplayPlugin whose memory could be replaced",
                                  "remove strategy.storage_policy (or use Replay)")
            for q in replays:
                q.storage_policy = storage_policy(policy, q.mem_size)
        return avl

    # -- contract ------------------------------------------------------------------------------
    def predict(self, obs: dict) -> torch.Tensor:
        model = self.avl.model  # some strategies (ICaRL) wrap or replace the model
        model.eval()
        x = self.as_input(self.raw(obs["x"]))
        with torch.no_grad():
            try:
                out = model(x)
            except AssertionError:
                if self.n_trained:
                    raise
                # before its first experience a strategy may have no classifier yet (ICaRL's
                # nearest-mean classifier has no class means): every class scores 0
                out = torch.zeros(len(x), self.spec.n_classes, device=self.device)
        return self.masked(out)

    def learn(self, batch: dict, info: dict) -> dict[str, float]:
        x, y = self.stream_batch(batch, info)
        if len(y) == 0:
            return {}
        x = self.as_input(x)
        if "task" in info and self.spec.task_ids:
            self.task_label = int(info["task"][0])
        if self.mode == "offline":
            self.pending.append((x, y))
            self.position += len(y)
            return {}
        dataset = classification_dataset(x, y, self.task_label)
        boundaries = "boundary" in info
        first = last = True
        length = None
        if boundaries:
            task = int(info["task"][0])
            first = bool(info["boundary"][0]) or self.origin is None
            end = self.task_ends[task] if task < len(self.task_ends) else None
            last = end is not None and self.position + len(y) >= end
            if end is not None:
                start = self.task_ends[task - 1] if task else 0
                length = math.ceil((end - start) / self.spec.batch_size)
            if first:
                self.before_task = set(self.previous)
                self.origin = task_experience(dataset, task, self.before_task)
                self.task_seen = []
            self.task_seen.append((x, y))
            self.where = (first, last, task)
            if self.gated:  # per-task state of gated plugins is indexed by the task
                self.avl.clock.train_exp_counter = task
        else:
            self.origin = task_experience(dataset, self.n_exps, self.previous)
        exp = online_experience(dataset, self.n_exps, self.origin, first=first, last=last,
                                sub_stream_length=length, boundaries=boundaries)
        self.position += len(y)
        self.n_exps += 1
        self._train(exp)
        self.previous |= set(y.unique().tolist())
        return {} if self.last_loss is None else {"loss": self.last_loss}

    def boundary_view(self) -> tuple[bool, bool, object]:
        """(first batch of the task, last batch, the task's samples so far as an experience)
        for the gated plugins (clenv.avalanche.consolidation)."""
        first, last, task = self.where
        if not last:
            return first, last, None
        x = torch.cat([p[0] for p in self.task_seen])
        y = torch.cat([p[1] for p in self.task_seen])
        exp = task_experience(classification_dataset(x, y, self.task_label), task,
                              self.before_task)
        return first, last, exp

    def on_task_end(self, task: int) -> None:
        if self.mode != "offline" or not self.pending:
            return
        x = torch.cat([p[0] for p in self.pending])
        y = torch.cat([p[1] for p in self.pending])
        self.pending = []
        exp = task_experience(classification_dataset(x, y, self.task_label), task, self.previous)
        self._train(exp)
        self.previous |= exp.classes_in_this_experience

    def _train(self, exp) -> None:
        try:
            with warnings.catch_warnings(record=True):  # Avalanche's deprecation notices
                self.avl.train(exp, eval_streams=[], shuffle=self.mode == "online")
        except (ValueError, AssertionError, IndexError, KeyError, AttributeError) as exc:
            name = type(self.avl).__name__
            raise UserError(f"strategy.class: Avalanche's {name} failed on experience "
                            f"{self.n_trained} in {self.mode} mode ({type(exc).__name__}: "
                            f"{exc}); check strategy.args against {name}'s documentation or "
                            "try the other strategy.mode") from None
        self.n_trained += 1
        loss = getattr(self.avl, "loss", None)
        self.last_loss = float(loss) if isinstance(loss, torch.Tensor) else None
        self.grad_steps = self.counter.steps
        self.samples_processed = self.counter.samples

    def counters(self) -> dict[str, int]:
        c = super().counters()
        n = buffer_samples(self.avl)
        c["buffer_samples"] = n
        c["buffer_bytes"] = n * (math.prod(self.spec.input_shape) * 4 + 8)
        return c


def storage_policy(name: str, size: int):
    """An Avalanche storage policy by name: reservoir, class_balanced or experience_balanced."""
    from avalanche.training.storage_policy import (
        ClassBalancedBuffer,
        ExperienceBalancedBuffer,
        ReservoirSamplingBuffer,
    )

    if name == "reservoir":
        return ReservoirSamplingBuffer(max_size=size)
    if name == "class_balanced":
        return ClassBalancedBuffer(max_size=size, adaptive_size=True)
    return ExperienceBalancedBuffer(max_size=size, adaptive_size=True)


def buffer_samples(avl) -> int:
    """Samples held in replay memories: storage policies of the strategy and its plugins,
    GEM's per-experience memories and AGEM's buffers."""
    n = 0
    for owner in (avl, *avl.plugins):
        policy = getattr(owner, "storage_policy", None)
        if policy is not None:
            n += len(policy.buffer)
        memory_x = getattr(owner, "memory_x", None)
        if isinstance(memory_x, dict):
            n += sum(len(v) for v in memory_x.values())
        buffers = getattr(owner, "buffers", None)
        if isinstance(buffers, list):
            n += sum(len(b) for b in buffers)
    return n
