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
    "adaptive_round": Field(int, 2, "adaptive: rounds 1..adaptive_round query confident-first, "
                            "later rounds uncertain-first", min=0),
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
    "teacher_temp": Field(float, 0.05, "temperature of the sharpened teacher (< student_temp)",
                          min=1e-6),
    "ema_decay": Field(float, 0.9, "decay of the EMA model that makes the label mapping",
                       min=0, max=1),
    "noise": Field(float, 0.1, "augmentation: Gaussian noise, in units of the input's std",
                   min=0),
    "drop": Field(float, 0.1, "augmentation: share of input features zeroed per view", min=0,
                  max=0.9),
    "kmeans_iters": Field(int, 100, "kmeans: most Lloyd iterations per fit", min=1),
}


def check_agcd_config(cfg: dict) -> dict:
    """Cross-checks of a config whose scenario or strategy is agcd (one-line ConfigErrors)."""
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
    s = cfg["strategy"]
    if s["learner"] == "simgcd" and s["teacher_temp"] >= s["student_temp"]:
        raise ConfigError("strategy.teacher_temp", f"the teacher must be sharper than the "
                          f"student: expected < student_temp = {s['student_temp']:g}, got "
                          f"{s['teacher_temp']:g}", "use e.g. teacher_temp: 0.05")
    return cfg
