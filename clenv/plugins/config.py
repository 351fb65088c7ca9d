"""The ``forgetting`` section every supervised strategy accepts (validated without torch)."""

from __future__ import annotations

from clenv.config.schema import Field, validate
from clenv.errors import ConfigError

FORGETTING_FIELDS: dict[str, Field] = {
    "schedule": Field(str, doc="active (reset every k steps, whole run), temporary (every k "
                               "steps for the first N steps) or probabilistic (per step, swap "
                               "a fraction p of the batch's class rows for random vectors)",
                      choices=("active", "temporary", "probabilistic")),
    "every": Field(int, 100, "k: gradient steps between resets", min=1),
    "target": Field(object, "head", "what is reset: head, input, or a module name (a list for "
                                    "several)"),
    "window": Field(int, 1000, "N: temporary resets happen in the first N steps only", min=1),
    "per": Field(str, "run", "temporary: count N from the run start or from each task start",
                 choices=("run", "task")),
    "p": Field(float, 0.1, "probabilistic: chance that a class row of the batch is swapped "
                           "for one step", min=0.0, max=1.0),
    "recovery_window": Field(int, 10, "steps whose mean loss before a reset sets the level a "
                                      "recovery must reach", min=1),
}


def validate_forgetting(section: object, key: str, head_type: str) -> dict:
    """Validate a ``forgetting`` mapping; ``head_type`` is the strategy's head type."""
    out = validate(section, FORGETTING_FIELDS, key)
    target = out["target"]
    targets = target if isinstance(target, list) else [target]
    if not targets or not all(isinstance(t, str) and t for t in targets):
        raise ConfigError(f"{key}.target", f"expected a module name or a list of them, got "
                                           f"{target!r:.60}", "e.g. head, input or features.1")
    out["target"] = list(targets)
    if out["schedule"] == "probabilistic":
        if out["target"] != ["head"]:
            raise ConfigError(f"{key}.target", "probabilistic forgetting swaps class rows, so "
                                               "its target is the head", "set target: head")
        if head_type == "language":
            raise ConfigError(f"{key}.schedule", "a language head's class rows are frozen "
                                                 "targets that are never replaced",
                              "use head type linear or cosine, or schedule active/temporary")
    return out


PLASTICITY_FIELDS: dict[str, Field] = {
    "method": Field(str, doc="shrink_perturb (Ash & Adams 2020), continual_backprop (Dohare et "
                             "al. 2024), l2_init (Kumar et al. 2023) or fresh (re-initialise the "
                             "whole model at every task start: the plasticity reference)",
                    choices=("shrink_perturb", "continual_backprop", "l2_init", "fresh")),
    "shrink": Field(float, 0.4, "shrink_perturb: lambda, the factor on the weights",
                    min=0.0, max=1.0),
    "sigma": Field(float, 0.01, "shrink_perturb: sigma, the standard deviation of the noise",
                   min=0.0),
    "every": Field(int, None, "shrink_perturb: gradient steps between applications (null: "
                              "at every task start after the first)", min=1),
    "replacement_rate": Field(float, 1e-4, "continual_backprop: rho, units replaced per "
                                           "mature unit and step (the paper's 1e-4)",
                              min=0.0, max=1.0),
    "maturity": Field(int, 100, "continual_backprop: m, steps before a unit can be replaced "
                                "(the paper's 100)", min=0),
    "decay": Field(float, 0.99, "continual_backprop: eta, the decay of the utility average "
                                "(the paper's 0.99)", min=0.0, max=1.0),
    "utility": Field(str, "contribution", "continual_backprop: contribution (the paper's "
                     "Algorithm 1) or adaptable_contribution (the official code's "
                     "generate-and-test as its Online Permuted MNIST config runs it: "
                     "mean-centred activations over the mean incoming weight, bias-corrected "
                     "averages, the removed unit's mean output moved into the next bias, "
                     "Kaiming-uniform incoming weights)",
                     choices=("contribution", "adaptable_contribution")),
    "l2": Field(float, 0.01, "l2_init: lambda on ||theta - theta_0||^2", min=0.0),
}


def validate_plasticity(section: object, key: str) -> dict:
    """Validate a ``plasticity`` mapping (one method and its parameters)."""
    return validate(section, PLASTICITY_FIELDS, key)


def validate_diagnostics(value: object, key: str) -> bool:
    """``diagnostics``: true or false."""
    if not isinstance(value, bool):
        raise ConfigError(key, f"expected true or false, got {value!r:.60}",
                          "set diagnostics: true to log plasticity diagnostics")
    return value
