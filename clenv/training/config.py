"""The ``augment`` and ``schedule`` sections every supervised strategy accepts (validated without
importing torch, so ``clenv check`` stays light).

``augment`` (image pools only) draws every random choice per sample from the learner's seeded
generator: random crop with zero padding, horizontal flip, torchvision's AutoAugment policies
(each sample under its own seed), and CutMix (Yun et al. 2019) with the loss mixed by the pasted
area, as the i-Blurry and HLE training code applies it (probability 0.5 per batch, alpha 1).

``schedule`` sets the learning rate per gradient step: ``constant``, ``cosine`` (over the run or
over each task), ``step``, ``exponential`` (i-Blurry's ER default ``exp_reset``: gamma per step,
back to the base rate when a new class appears) or ``adaptive`` (CLIB's adaptive learning rate,
Koh et al. 2022: a t-test between the memory-loss decreases under a higher and a lower rate;
strategies with an importance memory only).
"""

from __future__ import annotations

from clenv.config.schema import Field, validate
from clenv.errors import ConfigError

AUGMENT_FIELDS: dict[str, Field] = {
    "crop": Field(int, 0, "random crop back to the input size after zero padding by this many "
                          "pixels per side (0: off; i-Blurry uses 4)", min=0),
    "flip": Field(bool, False, "horizontal flip with probability 0.5 per sample"),
    "autoaugment": Field(str, None, "torchvision AutoAugment policy, one policy draw per sample",
                         choices=("cifar10", "imagenet", "svhn")),
    "cutmix": Field(float, 0.0, "probability per batch of CutMix (i-Blurry/HLE: 0.5; 0: off)",
                    min=0.0, max=1.0),
    "cutmix_alpha": Field(float, 1.0, "Beta(alpha, alpha) of the CutMix area", min=1e-6),
}

SCHEDULE_FIELDS: dict[str, Field] = {
    "type": Field(str, "constant", "learning-rate schedule",
                  choices=("constant", "cosine", "step", "exponential", "adaptive")),
    "per": Field(str, "run", "cosine: anneal over the whole run or restart at each task start "
                             "(needs exposed boundaries)", choices=("run", "task")),
    "min_lr": Field(float, 0.0, "cosine: the rate at the end of the period", min=0.0),
    "warmup": Field(int, 0, "cosine: gradient steps of linear warm-up from 0", min=0),
    "every": Field(int, 1000, "step: gradient steps between decays", min=1),
    "gamma": Field(float, None, "step: factor per decay (default 0.1); exponential: factor per "
                                "gradient step (default 0.9999, as i-Blurry's exp_reset)",
                   min=1e-12, max=1.0),
    "reset": Field(str, "new_class", "exponential: back to the base rate when a new class "
                                     "appears (i-Blurry), at each task start, or never",
                   choices=("new_class", "task", "never")),
    "lr_step": Field(float, 0.95, "adaptive: ratio of the lower to the higher rate", min=1e-6,
                     max=1.0 - 1e-9),
    "lr_period": Field(int, 10, "adaptive: importance updates between switches of the rate",
                       min=1),
    "lr_length": Field(int, 10, "adaptive: loss-decrease samples per rate for the t-test",
                       min=2),
    "significance": Field(float, 0.05, "adaptive: t-test level", min=1e-9, max=0.5),
}

# strategies whose memory recomputes per-sample losses (what the adaptive rate compares)
ADAPTIVE_LR_STRATEGIES = ("plfms", "clib")


def validate_augment(section: object, key: str) -> dict:
    """Validate an ``augment`` mapping."""
    return validate(section, AUGMENT_FIELDS, key)


def validate_schedule(section: object, key: str, strategy: str,
                      adaptive_ok: bool = False) -> dict:
    """Validate a ``schedule`` mapping for strategy ``strategy``; ``adaptive_ok`` when the
    strategy keeps an importance memory (a class with ``adaptive_lr = True``)."""
    out = validate(section, SCHEDULE_FIELDS, key)
    if out["type"] == "adaptive" and not (adaptive_ok or strategy in ADAPTIVE_LR_STRATEGIES):
        raise ConfigError(f"{key}.type", f"the adaptive rate compares the memory losses of an "
                                         f"importance memory, which {strategy} does not keep",
                          f"use it with {', '.join(ADAPTIVE_LR_STRATEGIES)}, or choose "
                          "constant, cosine, step or exponential")
    if out["gamma"] is None:
        out["gamma"] = 0.1 if out["type"] == "step" else 0.9999
    return out
