"""Registered strategies: name -> import path, config fields and a one-line doc. No torch here,
so `clenv check` validates strategy parameters without importing torch."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from clenv.agcd.config import AGCD_STRATEGY_FIELDS, check_agcd_strategy
from clenv.config.imports import import_target
from clenv.config.schema import Field, describe, validate
from clenv.errors import ConfigError

if TYPE_CHECKING:  # the registry stays torch-free for `clenv check`
    from clenv.strategies.base import Strategy

OPTIM_FIELDS: dict[str, Field] = {
    "optimizer": Field(str, "sgd", "optimiser", choices=("sgd", "adam", "adamw")),
    "lr": Field(float, 0.05, "learning rate", min=0),
    "momentum": Field(float, 0.0, "SGD momentum", min=0, max=1),
    "nesterov": Field(bool, False, "SGD: Nesterov momentum (needs momentum > 0)"),
    "weight_decay": Field(float, 0.0, "L2 penalty", min=0),
    "updates_per_sample": Field(float, None, "gradient steps per stream sample "
                                "(default: one step per Env batch)", min=0),
}


def check_optimizer(section: dict, key: str = "strategy") -> None:
    """The optimiser keys' rule: Nesterov momentum needs a momentum."""
    if section.get("nesterov") and not section.get("momentum"):
        raise ConfigError(f"{key}.nesterov", "Nesterov momentum needs a momentum, got "
                          f"momentum {section.get('momentum')!r}", f"set {key}.momentum > 0")


@dataclass(frozen=True)
class StrategyEntry:
    """A strategy: its class, fields and doc; ``check(section, key)`` holds the section's
    cross-field rules (ConfigError), run by the typed model (clenv.config.typed) after the
    fields validate."""

    name: str
    target: str  # "module:Class"
    fields: dict[str, Field]
    doc: str
    check: Callable[[dict, str], None] | None = check_optimizer


# A-GEM, ER-ACE, DER and DER++ (clenv.strategies.unmasked)
MASK_UNSEEN = Field(bool, True, "single-label: mask the logits of unseen classes in the loss "
                    "(clenv's convention); false: plain cross-entropy over all classes, as "
                    "Avalanche")

