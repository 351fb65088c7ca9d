"""The ``agcd`` strategy section: its YAML keys (no torch here, so ``clenv check`` stays light)."""

from __future__ import annotations

from clenv.config.schema import Field, describe

LEARNERS = ("simgcd", "kmeans")
QUERIES = ("adaptive", "random", "entropy", "margin", "kcenter", "novel_margin", "none", "all")

AGCD_STRATEGY_FIELDS: dict[str, Field] = {
    "learner": Field(str, "simgcd", "GCD learner: simgcd (cosine classifier, self-distillation) "
                     "or kmeans (semi-supervised k-means on the input)", choices=LEARNERS),
    "query": Field(str, "adaptive", "query strategy; none and all are the lower and upper "
                   "references (no labels bought / every candidate labelled)", choices=QUERIES),
    "adaptive_round": Field(int, 2, "adaptive: the first uncertain-first round (rounds count "
                            "from 1; earlier rounds query confident-first)", min=0),
    "base_epochs": Field(int, 30, "epochs on the initial labelled + unlabelled data before "
                         "round 1", min=0),
    "epochs_per_round": Field(int, 10, "epochs after each query round", min=0),
    "batch_size": Field(int, 128, "rows per step of the pass over labelled + unlabelled data",
                        min=2),
    "query_batch_size": Field(int, 32, "rows per step of the pass over queried samples", min=1),
    "optimizer": Field(str, "sgd", "optimiser", choices=("sgd", "adam")),
    "lr": Field(float, 0.05, "learning rate", min=0),
    "momentum": Field(float, 0.9, "SGD momentum", min=0, max=1),
    "weight_decay": Field(float, 5e-5, "L2 penalty", min=0),
    "sup_weight": Field(float, 0.35, "lambda: weight of the supervised CE; the unsupervised "
                        "terms get 1 - lambda", min=0, max=1),
    "distill_weight": Field(float, 1.0, "weight of the self-distillation term", min=0),
    "memax_weight": Field(float, 2.0, "weight of the mean-entropy regulariser", min=0),
    "student_temp": Field(float, 0.1, "temperature of the cosine logits", min=1e-6),
    "teacher_temp": Field(float, 0.04, "temperature of the sharpened teacher after the "
                          "warm-up (< student_temp; ActiveGCD: 0.04)", min=1e-6),
    "warmup_teacher_temp": Field(float, 0.07, "teacher temperature at the first warm-up epoch "
                                 "(ActiveGCD: 0.07), linear to teacher_temp", min=1e-6),
    "warmup_teacher_epochs": Field(int, 30, "epochs of the teacher-temperature warm-up", min=1),
    "teacher_warmup": Field(str, "base", "where the warm-up counts epochs: base (over the "
                            "base epochs; rounds use teacher_temp, as ActiveGCD), round "
                            "(restarts in every phase) or run (across all phases)",
                            choices=("base", "round", "run")),
    "proj_dim": Field(int, 256, "projection head output for the contrastive terms (0: no "
                      "projection head and no contrastive terms)", min=0),
    "proj_hidden": Field(int, 2048, "hidden width of the projection head", min=1),
    "proj_layers": Field(int, 3, "linear layers of the projection head", min=1),
    "infonce_weight": Field(float, 1.0, "weight of the unsupervised InfoNCE term (inside 1 - "
                            "lambda)", min=0),
    "supcon_weight": Field(float, 1.0, "weight of the supervised contrastive term (inside "
                           "lambda)", min=0),
    "infonce_temp": Field(float, 1.0, "InfoNCE temperature (ActiveGCD calls it with 1.0)",
                          min=1e-6),
    "supcon_temp": Field(float, 0.07, "SupCon temperature (and base temperature)", min=1e-6),
    "schedule": Field(str, "cosine", "learning rate per epoch within each phase: cosine "
                      "(to lr * min_lr_factor, ActiveGCD) or constant",
                      choices=("cosine", "constant")),
    "min_lr_factor": Field(float, 1e-3, "cosine: the rate at the end of a phase, as a share "
                           "of lr", min=0, max=1),
    "ema_decay": Field(float, 0.9, "decay of the EMA model that makes the label mapping",
                       min=0, max=1),
    "noise": Field(float, 0.1, "augmentation: Gaussian noise, in units of the input's std",
                   min=0),
    "drop": Field(float, 0.1, "augmentation: share of input features zeroed per view", min=0,
                  max=0.9),
    "kmeans_iters": Field(int, 100, "kmeans: most Lloyd iterations per fit", min=1),
}


def check_agcd_config(cfg: dict) -> dict:
    """Cross-section checks of a config whose scenario or strategy is agcd (one-line
    ConfigErrors); the strategy section's own rule is check_agcd_strategy."""
    from clenv.data.registry import SOURCES
    from clenv.errors import ConfigError

    gen, name = cfg["scenario"]["generator"], cfg["strategy"]["name"]
    if gen != "agcd":
        raise ConfigError("strategy.name", f"the agcd strategy needs an agcd scenario, got "
                          f"generator {describe(gen)}",
                          "set scenario.generator: agcd or use another strategy")
    if name != "agcd":
        raise ConfigError("strategy.name", f"the agcd scenario is played by the agcd strategy "
                          f"(a GCD learner and a query strategy), got {describe(name)}",
                          "use strategy: agcd (strategies/agcd.yaml)")
    if cfg["eval"]["reference"] is not None:
        raise ConfigError("eval.reference", "agcd runs have no joint reference; their bounds "
                          "are strategy.query: none and all", "remove eval.reference")
    if cfg["output"].get("checkpoint_every") is not None:
        raise ConfigError("output.checkpoint_every", "agcd runs write no checkpoints (a run "
                          "takes seconds to minutes)", "remove output.checkpoint_every")
    if SOURCES[cfg["data"]["source"]].multi_label:
        raise ConfigError("data.source", f"the agcd scenario needs single-label classes; "
                          f"{cfg['data']['source']} is multi-label",
                          "use synthetic, digits, mnist, cifar100 or tensors")
    return cfg


def check_agcd_strategy(section: dict, key: str = "strategy") -> None:
    """The agcd section's cross-field rule: a simgcd teacher sharper than its student (typed.py
    runs it after the fields validate)."""
    from clenv.errors import ConfigError

    for name in ("teacher_temp", "warmup_teacher_temp"):
        if section["learner"] == "simgcd" and section[name] >= section["student_temp"]:
            raise ConfigError(f"{key}.{name}", f"the teacher must be sharper than the "
                              f"student: expected < student_temp = {section['student_temp']:g}, "
                              f"got {section[name]:g}", f"use e.g. {name}: 0.05")
