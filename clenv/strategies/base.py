"""The strategy contract and a supervised base class that naive, ER and joint build on.

Contract (DESIGN.md): ``setup(spec)``, ``predict(obs) -> scores (B, C_max)``,
``learn(batch, info) -> dict of losses``, optional ``on_task_start(t)`` / ``on_task_end(t)``,
and ``counters()`` for the Runner's budget accounting.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from clenv.config.schema import Field
from clenv.strategies.spec import StrategySpec
from clenv.strategies.targets import CODECS

# the families a strategy supports unless it declares its own (a new family's codec in CODECS
# does not widen them: strategies that learn it name it in their ``families``)
STREAM_FAMILIES = ("single_label", "hierarchical", "multi_label")


def family_of(spec: StrategySpec) -> str:
    """The problem family of a stream (the name of its Family record, clenv.families)."""
    return spec.family


class Strategy:
    """Base of every strategy. Subclasses set ``fields`` (their YAML parameters) and
    ``families`` (the stream families they support, Mammoth's COMPATIBILITY)."""

    fields: ClassVar[dict[str, Field]] = {}
    families: ClassVar[tuple[str, ...]] = STREAM_FAMILIES

    def __init__(self, **params: Any) -> None:
        self.params = params

    def setup(self, spec: StrategySpec) -> None:
        """Refuses a family the strategy does not declare: the one place that checks a
        strategy/family pairing (docs/design.md, "Families")."""
        family = family_of(spec)
        if family not in self.families:
            from clenv.errors import ConfigError

            raise ConfigError("strategy.name", f"{type(self).__name__} supports "
                              f"{', '.join(self.families)} streams, not {family}",
                              "choose a strategy for this scenario's family")
        self.spec = spec

    def predict(self, obs: dict) -> torch.Tensor:
        raise NotImplementedError

    def learn(self, batch: dict, info: dict) -> dict[str, float]:
        return {}

    def on_task_start(self, task: int) -> None:
        pass

    def on_task_end(self, task: int) -> None:
        pass

    def counters(self) -> dict[str, int]:
        return {}

    # -- checkpoints (clenv.checkpoint) --------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything learning has changed since ``setup(spec)``, for a checkpoint. A strategy
        that does not override this cannot be checkpointed or resumed."""
        from clenv.strategies.state import CheckpointUnsupported

        raise CheckpointUnsupported(
            f"strategy {type(self).__name__} does not support checkpoints (no state_dict/"
            "load_state_dict); remove output.checkpoint_every and --resume, or implement them")

    def load_state_dict(self, state: dict) -> None:
        """Restore ``state_dict()`` on a strategy that has just run ``setup(spec)``."""
        self.state_dict()  # raises for strategies without support


def supports_checkpoint(strategy: Strategy) -> bool:
    """True when the strategy's class implements the state protocol."""
    return supports_checkpoint_class(type(strategy))


def supports_checkpoint_class(cls: type) -> bool:
    """True when ``cls`` (a Strategy subclass) implements the state protocol (a class without
    ``state_dict``, such as the agcd strategy section, does not)."""
    return getattr(cls, "state_dict", Strategy.state_dict) is not Strategy.state_dict


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class SupervisedStrategy(Strategy):
    """A model with a C_max-row head; unseen classes are masked out of scores and the loss.

    Holds the optimiser, the seen-class mask, the gradient-step credit (``updates_per_sample``)
    and the budget counters.
    """

    def setup(self, spec: StrategySpec) -> None:
        super().setup(spec)
        self.device = resolve_device(spec.device)
        torch.manual_seed(spec.seed)
        self.rng = np.random.default_rng(np.random.SeedSequence([spec.seed, 0x57A7]))
        self.levels = spec.levels
        self.multi_label = spec.multi_label
        self.codec = CODECS[spec.family]  # labels, seen masks, scores and loss of the family
        self.head_plan = self.new_head_plan()
        self.model = self.new_model()
        self.optimizer = self.new_optimizer()
        self.lr_schedule = self.new_schedule()
        self.augment = self.new_augmenter()
        self.forgetting = None  # the forgetting plug-in (clenv.plugins.forgetting), if any
        if self.params.get("forgetting"):
            from clenv.plugins.forgetting import Forgetting

            self.forgetting = Forgetting(self.params["forgetting"], spec, self.model)
        self.plasticity = None  # the plasticity plug-in (clenv.plugins.plasticity), if any
        if self.params.get("plasticity"):
            from clenv.plugins.plasticity import Plasticity

            self.plasticity = Plasticity(self.params["plasticity"], spec, self.model)
        self.diagnostics = None  # plasticity diagnostics (clenv.plugins.diagnostics), if on
        if self.params.get("diagnostics"):
            from clenv.plugins.diagnostics import Diagnostics, check_model

            check_model(self.model)
            self.diagnostics = Diagnostics()
        self.seen = torch.zeros(spec.n_classes, dtype=torch.bool, device=self.device)
        self.codec.setup(self)  # per-family label state (e.g. one seen mask per level)
        self.neg_inf = torch.tensor(float("-inf"), device=self.device)
        self.grad_steps = 0
        self.samples_processed = 0
        self._credit = 0.0
        self._mode_matters = any(isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.Dropout))
                                 for m in self.model.modules())

    def new_model(self) -> nn.Module:
        return self.with_head(self.codec.model(self.spec).to(self.device))

    def new_head_plan(self):
        """The ``head`` section's plan (cosine or language head), None for the model's own
        linear head (clenv.models.language_head)."""
        head = self.params.get("head")
        if not head or head.get("type", "linear") == "linear":
            return None
        from clenv.models.language_head import HeadPlan

        return HeadPlan(head, level_sizes=list(self.spec.level_sizes) or [self.spec.n_classes],
                        bias=self.codec.head_bias, seed=self.spec.seed)

    def with_head(self, model: nn.Module) -> nn.Module:
        plan = getattr(self, "head_plan", None)
        return model if plan is None else plan.attach(model)

    def new_optimizer(self) -> torch.optim.Optimizer:
        from clenv.training.optim import build_optimizer

        return build_optimizer(self.model.parameters(), self.params)

    def new_schedule(self):
        """The ``schedule`` section's learning-rate schedule (clenv.training), or None."""
        cfg = self.params.get("schedule")
        if not cfg or cfg.get("type", "constant") == "constant":
            return None
        if cfg.get("per") == "task" and cfg["type"] == "cosine" and not self.spec.task_ends:
            from clenv.errors import ConfigError

            raise ConfigError("strategy.schedule.per", "a per-task schedule needs the task "
                              "boundaries", "set scenario.boundaries: exposed, or per: run")
        if cfg["type"] == "adaptive" and not getattr(type(self), "adaptive_lr", False):
            from clenv.errors import ConfigError

            raise ConfigError("strategy.schedule.type", f"{type(self).__name__} keeps no "
                              "importance memory for the adaptive rate to compare",
                              "use plfms, or another schedule type")
        from clenv.training.optim import build_schedule

        return build_schedule(cfg, self.spec, self.params, self.optimizer)

    def new_augmenter(self):
        """The ``augment`` section's augmenter (clenv.training.augment), or None."""
        cfg = self.params.get("augment")
        if not cfg:
            return None
        if not self.spec.image or len(self.spec.input_shape) != 3:
            from clenv.errors import ConfigError

            raise ConfigError("strategy.augment", f"augmentation needs an image pool of shape "
                              f"(C, H, W), got {tuple(self.spec.input_shape)}",
                              "remove strategy.augment for vector data")
        from clenv.training.augment import Augmenter

        aug = Augmenter(cfg, tuple(self.spec.input_shape))
        return aug if aug.active else None

    # -- tensors -------------------------------------------------------------------------------
    def raw(self, x: np.ndarray) -> torch.Tensor:
        """obs["x"] as a tensor on the device, dtype unchanged (uint8 stays uint8)."""
        t = torch.from_numpy(x)
        return t if self.device.type == "cpu" else t.to(self.device, non_blocking=True)

    def as_input(self, raw: torch.Tensor) -> torch.Tensor:
        return raw.float().div_(255.0) if raw.dtype == torch.uint8 else raw

    def masked(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.where(self.seen, logits, self.neg_inf)

    # -- contract ------------------------------------------------------------------------------
    def predict(self, obs: dict) -> torch.Tensor | dict[int, torch.Tensor]:
        if self._mode_matters:
            self.model.eval()
        with torch.no_grad():
            out = self.model(self.as_input(self.raw(obs["x"])))
        return self.codec.scores(self, out)

    def stream_batch(self, batch: dict, info: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """The valid rows of a stream batch as (raw x, y) tensors; marks their classes seen.
        For hierarchical streams y is (n, 2): the label and its level."""
        valid = info["valid"]
        x, y = batch["x"], self.codec.targets(info)
        if not valid[-1]:  # padding sits at the end of a batch
            x, y = x[valid], y[valid]
        y_t = torch.from_numpy(y)
        if self.codec.widen:
            y_t = y_t.long()
        if self.device.type != "cpu":
            y_t = y_t.to(self.device)
        # a class is seen from its first sample on; the Env names first appearances in
        # info["new_classes"] (a dict lookup is far cheaper than a reduction per step)
        if "new_classes" in info or "is_new_class" not in info:
            self.mark_seen(y_t)
        if self.head_plan is not None and "new_classes" in info:  # names reveal target rows
            self.head_plan.reveal(self.model, info["new_classes"])
        if self.lr_schedule is not None and "new_classes" in info:
            self.lr_schedule.on_new_class()
        return self.raw(x), y_t

    def mark_seen(self, y: torch.Tensor) -> None:
        self.codec.mark_seen(self, y)

    def loss(self, out, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        """The family's loss (clenv.strategies.targets): cross-entropy with unseen classes
        masked; hierarchical: sum over levels of the CE of each row at its own level's head,
        divided by the number of rows (HLE's loss); multi-label: BCE on visible labels."""
        return self.codec.loss(self, out, y, reduction)

    def n_steps(self, n_valid: int) -> int:
        """Gradient steps for a batch of n_valid stream samples under updates_per_sample."""
        u = self.params.get("updates_per_sample")
        if u is None:  # the scenario's budget sets it when the strategy does not
            u = self.spec.updates_per_sample
        if u is None:
            return 1 if n_valid else 0
        self._credit += u * n_valid
        steps = int(self._credit)
        self._credit -= steps
        return steps

    def step(self, raw_x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One SGD step on (raw_x, y) with the logits of unseen classes masked.

        Methods hook in without rewriting the step: ``penalty(inp, out, y)`` adds a term to the
        loss (regularisers, distillation), ``before_update()`` runs between backward and the
        optimiser step (gradient surgery), ``after_update()`` after it (path integrals)."""
        if self._mode_matters:
            self.model.train()
        forgetting = self.forgetting
        swapped = (forgetting.before_step(self.model, self.optimizer, y)
                   if forgetting is not None else None)
        mix = None
        if self.augment is not None:
            raw_x, mix = self.augment(raw_x, y, self.rng)
        inp = self.as_input(raw_x)
        out = self.model(inp)
        loss = self.loss(out, y) if mix is None else mix.loss(self.loss, out, y)
        extra = self.penalty(inp, out, y)
        if extra is not None:
            loss = loss + extra
        plasticity, diagnostics = self.plasticity, self.diagnostics
        if plasticity is not None and (reg := plasticity.penalty(self.model)) is not None:
            loss = loss + reg
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if diagnostics is not None:
            diagnostics.observe(raw_x)
            diagnostics.after_backward(self.model)
        self.optimizer_step(len(y))
        if forgetting is not None:  # restore swapped rows; reset on schedule
            forgetting.after_step(self.model, self.optimizer, swapped, loss)
        if plasticity is not None:  # shrink-and-perturb, continual backprop
            plasticity.after_step(self.model, self.optimizer)
        return loss

    def optimizer_step(self, n_rows: int) -> None:
        """After ``loss.backward()``: the ``before_update`` hook, the scheduled rate, the
        optimiser step, the budget counters (one step, ``n_rows`` samples processed), the
        ``after_update`` hook and the schedule's clock. Methods with their own loss (SCR) call it
        after their backward pass."""
        self.before_update()
        if self.lr_schedule is not None:
            self.apply_lr()
        self.optimizer.step()
        self.grad_steps += 1
        self.samples_processed += n_rows
        self.after_update()
        if self.lr_schedule is not None:
            self.lr_schedule.after_step()

    # -- hooks of step() for the methods built on this base ------------------------------------
    def penalty(self, inp: torch.Tensor, out, y: torch.Tensor) -> torch.Tensor | None:
        """A term added to the batch loss (None: nothing). ``inp`` is the model input after
        augmentation, ``out`` the model output on it."""
        return None

    def before_update(self) -> None:
        """Called after ``loss.backward()``, before the optimiser step (gradients are set)."""

    def after_update(self) -> None:
        """Called right after the optimiser step."""

    def apply_lr(self) -> None:
        """Write the schedule's current rate into the optimiser."""
        from clenv.training.optim import set_lr

        set_lr(self.optimizer, self.lr_schedule.lr)

    def on_task_start(self, task: int) -> None:
        if self.lr_schedule is not None:
            self.lr_schedule.on_task_start(task)
        if self.forgetting is not None:
            self.forgetting.on_task_start(task)
        if self.plasticity is not None:
            self.plasticity.on_task_start(task, self.model, self.optimizer)
        if self.diagnostics is not None:
            self.diagnostics.on_task_start()

    def drain_events(self) -> list[dict]:
        """Plug-in events since the last call (forgetting resets, plasticity
        interventions), for the Runner's log."""
        out = self.forgetting.drain() if self.forgetting is not None else []
        return out + self.plasticity.drain() if self.plasticity is not None else out

    def diagnostics_record(self) -> dict | None:
        """The plasticity diagnostics now (``diagnostics: true``), else None; the recorder
        adds them to every eval record."""
        if self.diagnostics is None:
            return None
        return self.diagnostics.record(self.model, self.as_input)

    def counters(self) -> dict[str, int]:
        return {"grad_steps": self.grad_steps, "samples_processed": self.samples_processed,
                "buffer_samples": 0, "buffer_bytes": 0,
                "n_params": sum(p.numel() for p in self.model.parameters())}

    # -- checkpoints: the declared attributes, encoded explicitly (clenv.strategies.state) ----
    # the model and optimiser by their state_dict, the numpy generator by its state (restored
    # in place, so a replay buffer sharing it keeps sharing it), masks, counters, the step
    # credit and the head and forgetting plug-ins. Subclasses add their own names.
    state_attributes: ClassVar[tuple[str, ...]] = (
        "model", "optimizer", "rng", "seen", "level_seen", "grad_steps", "samples_processed",
        "_credit", "head_plan", "forgetting", "lr_schedule", "plasticity", "diagnostics")

    def state_dict(self) -> dict:
        from clenv.strategies.state import capture

        return capture(self)

    def load_state_dict(self, state: dict) -> None:
        from clenv.strategies.state import restore

        restore(self, state)