STRATEGIES: dict[str, StrategyEntry] = {
    "naive": StrategyEntry("naive", "clenv.strategies.naive:Naive", dict(OPTIM_FIELDS),
                           "fine-tuning on the stream only (the lower reference)"),
    "er": StrategyEntry("er", "clenv.strategies.er:ExperienceReplay", {
        **OPTIM_FIELDS,
        "memory_size": Field(int, None, "buffer size in samples (default: budget.memory_size, "
                             "else 500)", min=1),
        "replay_batch_size": Field(int, None, "replayed samples per step (default: the "
                                   "stream batch size)", min=1),
    }, "experience replay: reservoir buffer, vectorised replay sampling"),
    "agem": StrategyEntry("agem", "clenv.strategies.agem:AGEM", {
        **OPTIM_FIELDS,
        "memory_size": Field(int, None, "reservoir memory in samples (default: "
                             "budget.memory_size, else 500)", min=1),
        "mask_unseen": MASK_UNSEEN,
        "sample_size": Field(int, 256, "memory samples (distinct, at most the memory) of the "
                             "reference gradient per step (P_ref; the paper: 256)", min=1),
    }, "A-GEM (Chaudhry et al. 2019): the step's gradient projected when it conflicts with a "
       "reference gradient on a memory sample"),
    "er_ace": StrategyEntry("er_ace", "clenv.strategies.er_ace:ERACE", {
        **OPTIM_FIELDS,
        "memory_size": Field(int, None, "reservoir memory in samples (default: "
                             "budget.memory_size, else 500)", min=1),
        "replay_batch_size": Field(int, None, "replayed samples per step (default: the "
                                   "stream batch size)", min=1),
        "mask_unseen": MASK_UNSEEN,
    }, "ER-ACE (Caccia et al. 2022): replay with the stream rows' loss restricted to the "
       "classes present in the batch"),
    "der": StrategyEntry("der", "clenv.strategies.der:DER", {
        **OPTIM_FIELDS,
        "memory_size": Field(int, None, "reservoir memory of samples and logits (default: "
                             "budget.memory_size, else 500)", min=1),
        "replay_batch_size": Field(int, None, "memory samples per replay term and step "
                                   "(default: the stream batch size)", min=1),
        "mask_unseen": MASK_UNSEEN,
        "alpha": Field(float, 0.3, "weight of the logit MSE on a memory batch", min=0),
    }, "DER (Buzzega et al. 2020): replay of stored logits (dark knowledge) by MSE"),
    "derpp": StrategyEntry("derpp", "clenv.strategies.der:DERPlusPlus", {
        **OPTIM_FIELDS,
        "memory_size": Field(int, None, "reservoir memory of samples, labels and logits "
                             "(default: budget.memory_size, else 500)", min=1),
        "replay_batch_size": Field(int, None, "memory samples per replay term and step "
                                   "(default: the stream batch size)", min=1),
        "alpha": Field(float, 0.1, "weight of the logit MSE on a memory batch", min=0),
        "mask_unseen": MASK_UNSEEN,
        "beta": Field(float, 0.5, "weight of the label loss on a second memory batch", min=0),
    }, "DER++ (Buzzega et al. 2020): DER plus a label loss on a second memory batch"),
    "plfms": StrategyEntry("plfms", "clenv.strategies.plfms:PLFMS", {
        **OPTIM_FIELDS,
        "memory_size": Field(int, None, "memory in samples (default: budget.memory_size, "
                             "else 500)", min=1),
        "replay_batch_size": Field(int, None, "memory samples per step besides the refills "
                                   "(default: the stream batch size)", min=0),
        "pseudo_labels": Field(bool, True, "PL: fine memory samples count towards their "
                               "pseudo coarse classes when choosing what to evict"),
        "flexible_sampling": Field(bool, True, "FMS: keep a stream sample of class c with "
                                   "probability min(1, (n - first_seen_c) / (N / |C_seen|))"),
        "fms_window": Field(int, None, "N for FMS (default: the stream length)", min=1),
        "fms_scale": Field(float, 1.0, "multiplies N / |C_seen| (the multi-depth code uses 2)",
                           min=1e-9),
        "importance_period": Field(int, 5, "gradient steps between importance and "
                                   "pseudo-label updates (HLE's pl_fms.py: 5; i-Blurry's "
                                   "CLIB: 1)", min=1),
        "importance_ema": Field(float, 0.9, "importance step: s -= (1 - importance_ema) * "
                                "(loss change - mean(s_drawn) / n_drawn) on the drawn samples",
                                min=0, max=1),
    }, "PL-FMS (Lee et al. 2023): importance memory, hierarchy-aware pseudo-labels, flexible "
       "memory sampling"),
    "rainbow": StrategyEntry("rainbow", "clenv.strategies.rainbow:RainbowMemory", {
        **OPTIM_FIELDS,
        "memory_size": Field(int, None, "memory in samples (default: budget.memory_size, "
                             "else 500)", min=1),
        "candidate_size": Field(int, None, "the task's stream samples kept as candidates for "
                                "the task-end update, a reservoir (default: memory_size)",
                                min=1),
        "replay_batch_size": Field(int, None, "memory samples per step beside the stream "
                                   "batch (default: the stream batch size)", min=1),
        "n_views": Field(int, 12, "perturbed views per candidate for the uncertainty "
                         "(official: 12)", min=1),
        "view_policy": Field(str, "cifar10", "image pools: the AutoAugment policy of the "
                             "views (official vr_autoaug)", choices=("cifar10", "imagenet",
                                                                     "svhn")),
        "noise_std": Field(float, 0.5, "vector pools: Gaussian view noise, in units of each "
                           "feature's standard deviation over the candidates", min=0),
        "memory_epochs": Field(int, 1, "epochs on the memory alone after each task-end "
                               "update (i-Blurry's RM: 256)", min=0),
        "memory_batch_size": Field(int, None, "batch size of the memory epochs (default: "
                                   "the stream batch size)", min=1),
    }, "Rainbow Memory (Bang et al. 2021): uncertainty-diverse memory per class at task ends, "
       "memory-only epochs"),
    "clib": StrategyEntry("clib", "clenv.strategies.clib:CLIB", {
        **OPTIM_FIELDS,
        "memory_size": Field(int, None, "memory in samples (default: budget.memory_size, "
                             "else 500)", min=1),
        "memory_batch_size": Field(int, None, "memory samples per step, the only training "
                                   "samples (default: the stream batch size)", min=1),
        "importance_period": Field(int, 1, "gradient steps between importance updates "
                                   "(i-Blurry's CLIB: 1)", min=1),
        "importance_ema": Field(float, 0.9, "importance step: s -= (1 - importance_ema) * "
                                "(loss change - mean(s_drawn) / n_drawn) on the drawn samples",
                                min=0, max=1),
    }, "CLIB (Koh et al. 2022): importance memory, memory-only training, adaptive learning "
       "rate"),
    "mir": StrategyEntry("mir", "clenv.strategies.mir:MIR", {
        **OPTIM_FIELDS,
        "memory_size": Field(int, None, "reservoir memory in samples (default: "
                             "budget.memory_size, else 500)", min=1),
        "replay_batch_size": Field(int, None, "retrieved samples per step, k (default: the "
                                   "stream batch size)", min=1),
        "candidates": Field(int, 50, "memory samples scored per step, C (the official "
                            "code's subsample: 50)", min=1),
    }, "MIR (Aljundi et al. 2019): replays the memory samples a virtual step on the stream "
       "batch would hurt most"),
    "scr": StrategyEntry("scr", "clenv.strategies.scr:SCR", {
        **OPTIM_FIELDS,
        "memory_size": Field(int, None, "reservoir memory in samples (default: "
                             "budget.memory_size, else 500)", min=1),
        "replay_batch_size": Field(int, None, "memory samples per step (default: the stream "
                                   "batch size)", min=1),
        "temperature": Field(float, 0.07, "SupCon temperature T (the official SCR: 0.07)",
                             min=1e-6),
        "projection_dim": Field(int, 128, "output size of the projection head", min=1),
    }, "SCR (Mai et al. 2021): supervised contrastive replay, nearest-class-mean prediction"),
    "bic": StrategyEntry("bic", "clenv.strategies.bic:BiC", {
        **OPTIM_FIELDS,
        "memory_size": Field(int, None, "memory in samples, validation share included "
                             "(default: budget.memory_size, else 500)", min=1),
        "val_share": Field(float, 0.1, "share of the memory held out, class-balanced, to fit "
                           "the bias layer (the paper: 0.1)", min=0, max=1),
        "replay_batch_size": Field(int, None, "replayed samples per step (default: the "
                                   "stream batch size)", min=1),
        "temperature": Field(float, 2.0, "distillation temperature T", min=1e-6),
        "bias_epochs": Field(int, 200, "epochs of the bias-layer fit at each task end", min=1),
        "bias_lr": Field(float, 0.1, "SGD rate of the bias-layer fit (momentum 0.9)", min=0),
    }, "BiC (Wu et al. 2019): replay + distillation, a bias layer on the new classes fitted "
       "on held-out memory at task ends"),
    "multilane": StrategyEntry("multilane", "clenv.strategies.multilane:MultiLaneStrategy", {
        "lr": Field(float, 1e-3, "Adam learning rate of the current lane and the head", min=0),
        "n_selectors": Field(int, 10, "selector tokens per lane (S)", min=1),
        "n_prompts": Field(int, 10, "prefix prompts per layer (P)", min=0),
        "prompt_layers": Field(int, 5, "blocks with task prompts (capped at the depth)", min=0),
        "grad_clip": Field(float, 1.0, "gradient norm clip (0: none, as the official code)",
                           min=0),
        "schedule": Field(str, "cosine", "learning rate per epoch of a task: cosine "
                          "(CosineAnnealingLR, T_max = scenario.epochs, as the official code) or "
                          "constant", choices=("cosine", "constant")),
        "drop_replace": Field(bool, True, "drop & replace (official); false: the official "
                              "--disable_dandr ablation"),
        "updates_per_sample": Field(float, None, "gradient steps per stream sample "
                                    "(default: one step per Env batch)", min=0),
    }, "MULTI-LANE (De Min et al. 2024): frozen ViT, one lane of selector tokens and prompts "
       "per task, summed masked logits"),
    "lwf": StrategyEntry("lwf", "clenv.strategies.lwf:LwF", {
        **OPTIM_FIELDS,
        "alpha": Field(float, 1.0, "weight of the distillation term", min=0),
        "temperature": Field(float, 2.0, "distillation temperature T", min=1e-9),
    }, "Learning without Forgetting (Li & Hoiem 2016): distillation from the model of the "
       "last task end"),
    "ewc": StrategyEntry("ewc", "clenv.strategies.ewc:EWC", {
        **OPTIM_FIELDS,
        "ewc_lambda": Field(float, 10.0, "penalty weight lambda", min=0),
        "mode": Field(str, "separate", "separate: one Fisher and anchor per task; online: "
                      "F = decay_factor * F_old + F_task, anchor of the last task end "
                      "(Schwarz et al. 2018)", choices=("separate", "online")),
        "decay_factor": Field(float, 0.9, "online mode: decay gamma of the running Fisher",
                              min=0, max=1),
        "importance_samples": Field(int, None, "task samples kept for the Fisher (default: "
                                    "the whole task; fewer: a reservoir)", min=1),
        "importance_grads": Field(str, "batch", "batch: mean over batches of the batch "
                                  "gradient's square (Avalanche); sample: mean over samples "
                                  "of per-sample ones (the paper; torch.func)",
                                  choices=("batch", "sample")),
    }, "Elastic Weight Consolidation (Kirkpatrick et al. 2017), separate or online"),
    "si": StrategyEntry("si", "clenv.strategies.si:SI", {
        **OPTIM_FIELDS,
        "c": Field(float, 0.1, "penalty weight c (Avalanche's si_lambda / 2)", min=0),
        "xi": Field(float, 1e-3, "damping xi of Omega = omega / (Delta^2 + xi)", min=0),
        "path_gradient": Field(str, "task", "gradient in the path integral: task (the "
                               "paper's) or total (penalty included, as Avalanche)",
                               choices=("task", "total")),
        "omega_max": Field(float, None, "clip Omega at this value in the penalty (default: "
                           "none, as the paper; Avalanche 0.6: 0.001)", min=0),
    }, "Synaptic Intelligence (Zenke et al. 2017): path-integral importances"),
    "mas": StrategyEntry("mas", "clenv.strategies.mas:MAS", {
        **OPTIM_FIELDS,
        "lambda_reg": Field(float, 1.0, "penalty weight lambda", min=0),
        "alpha": Field(float, 0.5, "Omega = alpha * Omega_old + (1 - alpha) * Omega_task",
                       min=0, max=1),
        "importance_samples": Field(int, None, "task samples kept for the importances "
                                    "(default: the whole task; fewer: a reservoir)", min=1),
        "importance_grads": Field(str, "batch", "batch: mean over batches of the batch "
                                  "gradient's absolute value (Avalanche); sample: mean over "
                                  "samples of per-sample ones (the paper; torch.func)",
                                  choices=("batch", "sample")),
    }, "Memory Aware Synapses (Aljundi et al. 2018): output-sensitivity importances"),
    "joint": StrategyEntry("joint", "clenv.strategies.joint:Joint", {
        **{k: v for k, v in OPTIM_FIELDS.items() if k != "updates_per_sample"},
        "epochs": Field(int, None, "epochs over all data seen so far at each task end "
                        "(default: scenario.epochs)", min=1),
        "batch_size": Field(int, 32, "training batch size", min=1),
    }, "retrains from scratch on all data seen so far at each task end (upper reference)"),
    "gdumb": StrategyEntry("gdumb", "clenv.strategies.gdumb:GDumb", {
        **{k: v for k, v in OPTIM_FIELDS.items() if k != "updates_per_sample"},
        "lr": Field(float, 0.05, "maximum learning rate of each retraining (GDumb: 0.05)",
                    min=0),
        "momentum": Field(float, 0.9, "SGD momentum (GDumb: 0.9)", min=0, max=1),
        "weight_decay": Field(float, 1e-6, "L2 penalty (GDumb: 1e-6)", min=0),
        "memory_size": Field(int, None, "memory in samples (default: budget.memory_size, "
                             "else 500)", min=1),
        "retrain": Field(str, "evaluation", "evaluation: retrain before every evaluation "
                         "(task ends and anytime points) after the memory changed; task_end: "
                         "only at task ends (offline GDumb)", choices=("evaluation", "task_end")),
        "epochs": Field(int, 16, "epochs of each retraining (the paper: 128-256)", min=1),
        "batch_size": Field(int, 16, "retraining batch size (GDumb: 16)", min=1),
        "sgdr": Field(bool, True, "SGDR rate per epoch (warm restarts, T_0 = 1, T_mult = 2); "
                      "false: constant lr"),
        "min_lr": Field(float, 0.0005, "SGDR's minimum rate (GDumb: 0.0005)", min=0),
        "warmup": Field(bool, True, "first epoch at lr / 10 (GDumb's warm start)"),
        "clip": Field(float, 10.0, "gradient norm clip (GDumb: 10; 0: none)", min=0),
    }, "GDumb (Prabhu et al. 2020): greedy class-balanced memory, a model retrained from "
       "scratch on it at each evaluation point"),
    "icarl": StrategyEntry("icarl", "clenv.strategies.icarl:ICaRL", {
        **OPTIM_FIELDS,
        "lr": Field(float, 0.5, "learning rate (sigmoid BCE averaged over seen classes has "
                    "small gradients; the paper: 2.0 at batch 128)", min=0),
        "memory_size": Field(int, None, "exemplars in all (default: budget.memory_size, else "
                             "500); m = memory_size // classes seen per class", min=1),
        "replay_batch_size": Field(int, None, "exemplars replayed per step (default: the "
                                   "stream batch size)", min=0),
    }, "iCaRL (Rebuffi et al. 2017): herding exemplars, nearest-mean-of-exemplars "
       "classification, distillation from the previous model"),
    "avalanche": StrategyEntry("avalanche", "clenv.avalanche.strategy:AvalancheStrategy", {
        **{k: v for k, v in OPTIM_FIELDS.items() if k != "updates_per_sample"},
        "class": Field(str, doc="an Avalanche training strategy: a name from "
                       "avalanche.training (Naive, Replay, EWC, LwF, GEM, AGEM, GDumb, SI, DER, "
                       "ER_ACE, ...) or package.module:Class built on its template"),
        "args": Field(dict, None, "keyword arguments of the class besides model, optimizer, "
                      "criterion and batch sizes (e.g. mem_size: 200)"),
        "mode": Field(str, "online", "online: one experience per Env batch; offline: one "
                      "experience per task, trained at its end", choices=("online", "offline")),
        "train_mb_size": Field(int, None, "Avalanche minibatch size (default: "
                               "scenario.batch_size)", min=1),
        "train_epochs": Field(int, 1, "passes over each experience", min=1),
        "consolidate": Field(str, "task", "online with exposed boundaries: task = EWC, LwF, "
                             "SI, MAS, GEM, AGEM, ... consolidate at task ends; batch = after "
                             "every batch (Avalanche 0.6's own behaviour)",
                             choices=("task", "batch")),
        "storage_policy": Field(str, "default", "memory of the class's ReplayPlugin: default "
                                "(the class's own), reservoir, class_balanced or "
                                "experience_balanced", choices=("default", "reservoir",
                                                                "class_balanced",
                                                                "experience_balanced")),
    }, "any Avalanche (avalanche-lib 0.6) training strategy, online per batch or offline per "
       "task; clenv evaluates it"),
    "agcd": StrategyEntry("agcd", "clenv.agcd.loop:AGCDStrategy", dict(AGCD_STRATEGY_FIELDS),
                          "active generalized category discovery (Ma et al. 2024): a GCD "
                          "learner (simgcd, kmeans) and a query strategy; agcd scenarios only",
                          check_agcd_strategy),
}


def strategy_entry(section: dict, key: str = "strategy") -> StrategyEntry:
    """The registry entry for a strategy section; ``package.module:Class`` names a user class
    whose ``fields`` attribute (if any) validates its parameters."""
    name = section.get("name")
    if not isinstance(name, str):
        raise ConfigError(f"{key}.name", f"expected a strategy name, got {describe(name)}",
                          f"use one of: {', '.join(STRATEGIES)} or package.module:Class")
    if name in STRATEGIES:
        return STRATEGIES[name]
    if ":" in name:
        cls = strategy_class(name, f"{key}.name")
        return StrategyEntry(name, name, dict(getattr(cls, "fields", {}) or {}),
                             (cls.__doc__ or "user strategy").strip().splitlines()[0])
    raise ConfigError(f"{key}.name", f"unknown strategy {describe(name)}",
                      f"use one of: {', '.join(STRATEGIES)} or package.module:Class")


def validate_strategy(section: dict, key: str = "strategy") -> dict:
    """A strategy section with its fields' defaults filled and its plug-ins validated; the
    entry's cross-field rules (``StrategyEntry.check``) run in the typed model
    (clenv.config.typed.check_config), which load_config calls."""
    entry = strategy_entry(section, key)
    params = {k: v for k, v in section.items() if k != "name"}
    fields = dict(entry.fields)
    if not fields and ":" in entry.name:  # a user class without a schema: pass params through
        return dict(section)
    # a strategy whose own fields name a plug-in key (multilane: schedule) keeps it
    plugins = {k: params.pop(k) for k in PLUGIN_KEYS if k in params and k not in fields}
    return {"name": entry.name, **validate(params, fields, key),
            **validate_plugins(entry.name, plugins, key)}


# head and forgetting plug-ins, augmentation and learning-rate schedules: common to every
# strategy built on SupervisedStrategy
PLUGIN_KEYS = ("head", "forgetting", "augment", "schedule", "plasticity", "diagnostics")
# strategies that build their own model and head, or train outside SupervisedStrategy.step
_OWN_MODEL = ("multilane", "avalanche", "agcd")


def validate_plugins(name: str, plugins: dict, key: str) -> dict:
    """Validate the ``head``, ``forgetting``, ``augment`` and ``schedule`` sections (left out
    when absent or null)."""
    from clenv.language.config import validate_head
    from clenv.plugins.config import validate_forgetting
    from clenv.training.config import validate_augment, validate_schedule

    for k, v in plugins.items():
        if v is not None and name in _OWN_MODEL:
            raise ConfigError(f"{key}.{k}", f"{name} builds or trains its own model, so it "
                                            f"takes no {k} plug-in", f"remove {key}.{k}")
    out: dict = {}
    if plugins.get("head") is not None:
        out["head"] = validate_head(plugins["head"], f"{key}.head")
    if plugins.get("forgetting") is not None:
        out["forgetting"] = validate_forgetting(
            plugins["forgetting"], f"{key}.forgetting",
            out["head"]["type"] if "head" in out else "linear")
    if plugins.get("plasticity") is not None:
        from clenv.plugins.config import validate_plasticity

        if name in ("joint", "gdumb"):
            raise ConfigError(f"{key}.plasticity", f"{name} retrains a fresh model, which the "
                              "plasticity plug-in does not follow", f"remove {key}.plasticity")

        out["plasticity"] = validate_plasticity(plugins["plasticity"], f"{key}.plasticity")
    if plugins.get("diagnostics") is not None:
        from clenv.plugins.config import validate_diagnostics

        out["diagnostics"] = validate_diagnostics(plugins["diagnostics"], f"{key}.diagnostics")
    if plugins.get("augment") is not None:
        out["augment"] = validate_augment(plugins["augment"], f"{key}.augment")
    if plugins.get("schedule") is not None:
        if name == "joint":
            raise ConfigError(f"{key}.schedule", "joint retrains from scratch at every task end "
                              "with a constant rate", f"remove {key}.schedule")
        if name == "gdumb":
            raise ConfigError(f"{key}.schedule", "gdumb retrains a fresh model with its own "
                              "rate (sgdr, min_lr, warmup)", f"remove {key}.schedule")
        adaptive_ok = ":" in name and getattr(import_target(name, f"{key}.name"),
                                              "adaptive_lr", False)
        out["schedule"] = validate_schedule(plugins["schedule"], f"{key}.schedule", name,
                                            adaptive_ok)
    return out


def strategy_class(target: str, key: str = "strategy.name") -> type:
    """The class a ``package.module:Class`` strategy name points at, refused (ConfigError)
    unless it is a subclass of clenv's Strategy: nothing the config names is called before
    this check. Importing the module runs it, like a Python import (and imports torch)."""
    from clenv.strategies.base import Strategy  # torch: only when a class is resolved

    cls = import_target(target, key)
    if not (inspect.isclass(cls) and issubclass(cls, Strategy)):
        what = f"a {type(cls).__name__}" if not inspect.isclass(cls) else "a class"
        raise ConfigError(key, f"{describe(target)} is {what}, not a clenv Strategy subclass",
                          "name a class built on clenv.strategies.base.Strategy, or one of: "
                          f"{', '.join(STRATEGIES)}")
    return cls


def make_strategy(section: dict) -> Strategy:
    """The strategy a validated ``strategy`` section names: a registered entry's class, or a
    user's ``package.module:Class`` once it is known to be a Strategy subclass."""
    entry = strategy_entry(section)
    if entry.name in STRATEGIES:
        cls = import_target(entry.target, "strategy.name")
    else:  # a user's package.module:Class: called only when it is a Strategy subclass
        cls = strategy_class(entry.name, "strategy.name")
    return cls(**{k: v for k, v in section.items() if k != "name"})
